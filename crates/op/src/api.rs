//! APIs (resource servers, RFC 8707): what an app names with `resource` to get a JWT access
//! token (RFC 9068) that the API verifies on its own from the JWKS. An API has an identifier
//! (its audience URI, the token's `aud`), a name, the scopes it defines, the lifetime of its
//! tokens and their signing algorithm; at most one is the default, the API a token request that
//! names no resource is for.
//!
//! Which scopes a token carries is decided here ([`Api::token_scopes`]): only the scopes the API
//! defines, among those granted. Scopes from app roles and organization roles come with the
//! organizations issue.

use crate::vocab::SigningAlg;
use crate::{OpError, OpResult, Provider, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::{Error, Result};
use tessera_store::Page;
use tessera_store::apis::ApiRow;

/// The longest identifier accepted: audience URIs are sent in every token and compared exactly.
pub const MAX_IDENTIFIER_LEN: usize = 512;
/// The longest scope token accepted, and the most scopes one API may define.
pub const MAX_SCOPE_LEN: usize = 128;
pub const MAX_SCOPES: usize = 200;
/// Bounds of an API's access-token lifetime, in seconds: at least a minute, at most a day.
/// JWT access tokens cannot be recalled from resource servers that verify them locally, so
/// their lifetime is the window a revoked token stays usable there.
pub const TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=86_400;
/// The default lifetime: one hour, as for opaque access tokens.
pub const DEFAULT_TTL: i64 = 3600;

/// An API as the provider uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Api {
    pub id: String,
    /// The audience URI (`aud` of its tokens, `resource` in requests).
    pub identifier: String,
    pub name: String,
    /// Scope tokens the API defines.
    pub scopes: Vec<String>,
    /// Lifetime of its access tokens, in seconds.
    pub access_token_ttl: i64,
    pub signing_alg: SigningAlg,
    /// The API a token request that names no resource is for.
    pub default: bool,
    /// Role-based access control: which of the API's scopes each role grants. Role names are
    /// the app roles a user holds at the app asking (through access rules) and the user's
    /// organization roles. Empty: every scope the app may ask for and the user consented to.
    pub role_scopes: std::collections::BTreeMap<String, Vec<String>>,
}

/// The part of an API kept in the `metadata` column.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    name: String,
    scopes: Vec<String>,
    access_token_ttl: i64,
    signing_alg: SigningAlg,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    role_scopes: std::collections::BTreeMap<String, Vec<String>>,
}

/// What the admin API accepts to create or replace an API; absent fields take defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiInput {
    pub identifier: Option<String>,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub access_token_ttl: Option<i64>,
    pub signing_alg: Option<String>,
    pub default: Option<bool>,
    pub role_scopes: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Read-only fields a client may echo back from a GET; ignored.
    pub id: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::bad_request(msg)
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("API `{id}` does not exist."))
}

/// Why `s` is not an API identifier, or `None`: an absolute `https` URL (or `http` on the
/// loopback interface, for development), without a fragment (RFC 8707 §2), at most
/// [`MAX_IDENTIFIER_LEN`] characters.
pub fn identifier_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(
            "the identifier is empty: use the API's https URL, e.g. `https://api.example.com`"
                .into(),
        );
    }
    if s.len() > MAX_IDENTIFIER_LEN {
        return Some(format!(
            "the identifier is {} characters long; at most {MAX_IDENTIFIER_LEN} are allowed",
            s.len()
        ));
    }
    let u = match url::Url::parse(s) {
        Ok(u) => u,
        Err(e) => {
            return Some(format!(
                "`{s}` is not an absolute URI ({e}): use the API's https URL, e.g. `https://api.example.com`"
            ));
        }
    };
    if s.contains('#') || u.fragment().is_some() {
        return Some(format!(
            "`{s}` has a fragment (#…), which a resource indicator must not have (RFC 8707 §2)"
        ));
    }
    match u.scheme() {
        "https" if u.host().is_some() => None,
        "http" => {
            let loopback = match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            (!loopback).then(|| {
                format!("`{s}` is plain http: use https (http is accepted on 127.0.0.1, [::1] and localhost only, for development)")
            })
        }
        other => Some(format!(
            "`{s}` uses the `{other}:` scheme: use an https URL"
        )),
    }
}

