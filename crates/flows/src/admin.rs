//! Identity administration: the rules behind `/admin/identities` and `tessera identities
//! import`. Bodies use Kratos's `CreateIdentityBody` / `UpdateIdentityBody` shapes; exported
//! Kratos identities (with `id`, timestamps, credential identifiers) are accepted too, keeping
//! their ids so applications that stored them keep working.

use crate::engine::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tessera_core::identity::{
    CREDENTIAL_LOOKUP_SECRET, CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, CREDENTIAL_TOTP, Credential,
    Identity, IdentityState, RecoveryAddress, VerifiableAddress, normalize_identifier,
};
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, password};
use uuid::Uuid;

/// Fields of an identity body the admin API understands; anything else is refused by name.
const CREATE_FIELDS: &[&str] = &[
    "id",
    "schema_id",
    "traits",
    "state",
    "metadata_public",
    "metadata_admin",
    "credentials",
    "verifiable_addresses",
    "recovery_addresses",
    "external_id",
    "organization_id",
    // read-only fields present in exported identities; ignored
    "schema_url",
    "created_at",
    "updated_at",
    "state_changed_at",
];

/// Kratos's column is `VARCHAR(64)`: a longer external id fails there; here it is a 400.
pub const MAX_EXTERNAL_ID_CHARS: usize = 64;

/// Reads `external_id` from a body: absent, `null` or `""` mean none (Kratos stores no empty
/// one); otherwise 1–64 characters without control characters, so it stays printable in logs
/// and usable in a URL path.
pub fn external_id_from(value: Option<&Value>) -> Result<Option<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => {
            check_external_id(s)?;
            Ok(Some(s.clone()))
        }
        Some(_) => Err(field_err(
            "external_id",
            "must be a string (or null to clear it)",
        )),
    }
}

/// Reads `organization_id` (Kratos's `NullUUID`): absent or `null` mean none.
fn organization_id_from(value: Option<&Value>) -> Result<Option<Uuid>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s).map(Some).map_err(|_| {
            field_err(
                "organization_id",
                format!(
                    "`{s}` is not a UUID; give an organization's id (aliases are not accepted here)"
                ),
            )
        }),
        Some(_) => Err(field_err(
            "organization_id",
            "must be a UUID string or null",
        )),
    }
}

