//! Apps (OAuth clients): their registration metadata with the OAuth 2.0 Dynamic Client
//! Registration names (RFC 7591) plus Tessera's `app_type`, `subject`, `access`, `skip_consent`
//! and `claims_mapper`; validation; secrets (several per app, stored hashed); client
//! authentication at the token endpoint.

use crate::vocab::{AuthMethod, GrantType, ResponseType, expected_list};
use crate::{OpError, OpResult, Provider, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::crypto;
use tessera_core::{Error, Result};
use tessera_store::op::ClientRow;

/// Scopes the provider knows. `offline_access` asks for a refresh token.
pub const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "address",
    "offline_access",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    /// A server-side web app (WordPress, Dedicated DingTalk): confidential, has secrets.
    Traditional,
    /// A browser app: public, PKCE required.
    Spa,
    /// A mobile or desktop app: public, PKCE required.
    Native,
    /// A service calling APIs as itself: client credentials only.
    Machine,
}

impl AppType {
    pub fn is_public(self) -> bool {
        matches!(self, AppType::Spa | AppType::Native)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AppType::Traditional => "traditional",
            AppType::Spa => "spa",
            AppType::Native => "native",
            AppType::Machine => "machine",
        }
    }
}

/// A stored secret: only its hash, with an id to delete it by (rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub id: String,
    pub hash: String,
    pub created_at: i64,
}

/// An app as stored (the `metadata` JSON of `op_clients`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub client_name: String,
    pub app_type: AppType,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// Normalised (`token id_token` is stored as `id_token token`).
    pub response_types: Vec<ResponseType>,
    pub scope: String,
    pub token_endpoint_auth_method: AuthMethod,
    /// `id` (default), `pairwise`, or `traits.<path>`, `metadata_public.<path>`,
    /// `metadata_admin.<path>`, `credentials.oidc.<provider id>`.
    pub subject: String,
    /// `all` or `assigned`.
    pub access: String,
    pub skip_consent: bool,
    /// Jsonnet that returns extra id_token claims (`std.extVar('claims')` holds the identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_mapper: Option<String>,
    #[serde(default)]
    pub secrets: Vec<StoredSecret>,
    /// Identifiers of the APIs (besides the default one) the app may ask access tokens for
    /// with `resource` (RFC 8707).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The app must push its authorization requests first (RFC 9126 §6): `/oidc/auth` then
    /// accepts only a `request_uri` from the PAR endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// The public keys of a `private_key_jwt` app (a JWK Set, checked by
    /// [`crate::assertion::check_jwks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// The one algorithm a `private_key_jwt` app signs with, when it registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// Every token request must carry a DPoP proof (RFC 9449 §5.2), so the app's tokens are
    /// always bound to its key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// The one algorithm the app signs request objects (JAR) with, when it registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
    /// Authorization requests must be signed request objects (RFC 9101 §10.5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_signed_request_object: bool,
    /// For an app registered dynamically (RFC 7592): the SHA-256 of its registration access
    /// token, with which it reads, updates or deletes its own registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<String>,
    /// The app roles this app declares (IDaaS application roles, Keycloak client roles): access
    /// rules grant them, and the `roles` claim carries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Where Tessera POSTs a `logout_token` when a session that signed in to this app ends
    /// (OIDC Back-Channel Logout 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// The app wants `sid` in its logout tokens. Tessera always sends it; the flag is kept so
    /// the app reads back what it registered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// A page Tessera's signed-out page loads in an iframe when a session that signed in to
    /// this app ends there (OIDC Front-Channel Logout 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    /// The iframe's URL carries `iss` and `sid` (the `sid` of the app's id_tokens).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frontchannel_logout_session_required: bool,
}