/// Why `s` is not a scope token an API may define (RFC 6749 §3.3), or `None`.
pub fn scope_problem(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > MAX_SCOPE_LEN {
        return Some(format!(
            "scope `{s}` must be 1 to {MAX_SCOPE_LEN} characters"
        ));
    }
    if let Some(c) = s.chars().find(|&c| {
        !(c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c))
    }) {
        return Some(format!(
            "scope `{s}` contains {c:?}, which a scope token cannot hold (RFC 6749 §3.3: printable ASCII without space, `\"` and `\\`)"
        ));
    }
    if crate::client::KNOWN_SCOPES.contains(&s) {
        return Some(format!(
            "scope `{s}` is an OpenID Connect scope of the provider itself, not of an API"
        ));
    }
    None
}

impl Api {
    fn from_row(row: &ApiRow) -> Result<Api> {
        let s: Stored = serde_json::from_value(row.metadata.clone())
            .map_err(|e| Error::internal(format!("stored API is corrupt: {e}")))?;
        Ok(Api {
            id: row.id.clone(),
            identifier: row.identifier.clone(),
            name: s.name,
            scopes: s.scopes,
            access_token_ttl: s.access_token_ttl,
            signing_alg: s.signing_alg,
            default: row.is_default,
            role_scopes: s.role_scopes,
        })
    }

    fn to_row(&self, created_at: i64, updated_at: i64) -> Result<ApiRow> {
        let stored = Stored {
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            access_token_ttl: self.access_token_ttl,
            signing_alg: self.signing_alg,
            role_scopes: self.role_scopes.clone(),
        };
        Ok(ApiRow {
            id: self.id.clone(),
            identifier: self.identifier.clone(),
            metadata: serde_json::to_value(stored).map_err(|e| Error::internal(e.to_string()))?,
            is_default: self.default,
            created_at,
            updated_at,
        })
    }

    /// The admin API's view (snake_case, timestamps in RFC 3339).
    pub fn to_api(&self, created_at: i64, updated_at: i64) -> Value {
        json!({
            "id": self.id,
            "identifier": self.identifier,
            "name": self.name,
            "scopes": self.scopes,
            "access_token_ttl": self.access_token_ttl,
            "signing_alg": self.signing_alg,
            "default": self.default,
            "role_scopes": self.role_scopes,
            "created_at": tessera_core::timefmt::to_rfc3339(created_at),
            "updated_at": tessera_core::timefmt::to_rfc3339(updated_at),
        })
    }

