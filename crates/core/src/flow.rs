//! Self-service flows (login, registration, settings): the state machine a user walks through,
//! stored server-side so any instance can continue it.

use crate::timefmt::{Millis, rfc3339};
use crate::ui::Ui;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    #[default]
    Login,
    Registration,
    Settings,
    /// Proving an address is the person's (Kratos's verification flow).
    Verification,
    /// Getting back into an account by a code sent to a recovery address.
    Recovery,
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::Registration => "registration",
            FlowKind::Settings => "settings",
            FlowKind::Verification => "verification",
            FlowKind::Recovery => "recovery",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "login" => Some(Self::Login),
            "registration" => Some(Self::Registration),
            "settings" => Some(Self::Settings),
            "verification" => Some(Self::Verification),
            "recovery" => Some(Self::Recovery),
            _ => None,
        }
    }
    /// Kratos's message id for "this flow expired".
    pub fn expired_message_id(self) -> crate::text::MessageId {
        use crate::text::MessageId;
        match self {
            FlowKind::Login => MessageId::LOGIN_EXPIRED,
            FlowKind::Registration => MessageId::REGISTRATION_EXPIRED,
            FlowKind::Settings => MessageId::SETTINGS_EXPIRED,
            FlowKind::Verification => MessageId::VERIFICATION_EXPIRED,
            FlowKind::Recovery => MessageId::RECOVERY_EXPIRED,
        }
    }
}

/// `api` flows are for native apps (session tokens, no cookies, no CSRF); `browser` flows use
/// cookies and CSRF protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowType {
    Api,
    Browser,
}

impl FlowType {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowType::Api => "api",
            FlowType::Browser => "browser",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "browser" => Some(Self::Browser),
            _ => None,
        }
    }
}

/// Where a flow stands. Kratos's wire values; persisted as the same strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// Login and registration: waiting for the user to pick a method and submit.
    #[default]
    ChooseMethod,
    /// Settings: the form is shown (and may be submitted again after a success).
    ShowForm,
    /// Completed: a login or registration went through. Never submitted again.
    PassedChallenge,
    /// Settings: the last submission was saved.
    Success,
    /// Verification and recovery: a code went out (or, for an unknown address, seemed to).
    SentEmail,
}

impl FlowState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::ChooseMethod => "choose_method",
            FlowState::ShowForm => "show_form",
            FlowState::PassedChallenge => "passed_challenge",
            FlowState::Success => "success",
            FlowState::SentEmail => "sent_email",
        }
    }
    /// Reads a stored state. Unknown values are `None`; the store treats them as corrupt rows.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "choose_method" => Some(Self::ChooseMethod),
            "show_form" => Some(Self::ShowForm),
            "passed_challenge" => Some(Self::PassedChallenge),
            "success" => Some(Self::Success),
            "sent_email" => Some(Self::SentEmail),
            _ => None,
        }
    }
}

/// The server-side state of a flow that its methods keep between requests; never shown.
///
/// Each concern has its own field, so writing one (say, pending social sign-up data) leaves the
/// others (say, the native app's token exchange) as they were. Persisted (inside the flow row's
/// `extra` column) as the object it serialises to, or `null` when empty; absent keys read as
/// empty, unknown keys are ignored, so rows written before a field existed still load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowInternal {
    /// An API flow created with `return_session_token_exchange_code=true`: its social sign-in
    /// hands the session back to the native app through `/sessions/token-exchange`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_exchange: bool,
    /// Registration: what the upstream said, kept while the user fills the gaps.
    #[serde(default, rename = "oidc", skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSocial>,
    /// Login: the upstream account to link once the owner of the colliding account proves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkIntent>,
    /// Login: the owner proved the account; only the link question is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_proof: Option<LinkProof>,
    /// Settings: the TOTP key offered for enrolment (its `otpauth://` URL sealed with
    /// `secrets.cipher`), kept until the user confirms it with a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<String>,
    /// Settings: recovery codes shown once and not yet confirmed, as their hashes (the codes
    /// themselves are never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_pending: Option<Vec<String>>,
    /// Verification and recovery: the code sent last (its hash only), whom it is for and until
    /// when it holds. `None` before a code was asked for, and after an unknown address was
    /// given (the answer looks the same; there is simply nothing to match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PendingCode>,
    /// Login with `refresh=true` (or an app's `max_age`): the session the request carried. A
    /// sign-in of the same identity renews it, keeping the factors it proved (an aal2 session
    /// stays aal2, as in Kratos), instead of starting an aal1 session that must step up again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews_session: Option<Uuid>,
}

