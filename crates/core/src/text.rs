//! Kratos's UI message catalogue: each message has a stable numeric id so that UIs can translate
//! it, a type, a default English text and a machine-readable context. Ids match Kratos's.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A Kratos UI message id (`1010001`, `4000006`, …): what a UI translates by. Serialised as
/// the bare number Kratos sends; code names ids by their constants and compares those, never
/// bare integers. The id's first digit says its [`TextType`] family in Kratos's catalogue
/// (`1…` info, `4…` error).
///
/// Deliberately a newtype rather than an enum: stored flows may carry ids written by another
/// version, and reading them must not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u32);

/// Defines each id as a constant and [`MessageId::ALL`] from the same list.
macro_rules! message_ids {
    ($($(#[$doc:meta])* $name:ident = $id:literal;)*) => {
        impl MessageId {
            $($(#[$doc])* pub const $name: MessageId = MessageId($id);)*

            /// Every id this server writes (the hosted pages translate each one).
            pub const ALL: &'static [MessageId] = &[$(MessageId::$name),*];
        }
    };
}

message_ids! {
    /// "Sign in" (the login form's submit).
    LOGIN_TITLE = 1010001;
    /// "Sign in with {provider}".
    LOGIN_WITH = 1010002;
    /// "Please confirm this action by verifying that it is you." (a `refresh=true` login).
    LOGIN_REFRESH = 1010003;
    /// "Please complete the second authentication challenge." (an `aal=aal2` login).
    LOGIN_MFA = 1010004;
    /// "Authentication code" (the `totp_code` input of an aal2 login).
    LOGIN_TOTP_LABEL = 1010006;
    /// "Backup recovery code" (the `lookup_secret` input of an aal2 login).
    LOGIN_LOOKUP_LABEL = 1010007;
    /// "Use Authenticator" (the aal2 login's `method=totp` submit).
    LOGIN_TOTP = 1010009;
    /// "Use backup recovery code" (the aal2 login's `method=lookup_secret` submit).
    LOGIN_LOOKUP = 1010010;
    /// "A code has been sent to the address you provided. …" (a code sign-in's second step)
    LOGIN_CODE_SENT = 1010014;
    /// "Sign in with code" (the login's `method=code` submit).
    LOGIN_CODE = 1010015;
    /// "You tried to sign in with …, but that email is already used by another account."
    LOGIN_TO_LINK = 1010016;
    /// Tessera: "Link the {provider} account … to your account?"
    CONFIRM_LINK = 1010901;
    /// Tessera: "Link {provider} account" (button).
    CONFIRM_LINK_BUTTON = 1010902;
    /// Tessera: "Don't link, just sign in" (button).
    SKIP_LINK_BUTTON = 1010903;
    /// "Sign up".
    REGISTRATION_TITLE = 1040001;
    /// "Sign up with {provider}".
    REGISTRATION_WITH = 1040002;
    /// "A code has been sent to the address you provided. …" (a code sign-up's second step)
    REGISTRATION_CODE_SENT = 1040005;
    /// "Sign up with code" (the registration's `method=code` submit).
    REGISTRATION_CODE = 1040006;
    /// "Your changes have been saved!"
    SETTINGS_SAVED = 1050001;
    /// "You successfully recovered your account. Please change your password … within the
    /// next {n} minutes." (on the settings flow a recovery leads to)
    RECOVERY_SUCCESSFUL = 1060001;
    /// "An email containing a recovery link has been sent to the email address you provided. …"
    RECOVERY_LINK_SENT = 1060002;
    /// "An email containing a recovery code has been sent to the email address you provided. …"
    RECOVERY_CODE_SENT = 1060003;
    /// "Email" (the address input of verification and recovery).
    LABEL_EMAIL = 1070007;
    /// "Resend code".
    LABEL_RESEND = 1070008;
    /// "Continue".
    LABEL_CONTINUE = 1070009;
    /// "Recovery code".
    LABEL_RECOVERY_CODE = 1070010;
    /// "Verification code".
    LABEL_VERIFICATION_CODE = 1070011;
    /// "Registration code".
    LABEL_REGISTRATION_CODE = 1070012;
    /// "Login code".
    LABEL_LOGIN_CODE = 1070013;
    /// "An email containing a verification link has been sent to the email address you
    /// provided. …"
    VERIFICATION_LINK_SENT = 1080001;
    /// "You successfully verified your email address."
    VERIFICATION_SUCCESSFUL = 1080002;
    /// "An email containing a verification code has been sent to the email address you
    /// provided. …"
    VERIFICATION_CODE_SENT = 1080003;
    /// "Link {provider}".
    LINK_PROVIDER = 1050002;
    /// "Unlink {provider}".
    UNLINK_PROVIDER = 1050003;
    /// "Unlink TOTP Authenticator App".
    UNLINK_TOTP = 1050004;
    /// "Authenticator app QR code" (label of the `totp_qr` image).
    TOTP_QR = 1050005;
    /// The TOTP secret itself, as text (`totp_secret_key`), context `{secret}`.
    TOTP_SECRET = 1050006;
    /// "This is your authenticator app secret. Use it if you can not scan the QR code."
    TOTP_SECRET_LABEL = 1050017;
    /// "Generate new backup recovery codes" (`lookup_secret_regenerate`).
    LOOKUP_REGENERATE = 1050008;
    /// One recovery code, as text, context `{secret}`.
    LOOKUP_SECRET = 1050009;
    /// "These are your back up recovery codes. Please keep them in a safe place!"
    LOOKUP_SECRET_LABEL = 1050010;
    /// "Confirm backup recovery codes" (`lookup_secret_confirm`).
    LOOKUP_CONFIRM = 1050011;
    /// The recovery codes, as a list (`lookup_secret_codes`), context `{secrets}`.
    LOOKUP_SECRET_LIST = 1050015;
    /// "Disable this method" (`lookup_secret_disable`).
    LOOKUP_DISABLE = 1050016;
    /// "Password" (label).
    LABEL_PASSWORD = 1070001;
    /// A label taken from the identity schema's `title`.
    LABEL_GENERATED = 1070002;
    /// "Save".
    LABEL_SAVE = 1070003;
    /// "ID".
    LABEL_ID = 1070004;
    /// "Verify code" (the settings `totp_code` input).
    LABEL_VERIFY_OTP = 1070006;
    /// "Submit".
    LABEL_SUBMIT = 1070005;
    /// Tessera: the registration agreement checkbox's label.
    LABEL_AGREEMENT = 1070900;
    /// A validation error in the reason's own words (also a failed social sign-in).
    VALIDATION_GENERIC = 4000001;
    /// "Property {property} is missing."
    MISSING_PROPERTY = 4000002;
    /// "length must be >= …".
    MIN_LENGTH = 4000003;
    /// "… is not valid …" (format).
    INVALID_FORMAT = 4000004;
    /// "The password can not be used because …".
    PASSWORD_POLICY = 4000005;
    /// "The provided credentials are invalid, …".
    INVALID_CREDENTIALS = 4000006;
    /// "An account with the same identifier … exists already."
    DUPLICATE_CREDENTIALS = 4000007;
    /// "The provided authentication code is invalid, please try again."
    TOTP_VERIFIER_WRONG = 4000008;
    /// "Account not active yet. Did you forget to verify your email address?"
    /// (`require_verified_address`)
    ADDRESS_NOT_VERIFIED = 4000010;
    /// "This account has been disabled. Please contact support for assistance."
    INACTIVE_IDENTITY = 4010011;
    /// "This backup recovery code has already been used."
    LOOKUP_ALREADY_USED = 4000012;
    /// "You have no backup recovery codes set up."
    NO_LOOKUP = 4000014;
    /// "The backup recovery code is not valid."
    LOOKUP_INVALID = 4000016;
    /// "An account with the same identifier … Please sign in to your existing account to link
    /// your social profile."
    DUPLICATE_ON_OIDC_LINK = 4000027;
    /// "The provided traits do not match the traits previously associated with this flow."
    TRAITS_MISMATCH = 4000036;
    /// Tessera: the agreement checkbox was not ticked.
    AGREEMENT_REQUIRED = 4000900;
    /// Tessera: a read-only trait was submitted.
    READ_ONLY_TRAIT = 4000901;
    /// "The login flow expired … minutes ago".
    LOGIN_EXPIRED = 4010001;
    /// "Could not find a strategy to log you in with."
    LOGIN_NO_STRATEGY = 4010002;
    /// "The login code is invalid or has already been used. Please try again."
    LOGIN_CODE_INVALID = 4010008;
    /// "The registration flow expired …".
    REGISTRATION_EXPIRED = 4040001;
    /// "The registration code is invalid or has already been used. Please try again."
    REGISTRATION_CODE_INVALID = 4040003;
    /// "The settings flow expired …".
    SETTINGS_EXPIRED = 4050001;
    /// "The request was already completed successfully and can not be retried." (recovery)
    RECOVERY_RETRY_SUCCESS = 4060001;
    /// "The recovery token is invalid or has already been used. Please retry the flow."
    RECOVERY_TOKEN_INVALID = 4060004;
    /// "The recovery flow expired …".
    RECOVERY_EXPIRED = 4060005;
    /// "The recovery code is invalid or has already been used. Please try again."
    RECOVERY_CODE_INVALID = 4060006;
    /// "The verification token is invalid or has already been used. Please retry the flow."
    VERIFICATION_TOKEN_INVALID = 4070001;
    /// "The request was already completed successfully and can not be retried." (verification)
    VERIFICATION_RETRY_SUCCESS = 4070002;
    /// "The verification flow expired …".
    VERIFICATION_EXPIRED = 4070005;
    /// "The verification code is invalid or has already been used. Please try again."
    VERIFICATION_CODE_INVALID = 4070006;
    /// Tessera: "The request was submitted too often. Please request another code." (Kratos
    /// sends this text without an id of its own.)
    CODE_SUBMITTED_TOO_OFTEN = 4000902;
    /// Tessera: "Too many codes were sent … try again in {minutes} minutes."
    CODE_SENDS_LIMITED = 4000903;
}

impl MessageId {
    /// The id as Kratos's catalogues and UI translation files key it (`"4000006"`).
    pub fn key(self) -> String {
        self.0.to_string()
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub id: MessageId,
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

fn info(id: MessageId, text: impl Into<String>, context: Value) -> Text {
    Text {
        id,
        text: text.into(),
        kind: TextType::Info,
        context,
    }
}

fn error(id: MessageId, text: impl Into<String>, context: Value) -> Text {
    Text {
        id,
        text: text.into(),
        kind: TextType::Error,
        context,
    }
}

pub fn login_title() -> Text {
    info(MessageId::LOGIN_TITLE, "Sign in", Value::Null)
}
pub fn registration_title() -> Text {
    info(MessageId::REGISTRATION_TITLE, "Sign up", Value::Null)
}
pub fn settings_saved() -> Text {
    Text {
        id: MessageId::SETTINGS_SAVED,
        text: "Your changes have been saved!".into(),
        kind: TextType::Success,
        context: Value::Null,
    }
}
pub fn label_password() -> Text {
    info(MessageId::LABEL_PASSWORD, "Password", Value::Null)
}
/// Label taken from the identity schema's `title` (Kratos 1070002).
pub fn label_generated(title: &str, name: &str) -> Text {
    info(
        MessageId::LABEL_GENERATED,
        title,
        json!({ "title": title, "name": name }),
    )
}
pub fn label_save() -> Text {
    info(MessageId::LABEL_SAVE, "Save", Value::Null)
}
pub fn label_id() -> Text {
    info(MessageId::LABEL_ID, "ID", Value::Null)
}
pub fn label_submit() -> Text {
    info(MessageId::LABEL_SUBMIT, "Submit", Value::Null)
}

pub fn validation_generic(reason: &str) -> Text {
    error(
        MessageId::VALIDATION_GENERIC,
        reason,
        json!({ "reason": reason }),
    )
}
pub fn missing_property(property: &str) -> Text {
    error(
        MessageId::MISSING_PROPERTY,
        format!("Property {property} is missing."),
        json!({ "property": property }),
    )
}
pub fn min_length(expected: u64, actual: u64) -> Text {
    error(
        MessageId::MIN_LENGTH,
        format!("length must be >= {expected}, but got {actual}"),
        json!({ "min_length": expected, "actual_length": actual }),
    )
}
pub fn invalid_format(value: &str, format: &str) -> Text {
    error(
        MessageId::INVALID_FORMAT,
        format!("{value:?} is not valid {format:?}"),
        json!({ "value": value, "format": format }),
    )
}
pub fn password_policy(reason: &str) -> Text {
    error(
        MessageId::PASSWORD_POLICY,
        format!("The password can not be used because {reason}"),
        json!({ "reason": reason }),
    )
}
pub fn invalid_credentials() -> Text {
    error(
        MessageId::INVALID_CREDENTIALS,
        "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.",
        Value::Null,
    )
}
pub fn duplicate_credentials() -> Text {
    error(
        MessageId::DUPLICATE_CREDENTIALS,
        "An account with the same identifier (email, phone, username, ...) exists already.",
        Value::Null,
    )
}
pub fn inactive_identity() -> Text {
    error(
        MessageId::INACTIVE_IDENTITY,
        "This account has been disabled. Please contact support for assistance.",
        Value::Null,
    )
}
pub fn address_not_verified() -> Text {
    error(
        MessageId::ADDRESS_NOT_VERIFIED,
        "Account not active yet. Did you forget to verify your email address?",
        Value::Null,
    )
}
pub fn label_email() -> Text {
    info(MessageId::LABEL_EMAIL, "Email", Value::Null)
}
pub fn label_resend() -> Text {
    info(MessageId::LABEL_RESEND, "Resend code", Value::Null)
}
pub fn label_continue() -> Text {
    info(MessageId::LABEL_CONTINUE, "Continue", Value::Null)
}
pub fn label_recovery_code() -> Text {
    info(MessageId::LABEL_RECOVERY_CODE, "Recovery code", Value::Null)
}
pub fn label_verification_code() -> Text {
    info(
        MessageId::LABEL_VERIFICATION_CODE,
        "Verification code",
        Value::Null,
    )
}
pub fn verification_code_sent() -> Text {
    info(
        MessageId::VERIFICATION_CODE_SENT,
        "An email containing a verification code has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        Value::Null,
    )
}
pub fn recovery_code_sent() -> Text {
    info(
        MessageId::RECOVERY_CODE_SENT,
        "An email containing a recovery code has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        Value::Null,
    )
}
pub fn verification_link_sent() -> Text {
    info(
        MessageId::VERIFICATION_LINK_SENT,
        "An email containing a verification link has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        Value::Null,
    )
}
pub fn recovery_link_sent() -> Text {
    info(
        MessageId::RECOVERY_LINK_SENT,
        "An email containing a recovery link has been sent to the email address you provided. If you have not received an email, check the spelling of the address and make sure to use the address you registered with.",
        Value::Null,
    )
}
pub fn verification_token_invalid() -> Text {
    error(
        MessageId::VERIFICATION_TOKEN_INVALID,
        "The verification token is invalid or has already been used. Please retry the flow.",
        Value::Null,
    )
}
pub fn recovery_token_invalid() -> Text {
    error(
        MessageId::RECOVERY_TOKEN_INVALID,
        "The recovery token is invalid or has already been used. Please retry the flow.",
        Value::Null,
    )
}
pub fn recovery_retry_success() -> Text {
    error(
        MessageId::RECOVERY_RETRY_SUCCESS,
        "The request was already completed successfully and can not be retried.",
        Value::Null,
    )
}
pub fn verification_successful() -> Text {
    Text {
        id: MessageId::VERIFICATION_SUCCESSFUL,
        text: "You successfully verified your email address.".into(),
        kind: TextType::Success,
        context: Value::Null,
    }
}
/// On the settings flow a recovery leads to; `expires_at` is when the privileged session ends
/// (Unix ms), `minutes_left` until then.
pub fn recovery_successful(expires_at: i64, minutes_left: f64) -> Text {
    let at = crate::timefmt::to_rfc3339(expires_at);
    Text {
        id: MessageId::RECOVERY_SUCCESSFUL,
        text: format!(
            "You successfully recovered your account. Please change your password or set up an alternative login method (e.g. social sign in) within the next {minutes_left:.2} minutes."
        ),
        kind: TextType::Success,
        context: json!({
            "privilegedSessionExpiresAt": at,
            "privileged_session_expires_at": at,
            "privileged_session_expires_at_unix": expires_at / 1000,
        }),
    }
}
pub fn verification_code_invalid() -> Text {
    error(
        MessageId::VERIFICATION_CODE_INVALID,
        "The verification code is invalid or has already been used. Please try again.",
        Value::Null,
    )
}
pub fn recovery_code_invalid() -> Text {
    error(
        MessageId::RECOVERY_CODE_INVALID,
        "The recovery code is invalid or has already been used. Please try again.",
        Value::Null,
    )
}
pub fn verification_retry_success() -> Text {
    error(
        MessageId::VERIFICATION_RETRY_SUCCESS,
        "The request was already completed successfully and can not be retried.",
        Value::Null,
    )
}
pub fn login_code_sent() -> Text {
    info(
        MessageId::LOGIN_CODE_SENT,
        "A code has been sent to the address you provided. If you have not received a message, check the spelling of the address and make sure to use the address you registered with.",
        Value::Null,
    )
}
pub fn login_code() -> Text {
    info(MessageId::LOGIN_CODE, "Sign in with code", Value::Null)
}
pub fn registration_code_sent() -> Text {
    info(
        MessageId::REGISTRATION_CODE_SENT,
        "A code has been sent to the address you provided. If you have not received a message, check the spelling of the address and retry the registration.",
        Value::Null,
    )
}
pub fn registration_code() -> Text {
    info(
        MessageId::REGISTRATION_CODE,
        "Sign up with code",
        Value::Null,
    )
}
pub fn label_registration_code() -> Text {
    info(
        MessageId::LABEL_REGISTRATION_CODE,
        "Registration code",
        Value::Null,
    )
}
pub fn label_login_code() -> Text {
    info(MessageId::LABEL_LOGIN_CODE, "Login code", Value::Null)
}
pub fn login_code_invalid() -> Text {
    error(
        MessageId::LOGIN_CODE_INVALID,
        "The login code is invalid or has already been used. Please try again.",
        Value::Null,
    )
}
pub fn registration_code_invalid() -> Text {
    error(
        MessageId::REGISTRATION_CODE_INVALID,
        "The registration code is invalid or has already been used. Please try again.",
        Value::Null,
    )
}
pub fn traits_mismatch() -> Text {
    error(
        MessageId::TRAITS_MISMATCH,
        "The provided traits do not match the traits previously associated with this flow.",
        Value::Null,
    )
}
pub fn code_submitted_too_often() -> Text {
    error(
        MessageId::CODE_SUBMITTED_TOO_OFTEN,
        "The request was submitted too often. Please request another code.",
        Value::Null,
    )
}
pub fn code_sends_limited(minutes: u64) -> Text {
    error(
        MessageId::CODE_SENDS_LIMITED,
        format!(
            "Too many codes were sent to this address or from this network. Please try again in {minutes} minutes."
        ),
        json!({ "retry_after_minutes": minutes }),
    )
}
pub fn flow_expired(kind_id: MessageId, minutes_ago: f64) -> Text {
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
        MessageId::LOGIN_WITH,
        format!("Sign in with {provider}"),
        json!({ "provider": provider, "provider_id": provider_id }),
    )
}
pub fn registration_with(provider: &str, provider_id: &str) -> Text {
    info(
        MessageId::REGISTRATION_WITH,
        format!("Sign up with {provider}"),
        json!({ "provider": provider, "provider_id": provider_id }),
    )
}
pub fn link_provider(provider: &str) -> Text {
    info(
        MessageId::LINK_PROVIDER,
        format!("Link {provider}"),
        json!({ "provider": provider }),
    )
}
pub fn unlink_provider(provider: &str) -> Text {
    info(
        MessageId::UNLINK_PROVIDER,
        format!("Unlink {provider}"),
        json!({ "provider": provider }),
    )
}
/// Shown on the login flow when a social sign-in found an existing account with the same
/// identifier: the user proves they own it before the social account is linked.
/// A `refresh=true` login of a signed-in person (Kratos 1010003), e.g. before a settings change.
pub fn login_refresh() -> Text {
    info(
        MessageId::LOGIN_REFRESH,
        "Please confirm this action by verifying that it is you.",
        Value::Null,
    )
}
pub fn login_to_link(duplicate_identifier: &str, provider: &str, providers: &[String]) -> Text {
    info(
        MessageId::LOGIN_TO_LINK,
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
        MessageId::DUPLICATE_ON_OIDC_LINK,
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
        MessageId::VALIDATION_GENERIC,
        reason.to_string(),
        json!({ "reason": reason, "tessera_reason": code, "provider": provider, "provider_id": provider_id }),
    )
}

// Tessera extensions (ids outside Kratos's ranges in use).

/// Label of the registration agreement checkbox when the sign-in experience sets terms or
/// privacy links (`experience.terms_of_service_url`, `experience.privacy_policy_url`).
pub fn label_agreement(terms_url: Option<&str>, privacy_url: Option<&str>) -> Text {
    info(
        MessageId::LABEL_AGREEMENT,
        "I agree to the terms of service and the privacy policy.",
        json!({ "terms_of_service_url": terms_url, "privacy_policy_url": privacy_url }),
    )
}
/// After the owner of an account proved it on a "sign in to link" flow: the explicit question
/// before the upstream account is linked, naming it.
pub fn confirm_link(provider: &str, account: &str) -> Text {
    info(
        MessageId::CONFIRM_LINK,
        format!(
            "Link the {provider} account \"{account}\" to your account? You can then sign in with either. Link it only if that {provider} account is yours."
        ),
        json!({ "provider": provider, "duplicate_identifier": account }),
    )
}
pub fn confirm_link_button(provider: &str) -> Text {
    info(
        MessageId::CONFIRM_LINK_BUTTON,
        format!("Link {provider} account"),
        json!({ "provider": provider }),
    )
}
pub fn skip_link_button() -> Text {
    info(
        MessageId::SKIP_LINK_BUTTON,
        "Don't link, just sign in",
        Value::Null,
    )
}
/// A self-service submission tried to set a trait the schema marks read-only
/// (`"tessera": {"read_only": true}`).
pub fn read_only_trait() -> Text {
    error(
        MessageId::READ_ONLY_TRAIT,
        "This value is set by the site and cannot be chosen or changed here.",
        Value::Null,
    )
}
/// Registration submitted without ticking the agreement checkbox.
pub fn agreement_required() -> Text {
    error(
        MessageId::AGREEMENT_REQUIRED,
        "Accept the terms of service and the privacy policy to continue.",
        Value::Null,
    )
}

/// An `aal=aal2` login: the second factor is asked for (Kratos 1010004).
pub fn login_mfa() -> Text {
    info(
        MessageId::LOGIN_MFA,
        "Please complete the second authentication challenge.",
        Value::Null,
    )
}
pub fn login_totp_label() -> Text {
    info(
        MessageId::LOGIN_TOTP_LABEL,
        "Authentication code",
        Value::Null,
    )
}
pub fn login_totp() -> Text {
    info(MessageId::LOGIN_TOTP, "Use Authenticator", Value::Null)
}
pub fn unlink_totp() -> Text {
    info(
        MessageId::UNLINK_TOTP,
        "Unlink TOTP Authenticator App",
        Value::Null,
    )
}
pub fn totp_qr() -> Text {
    info(MessageId::TOTP_QR, "Authenticator app QR code", Value::Null)
}
/// The secret in base32, for people who cannot scan the QR code (Kratos shows it as text).
pub fn totp_secret(secret: &str) -> Text {
    info(MessageId::TOTP_SECRET, secret, json!({ "secret": secret }))
}
pub fn totp_secret_label() -> Text {
    info(
        MessageId::TOTP_SECRET_LABEL,
        "This is your authenticator app secret. Use it if you can not scan the QR code.",
        Value::Null,
    )
}
pub fn login_lookup_label() -> Text {
    info(
        MessageId::LOGIN_LOOKUP_LABEL,
        "Backup recovery code",
        Value::Null,
    )
}
pub fn login_lookup() -> Text {
    info(
        MessageId::LOGIN_LOOKUP,
        "Use backup recovery code",
        Value::Null,
    )
}
pub fn lookup_regenerate() -> Text {
    info(
        MessageId::LOOKUP_REGENERATE,
        "Generate new backup recovery codes",
        Value::Null,
    )
}
pub fn lookup_confirm() -> Text {
    info(
        MessageId::LOOKUP_CONFIRM,
        "Confirm backup recovery codes",
        Value::Null,
    )
}
pub fn lookup_disable() -> Text {
    info(
        MessageId::LOOKUP_DISABLE,
        "Disable this method",
        Value::Null,
    )
}
pub fn lookup_secret_label() -> Text {
    info(
        MessageId::LOOKUP_SECRET_LABEL,
        "These are your back up recovery codes. Please keep them in a safe place!",
        Value::Null,
    )
}
/// The codes as Kratos lists them: the text joins them, the context holds each as its own
/// message (1050009).
pub fn lookup_secret_list(codes: &[String]) -> Text {
    let each: Vec<Value> = codes
        .iter()
        .map(|c| {
            json!({"id": MessageId::LOOKUP_SECRET, "text": c, "type": "info", "context": {"secret": c}})
        })
        .collect();
    info(
        MessageId::LOOKUP_SECRET_LIST,
        codes.join(", "),
        json!({ "secrets": each }),
    )
}
pub fn lookup_already_used() -> Text {
    error(
        MessageId::LOOKUP_ALREADY_USED,
        "This backup recovery code has already been used.",
        Value::Null,
    )
}
pub fn no_lookup() -> Text {
    error(
        MessageId::NO_LOOKUP,
        "You have no backup recovery codes set up.",
        Value::Null,
    )
}
pub fn lookup_invalid() -> Text {
    error(
        MessageId::LOOKUP_INVALID,
        "The backup recovery code is not valid.",
        Value::Null,
    )
}
pub fn label_verify_otp() -> Text {
    info(MessageId::LABEL_VERIFY_OTP, "Verify code", Value::Null)
}
pub fn totp_verifier_wrong() -> Text {
    error(
        MessageId::TOTP_VERIFIER_WRONG,
        "The provided authentication code is invalid, please try again.",
        Value::Null,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_serialises_as_kratos_sends_it() {
        assert_eq!(
            serde_json::to_string(&invalid_credentials()).unwrap(),
            r#"{"id":4000006,"text":"The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.","type":"error"}"#
        );
        assert_eq!(
            serde_json::to_value(login_with("GitHub", "gh")).unwrap(),
            json!({"id": 1010002, "text": "Sign in with GitHub", "type": "info", "context": {"provider": "GitHub", "provider_id": "gh"}})
        );
    }

    #[test]
    fn every_id_is_listed_once() {
        let set: std::collections::BTreeSet<_> = MessageId::ALL.iter().collect();
        assert_eq!(set.len(), MessageId::ALL.len(), "an id is listed twice");
        assert!(MessageId::ALL.contains(&MessageId::LOGIN_NO_STRATEGY));
    }

    #[test]
    fn ids_another_version_stored_still_read() {
        let t: Text =
            serde_json::from_value(json!({"id": 1234567, "text": "x", "type": "info"})).unwrap();
        assert_eq!(t.id, MessageId(1234567));
        assert_eq!(t.id.key(), "1234567");
        let t: Text =
            serde_json::from_value(json!({"id": 4000006, "text": "x", "type": "error"})).unwrap();
        assert_eq!(t.id, MessageId::INVALID_CREDENTIALS);
    }
}