/// The rules every external id follows, in a body or in a lookup path.
pub fn check_external_id(s: &str) -> Result<(), Error> {
    if s.is_empty() {
        return Err(field_err("external_id", "must not be empty"));
    }
    let n = s.chars().count();
    if n > MAX_EXTERNAL_ID_CHARS {
        return Err(field_err(
            "external_id",
            format!("is {n} characters long; use at most {MAX_EXTERNAL_ID_CHARS}"),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(field_err(
            "external_id",
            format!(
                "contains the control character U+{:04X}; use printable characters only",
                c as u32
            ),
        ));
    }
    Ok(())
}

fn field_err(field: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("`{field}`: {msg}"))
}

impl Engine {
    /// Assembles an identity from traits, deriving credential identifiers and addresses from the
    /// schema. Pure: nothing is written.
    #[allow(clippy::too_many_arguments)]
    pub fn build_identity(
        &self,
        schema_id: &str,
        traits: Value,
        state: IdentityState,
        metadata_public: Value,
        metadata_admin: Value,
        hashed_password: Option<String>,
        id: Option<Uuid>,
    ) -> Result<Identity, Error> {
        let now = now_ms();
        let mut identity = Identity {
            id: id.unwrap_or_else(Uuid::new_v4),
            external_id: None,
            schema_id: schema_id.to_string(),
            schema_url: String::new(),
            state,
            state_changed_at: now,
            traits: Value::Null,
            verifiable_addresses: vec![],
            recovery_addresses: vec![],
            metadata_public,
            metadata_admin,
            credentials: None,
            created_at: now,
            updated_at: now,
            organization_id: None,
        };
        if let Some(h) = hashed_password {
            identity
                .credentials
                .get_or_insert_with(BTreeMap::new)
                .insert(
                    CREDENTIAL_PASSWORD.into(),
                    Credential {
                        kind: CREDENTIAL_PASSWORD.into(),
                        identifiers: vec![],
                        config: serde_json::to_value(tessera_core::identity::PasswordConfig {
                            hashed_password: h,
                        })
                        .unwrap_or(Value::Null),
                        version: 0,
                        created_at: now,
                        updated_at: now,
                    },
                );
        }
        self.rebuild_with_traits(&identity, traits)
    }

    /// Replaces traits and recomputes what derives from them (password identifiers, addresses),
    /// keeping verification state of addresses that stay.
    pub fn rebuild_with_traits(
        &self,
        identity: &Identity,
        traits: Value,
    ) -> Result<Identity, Error> {
        let schema = self.schemas.get(&identity.schema_id)?;
        let ex = schema.extract(&traits);
        let now = now_ms();
        let mut out = identity.clone();
        out.traits = traits;
        out.updated_at = now;
        out.verifiable_addresses = ex
            .verifiable
            .iter()
            .map(|(via, value)| {
                identity
                    .verifiable_addresses
                    .iter()
                    .find(|a| &a.via == via && &a.value == value)
                    .cloned()
                    .unwrap_or(VerifiableAddress {
                        id: Uuid::new_v4(),
                        value: value.clone(),
                        verified: false,
                        via: via.clone(),
                        status: "pending".into(),
                        verified_at: None,
                        created_at: now,
                        updated_at: now,
                    })
            })
            .collect();
        out.recovery_addresses = ex
            .recovery
            .iter()
            .map(|(via, value)| {
                identity
                    .recovery_addresses
                    .iter()
                    .find(|a| &a.via == via && &a.value == value)
                    .cloned()
                    .unwrap_or(RecoveryAddress {
                        id: Uuid::new_v4(),
                        value: value.clone(),
                        via: via.clone(),
                        created_at: now,
                        updated_at: now,
                    })
            })
            .collect();
        set_password_identifiers(&mut out, ex.password_identifiers, now);
        set_code_identifiers(&mut out, ex.code_identifiers, now);
        Ok(out)
    }

    fn validate(&self, identity: &Identity) -> Result<(), Error> {
        let schema = self.schemas.get(&identity.schema_id)?;
        let errors = schema.validate_traits(&identity.traits);
        if errors.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = errors
            .iter()
            .map(|e| match &e.field {
                Some(f) => format!("{f}: {}", e.message.text),
                None => e.message.text.clone(),
            })
            .collect();
        Err(Error::bad_request(format!("The traits do not match identity schema `{}`: {}", identity.schema_id, list.join("; ")))
            .with_details(serde_json::json!({ "errors": errors.iter().map(|e| serde_json::json!({"field": e.field, "message": e.message})).collect::<Vec<_>>() })))
    }

    /// Parses and checks a create body without writing (used by create, batch and import).
    pub fn identity_from_body(&self, body: &Value) -> Result<Identity, Error> {
        let obj = body.as_object().ok_or_else(|| Error::bad_request("The identity must be a JSON object such as {\"schema_id\": \"default\", \"traits\": {...}}."))?;
        if let Some(unknown) = obj.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return Err(field_err(
                unknown,
                format!(
                    "unknown field; known fields are {}",
                    CREATE_FIELDS[..11].join(", ")
                ),
            ));
        }
        let schema_id = match obj.get("schema_id") {
            None | Some(Value::Null) => self.schemas.default_id.clone(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(field_err("schema_id", "must be a string")),
        };
        self.schemas.get(&schema_id)?;
        let traits = obj
            .get("traits")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        if !traits.is_object() {
            return Err(field_err("traits", "must be an object"));
        }
        let state = match obj.get("state") {
            None | Some(Value::Null) => IdentityState::Active,
            Some(Value::String(s)) => IdentityState::parse(s).ok_or_else(|| {
                field_err(
                    "state",
                    format!("`{s}` is not a state: use active or inactive"),
                )
            })?,
            Some(_) => return Err(field_err("state", "must be a string")),
        };
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(Uuid::parse_str(s).map_err(|_| Error::invalid_uuid("identity id", s))?)
            }
            Some(_) => return Err(field_err("id", "must be a UUID string")),
        };
        let meta = |k: &str| -> Result<Value, Error> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(Value::Null),
                Some(v @ Value::Object(_)) => Ok(v.clone()),
                Some(_) => Err(field_err(k, "must be an object or null")),
            }
        };
        let (metadata_public, metadata_admin) = (meta("metadata_public")?, meta("metadata_admin")?);
        let hashed = self.password_from_body(obj.get("credentials"))?;
        let mut identity = self.build_identity(
            &schema_id,
            traits,
            state,
            metadata_public,
            metadata_admin,
            hashed,
            id,
        )?;
        identity.external_id = external_id_from(obj.get("external_id"))?;
        identity.organization_id = organization_id_from(obj.get("organization_id"))?;
        self.oidc_from_body(obj.get("credentials"), &mut identity)?;
        self.totp_from_body(obj.get("credentials"), &mut identity)?;
        self.lookup_from_body(obj.get("credentials"), &mut identity)?;
        apply_address_status(obj, &mut identity)?;
        self.validate(&identity)?;
        Ok(identity)
    }

    /// Reads `credentials.password.config.{password|hashed_password}`: a plain password is hashed
    /// (no policy check, as Kratos's admin import); an imported hash must be a format we verify.
    fn password_from_body(&self, creds: Option<&Value>) -> Result<Option<String>, Error> {
        let Some(creds) = creds.filter(|c| !c.is_null()) else {
            return Ok(None);
        };
        let creds = creds
            .as_object()
            .ok_or_else(|| field_err("credentials", "must be an object"))?;
        if let Some(k) = creds.keys().find(|k| {
            ![
                CREDENTIAL_PASSWORD,
                CREDENTIAL_OIDC,
                CREDENTIAL_TOTP,
                CREDENTIAL_LOOKUP_SECRET,
                // Kratos exports it; it is derived again from the traits and the schema's
                // `credentials.code` identifiers, so what the export says is not needed.
                tessera_core::identity::CREDENTIAL_CODE,
            ]
            .contains(&k.as_str())
        }) {
            return Err(field_err(
                &format!("credentials.{k}"),
                "this credential type cannot be imported: use password, oidc, totp, lookup_secret or code",
            ));
        }
        let Some(pw) = creds.get(CREDENTIAL_PASSWORD) else {
            return Ok(None);
        };
        let config = pw.get("config").ok_or_else(|| {
            field_err(
                "credentials.password.config",
                "is required: give `password` or `hashed_password`",
            )
        })?;
        if let Some(h) = config.get("hashed_password").and_then(Value::as_str) {
            password::validate_hash_format(h)
                .map_err(|e| field_err("credentials.password.config.hashed_password", e))?;
            return Ok(Some(h.to_string()));
        }
        if let Some(p) = config.get("password").and_then(Value::as_str) {
            if p.is_empty() || p.chars().count() > password::MAX_PASSWORD_LENGTH {
                return Err(field_err(
                    "credentials.password.config.password",
                    "must be between 1 and 1024 characters",
                ));
            }
            return Ok(Some(self.hasher.hash(p)));
        }
        Err(field_err(
            "credentials.password.config",
            "give `password` (plain text, hashed on import) or `hashed_password` (argon2id, bcrypt or pbkdf2 PHC string)",
        ))
    }

    /// Reads `credentials.oidc.config.providers[]` (`{provider, subject}`) so identities exported
    /// from Kratos keep their social sign-in links.
    fn oidc_from_body(&self, creds: Option<&Value>, identity: &mut Identity) -> Result<(), Error> {
        let Some(oidc) = creds.and_then(|c| c.get(CREDENTIAL_OIDC)) else {
            return Ok(());
        };
        let providers = oidc
            .pointer("/config/providers")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                field_err(
                    "credentials.oidc.config.providers",
                    "must be a list of {provider, subject}",
                )
            })?;
        let mut identifiers = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            let get = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let (Some(provider), Some(subject)) = (get("provider"), get("subject")) else {
                return Err(field_err(
                    &format!("credentials.oidc.config.providers.{i}"),
                    "needs non-empty `provider` and `subject`",
                ));
            };
            identifiers.push(format!("{provider}:{subject}"));
        }
        let now = now_ms();
        identity
            .credentials
            .get_or_insert_with(BTreeMap::new)
            .insert(
                CREDENTIAL_OIDC.into(),
                Credential {
                    kind: CREDENTIAL_OIDC.into(),
                    identifiers,
                    config: oidc.get("config").cloned().unwrap_or(Value::Null),
                    version: 0,
                    created_at: now,
                    updated_at: now,
                },
            );
        Ok(())
    }

    /// Reads `credentials.totp.config.totp_url` (Kratos's import): the key is checked and kept
    /// sealed with `secrets.cipher`, as an enrolled one. Refused while `totp` is off: the key
    /// would not be asked for, so the account would sign in with less than it has.
    fn totp_from_body(&self, creds: Option<&Value>, identity: &mut Identity) -> Result<(), Error> {
        let Some(totp) = creds.and_then(|c| c.get(CREDENTIAL_TOTP)) else {
            return Ok(());
        };
        const FIELD: &str = "credentials.totp.config.totp_url";
        if self.settings.mfa.totp.is_none() {
            return Err(field_err(
                "credentials.totp",
                "the totp method is off here, so this key would not be asked for at sign-in: set `selfservice.methods.totp.enabled: true` first",
            ));
        }
        let url = totp
            .pointer("/config/totp_url")
            .and_then(Value::as_str)
            .ok_or_else(|| field_err(FIELD, "is required: the key's otpauth://totp/ URL"))?;
        crate::mfa::TotpKey::import(url).map_err(|e| field_err(FIELD, e))?;
        let sealed = self
            .cipher
            .encrypt(url)
            .map_err(|e| Error::internal(e.to_string()))?;
        let now = now_ms();
        let mut credential = Credential {
            kind: CREDENTIAL_TOTP.into(),
            identifiers: vec![identity.id.to_string()],
            config: Value::Null,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        credential.set_config(&tessera_core::identity::TotpConfig { totp_url: sealed });
        identity
            .credentials
            .get_or_insert_with(BTreeMap::new)
            .insert(CREDENTIAL_TOTP.into(), credential);
        Ok(())
    }

    /// Reads `credentials.lookup_secret.config.codes[]` (`{code, used_at}`, Kratos's import):
    /// each code is kept as its hash, added to the identity's codes as Kratos appends them.
    /// Refused while `lookup_secret` is off, for the reason [`Engine::totp_from_body`] gives.
    fn lookup_from_body(
        &self,
        creds: Option<&Value>,
        identity: &mut Identity,
    ) -> Result<(), Error> {
        use tessera_core::identity::{LookupSecretConfig, RecoveryCode};
        let Some(lookup) = creds.and_then(|c| c.get(CREDENTIAL_LOOKUP_SECRET)) else {
            return Ok(());
        };
        const FIELD: &str = "credentials.lookup_secret.config.codes";
        if !self.settings.mfa.lookup_secret {
            return Err(field_err(
                "credentials.lookup_secret",
                "the lookup_secret method is off here, so these codes would not be asked for at sign-in: set `selfservice.methods.lookup_secret.enabled: true` first",
            ));
        }
        let list = lookup
            .pointer("/config/codes")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| field_err(FIELD, "must be a non-empty list of {code, used_at}"))?;
        let mut config = crate::lookup::codes_of(identity).unwrap_or_default();
        for (i, entry) in list.iter().enumerate() {
            let code = entry
                .get("code")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    field_err(&format!("{FIELD}.{i}.code"), "must be a non-empty string")
                })?;
            let used_at = match entry.get("used_at") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => {
                    Some(tessera_core::timefmt::parse_rfc3339(t).ok_or_else(|| {
                        field_err(
                            &format!("{FIELD}.{i}.used_at"),
                            "must be an RFC 3339 time or null",
                        )
                    })?)
                }
                Some(_) => {
                    return Err(field_err(
                        &format!("{FIELD}.{i}.used_at"),
                        "must be an RFC 3339 time or null",
                    ));
                }
            };
            config.recovery_codes.push(RecoveryCode {
                hash: crate::lookup::code_hash(identity, code),
                used_at,
            });
        }
        let now = now_ms();
        let mut credential = Credential {
            kind: CREDENTIAL_LOOKUP_SECRET.into(),
            identifiers: vec![identity.id.to_string()],
            config: Value::Null,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        credential.set_config(&LookupSecretConfig {
            recovery_codes: config.recovery_codes,
        });
        identity
            .credentials
            .get_or_insert_with(BTreeMap::new)
            .insert(CREDENTIAL_LOOKUP_SECRET.into(), credential);
        Ok(())
    }

    pub async fn create_identity(&self, body: &Value) -> Result<Identity, Error> {
        let identity = self.identity_from_body(body)?;
        self.external_id_free(&identity).await?;
        self.organization_exists(&identity).await?;
        self.store.insert_identity(&identity).await?;
        self.present(identity.id, &[]).await
    }

    /// Refuses an `external_id` another identity holds, naming it (the unique index still
    /// catches a racing write, with the generic conflict message).
    async fn external_id_free(&self, identity: &Identity) -> Result<(), Error> {
        let Some(ext) = identity.external_id.as_deref() else {
            return Ok(());
        };
        match self.store.find_identity_by_external_id(ext).await? {
            Some(other) if other.id != identity.id => Err(Error::conflict(format!(
                "This identity conflicts with another identity that already exists: the external_id `{ext}` belongs to another identity. External ids are unique."
            ))
            .with_id(tessera_core::error::ErrorId::IdentityConflict)),
            _ => Ok(()),
        }
    }

    /// Names a missing organization before the foreign key would refuse it with a generic
    /// database error.
    async fn organization_exists(&self, identity: &Identity) -> Result<(), Error> {
        let Some(org) = identity.organization_id else {
            return Ok(());
        };
        match self.store.org_get(&org.to_string()).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == tessera_core::error::ErrorKind::NotFound => Err(field_err(
                "organization_id",
                format!(
                    "no organization has the id {org}; create it first (POST /admin/organizations) or leave organization_id out"
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// `GET /admin/identities/by/external/{externalID}`: like [`Engine::present`], found by
    /// external id.
    pub async fn present_by_external_id(
        &self,
        external_id: &str,
        include_credentials: &[String],
    ) -> Result<Identity, Error> {
        check_external_id(external_id)?;
        let mut identity = self
            .store
            .find_identity_by_external_id(external_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("No identity has the external_id `{external_id}`."))
            })?;
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.redact_credentials(include_credentials);
        Ok(identity)
    }

    /// Loads an identity for output: schema URL set, credential configs only where asked.
    pub async fn present(
        &self,
        id: Uuid,
        include_credentials: &[String],
    ) -> Result<Identity, Error> {
        let mut identity = self.store.get_identity(id).await?;
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.redact_credentials(include_credentials);
        Ok(identity)
    }

    /// `PUT /admin/identities/{id}`: replaces traits, state, metadata (and password when given).
    pub async fn replace_identity(&self, id: Uuid, body: &Value) -> Result<Identity, Error> {
        self.rewrite_identity(id, |_| Ok(body.clone())).await
    }

    /// Reads the identity, makes the replacement body from it with `body_of`, and writes the
    /// result only if nobody wrote the identity in between (the optimistic check): a login
    /// that changed the password hash, or another admin call, is never undone by a body built
    /// from what was there before. Lost races are retried from a fresh read, so a JSON Patch
    /// applies to the identity as it now is; after [`REWRITE_ATTEMPTS`] the answer is 409.
    async fn rewrite_identity(
        &self,
        id: Uuid,
        body_of: impl Fn(&Identity) -> Result<Value, Error>,
    ) -> Result<Identity, Error> {
        for _ in 0..REWRITE_ATTEMPTS {
            let current = self.store.get_identity(id).await?;
            let body = body_of(&current)?;
            let next = self.replacement(&current, &body).await?;
            if !self
                .store
                .update_identity_if_unchanged(&next, current.updated_at)
                .await?
            {
                continue;
            }
            // A deactivated identity's sessions could not be used again anyway; ending them
            // now tells the apps they signed in to (back-channel logout).
            if current.state == IdentityState::Active && next.state != IdentityState::Active {
                self.store.revoke_identity_sessions(id, None).await?;
            }
            return self.present(id, &[]).await;
        }
        Err(Error::conflict(format!(
            "The identity was changed by other requests while this one was being saved, {REWRITE_ATTEMPTS} times in a row, so nothing was saved. Fetch it and try again."
        )))
    }

    /// The identity `body` (a PUT body) makes of `current`, checked against its schema.
    async fn replacement(&self, current: &Identity, body: &Value) -> Result<Identity, Error> {
        let obj = body
            .as_object()
            .ok_or_else(|| Error::bad_request("The body must be a JSON object."))?;
        if let Some(unknown) = obj.keys().find(|k| !CREATE_FIELDS.contains(&k.as_str())) {
            return Err(field_err(unknown, "unknown field"));
        }
        let mut next = current.clone();
        if let Some(s) = obj.get("schema_id").and_then(Value::as_str) {
            self.schemas.get(s)?;
            next.schema_id = s.to_string();
        }
        if let Some(st) = obj.get("state") {
            let s = st
                .as_str()
                .and_then(IdentityState::parse)
                .ok_or_else(|| field_err("state", "use active or inactive"))?;
            if s != next.state {
                next.state = s;
                next.state_changed_at = now_ms();
            }
        }
        for k in ["metadata_public", "metadata_admin"] {
            if let Some(v) = obj.get(k) {
                if !(v.is_object() || v.is_null()) {
                    return Err(field_err(k, "must be an object or null"));
                }
                if k == "metadata_public" {
                    next.metadata_public = v.clone()
                } else {
                    next.metadata_admin = v.clone()
                }
            }
        }
        if let Some(h) = self.password_from_body(obj.get("credentials"))? {
            let now = now_ms();
            next.credentials.get_or_insert_with(BTreeMap::new).insert(
                CREDENTIAL_PASSWORD.into(),
                Credential {
                    kind: CREDENTIAL_PASSWORD.into(),
                    identifiers: vec![],
                    config: serde_json::to_value(tessera_core::identity::PasswordConfig {
                        hashed_password: h,
                    })
                    .unwrap_or(Value::Null),
                    version: 0,
                    created_at: now,
                    updated_at: now,
                },
            );
        }
        self.totp_from_body(obj.get("credentials"), &mut next)?;
        self.lookup_from_body(obj.get("credentials"), &mut next)?;
        let traits = match obj.get("traits") {
            Some(t) if t.is_object() => t.clone(),
            Some(_) => return Err(field_err("traits", "must be an object")),
            None => {
                return Err(field_err(
                    "traits",
                    "is required for PUT; use PATCH to change single fields",
                ));
            }
        };
        // Kratos's update body has no `organization_id`: it is fixed when the identity is
        // created. An exported identity sent back unchanged still carries it, so only a
        // different value is refused.
        if let Some(v) = obj.get("organization_id")
            && organization_id_from(Some(v))? != current.organization_id
        {
            return Err(field_err(
                "organization_id",
                "is set when the identity is created and cannot be changed; manage further organizations through /admin/organizations/{id}/members",
            ));
        }
        // Kratos's PUT takes the whole identity: an absent `external_id` clears it.
        next.external_id = external_id_from(obj.get("external_id"))?;
        let next = self.rebuild_with_traits(&next, traits)?;
        self.validate(&next)?;
        self.external_id_free(&next).await?;
        Ok(next)
    }

    /// `PATCH /admin/identities/{id}` with an RFC 6902 JSON Patch on the identity document.
    pub async fn patch_identity(&self, id: Uuid, patch: &Value) -> Result<Identity, Error> {
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| Error::bad_request(format!("The body must be a JSON Patch array (RFC 6902) such as [{{\"op\":\"replace\",\"path\":\"/traits/email\",\"value\":\"new@example.com\"}}]: {e}")))?;
        for op in patch.iter() {
            let path = op_path(op);
            let allowed = [
                "/traits",
                "/state",
                "/metadata_public",
                "/metadata_admin",
                "/schema_id",
                "/external_id",
            ];
            if !allowed
                .iter()
                .any(|a| path == *a || path.starts_with(&format!("{a}/")))
            {
                return Err(Error::bad_request(format!(
                    "The patch path `{path}` cannot be changed: patch /traits, /state, /metadata_public, /metadata_admin, /schema_id or /external_id."
                )));
            }
        }
        self.rewrite_identity(id, |current| patched_body(current, &patch))
            .await
    }
}