/// What the admin API accepts to create or replace an app. Absent fields take the app type's
/// defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub app_type: Option<AppType>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub subject: Option<String>,
    pub access: Option<String>,
    pub skip_consent: Option<bool>,
    pub claims_mapper: Option<String>,
    pub resources: Option<Vec<String>>,
    pub require_pushed_authorization_requests: Option<bool>,
    pub jwks: Option<Value>,
    /// Accepted only to be refused with a reason: keys are registered inline (`jwks`).
    pub jwks_uri: Option<Value>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub dpop_bound_access_tokens: Option<bool>,
    pub request_object_signing_alg: Option<String>,
    pub require_signed_request_object: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: Option<bool>,
    pub frontchannel_logout_uri: Option<String>,
    pub frontchannel_logout_session_required: Option<bool>,
    /// Read-only fields a client may echo back from a GET; ignored.
    pub client_secret: Option<Value>,
    pub client_secrets: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
    pub client_id_issued_at: Option<Value>,
    pub client_secret_expires_at: Option<Value>,
    pub registration_access_token: Option<Value>,
    pub registration_client_uri: Option<Value>,
}

impl Client {
    /// Whether the app may ask for scope `s`; Logto's `urn:logto:scope:…` names count as
    /// Tessera's own (and the other way round).
    pub fn has_scope(&self, s: &str) -> bool {
        let s = crate::membership::canonical_scope(s);
        self.scope
            .split(' ')
            .any(|x| crate::membership::canonical_scope(x) == s)
    }
    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grant_types.contains(&g)
    }
    pub fn allows_response_type(&self, rt: ResponseType) -> bool {
        self.response_types.contains(&rt)
    }

    /// The admin API's view: metadata, secret ids (never hashes), timestamps.
    pub fn to_api(&self, row_created: i64, row_updated: i64) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("secrets");
            o.remove("registration_token_hash");
            o.insert(
                "client_secrets".into(),
                Value::Array(
                    self.secrets
                        .iter()
                        .map(|s| json!({"id": s.id, "created_at": tessera_core::timefmt::to_rfc3339(s.created_at)}))
                        .collect(),
                ),
            );
            o.insert("client_id_issued_at".into(), json!(row_created / 1000));
            o.insert(
                "created_at".into(),
                json!(tessera_core::timefmt::to_rfc3339(row_created)),
            );
            o.insert(
                "updated_at".into(),
                json!(tessera_core::timefmt::to_rfc3339(row_updated)),
            );
        }
        v
    }
}

/// Refused app metadata (RFC 7591 §3.2.2's code as the Kratos error id).
fn bad(msg: impl Into<String>) -> Error {
    Error::bad_request(msg).with_id(tessera_core::ErrorId::OAuth(
        tessera_core::error::OAuthCode::InvalidClientMetadata,
    ))
}

/// No such app (or secret, or subject).
pub fn not_found(msg: impl Into<String>) -> Error {
    Error::not_found(msg).with_id(tessera_core::ErrorId::OAuth(
        tessera_core::error::OAuthCode::NotFound,
    ))
}

/// Schemes a browser would run or read locally: never a place to send codes or tokens.
const DANGEROUS_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
    "view-source",
];

/// A redirect URI (RFC 9700 §2.1, §4.1.3; RFC 8252 for native apps): `https`, or `http` only on
/// the loopback interface (a native app's local listener, development); a private-use scheme
/// (`com.example.app:/callback`) only for native apps; never a scheme the browser executes.
fn check_uri(field: &str, u: &str, app_type: AppType) -> Result<()> {
    let parsed = url::Url::parse(u).map_err(|e| {
        bad(format!(
            "`{field}` entry `{u}` is not an absolute URL: {e}."
        ))
    })?;
    if parsed.fragment().is_some() {
        return Err(bad(format!(
            "`{field}` entry `{u}` has a fragment (#…); redirect URIs must not have one."
        )));
    }
    let scheme = parsed.scheme();
    if DANGEROUS_SCHEMES.contains(&scheme) {
        return Err(bad(format!(
            "`{field}` entry `{u}` uses the `{scheme}:` scheme, which a browser runs or reads locally; use an https URL."
        )));
    }
    match scheme {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(bad(format!(
                    "`{field}` entry `{u}` is plain http on the network, where codes and tokens could be read on the way; use https (http is accepted on 127.0.0.1, [::1] and localhost only)."
                )))
            }
        }
        _ if app_type == AppType::Native => Ok(()),
        _ => Err(bad(format!(
            "`{field}` entry `{u}` uses the private-use scheme `{scheme}:`, which only native apps (`app_type: native`) may register; web apps use https."
        ))),
    }
}