/// A one-time code waiting to be entered. Only a keyed hash of the code is kept, so a copy
/// of the database does not hand out codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCode {
    /// HMAC-SHA-256 of the code (hex), keyed with a server secret and the flow id.
    pub hash: String,
    /// The address it went to (`email`), as normalised.
    pub address: String,
    #[serde(default = "default_via")]
    pub via: String,
    pub identity_id: Uuid,
    /// Unix milliseconds after which the code no longer holds (`lifespan`).
    pub expires_at: i64,
    /// Set for a code an administrator created (`POST /admin/recovery/code`): it does not
    /// mark the address verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// The `link` method: `hash` is of the link's token (under its own HMAC domain, so a
    /// token never passes as a code nor a code as a token).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
    /// A sign-up by code: the traits the code was sent for (the identity is created from
    /// them, and only from them, once the code is entered). Null for every other code.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub traits: Value,
}

impl FlowInternal {
    pub fn is_empty(&self) -> bool {
        *self == FlowInternal::default()
    }
}

/// The upstream's answer to a social sign-in, waiting for the user's next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingSocial {
    /// The provider's configured id.
    #[serde(default)]
    pub provider: String,
    /// The upstream's stable subject for the user.
    #[serde(default)]
    pub subject: String,
    /// The mapped traits (merged with what the user filled in so far).
    #[serde(default)]
    pub traits: Value,
    #[serde(default)]
    pub metadata_public: Value,
    #[serde(default)]
    pub metadata_admin: Value,
    /// Addresses the mapper declared verified by the upstream.
    #[serde(default)]
    pub verified_addresses: Vec<VerifiedAddress>,
    /// The upstream's tokens, sealed with `secrets.cipher`; `None` when the provider does not
    /// keep them (`store_tokens: false`).
    #[serde(default)]
    pub tokens: Option<crate::identity::SealedTokens>,
}

/// An address the upstream vouched for (`verified_addresses` of the mapper's output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedAddress {
    pub value: String,
    #[serde(default = "default_via")]
    pub via: String,
}

fn default_via() -> String {
    "email".into()
}

/// A social account waiting to be linked to an existing identity (`identity_id`), whose
/// `identifier` the upstream account collided with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkIntent {
    #[serde(flatten)]
    pub pending: PendingSocial,
    pub identity_id: Uuid,
    #[serde(default)]
    pub identifier: String,
}

/// How the owner proved the account before being asked to confirm a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProof {
    pub identity_id: Uuid,
    /// The sign-in method that proved it (`password` or `oidc`), recorded on the session.
    #[serde(default = "default_method")]
    pub method: String,
    /// When (Unix milliseconds).
    #[serde(default)]
    pub at: i64,
}

fn default_method() -> String {
    "password".into()
}

/// A flow. Its `Serialize` form is Kratos's wire JSON (what clients render and submit); the
/// fields marked `#[serde(skip)]` are server-side only and persisted by the store in its own
/// columns (`internal` as [`FlowInternal`]'s JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub flow_type: FlowType,
    #[serde(skip)]
    pub kind: FlowKind,
    #[serde(with = "rfc3339")]
    pub expires_at: Millis,
    #[serde(with = "rfc3339")]
    pub issued_at: Millis,
    pub request_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    pub ui: Ui,
    pub state: FlowState,
    /// Login: whether this flow re-authenticates an existing session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_aal: Option<String>,
    /// Settings: the identity being edited (Kratos embeds it).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub identity: Value,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
    /// Per-browser CSRF secret the flow was created for; empty for API flows.
    #[serde(skip)]
    pub csrf_token: String,
    /// The session owner, for settings flows.
    #[serde(skip)]
    pub identity_id: Option<Uuid>,
    /// Method-specific internal state (e.g. pending social sign-up data); never shown.
    #[serde(skip)]
    pub internal: FlowInternal,
    /// Native apps' init code for the session token exchange; present only in the answer that
    /// created the flow (only its hash is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_exchange_code: Option<String>,
    /// Verification and recovery: the method in use (`code`), Kratos's `active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// What the client does next (Kratos's `continue_with`), present only in the answer that
    /// produced it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub continue_with: Vec<Value>,
}

impl Flow {
    pub fn is_expired_at(&self, now: Millis) -> bool {
        self.expires_at <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Credential, OidcConfig, PasswordConfig};
    use serde_json::json;

