//! Identities and their credentials, in Kratos's JSON shape so exported Kratos identities import
//! unchanged and SDK clients parse ours.

use crate::timefmt::{Millis, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdentityState {
    #[default]
    Active,
    Inactive,
}

impl IdentityState {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityState::Active => "active",
            IdentityState::Inactive => "inactive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// Credential types Tessera knows. Kept as strings in storage so new methods need no migration.
pub const CREDENTIAL_PASSWORD: &str = "password";
pub const CREDENTIAL_OIDC: &str = "oidc";
/// A TOTP authenticator app (Kratos's `totp`): a second factor.
pub const CREDENTIAL_TOTP: &str = "totp";
/// One-time codes sent to an address (Kratos's `code`): the identifiers are the traits the
/// schema marks `credentials.code.identifier`, each with the channel it is reached by.
pub const CREDENTIAL_CODE: &str = "code";

/// A credential in Kratos's wire and export shape. `config` stays the JSON Kratos shows (and
/// the store keeps); code reads and writes it through the typed views
/// ([`Credential::password_config`], [`Credential::oidc_config`], [`Credential::set_config`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    #[serde(rename = "type")]
    pub kind: String,
    pub identifiers: Vec<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    #[serde(default)]
    pub version: i64,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

impl Credential {
    /// The typed view of a `password` credential's config; `None` when it is not one (or has
    /// no usable hash, as an imported identity may).
    pub fn password_config(&self) -> Option<PasswordConfig> {
        serde_json::from_value::<PasswordConfig>(self.config.clone())
            .ok()
            .filter(|c| !c.hashed_password.is_empty())
    }
    /// The typed view of an `oidc` credential's config (empty when absent or unreadable).
    pub fn oidc_config(&self) -> OidcConfig {
        serde_json::from_value(self.config.clone()).unwrap_or_default()
    }
    /// Stores a typed config as the credential's wire/persisted JSON.
    pub fn set_config(&mut self, config: &impl Serialize) {
        self.config = serde_json::to_value(config).unwrap_or(Value::Null);
    }
}

/// `credentials.totp.config`: Kratos's `totp_url` (the `otpauth://` URL holding the secret),
/// kept sealed with `secrets.cipher` here, so a database dump holds no usable secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpConfig {
    /// The sealed `otpauth://totp/…` URL.
    pub totp_url: String,
}

/// A recovery code (Kratos's `lookup_secret`): a second factor.
pub const CREDENTIAL_LOOKUP_SECRET: &str = "lookup_secret";

/// `credentials.lookup_secret.config`: Kratos keeps `recovery_codes[].code` in clear; here each
/// code is kept as its SHA-256 (`hash`, hex, over the identity id and the code), so a database
/// dump yields no usable code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupSecretConfig {
    #[serde(default)]
    pub recovery_codes: Vec<RecoveryCode>,
}

/// One recovery code: its hash, and when it was used (`None` while unused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCode {
    pub hash: String,
    #[serde(default)]
    pub used_at: Option<i64>,
}

/// `credentials.password.config`: the PHC hash (argon2id, or an imported bcrypt/pbkdf2 one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordConfig {
    #[serde(default)]
    pub hashed_password: String,
}

/// `credentials.oidc.config`: one entry per linked upstream account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OidcConfig {
    #[serde(default)]
    pub providers: Vec<OidcLink>,
}

/// One upstream account linked to an identity (`<provider>:<subject>` is its identifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OidcLink {
    pub provider: String,
    pub subject: String,
    /// The upstream's tokens at the time of linking, sealed (`store_tokens`).
    #[serde(flatten)]
    pub tokens: SealedTokens,
    /// Keys Kratos exports that Tessera keeps but does not read (`organization`, …).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// Upstream tokens sealed with `secrets.cipher` (Kratos's `initial_*_token` names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedTokens {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_refresh_token: Option<String>,
}