/// The PUT body a JSON Patch makes of `current`'s document.
fn patched_body(current: &Identity, patch: &json_patch::Patch) -> Result<Value, Error> {
    let mut doc = serde_json::json!({
        "traits": current.traits, "state": current.state.as_str(), "metadata_public": current.metadata_public,
        "metadata_admin": current.metadata_admin, "schema_id": current.schema_id,
        "external_id": current.external_id,
    });
    // One operation at a time, bounded after each: `copy` can double the document per
    // operation, so a short patch could otherwise build a value of any size or depth.
    // `doc` is a local copy, so a refused patch changes nothing.
    for (i, op) in patch.iter().enumerate() {
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|e| Error::bad_request(format!("The patch cannot be applied: {e}")))?;
        tessera_core::schema::check_depth(&doc, "The patched identity")?;
        let size = serde_json::to_vec(&doc)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_PATCHED_BYTES {
            return Err(Error::bad_request(format!(
                "The patch makes the identity larger than {MAX_PATCHED_BYTES} bytes at operation {i}: send smaller values."
            )));
        }
    }
    let mut body = doc.as_object().cloned().unwrap_or_default();
    for k in ["metadata_public", "metadata_admin"] {
        if body.get(k).is_some_and(Value::is_null) {
            body.remove(k);
            body.insert(k.into(), Value::Null);
        }
    }
    Ok(Value::Object(body))
}