/// Checks a `subject` expression (seed 001).
pub fn check_subject(s: &str) -> Result<()> {
    if s == "id" || s == "pairwise" {
        return Ok(());
    }
    for prefix in ["traits.", "metadata_public.", "metadata_admin."] {
        if let Some(path) = s.strip_prefix(prefix) {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                break;
            }
            return Ok(());
        }
    }
    if let Some(p) = s.strip_prefix("credentials.oidc.")
        && !p.is_empty()
        && !p.contains('.')
    {
        return Ok(());
    }
    Err(bad(format!(
        "`subject` `{s}` is not valid: use `id`, `pairwise`, `traits.<path>`, `metadata_public.<path>`, `metadata_admin.<path>` or `credentials.oidc.<provider id>`."
    )))
}

/// Why an app's (syntactically valid) subject expression could let one user become another at
/// the app, or `None` when it only reads values users cannot change: `id`, `pairwise`,
/// `credentials.oidc.<provider id>` (the upstream account's own id), `metadata_admin.<path>`
/// (set by admins and mappers), and `traits.<path>` for traits every identity schema marks
/// read-only for self-service.
pub fn unstable_subject(s: &str, read_only_traits: &[String]) -> Option<String> {
    if s == "id"
        || s == "pairwise"
        || s.starts_with("credentials.oidc.")
        || s.starts_with("metadata_admin.")
    {
        return None;
    }
    let fix = "use `id`, `pairwise`, `credentials.oidc.<provider id>` or `metadata_admin.<path>`";
    if let Some(path) = s.strip_prefix("traits.") {
        if read_only_traits.iter().any(|r| r == path) {
            return None;
        }
        return Some(format!(
            "subject `{s}` reads a trait that users can change themselves, so one user could sign in to the app as another; mark `{path}` read-only in the identity schema (`\"tessera\": {{\"read_only\": true}}` on the property) or {fix}"
        ));
    }
    Some(format!(
        "subject `{s}` reads a value that is not set by administrators only, so it could be reassigned to another user; {fix}"
    ))
}

