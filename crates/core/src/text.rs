//! Kratos's UI message catalogue: each message has a stable numeric id so that UIs can translate
//! it, a type, a default English text and a machine-readable context. Ids match Kratos's.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub id: u32,
    pub text: String,
    #[serde(rename = "type")]
    pub kind: TextType,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub context: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextType {
    Info,
    Error,
    Success,
}

fn info(id: u32, text: impl Into<String>, context: Value) -> Text {
    Text {
        id,
        text: text.into(),
        kind: TextType::Info,
        context,
    }
}

fn error(id: u32, text: impl Into<String>, context: Value) -> Text {
    Text {
        id,
        text: text.into(),
        kind: TextType::Error,
        context,
    }
}

pub fn login_title() -> Text {
    info(1010001, "Sign in", Value::Null)
}
pub fn registration_title() -> Text {
    info(1040001, "Sign up", Value::Null)
}
pub fn settings_saved() -> Text {
    Text {
        id: 1050001,
        text: "Your changes have been saved!".into(),
        kind: TextType::Success,
        context: Value::Null,
    }
}
pub fn label_password() -> Text {
    info(1070001, "Password", Value::Null)
}
/// Label taken from the identity schema's `title` (Kratos 1070002).
pub fn label_generated(title: &str, name: &str) -> Text {
    info(1070002, title, json!({ "title": title, "name": name }))
}
pub fn label_save() -> Text {
    info(1070003, "Save", Value::Null)
}
pub fn label_id() -> Text {
    info(1070004, "ID", Value::Null)
}
pub fn label_submit() -> Text {
    info(1070005, "Submit", Value::Null)
}

pub fn validation_generic(reason: &str) -> Text {
    error(4000001, reason, json!({ "reason": reason }))
}
pub fn missing_property(property: &str) -> Text {
    error(
        4000002,
        format!("Property {property} is missing."),
        json!({ "property": property }),
    )
}
pub fn min_length(expected: u64, actual: u64) -> Text {
    error(
        4000003,
        format!("length must be >= {expected}, but got {actual}"),
        json!({ "min_length": expected, "actual_length": actual }),
    )
}
pub fn invalid_format(value: &str, format: &str) -> Text {
    error(
        4000004,
        format!("{value:?} is not valid {format:?}"),
        json!({ "value": value, "format": format }),
    )
}
pub fn password_policy(reason: &str) -> Text {
    error(
        4000005,
        format!("The password can not be used because {reason}"),
        json!({ "reason": reason }),
    )
}
pub fn invalid_credentials() -> Text {
    error(
        4000006,
        "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.",
        Value::Null,
    )
}
pub fn duplicate_credentials() -> Text {
    error(
        4000007,
        "An account with the same identifier (email, phone, username, ...) exists already.",
        Value::Null,
    )
}
pub fn inactive_identity() -> Text {
    error(4000010, "Your account has been disabled.", Value::Null)
}
pub fn flow_expired(kind_id: u32, minutes_ago: f64) -> Text {
    error(
        kind_id,
        format!("The flow expired {minutes_ago:.2} minutes ago, please try again."),
        json!({ "expired_at_minutes_ago": minutes_ago }),
    )
}

// Social sign-in (Kratos ids).
/// A social button's label: `provider` is the name people read (the label, or the type's
/// name), `provider_id` the configured id the button submits, as in Kratos's context.
pub fn login_with(provider: &str, provider_id: &str) -> Text {
    info(
        1010002,
        format!("Sign in with {provider}"),
        json!({ "provider": provider, "provider_id": provider_id }),
    )
}
pub fn registration_with(provider: &str, provider_id: &str) -> Text {
    info(
        1040002,
        format!("Sign up with {provider}"),
        json!({ "provider": provider, "provider_id": provider_id }),
    )
}
pub fn link_provider(provider: &str) -> Text {
    info(
        1050002,
        format!("Link {provider}"),
        json!({ "provider": provider }),
    )
}
pub fn unlink_provider(provider: &str) -> Text {
    info(
        1050003,
        format!("Unlink {provider}"),
        json!({ "provider": provider }),
    )
}
/// Shown on the login flow when a social sign-in found an existing account with the same
/// identifier: the user proves they own it before the social account is linked.
/// A `refresh=true` login of a signed-in person (Kratos 1010003), e.g. before a settings change.
pub fn login_refresh() -> Text {
    info(
        1010003,
        "Please confirm this action by verifying that it is you.",
        Value::Null,
    )
}
pub fn login_to_link(duplicate_identifier: &str, provider: &str, providers: &[String]) -> Text {
    info(
        1010016,
        format!(
            "You tried to sign in with \"{duplicate_identifier}\", but that email is already used by another account. Sign in to your account with one of the options below to add your account \"{duplicate_identifier}\" at \"{provider}\" as another way to sign in."
        ),
        json!({
            "duplicateIdentifier": duplicate_identifier,
            "duplicate_identifier": duplicate_identifier,
            "provider": provider,
            "available_oidc_providers": providers,
        }),
    )
}
pub fn duplicate_on_oidc_link() -> Text {
    error(
        4000027,
        "An account with the same identifier (email, phone, username, ...) exists already. Please sign in to your existing account to link your social profile.",
        Value::Null,
    )
}
/// An upstream sign-in failed; `reason` says why in words a user can act on. The context adds
/// (a Tessera extension Kratos UIs ignore) `tessera_reason`, a stable code such as
/// `upstream_denied`, the `provider` label and its `provider_id`, so a UI can say it in the
/// user's language (with the provider type's local name).
pub fn social_sign_in_failed(reason: &str, code: &str, provider: &str, provider_id: &str) -> Text {
    error(
        4000001,
        reason.to_string(),
        json!({ "reason": reason, "tessera_reason": code, "provider": provider, "provider_id": provider_id }),
    )
}

// Tessera extensions (ids outside Kratos's ranges in use).

/// Label of the registration agreement checkbox when the sign-in experience sets terms or
/// privacy links (`experience.terms_of_service_url`, `experience.privacy_policy_url`).
pub fn label_agreement(terms_url: Option<&str>, privacy_url: Option<&str>) -> Text {
    info(
        1070900,
        "I agree to the terms of service and the privacy policy.",
        json!({ "terms_of_service_url": terms_url, "privacy_policy_url": privacy_url }),
    )
}
/// After the owner of an account proved it on a "sign in to link" flow: the explicit question
/// before the upstream account is linked, naming it.
pub fn confirm_link(provider: &str, account: &str) -> Text {
    info(
        1010901,
        format!(
            "Link the {provider} account \"{account}\" to your account? You can then sign in with either. Link it only if that {provider} account is yours."
        ),
        json!({ "provider": provider, "duplicate_identifier": account }),
    )
}
pub fn confirm_link_button(provider: &str) -> Text {
    info(
        1010902,
        format!("Link {provider} account"),
        json!({ "provider": provider }),
    )
}
pub fn skip_link_button() -> Text {
    info(1010903, "Don't link, just sign in", Value::Null)
}
/// A self-service submission tried to set a trait the schema marks read-only
/// (`"tessera": {"read_only": true}`).
pub fn read_only_trait() -> Text {
    error(
        4000901,
        "This value is set by the site and cannot be chosen or changed here.",
        Value::Null,
    )
}
/// Registration submitted without ticking the agreement checkbox.
pub fn agreement_required() -> Text {
    error(
        4000900,
        "Accept the terms of service and the privacy policy to continue.",
        Value::Null,
    )
}
