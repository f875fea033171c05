//! Sessions as Kratos returns them from `/sessions/whoami`.

use crate::identity::Identity;
use crate::timefmt::{Millis, rfc3339};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationMethod {
    pub method: String,
    pub aal: String,
    #[serde(with = "rfc3339")]
    pub completed_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: Uuid,
    pub active: bool,
    #[serde(with = "rfc3339")]
    pub expires_at: Millis,
    #[serde(with = "rfc3339")]
    pub authenticated_at: Millis,
    pub authenticator_assurance_level: String,
    pub authentication_methods: Vec<AuthenticationMethod>,
    #[serde(with = "rfc3339")]
    pub issued_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub devices: Vec<serde_json::Value>,
    /// Needed to load the identity; not part of Kratos's JSON.
    #[serde(skip)]
    pub identity_id: Uuid,
}

impl Session {
    pub fn is_valid_at(&self, now: Millis) -> bool {
        self.active && self.expires_at > now
    }
}