/// Builds a validated client from input; `existing` keeps the id and secrets on update.
pub fn build(input: ClientInput, existing: Option<&Client>) -> Result<Client> {
    let app_type = input
        .app_type
        .or(existing.map(|c| c.app_type))
        .unwrap_or(AppType::Traditional);
    let client_id = match (existing, input.client_id) {
        (Some(c), Some(id)) if id != c.client_id => {
            return Err(bad("`client_id` cannot be changed."));
        }
        (Some(c), _) => c.client_id.clone(),
        (None, Some(id)) => {
            if id.is_empty()
                || id.len() > 128
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return Err(bad(
                    "`client_id` must be 1 to 128 characters of letters, digits, `-`, `_` and `.`.",
                ));
            }
            id
        }
        (None, None) => new_client_id(),
    };
    let user_app = app_type != AppType::Machine;
    let grant_types: Vec<GrantType> = match input.grant_types {
        None if user_app => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        None => vec![GrantType::ClientCredentials],
        Some(names) => names
            .iter()
            .map(|g| g.parse::<GrantType>().map_err(|e| bad(format!("{e}."))))
            .collect::<Result<_>>()?,
    };
    for g in &grant_types {
        match g.signs_users_in() {
            Some(signs_in) if signs_in != user_app => {
                return Err(bad(format!(
                    "grant type `{g}` is not available to a `{}` app: machine apps use client_credentials (and token exchange) only, the others sign users in.",
                    app_type.as_str()
                )));
            }
            // Token exchange hands out a user's access to another API: only an app that
            // proves who it is (a secret or a key) may be trusted with it.
            None if app_type.is_public() => {
                return Err(bad(format!(
                    "grant type `{g}` is for confidential apps (a `traditional` or `machine` app that authenticates with a secret or a key); a `{}` app is public.",
                    app_type.as_str()
                )));
            }
            _ => {}
        }
    }
    let response_types: Vec<ResponseType> = match input.response_types {
        None => ResponseType::ALL
            .iter()
            .copied()
            .filter(|rt| grant_types.contains(&rt.grant()))
            .collect(),
        Some(names) => names
            .iter()
            .map(|rt| {
                ResponseType::parse_any_order(rt).map_err(|e| {
                    bad(format!(
                        "response type `{rt}` is not supported: use {}.",
                        expected_list(&e.expected)
                    ))
                })
            })
            .collect::<Result<_>>()?,
    };
    for rt in &response_types {
        let needs = rt.grant();
        if !grant_types.contains(&needs) {
            return Err(bad(format!(
                "response type `{rt}` needs the `{needs}` grant type in `grant_types`."
            )));
        }
    }
    let redirect_uris = input.redirect_uris.unwrap_or_default();
    for u in &redirect_uris {
        check_uri("redirect_uris", u, app_type)?;
    }
    // A device-only app (a TV, a CLI: RFC 8628) never receives a redirect.
    let redirects = grant_types
        .iter()
        .any(|g| matches!(g, GrantType::AuthorizationCode | GrantType::Implicit));
    if redirects && redirect_uris.is_empty() {
        return Err(bad(
            "`redirect_uris` is required: list the exact URLs the app receives sign-in answers at.",
        ));
    }
    let post_logout_redirect_uris = input.post_logout_redirect_uris.unwrap_or_default();
    for u in &post_logout_redirect_uris {
        check_uri("post_logout_redirect_uris", u, app_type)?;
    }
    let backchannel_logout_uri = input.backchannel_logout_uri.filter(|u| !u.is_empty());
    if let Some(u) = &backchannel_logout_uri {
        if !user_app {
            return Err(bad(
                "`backchannel_logout_uri` is for apps that sign users in; a machine app has no sessions to end.",
            ));
        }
        // Tessera's server calls it: https, or http on this machine, never an app scheme.
        check_uri("backchannel_logout_uri", u, AppType::Traditional)?;
    }
    let frontchannel_logout_uri = input.frontchannel_logout_uri.filter(|u| !u.is_empty());
    if let Some(u) = &frontchannel_logout_uri {
        if !user_app {
            return Err(bad(
                "`frontchannel_logout_uri` is for apps that sign users in; a machine app has no sessions to end.",
            ));
        }
        // A page the user's browser loads in an iframe: https (http on this machine), never a
        // scheme the browser runs or an app's own scheme, no fragment.
        check_uri("frontchannel_logout_uri", u, AppType::Traditional)?;
    }
    let frontchannel_logout_session_required =
        input.frontchannel_logout_session_required.unwrap_or(false);
    if frontchannel_logout_session_required && frontchannel_logout_uri.is_none() {
        return Err(bad(
            "`frontchannel_logout_session_required` needs a `frontchannel_logout_uri` to send `iss` and `sid` to.",
        ));
    }
    let method = match input.token_endpoint_auth_method {
        None if app_type.is_public() => AuthMethod::None,
        None => AuthMethod::ClientSecretBasic,
        Some(m) => m.parse::<AuthMethod>().map_err(|_| {
            if app_type.is_public() {
                public_needs_none(app_type)
            } else {
                bad(format!(
                    "`token_endpoint_auth_method` `{m}` is not supported for a `{}` app: use client_secret_basic, client_secret_post or private_key_jwt.",
                    app_type.as_str()
                ))
            }
        })?,
    };
    if method.is_confidential() == app_type.is_public() {
        return Err(if app_type.is_public() {
            public_needs_none(app_type)
        } else {
            bad(format!(
                "`token_endpoint_auth_method` `{method}` is not supported for a `{}` app: use client_secret_basic, client_secret_post or private_key_jwt.",
                app_type.as_str()
            ))
        });
    }
    if input.jwks_uri.is_some() {
        return Err(bad(
            "`jwks_uri` is not supported: register the app's public keys inline in `jwks` (a JWK Set), and update them to rotate.",
        ));
    }
    let jwks = match (method, input.jwks) {
        (AuthMethod::PrivateKeyJwt, Some(set)) => {
            Some(crate::assertion::check_jwks(&set).map_err(bad)?)
        }
        (AuthMethod::PrivateKeyJwt, None) => {
            return Err(bad(
                "`token_endpoint_auth_method` `private_key_jwt` needs `jwks`: the public keys the app signs its client assertions with (a JWK Set).",
            ));
        }
        // Other apps may register keys to sign request objects with (JAR).
        (_, Some(set)) => Some(crate::assertion::check_jwks(&set).map_err(bad)?),
        (_, None) => None,
    };
    let request_object_signing_alg = match input.request_object_signing_alg {
        Some(alg) => {
            crate::assertion::check_alg(&alg).map_err(|e| {
                bad(e.replace(
                    "token_endpoint_auth_signing_alg",
                    "request_object_signing_alg",
                ))
            })?;
            Some(alg)
        }
        None => None,
    };
    let require_signed_request_object = input.require_signed_request_object.unwrap_or(false);
    if (require_signed_request_object || request_object_signing_alg.is_some()) && jwks.is_none() {
        return Err(bad(
            "Signed request objects need `jwks`: the public keys the app signs them with (a JWK Set).",
        ));
    }
    let token_endpoint_auth_signing_alg = match input.token_endpoint_auth_signing_alg {
        Some(_) if method != AuthMethod::PrivateKeyJwt => {
            return Err(bad(
                "`token_endpoint_auth_signing_alg` is only used with `token_endpoint_auth_method: private_key_jwt`.",
            ));
        }
        Some(alg) => {
            crate::assertion::check_alg(&alg).map_err(bad)?;
            Some(alg)
        }
        None => None,
    };
    let scope = input.scope.unwrap_or_else(|| {
        if user_app {
            "openid profile email phone offline_access".into()
        } else {
            String::new()
        }
    });
    let subject = input.subject.unwrap_or_else(|| "id".into());
    check_subject(&subject)?;
    let access = input.access.unwrap_or_else(|| "all".into());
    if access != "all" && access != "assigned" {
        return Err(bad(format!(
            "`access` `{access}` is not valid: use `all` (every identity) or `assigned` (only identities an access rule admits: assigned identities, members of an allowed organization or group)."
        )));
    }
    let roles = input.roles.unwrap_or_default();
    for (i, r) in roles.iter().enumerate() {
        tessera_core::org::check_name(&format!("`roles[{i}]`"), r).map_err(|e| bad(e.reason))?;
        if roles[..i].contains(r) {
            return Err(bad(format!("`roles[{i}]`: `{r}` is listed twice.")));
        }
    }
    if let Some(m) = &input.claims_mapper {
        tessera_mapper::Mapper::compile(&format!("claims mapper of app {client_id}"), m)
            .map_err(|e| bad(format!("`claims_mapper` does not compile: {e}")))?;
    }
    let resources = input.resources.unwrap_or_default();
    for (i, r) in resources.iter().enumerate() {
        if let Some(why) = crate::api::identifier_problem(r) {
            return Err(bad(format!("`resources[{i}]`: {why}.")));
        }
        if resources[..i].contains(r) {
            return Err(bad(format!("`resources[{i}]`: `{r}` is listed twice.")));
        }
    }
    let client_name = input
        .client_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| client_id.clone());
    Ok(Client {
        client_id,
        client_name,
        app_type,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types,
        response_types,
        scope: scope.split_whitespace().collect::<Vec<_>>().join(" "),
        token_endpoint_auth_method: method,
        subject,
        access,
        skip_consent: input.skip_consent.unwrap_or(false),
        claims_mapper: input.claims_mapper,
        secrets: existing.map(|c| c.secrets.clone()).unwrap_or_default(),
        resources,
        require_pushed_authorization_requests: input
            .require_pushed_authorization_requests
            .unwrap_or(false),
        jwks,
        token_endpoint_auth_signing_alg,
        dpop_bound_access_tokens: input.dpop_bound_access_tokens.unwrap_or(false),
        request_object_signing_alg,
        require_signed_request_object,
        registration_token_hash: existing.and_then(|c| c.registration_token_hash.clone()),
        roles,
        backchannel_logout_uri,
        backchannel_logout_session_required: input
            .backchannel_logout_session_required
            .unwrap_or(false),
        frontchannel_logout_uri,
        frontchannel_logout_session_required,
    })
}