/// How often an admin rewrite of an identity is tried against racing writes before a 409.
const REWRITE_ATTEMPTS: usize = 5;

/// Keeps the schema's password identifiers on the identity whatever the sign-up method, as
/// Kratos's credentials extension does: a `password` credential holding the identifiers, and no
/// hash until the owner sets a password. This is what makes an email that is a password
/// identifier unique across identities (social sign-up, admin create and import alike) and
/// what `credentials_identifier` finds. A login against such a credential fails exactly like an
/// unknown identifier (`Credential::password_config` is `None` without a hash). With no
/// identifiers left, a credential that has no hash either is dropped: it could never be used.
pub(crate) fn set_password_identifiers(
    identity: &mut Identity,
    identifiers: Vec<String>,
    now: i64,
) {
    let creds = identity.credentials.get_or_insert_with(BTreeMap::new);
    match creds.get_mut(CREDENTIAL_PASSWORD) {
        Some(c) if identifiers.is_empty() && c.password_config().is_none() => {
            creds.remove(CREDENTIAL_PASSWORD);
        }
        Some(c) => c.identifiers = identifiers,
        None if identifiers.is_empty() => {}
        None => {
            creds.insert(
                CREDENTIAL_PASSWORD.into(),
                identifiers_only_password(identifiers, now),
            );
        }
    }
    if creds.is_empty() {
        identity.credentials = None;
    }
}

