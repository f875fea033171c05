//! Data fixes a migration asks for but SQL cannot do, because they need the identity schemas,
//! which live in the configuration (files, URLs) and not in the database. Each runs once, at
//! start-up, and is recorded in `startup_backfills` so it never runs again.

use crate::admin::password_identifiers_missing;
use crate::engine::Engine;
use tessera_core::Error;
use tessera_core::identity::CREDENTIAL_PASSWORD;

/// The `startup_backfills` row of migration 20261204000001.
const PASSWORD_IDENTIFIERS: &str = "password_identifiers";

/// Identities loaded per page while back-filling.
const PAGE: usize = 500;

/// What a back-fill did, for the start-up log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backfilled {
    /// Identities that got (some of) their password identifiers.
    pub identities: usize,
    /// Identifiers left out because another identity holds them already (old data could have
    /// two social-only identities with one email); each is logged with both identities.
    pub skipped: usize,
    /// Identities whose schema is no longer configured, left as they were.
    pub unknown_schema: usize,
}

impl Engine {
    /// Runs every pending start-up data fix. Cheap when none is pending (one query).
    pub async fn run_backfills(&self) -> Result<Option<Backfilled>, Error> {
        if !self.store.backfill_pending(PASSWORD_IDENTIFIERS).await? {
            return Ok(None);
        }
        let done = self.backfill_password_identifiers().await?;
        self.store.finish_backfill(PASSWORD_IDENTIFIERS).await?;
        tracing::info!(
            identities = done.identities,
            skipped = done.skipped,
            unknown_schema = done.unknown_schema,
            "back-filled password identifiers of identities created without a password"
        );
        Ok(Some(done))
    }

    /// Gives every identity the schema's password identifiers it lacks, as a `password`
    /// credential with identifiers and no hash (what new identities get from
    /// [`Engine::rebuild_with_traits`]). Idempotent: running it twice adds nothing.
    pub async fn backfill_password_identifiers(&self) -> Result<Backfilled, Error> {
        let mut out = Backfilled::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_identities(PAGE, token.as_deref(), None)
                .await?;
            for identity in &page.items {
                let Ok(schema) = self.schemas.get(&identity.schema_id) else {
                    out.unknown_schema += 1;
                    tracing::warn!(identity = %identity.id, schema = %identity.schema_id, "back-fill: the identity's schema is not configured; its password identifiers were not added");
                    continue;
                };
                let missing = password_identifiers_missing(identity, schema);
                if missing.is_empty() {
                    continue;
                }
                let added = self
                    .store
                    .add_credential_identifiers(identity.id, CREDENTIAL_PASSWORD, &missing)
                    .await?;
                for taken in missing.iter().filter(|m| !added.contains(m)) {
                    out.skipped += 1;
                    let owner = self
                        .store
                        .find_identity_by_identifier(CREDENTIAL_PASSWORD, taken)
                        .await?
                        .map(|o| o.id.to_string())
                        .unwrap_or_default();
                    tracing::warn!(identity = %identity.id, owner = %owner, "back-fill: a password identifier of this identity belongs to another identity already; it was left out (merge or change one of them)");
                }
                if !added.is_empty() {
                    out.identities += 1;
                }
            }
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok(out),
            }
        }
    }
}