fn public_needs_none(app_type: AppType) -> Error {
    bad(format!(
        "a `{}` app is public (it cannot keep a secret): `token_endpoint_auth_method` must be `none`.",
        app_type.as_str()
    ))
}

fn new_client_id() -> String {
    // 128 bits, lower-case hex: safe in any URL or form field.
    let t = crypto::random_token();
    crypto::token_hash(&t)[..32].to_string()
}

/// A fresh secret and what is stored of it.
pub fn new_secret() -> (String, StoredSecret) {
    let secret = crypto::random_token();
    let stored = StoredSecret {
        id: crypto::token_hash(&crypto::random_token())[..16].to_string(),
        hash: crypto::token_hash(&secret),
        created_at: now_ms(),
    };
    (secret, stored)
}

/// How a client presented itself at the token, revocation or introspection endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// From `Authorization: Basic` (already URL-decoded), if any.
    pub basic: Option<(String, String)>,
    /// `client_id` and `client_secret` from the form body.
    pub form_id: Option<String>,
    pub form_secret: Option<String>,
    /// `client_assertion_type` and `client_assertion` (RFC 7523 §2.2), for `private_key_jwt`.
    pub assertion_type: Option<String>,
    pub assertion: Option<String>,
}

/// Apps by id, kept for [`CLIENT_CACHE_TTL`] so the token endpoint does not read the database for
/// every request. Every change made through this process clears it at once; a change made on
/// another instance (or a deleted secret there) takes effect here within the TTL, as with
/// `session.cache_ttl`.
#[derive(Default)]
pub struct ClientCache {
    map: std::sync::Mutex<std::collections::HashMap<String, CachedClient>>,
    /// Whether some app may exchange tokens, which discovery (anonymous) must know: without
    /// this, every discovery request would read and parse every registered app.
    token_exchange: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// When it was read, and the app (or `None`: no such app).
type CachedClient = (std::time::Instant, Option<std::sync::Arc<Client>>);

pub const CLIENT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl ClientCache {
    #[allow(clippy::option_option)]
    fn get(&self, id: &str) -> Option<Option<std::sync::Arc<Client>>> {
        let map = self.map.lock().ok()?;
        let (at, c) = map.get(id)?;
        (at.elapsed() < CLIENT_CACHE_TTL).then(|| c.clone())
    }
    fn put(&self, id: &str, c: Option<Client>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(
                id.to_string(),
                (std::time::Instant::now(), c.map(std::sync::Arc::new)),
            );
        }
    }
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
        if let Ok(mut t) = self.token_exchange.lock() {
            *t = None;
        }
    }
    pub(crate) fn token_exchange(&self) -> Option<bool> {
        let t = self.token_exchange.lock().ok()?;
        t.filter(|(at, _)| at.elapsed() < CLIENT_CACHE_TTL)
            .map(|(_, v)| v)
    }
    pub(crate) fn put_token_exchange(&self, v: bool) {
        if let Ok(mut t) = self.token_exchange.lock() {
            *t = Some((std::time::Instant::now(), v));
        }
    }
}