    /// The scopes of a token for this API: those it defines, among `granted` (already limited
    /// to what the app may ask for and what the user consented to), in the API's order.
    pub fn token_scopes(&self, granted: &[&str]) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|s| granted.contains(&s.as_str()))
            .cloned()
            .collect()
    }

    /// [`Api::token_scopes`] for a user holding `roles`: with `role_scopes`, only the scopes
    /// one of the roles grants.
    pub fn user_token_scopes(&self, granted: &[&str], roles: &[String]) -> Vec<String> {
        let mut scopes = self.token_scopes(granted);
        if !self.role_scopes.is_empty() {
            scopes.retain(|s| {
                roles.iter().any(|r| {
                    self.role_scopes
                        .get(r)
                        .is_some_and(|granted| granted.contains(s))
                })
            });
        }
        scopes
    }

    pub fn defines(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Builds a validated API from input; `existing` keeps the id.
fn build(input: ApiInput, id: String, default_alg: SigningAlg) -> Result<Api> {
    let identifier = input.identifier.ok_or_else(|| {
        bad("`identifier` is required: the API's audience URI, e.g. `https://api.example.com`.")
    })?;
    if let Some(why) = identifier_problem(&identifier) {
        return Err(bad(format!("`identifier`: {why}.")));
    }
    let name = input.name.unwrap_or_default().trim().to_string();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(bad(
            "`name` is required: 1 to 256 characters people recognise the API by.",
        ));
    }
    let scopes = input.scopes.unwrap_or_default();
    if scopes.len() > MAX_SCOPES {
        return Err(bad(format!(
            "`scopes` lists {} scopes; an API may define at most {MAX_SCOPES}.",
            scopes.len()
        )));
    }
    for (i, s) in scopes.iter().enumerate() {
        if let Some(why) = scope_problem(s) {
            return Err(bad(format!("`scopes[{i}]`: {why}.")));
        }
        if scopes[..i].contains(s) {
            return Err(bad(format!("`scopes[{i}]`: scope `{s}` is listed twice.")));
        }
    }
    let access_token_ttl = input.access_token_ttl.unwrap_or(DEFAULT_TTL);
    if !TTL_RANGE.contains(&access_token_ttl) {
        return Err(bad(format!(
            "`access_token_ttl` {access_token_ttl} is out of range: use {} to {} seconds (short lifetimes limit how long a revoked token is still accepted by APIs that verify tokens locally).",
            TTL_RANGE.start(),
            TTL_RANGE.end()
        )));
    }
    let signing_alg = match input.signing_alg {
        None => default_alg,
        Some(a) => a
            .parse::<SigningAlg>()
            .map_err(|e| bad(format!("`signing_alg`: {e}.")))?,
    };
    let role_scopes = input.role_scopes.unwrap_or_default();
    if role_scopes.len() > MAX_SCOPES {
        return Err(bad(format!(
            "`role_scopes` maps {} roles; at most {MAX_SCOPES} are allowed.",
            role_scopes.len()
        )));
    }
    for (role, granted) in &role_scopes {
        if role.trim().is_empty() || role.chars().count() > 64 {
            return Err(bad(format!(
                "`role_scopes`: role `{role}` must be 1 to 64 characters (an app role or an organization role name)."
            )));
        }
        if let Some(s) = granted.iter().find(|s| !scopes.contains(s)) {
            return Err(bad(format!(
                "`role_scopes.{role}`: scope `{s}` is not one of this API's `scopes`; define it there first."
            )));
        }
    }
    Ok(Api {
        id,
        identifier,
        name,
        scopes,
        access_token_ttl,
        signing_alg,
        default: input.default.unwrap_or(false),
        role_scopes,
    })
}

impl Provider {
    /// The algorithm of the current signing key: the only one an API's tokens can be signed
    /// with now (there is one signing key at a time; `tessera keys rotate --alg` changes it).
    async fn current_alg(&self) -> OpResult<SigningAlg> {
        let keys = self.key_set().await?;
        keys.first()
            .map(|k| k.alg)
            .ok_or_else(|| OpError::server_error("no signing key"))
    }

    /// Refuses an algorithm no current key signs with, and a second default API.
    async fn check_api(&self, api: &Api) -> Result<()> {
        let current = self
            .current_alg()
            .await
            .map_err(|e| Error::internal(e.description))?;
        if api.signing_alg != current {
            return Err(bad(format!(
                "`signing_alg` {} has no signing key: the provider signs with {current} now. Use {current}, or rotate to a {} key first (`tessera keys rotate --alg {}`).",
                api.signing_alg, api.signing_alg, api.signing_alg
            )));
        }
        if api.default
            && let Some(other) = self.store.op_default_api().await?
            && other.id != api.id
        {
            return Err(Error::conflict(format!(
                "API `{}` ({}) is the default API already; there is at most one. Unset `default` on it first.",
                other.identifier, other.id
            )));
        }
        Ok(())
    }