/// Keeps the `code` credential equal to the schema's code identifiers (Kratos's
/// `CredentialsCode`: `identifiers` plus `config.addresses` with each one's channel); none
/// when the schema has none, so identities of schemas without the extension are unchanged.
pub(crate) fn set_code_identifiers(
    identity: &mut Identity,
    identifiers: Vec<(String, String)>,
    now: i64,
) {
    let creds = identity.credentials.get_or_insert_with(BTreeMap::new);
    if identifiers.is_empty() {
        creds.remove(tessera_core::identity::CREDENTIAL_CODE);
    } else {
        let config = tessera_core::identity::CodeConfig {
            addresses: identifiers
                .iter()
                .map(|(via, a)| tessera_core::identity::CodeAddress {
                    channel: via.clone(),
                    address: a.clone(),
                })
                .collect(),
        };
        let ids: Vec<String> = identifiers.into_iter().map(|(_, a)| a).collect();
        let c = creds
            .entry(tessera_core::identity::CREDENTIAL_CODE.into())
            .or_insert_with(|| Credential {
                kind: tessera_core::identity::CREDENTIAL_CODE.into(),
                identifiers: vec![],
                config: Value::Null,
                version: 1,
                created_at: now,
                updated_at: now,
            });
        if c.identifiers != ids {
            c.updated_at = now;
        }
        c.identifiers = ids;
        c.config = serde_json::to_value(config).unwrap_or(Value::Null);
    }
    if creds.is_empty() {
        identity.credentials = None;
    }
}