fn from_row(row: ClientRow) -> Result<Client> {
    serde_json::from_value(row.metadata)
        .map_err(|e| Error::internal(format!("stored app is corrupt: {e}")))
}

impl Provider {
    pub async fn client(&self, client_id: &str) -> OpResult<Option<Client>> {
        if let Some(hit) = self.clients.get(client_id) {
            return Ok(hit.map(|c| (*c).clone()));
        }
        let client = match self.store.op_get_client(client_id).await? {
            Some(row) => Some(from_row(row).map_err(OpError::from)?),
            None => None,
        };
        self.clients.put(client_id, client.clone());
        Ok(client)
    }

    /// Authenticates a client (RFC 6749 §2.3): `client_secret_basic` or `client_secret_post`
    /// for confidential apps, `none` (just `client_id`) for public ones. A failure is 401
    /// `invalid_client`.
    pub async fn authenticate(&self, auth: &ClientAuth) -> OpResult<Client> {
        match (&auth.assertion_type, &auth.assertion) {
            (None, None) => {}
            (Some(t), Some(assertion)) => {
                if auth.basic.is_some() || auth.form_secret.is_some() {
                    return Err(OpError::invalid_request(
                        "The client authenticated with more than one method (a client assertion and a secret); use one.",
                    ));
                }
                if t != crate::assertion::ASSERTION_TYPE {
                    return Err(OpError::invalid_client(format!(
                        "`client_assertion_type` must be `{}`.",
                        crate::assertion::ASSERTION_TYPE
                    )));
                }
                return self
                    .authenticate_assertion(assertion, auth.form_id.as_deref())
                    .await;
            }
            _ => {
                return Err(OpError::invalid_request(
                    "`client_assertion` and `client_assertion_type` go together: send both, or neither.",
                ));
            }
        }
        let (id, secret) = match (&auth.basic, &auth.form_id, &auth.form_secret) {
            (Some(_), _, Some(_)) => {
                return Err(OpError::invalid_request(
                    "The client authenticated with more than one method (Authorization header and client_secret in the body); use one.",
                ));
            }
            (Some((id, secret)), form_id, None) => {
                if form_id.as_ref().is_some_and(|f| f != id) {
                    return Err(OpError::invalid_request(
                        "client_id in the body differs from the one in the Authorization header.",
                    ));
                }
                (id.clone(), Some(secret.clone()))
            }
            (None, Some(id), secret) => (id.clone(), secret.clone()),
            (None, None, _) => {
                return Err(OpError::invalid_client(
                    "No client authentication: send client_id (and client_secret) with client_secret_basic or client_secret_post.",
                ));
            }
        };
        let unknown = || {
            OpError::invalid_client("Client authentication failed: unknown client or wrong secret.")
        };
        let client = self.client(&id).await?.ok_or_else(unknown)?;
        if client.app_type.is_public() {
            if secret.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(OpError::invalid_client(
                    "This app is public (token_endpoint_auth_method none): it must not send a client_secret.",
                ));
            }
            return Ok(client);
        }
        if client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            return Err(OpError::invalid_client(
                "This app authenticates with `private_key_jwt`: send a signed `client_assertion`, not a secret.",
            ));
        }
        let secret = secret.ok_or_else(|| {
            OpError::invalid_client(
                "This app is confidential: authenticate with client_secret_basic or client_secret_post.",
            )
        })?;
        let hash = crypto::token_hash(&secret);
        let mut ok = false;
        for s in &client.secrets {
            ok |= crypto::constant_time_eq(&s.hash, &hash);
        }
        if !ok {
            return Err(unknown());
        }
        Ok(client)
    }

    /// Refuses `resources` that name no registered API.
    async fn check_resources(&self, client: &Client) -> Result<()> {
        for r in &client.resources {
            if self.store.op_api_by_identifier(r).await?.is_none() {
                return Err(bad(format!(
                    "`resources`: no API has the identifier `{r}`; register it first (POST /admin/apis or `tessera apis create`)."
                )));
            }
        }
        Ok(())
    }

    /// Refuses a subject that could be reassigned (see [`unstable_subject`]).
    fn check_stable_subject(&self, client: &Client) -> Result<()> {
        match unstable_subject(&client.subject, &self.read_only_traits) {
            None => Ok(()),
            Some(why) => Err(bad(format!("`subject`: {why}."))),
        }
    }

    /// Every app whose subject could be reassigned, each with the reason and the fix: a
    /// server refuses to start (and a configuration update to apply) while there is one.
    pub async fn unstable_subjects(&self) -> Result<Vec<String>> {
        Ok(self
            .list_clients()
            .await?
            .iter()
            .filter_map(|(c, _)| {
                unstable_subject(&c.subject, &self.read_only_traits)
                    .map(|why| format!("app `{}` ({}): {why}", c.client_id, c.client_name))
            })
            .collect())
    }

    /// Creates an app; returns it with its first secret (confidential apps), shown only now.
    pub async fn create_client(&self, input: ClientInput) -> Result<(Client, Option<String>)> {
        self.create_client_with(input, None).await
    }

    /// Creates an app, recording the hash of its registration access token when it registered
    /// itself (RFC 7591), in the same write.
    pub(crate) async fn create_client_with(
        &self,
        input: ClientInput,
        registration_token_hash: Option<String>,
    ) -> Result<(Client, Option<String>)> {
        let mut client = build(input, None)?;
        client.registration_token_hash = registration_token_hash;
        self.check_stable_subject(&client)?;
        self.check_resources(&client).await?;
        let secret = if client.app_type.is_public()
            || client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
        {
            None
        } else {
            let (plain, stored) = new_secret();
            client.secrets.push(stored);
            Some(plain)
        };
        let now = now_ms();
        self.clients.clear();
        self.store
            .op_insert_client(&ClientRow {
                client_id: client.client_id.clone(),
                metadata: serde_json::to_value(&client)
                    .map_err(|e| Error::internal(e.to_string()))?,
                created_at: now,
                updated_at: now,
            })
            .await
            .map_err(|e| {
                if e.kind == tessera_core::ErrorKind::Conflict {
                    Error::conflict(format!(
                        "An app with client_id `{}` exists already.",
                        client.client_id
                    ))
                    .with_id(tessera_core::ErrorId::OAuth(
                        tessera_core::error::OAuthCode::Conflict,
                    ))
                } else {
                    e
                }
            })?;
        Ok((client, secret))
    }

    pub async fn client_row(&self, client_id: &str) -> Result<(Client, ClientRow)> {
        let row = self
            .store
            .op_get_client(client_id)
            .await?
            .ok_or_else(|| not_found(format!("App `{client_id}` does not exist.")))?;
        Ok((from_row(row.clone())?, row))
    }

    pub async fn list_clients(&self) -> Result<Vec<(Client, ClientRow)>> {
        let rows = self.store.op_list_clients().await?;
        rows.into_iter()
            .map(|r| Ok((from_row(r.clone())?, r)))
            .collect()
    }

    pub(crate) async fn save(&self, client: &Client, row: &ClientRow) -> Result<ClientRow> {
        self.clients.clear();
        let row = ClientRow {
            client_id: client.client_id.clone(),
            metadata: serde_json::to_value(client).map_err(|e| Error::internal(e.to_string()))?,
            created_at: row.created_at,
            updated_at: now_ms(),
        };
        if !self.store.op_update_client(&row).await? {
            return Err(not_found(format!(
                "App `{}` does not exist.",
                client.client_id
            )));
        }
        Ok(row)
    }

    /// Replaces an app's metadata (PUT); its id and secrets stay.
    pub async fn update_client(
        &self,
        client_id: &str,
        input: ClientInput,
    ) -> Result<(Client, ClientRow)> {
        let (old, row) = self.client_row(client_id).await?;
        let mut client = build(input, Some(&old))?;
        self.check_stable_subject(&client)?;
        self.check_resources(&client).await?;
        // A key-authenticated app has no secrets: one left over would be a second, weaker way in.
        if client.app_type.is_public()
            || client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
        {
            client.secrets.clear();
        }
        let row = self.save(&client, &row).await?;
        Ok((client, row))
    }

    /// Deletes an app with everything issued to it; false when there was none.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool> {
        self.clients.clear();
        self.store.op_delete_client(client_id).await
    }

    /// Adds a secret (rotation: add the new one, move the app over, delete the old one).
    pub async fn add_secret(&self, client_id: &str) -> Result<(String, StoredSecret)> {
        let (mut client, row) = self.client_row(client_id).await?;
        if client.app_type.is_public() {
            return Err(bad(format!(
                "A `{}` app is public and has no secrets.",
                client.app_type.as_str()
            )));
        }
        if client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            return Err(bad(
                "This app authenticates with `private_key_jwt` and has no secrets: rotate its keys by updating `jwks`.",
            ));
        }
        let (plain, stored) = new_secret();
        client.secrets.push(stored.clone());
        self.save(&client, &row).await?;
        Ok((plain, stored))
    }

    pub async fn delete_secret(&self, client_id: &str, secret_id: &str) -> Result<()> {
        let (mut client, row) = self.client_row(client_id).await?;
        let before = client.secrets.len();
        client.secrets.retain(|s| s.id != secret_id);
        if client.secrets.len() == before {
            return Err(not_found(format!(
                "App `{client_id}` has no secret `{secret_id}`."
            )));
        }
        if client.secrets.is_empty() {
            return Err(bad(
                "This is the app's last secret: add a new one first, then delete this one.",
            ));
        }
        self.save(&client, &row).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ClientCache;

    /// Discovery's answer to "may some app exchange tokens" is kept, and forgotten as soon as
    /// an app changes through this process, so an admin's change shows at once.
    #[test]
    fn the_token_exchange_answer_is_kept_until_an_app_changes() {
        let cache = ClientCache::default();
        assert_eq!(cache.token_exchange(), None, "nothing known yet");
        cache.put_token_exchange(true);
        assert_eq!(cache.token_exchange(), Some(true));
        cache.clear();
        assert_eq!(cache.token_exchange(), None, "an app changed: read again");
        cache.put_token_exchange(false);
        assert_eq!(cache.token_exchange(), Some(false));
    }
}