impl SealedTokens {
    pub fn is_empty(&self) -> bool {
        *self == SealedTokens::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiableAddress {
    pub id: Uuid,
    pub value: String,
    pub verified: bool,
    pub via: String,
    pub status: String,
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub verified_at: Option<Millis>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryAddress {
    pub id: Uuid,
    pub value: String,
    pub via: String,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub id: Uuid,
    /// Kratos's optional link to an identity in another system: unique across identities when
    /// set, absent from the JSON when not (Kratos's `omitempty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub schema_id: String,
    /// Filled in at the HTTP edge (`{public base_url}/schemas/{id}`), not stored.
    #[serde(default)]
    pub schema_url: String,
    pub state: IdentityState,
    #[serde(with = "rfc3339")]
    pub state_changed_at: Millis,
    pub traits: Value,
    pub verifiable_addresses: Vec<VerifiableAddress>,
    pub recovery_addresses: Vec<RecoveryAddress>,
    pub metadata_public: Value,
    pub metadata_admin: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<BTreeMap<String, Credential>>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
    pub organization_id: Option<Uuid>,
}

impl Identity {
    pub fn credential(&self, kind: &str) -> Option<&Credential> {
        self.credentials.as_ref().and_then(|c| c.get(kind))
    }

    /// Hides credential secrets unless the caller asked for them by type (Kratos's
    /// `include_credential`): identifiers stay visible, configs are dropped.
    pub fn redact_credentials(&mut self, include: &[String]) {
        if let Some(creds) = self.credentials.as_mut() {
            for (kind, cred) in creds.iter_mut() {
                if !include.iter().any(|k| k == kind) {
                    cred.config = Value::Null;
                }
            }
        }
    }
}

/// Normalises a password identifier the way lookups compare them: trimmed and case-folded, so
/// `Alice@Example.com` and `alice@example.com` are one account.
pub fn normalize_identifier(id: &str) -> String {
    id.trim().to_lowercase()
}

/// Normalises an address of channel `via` the way lookups compare them: a phone number
/// (`sms`) in E.164 when it is a valid international number (`+7 (912) 345-67-89` →
/// `+79123456789`), anything else as [`normalize_identifier`]. Numbers written without their
/// country code are left as written: which country they belong to is not known here.
pub fn normalize_address(via: &str, value: &str) -> String {
    match via {
        "sms" => phone_e164(value).unwrap_or_else(|| normalize_identifier(value)),
        _ => normalize_identifier(value),
    }
}

/// A valid international phone number (starting with `+`) in E.164, or `None`.
pub fn phone_e164(value: &str) -> Option<String> {
    let v = value.trim();
    // Only digits and the separators people write (libphonenumber would also read vanity
    // letters, `+7912abc…`, as digits: not something anyone types as their number).
    let rest = v.strip_prefix('+')?;
    if v.len() > 32
        || !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
    {
        return None;
    }
    let n = phonenumber::parse(None, v).ok()?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

/// `credentials.code.config`: the addresses a code may go to, Kratos's `CredentialsCode`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeConfig {
    #[serde(default)]
    pub addresses: Vec<CodeAddress>,
}

/// One address of [`CodeConfig`]: `channel` is `email` or `sms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeAddress {
    pub channel: String,
    pub address: String,
}

#[cfg(test)]
mod address_tests {
    use super::{normalize_address, phone_e164};

    #[test]
    fn chinese_and_russian_numbers_become_e164_and_nothing_else_does() {
        for (written, e164) in [
            ("+7 (912) 345-67-89", "+79123456789"),
            ("+7 912 345 67 89", "+79123456789"),
            ("+79123456789", "+79123456789"),
            (" +86 138 0013 8000 ", "+8613800138000"),
            ("+86-138-0013-8000", "+8613800138000"),
            ("+8613800138000", "+8613800138000"),
        ] {
            assert_eq!(phone_e164(written).as_deref(), Some(e164), "{written}");
            assert_eq!(normalize_address("sms", written), e164, "{written}");
        }
        // National formats (no country code), too short, letters, too long: not numbers we
        // can text, and not rewritten.
        for bad in [
            "89123456789",
            "8 (912) 345-67-89",
            "13800138000",
            "+1234",
            "+7912abc4567",
            "+7 912 345 67 89 0000 00",
            "a@b.c",
        ] {
            assert_eq!(phone_e164(bad), None, "{bad}");
        }
        assert_eq!(normalize_address("sms", "8 912"), "8 912");
        assert_eq!(normalize_address("email", " A@B.cn "), "a@b.cn");
    }
}