    pub async fn create_api(&self, input: ApiInput) -> Result<(Api, ApiRow)> {
        let alg = self
            .current_alg()
            .await
            .map_err(|e| Error::internal(e.description))?;
        let api = build(input, uuid::Uuid::new_v4().to_string(), alg)?;
        self.check_api(&api).await?;
        let now = now_ms();
        let row = api.to_row(now, now)?;
        self.store.op_insert_api(&row).await?;
        Ok((api, row))
    }

    pub async fn api_row(&self, id: &str) -> Result<(Api, ApiRow)> {
        let row = self
            .store
            .op_get_api(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok((Api::from_row(&row)?, row))
    }

    pub async fn list_apis(
        &self,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<(Api, ApiRow)>> {
        let page = self.store.op_list_apis(page_size, page_token).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|r| Ok((Api::from_row(&r)?, r)))
                .collect::<Result<_>>()?,
            next: page.next,
        })
    }

    /// Replaces an API (PUT); its id stays.
    pub async fn update_api(&self, id: &str, input: ApiInput) -> Result<(Api, ApiRow)> {
        let (old, row) = self.api_row(id).await?;
        let api = build(input, old.id.clone(), old.signing_alg)?;
        self.check_api(&api).await?;
        let row = api.to_row(row.created_at, now_ms())?;
        if !self.store.op_update_api(&row).await? {
            return Err(not_found(id));
        }
        Ok((api, row))
    }

    /// Applies an RFC 6902 JSON Patch to the API's admin view and stores the result, validated
    /// as a PUT would be. A refused patch changes nothing.
    pub async fn patch_api(&self, id: &str, patch: &Value) -> Result<(Api, ApiRow)> {
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
            bad(format!(
                "The body must be a JSON Patch array (RFC 6902) such as [{{\"op\":\"add\",\"path\":\"/scopes/-\",\"value\":\"write:books\"}}]: {e}"
            ))
        })?;
        let (api, row) = self.api_row(id).await?;
        let mut doc = api.to_api(row.created_at, row.updated_at);
        json_patch::patch(&mut doc, &patch)
            .map_err(|e| bad(format!("The patch cannot be applied: {e}.")))?;
        let input: ApiInput = serde_json::from_value(doc)
            .map_err(|e| bad(format!("The patched API is not valid: {e}.")))?;
        if input.id.as_ref().and_then(Value::as_str) != Some(id) {
            return Err(bad("`id` cannot be changed."));
        }
        self.update_api(id, input).await
    }

    pub async fn delete_api(&self, id: &str) -> Result<()> {
        if !self.store.op_delete_api(id).await? {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// The API a `resource` value names, or `None` when no API has that identifier.
    pub async fn api_by_identifier(&self, identifier: &str) -> OpResult<Option<Api>> {
        match self.store.op_api_by_identifier(identifier).await? {
            Some(row) => Ok(Some(Api::from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The default API, if one is marked.
    pub async fn default_api(&self) -> OpResult<Option<Api>> {
        match self.store.op_default_api().await? {
            Some(row) => Ok(Some(Api::from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The API `resource` names, if `client` may ask for it (RFC 8707 §2: `invalid_target`
    /// otherwise): a well-formed identifier of a registered API that is the default API or one
    /// of the app's `resources`.
    pub async fn target_api(&self, client: &crate::Client, resource: &str) -> OpResult<Api> {
        if let Some(why) = identifier_problem(resource) {
            return Err(OpError::new(
                crate::ErrorCode::InvalidTarget,
                format!("resource: {why}."),
            ));
        }
        let api = self.api_by_identifier(resource).await?.ok_or_else(|| {
            OpError::new(
                crate::ErrorCode::InvalidTarget,
                format!("No API with the identifier `{resource}` is registered here."),
            )
        })?;
        if !api.default && !client.resources.iter().any(|r| r == &api.identifier) {
            return Err(OpError::new(
                crate::ErrorCode::InvalidTarget,
                format!(
                    "The app “{}” may not ask for tokens for the API `{resource}`: add it to the app's `resources`.",
                    client.client_name
                ),
            ));
        }
        Ok(api)
    }
}