    /// Serialises the way the store writes (through a `Value`, so keys come out sorted).
    fn stored(v: &impl Serialize) -> String {
        serde_json::to_value(v).unwrap().to_string()
    }

    /// Every `internal` shape earlier versions wrote loads, and is written back byte for byte.
    #[test]
    fn internal_shapes_written_before_load_and_round_trip() {
        let pending = json!({
            "provider": "acme", "subject": "sub-1",
            "traits": {"email": "a@example.com", "name": {"first": "Ann"}},
            "metadata_public": {"plan": "free"}, "metadata_admin": null,
            "verified_addresses": [{"value": "a@example.com", "via": "email"}],
            "tokens": {"initial_id_token": "sealed-id", "initial_access_token": "sealed-at"},
        });
        let mut link = pending.clone();
        link["identity_id"] = json!("9f425a8d-7efc-4768-8f23-7647a74fdf13");
        link["identifier"] = json!("a@example.com");
        let mut no_tokens = pending.clone();
        no_tokens["tokens"] = Value::Null;
        let shapes = [
            json!({"token_exchange": true}),
            json!({"oidc": pending}),
            json!({"oidc": no_tokens}),
            json!({"link": link}),
            json!({"link": link, "link_proof": {"identity_id": "9f425a8d-7efc-4768-8f23-7647a74fdf13", "method": "oidc", "at": 1_700_000_000_000_i64}}),
        ];
        for shape in shapes {
            let typed: FlowInternal = serde_json::from_value(shape.clone()).unwrap();
            assert!(!typed.is_empty(), "{shape}");
            assert_eq!(stored(&typed), shape.to_string());
        }
        let typed: FlowInternal = serde_json::from_value(json!({"oidc": pending})).unwrap();
        let p = typed.pending.unwrap();
        assert_eq!(p.provider, "acme");
        assert_eq!(p.verified_addresses[0].via, "email");
        assert_eq!(
            p.tokens.unwrap().initial_id_token.as_deref(),
            Some("sealed-id")
        );
    }

    /// Writing one concern keeps the others: the old whole-slot writes lost `token_exchange`.
    #[test]
    fn setting_pending_keeps_token_exchange() {
        let mut internal: FlowInternal =
            serde_json::from_value(json!({"token_exchange": true})).unwrap();
        internal.pending =
            Some(serde_json::from_value(json!({"provider": "acme", "subject": "s"})).unwrap());
        let back: Value = serde_json::to_value(&internal).unwrap();
        assert_eq!(back["token_exchange"], json!(true));
        assert_eq!(back["oidc"]["provider"], json!("acme"));
        assert!(FlowInternal::default().is_empty());
    }

    #[test]
    fn flow_state_is_kratos_wire_string() {
        for s in [
            FlowState::ChooseMethod,
            FlowState::ShowForm,
            FlowState::PassedChallenge,
            FlowState::Success,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
            assert_eq!(FlowState::parse(s.as_str()), Some(s));
        }
        assert_eq!(FlowState::parse("sent_email"), Some(FlowState::SentEmail));
        assert_eq!(FlowState::parse("sent_sms"), None);
    }

    fn credential(config: Value) -> Credential {
        Credential {
            kind: "oidc".into(),
            identifiers: vec![],
            config,
            version: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Credential configs as stored today (and as Kratos exports them) read into the typed
    /// views and write back unchanged, keys Tessera does not read included.
    #[test]
    fn credential_configs_round_trip() {
        let oidc = json!({"providers": [
            {"provider": "acme", "subject": "s1", "initial_id_token": "sealed", "organization": null},
            {"provider": "github", "subject": "42"},
        ]});
        let mut c = credential(oidc.clone());
        let typed: OidcConfig = c.oidc_config();
        assert_eq!(typed.providers.len(), 2);
        assert_eq!(
            typed.providers[0].tokens.initial_id_token.as_deref(),
            Some("sealed")
        );
        assert!(typed.providers[0].other.contains_key("organization"));
        assert!(!typed.providers[0].other.contains_key("initial_id_token"));
        c.set_config(&typed);
        assert_eq!(c.config.to_string(), oidc.to_string());

        let pw = credential(json!({"hashed_password": "$argon2id$v=19$x"}));
        assert_eq!(
            pw.password_config(),
            Some(PasswordConfig {
                hashed_password: "$argon2id$v=19$x".into()
            })
        );
        assert_eq!(
            credential(json!({"hashed_password": ""})).password_config(),
            None
        );
        assert_eq!(credential(Value::Null).password_config(), None);
    }
}
