//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), for operators
//! who let a trusted party (a SaaS platform's provisioning, a CI pipeline) create apps without
//! admin API access. Off by default; when on, only callers holding the configured initial
//! access token may register (`oidc_provider.registration`).
//!
//! A registered app is a third-party app and stays one: it cannot skip consent, run a claims
//! mapper, read admin metadata through its `sub`, or limit itself to assigned users (those are
//! the operator's decisions, made with the admin API). It gets a registration access token
//! (stored as a hash) to read, update and delete its own registration and nothing else.

use crate::client::{AppType, Client, ClientInput};
use crate::vocab::GrantType;
use crate::{ErrorCode, OpError, OpResult, Provider, now_ms};
use serde_json::{Map, Value, json};
use tessera_core::crypto;

/// Informational metadata of RFC 7591 §2 that Tessera does not use; accepted and dropped.
const IGNORED: &[&str] = &[
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "contacts",
    "software_id",
    "software_version",
    "software_statement",
    "id_token_signed_response_alg",
    "userinfo_signed_response_alg",
    "default_max_age",
    "require_auth_time",
    "initiate_login_uri",
];

/// Tessera's own metadata that only an operator may set.
const OPERATOR_ONLY: &[&str] = &[
    "skip_consent",
    "claims_mapper",
    "access",
    "client_id",
    "resources",
];

/// A refusal of the metadata is the registrant's `invalid_client_metadata`; anything else
/// (the database) stays what it is.
fn refused_metadata(e: tessera_core::Error) -> OpError {
    if e.kind == tessera_core::ErrorKind::BadRequest {
        metadata_error(e.reason)
    } else {
        OpError::from(e)
    }
}

fn metadata_error(why: impl Into<String>) -> OpError {
    OpError::new(ErrorCode::InvalidClientMetadata, why)
}

/// Turns RFC 7591 metadata into what the admin API takes: `application_type` (`web` or
/// `native`) and the grant types decide Tessera's `app_type`.
fn input_of(metadata: Value) -> OpResult<ClientInput> {
    let Value::Object(mut m) = metadata else {
        return Err(metadata_error(
            "The registration request must be a JSON object of client metadata (RFC 7591 §2).",
        ));
    };
    for k in IGNORED {
        m.remove(*k);
    }
    for k in OPERATOR_ONLY {
        if m.contains_key(*k) {
            return Err(metadata_error(format!(
                "`{k}` cannot be set by dynamic registration; an administrator sets it with the admin API."
            )));
        }
    }
    // Token exchange turns users' tokens into tokens for other APIs: an operator's decision
    // about a service it trusts, never something an app grants itself.
    if m.get("grant_types")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|g| g.as_str() == Some(GrantType::TokenExchange.as_str()))
        })
    {
        return Err(metadata_error(format!(
            "grant type `{}` cannot be registered dynamically; an administrator allows it with the admin API.",
            GrantType::TokenExchange
        )));
    }
    if let Some(subject) = m.get("subject").and_then(Value::as_str)
        && subject != "id"
        && subject != "pairwise"
    {
        return Err(metadata_error(
            "`subject` may only be `id` or `pairwise` for a dynamically registered app.",
        ));
    }
    if let Some(subject_type) = m.remove("subject_type") {
        match subject_type.as_str() {
            Some("public") => {}
            Some("pairwise") => {
                m.entry("subject").or_insert(json!("pairwise"));
            }
            _ => {
                return Err(metadata_error(
                    "`subject_type` must be `public` or `pairwise`.",
                ));
            }
        }
    }
    let application_type = m.remove("application_type");
    if !m.contains_key("app_type") {
        let grants: Vec<&str> = m
            .get("grant_types")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let public = m.get("token_endpoint_auth_method").and_then(Value::as_str) == Some("none");
        let app_type = match application_type.as_ref().and_then(Value::as_str) {
            _ if grants == ["client_credentials"] => AppType::Machine,
            Some("native") => AppType::Native,
            Some("web") | None if public => AppType::Spa,
            Some("web") | None => AppType::Traditional,
            Some(other) => {
                return Err(metadata_error(format!(
                    "`application_type` `{other}` is not valid: use `web` or `native`."
                )));
            }
        };
        m.insert("app_type".into(), json!(app_type.as_str()));
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| metadata_error(format!("{e}.")))
}

impl Provider {
    /// Whether registration is enabled (its endpoint exists and discovery names it).
    pub fn registration_enabled(&self) -> bool {
        self.op().registration_token.is_some()
    }

    fn registration_answer(&self, client: &Client, secret: Option<&str>, token: &str) -> Value {
        let now = now_ms();
        let mut v = client.to_api(now, now);
        if let Some(o) = v.as_object_mut() {
            o.remove("client_secrets");
            if let Some(secret) = secret {
                o.insert("client_secret".into(), json!(secret));
                o.insert("client_secret_expires_at".into(), json!(0));
            }
            o.insert("registration_access_token".into(), json!(token));
            o.insert(
                "registration_client_uri".into(),
                json!(self.endpoint(&format!("reg/{}", client.client_id))),
            );
        }
        v
    }

    /// `POST /oidc/reg` (RFC 7591 §3): `initial` is the bearer token the caller presented.
    pub async fn register_client(&self, initial: Option<&str>, metadata: Value) -> OpResult<Value> {
        let Some(want) = self.op().registration_token.as_deref() else {
            return Err(OpError::new(
                ErrorCode::NotFound,
                "Dynamic client registration is not enabled on this server.",
            ));
        };
        if !initial.is_some_and(|t| crypto::constant_time_eq(t, want)) {
            return Err(OpError::invalid_token(
                "Registration needs the initial access token: send it as `Authorization: Bearer <token>`.",
            ));
        }
        let input = input_of(metadata)?;
        let token = crypto::random_token();
        let (client, secret) = self
            .create_client_with(input, Some(crypto::token_hash(&token)))
            .await
            .map_err(refused_metadata)?;
        Ok(self.registration_answer(&client, secret.as_deref(), &token))
    }

