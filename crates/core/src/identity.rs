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
