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
}

impl FlowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::Registration => "registration",
            FlowKind::Settings => "settings",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "login" => Some(Self::Login),
            "registration" => Some(Self::Registration),
            "settings" => Some(Self::Settings),
            _ => None,
        }
    }
    /// Kratos's message id for "this flow expired".
    pub fn expired_message_id(self) -> u32 {
        match self {
            FlowKind::Login => 4010001,
            FlowKind::Registration => 4040001,
            FlowKind::Settings => 4050001,
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
    pub state: String,
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
    pub internal: Value,
    /// Native apps' init code for the session token exchange; present only in the answer that
    /// created the flow (only its hash is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_exchange_code: Option<String>,
}

impl Flow {
    pub fn is_expired_at(&self, now: Millis) -> bool {
        self.expires_at <= now
    }
}