    /// The app a registration access token belongs to (RFC 7592 §2); anything else is 401.
    async fn registered(&self, client_id: &str, token: Option<&str>) -> OpResult<Client> {
        let refused = || {
            OpError::invalid_token(
                "The registration access token is missing, wrong, or not this app's.",
            )
        };
        if !self.registration_enabled() {
            return Err(OpError::new(
                ErrorCode::NotFound,
                "Dynamic client registration is not enabled on this server.",
            ));
        }
        let client = self.client(client_id).await?.ok_or_else(refused)?;
        match (&client.registration_token_hash, token) {
            (Some(hash), Some(t)) if crypto::constant_time_eq(hash, &crypto::token_hash(t)) => {
                Ok(client)
            }
            _ => Err(refused()),
        }
    }

    /// `GET /oidc/reg/{client_id}` (RFC 7592 §2.1).
    pub async fn read_registration(&self, client_id: &str, token: Option<&str>) -> OpResult<Value> {
        let client = self.registered(client_id, token).await?;
        Ok(self.registration_answer(&client, None, token.unwrap_or_default()))
    }

    /// `PUT /oidc/reg/{client_id}` (RFC 7592 §2.2): the whole metadata again; its secrets and
    /// registration token stay.
    pub async fn update_registration(
        &self,
        client_id: &str,
        token: Option<&str>,
        metadata: Value,
    ) -> OpResult<Value> {
        self.registered(client_id, token).await?;
        let mut m = match metadata {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if m.remove("client_id")
            .is_some_and(|id| id.as_str() != Some(client_id))
        {
            return Err(OpError::invalid_request(
                "The `client_id` in the body is not this registration's.",
            ));
        }
        for k in [
            "client_secret",
            "registration_access_token",
            "registration_client_uri",
            "client_id_issued_at",
            "client_secret_expires_at",
        ] {
            m.remove(k);
        }
        let input = input_of(Value::Object(m))?;
        let (client, _) = self
            .update_client(client_id, input)
            .await
            .map_err(refused_metadata)?;
        Ok(self.registration_answer(&client, None, token.unwrap_or_default()))
    }

    /// `DELETE /oidc/reg/{client_id}` (RFC 7592 §2.3): the app and all it was issued.
    pub async fn delete_registration(&self, client_id: &str, token: Option<&str>) -> OpResult<()> {
        self.registered(client_id, token).await?;
        self.delete_client(client_id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_type(m: Value) -> Result<Option<AppType>, String> {
        input_of(m).map(|i| i.app_type).map_err(|e| e.description)
    }

    #[test]
    fn the_app_type_follows_application_type_and_grants() {
        let r = json!(["https://app.example/cb"]);
        assert_eq!(
            app_type(json!({"redirect_uris": r})),
            Ok(Some(AppType::Traditional))
        );
        assert_eq!(
            app_type(json!({"redirect_uris": r, "token_endpoint_auth_method": "none"})),
            Ok(Some(AppType::Spa))
        );
        assert_eq!(
            app_type(json!({"redirect_uris": r, "application_type": "native"})),
            Ok(Some(AppType::Native))
        );
        assert_eq!(
            app_type(json!({"grant_types": ["client_credentials"]})),
            Ok(Some(AppType::Machine))
        );
        assert!(app_type(json!({"application_type": "tv"})).is_err());
    }

    #[test]
    fn operator_decisions_cannot_be_registered() {
        for (k, v) in [
            ("skip_consent", json!(true)),
            ("claims_mapper", json!("{}")),
            ("access", json!("assigned")),
            ("client_id", json!("chosen")),
            ("subject", json!("metadata_admin.employee_id")),
            ("subject_type", json!("secret")),
        ] {
            let mut m = json!({"redirect_uris": ["https://app.example/cb"]});
            m[k] = v;
            assert!(input_of(m).is_err(), "{k}");
        }
        // Front-channel logout is ordinary registration metadata (validated like redirect URIs
        // when the app is built).
        let fc = input_of(
            json!({"redirect_uris": ["https://app.example/cb"], "frontchannel_logout_uri": "https://app.example/fc", "frontchannel_logout_session_required": true}),
        );
        assert!(
            fc.as_ref()
                .is_ok_and(|i| i.frontchannel_logout_uri.as_deref()
                    == Some("https://app.example/fc")
                    && i.frontchannel_logout_session_required == Some(true)),
            "{fc:?}"
        );
        let js = input_of(json!({"redirect_uris": ["https://app.example/cb"], "frontchannel_logout_uri": "javascript:alert(1)"}))
            .and_then(|i| crate::client::build(i, None).map_err(crate::OpError::from));
        assert!(js.is_err(), "a javascript: front-channel URI is refused");
        // Token exchange is the operator's to grant.
        let e = input_of(
            json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]}),
        );
        assert!(
            e.as_ref()
                .is_err_and(|e| e.code == ErrorCode::InvalidClientMetadata
                    && e.description.contains("administrator")),
            "{e:?}"
        );
        assert!(input_of(json!({"redirect_uris": ["https://app.example/cb"], "logo_uri": "https://app.example/l.png", "subject_type": "pairwise"})).is_ok());
        assert!(
            input_of(json!({"redirect_uris": ["https://app.example/cb"], "made_up": 1})).is_err()
        );
    }
}