/// The schema's password identifiers of `identity` that its `password` credential lacks.
pub(crate) fn password_identifiers_missing(
    identity: &Identity,
    schema: &tessera_core::schema::IdentitySchema,
) -> Vec<String> {
    let have = identity
        .credential(CREDENTIAL_PASSWORD)
        .map(|c| c.identifiers.as_slice())
        .unwrap_or_default();
    schema
        .extract(&identity.traits)
        .password_identifiers
        .into_iter()
        .filter(|i| !have.contains(i))
        .collect()
}

/// A `password` credential with identifiers and no hash (Kratos shows its config as `{}`).
pub fn identifiers_only_password(identifiers: Vec<String>, now: i64) -> Credential {
    Credential {
        kind: CREDENTIAL_PASSWORD.into(),
        identifiers,
        config: Value::Object(Map::new()),
        version: 0,
        created_at: now,
        updated_at: now,
    }
}

/// Largest identity document (traits and metadata) a JSON Patch may produce: the size of a
/// request body, since the same document could have been sent whole.
const MAX_PATCHED_BYTES: usize = 1024 * 1024;

fn op_path(op: &json_patch::PatchOperation) -> String {
    use json_patch::PatchOperation as P;
    match op {
        P::Add(o) => o.path.to_string(),
        P::Remove(o) => o.path.to_string(),
        P::Replace(o) => o.path.to_string(),
        P::Move(o) => o.path.to_string(),
        P::Copy(o) => o.path.to_string(),
        P::Test(o) => o.path.to_string(),
    }
}

/// Keeps `verified` / `status` from imported verifiable addresses that match derived ones.
fn apply_address_status(obj: &Map<String, Value>, identity: &mut Identity) -> Result<(), Error> {
    let Some(list) = obj.get("verifiable_addresses").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let list = list
        .as_array()
        .ok_or_else(|| field_err("verifiable_addresses", "must be a list"))?;
    for (i, a) in list.iter().enumerate() {
        let value = a
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| field_err(&format!("verifiable_addresses.{i}.value"), "is required"))?;
        let verified = a.get("verified").and_then(Value::as_bool).unwrap_or(false);
        if let Some(addr) = identity
            .verifiable_addresses
            .iter_mut()
            .find(|x| x.value == normalize_identifier(value))
        {
            addr.verified = verified;
            addr.status = if verified {
                "completed".into()
            } else {
                a.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("pending")
                    .into()
            };
            if verified {
                let given = a
                    .get("verified_at")
                    .and_then(Value::as_str)
                    .and_then(tessera_core::timefmt::parse_rfc3339);
                addr.verified_at = Some(given.unwrap_or_else(now_ms));
            }
        }
    }
    Ok(())
}
