//! The OpenID Provider's pages: consent, its errors, "Sign out?" and "signed out".

use super::chrome::Chrome;
use super::env::render;
use super::forms::HiddenView;
use crate::ui::i18n::{self, Lang};
use serde::Serialize;

/// The data the OpenID Provider's consent step hands to `consent.html`.
///
/// `/ui/consent` (in `op.rs`) fills it from the authorization request and renders it with
/// [`render_consent`]; the form posts the OP's documented fields `csrf_token`, `request` and
/// `decision` (`accept` or `deny`) to `form_action`.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    /// The client's display name.
    pub app_name: String,
    /// Requested scopes as sent (`openid profile email …`); known ones get a sentence.
    pub scopes: Vec<String>,
    /// Who is signed in (email, username or id), shown so the user can tell.
    pub user_identifier: String,
    pub form_action: String,
    pub csrf_token: String,
    /// The authorization request's id (the form's `request` field).
    pub request: String,
}

#[derive(Debug, Serialize)]
pub struct ConsentPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub consent: ConsentView,
    /// One sentence per requested scope, in the page language.
    pub scope_lines: Vec<ScopeLine>,
}

#[derive(Debug, Serialize)]
pub struct ScopeLine {
    pub scope: String,
    pub text: String,
}

/// Renders the consent page (see [`ConsentView`]).
pub fn render_consent(chrome: Chrome, view: ConsentView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let scope_lines = view
        .scopes
        .iter()
        .map(|s| {
            let key = format!(
                "consent.scope.{}",
                tessera_op::membership::canonical_scope(s)
            );
            let text = if i18n::has(lang, &key) {
                i18n::t(lang, &key, &[])
            } else {
                i18n::t(lang, "consent.scope.other", &[("scope", s.clone())])
            };
            ScopeLine {
                scope: s.clone(),
                text,
            }
        })
        .collect();
    let page = ConsentPage {
        title: i18n::t(lang, "page.consent.title", &[]),
        chrome,
        page: "consent",
        consent: view,
        scope_lines,
    };
    render("consent.html", &page)
}

/// A form back to the app (`form_post` answers): its action and hidden fields.
#[derive(Debug, Clone, Serialize)]
pub struct BackForm {
    pub action: String,
    pub fields: Vec<HiddenView>,
}

/// An OpenID Provider error shown to the user instead of going back to the app.
#[derive(Debug, Clone, Serialize)]
pub struct OpErrorView {
    pub status: u16,
    /// The OAuth error code (`invalid_request`, `access_denied`, …), shown as the error code.
    pub error: String,
    /// The key of the explanation: the error code, or a finer reason from the OP
    /// (`unknown_app`, `redirect_uri`, `request_expired`, `no_subject`, `not_assigned`, `csrf`).
    pub reason: String,
    pub app_name: Option<String>,
    /// The technical description from the OP, in English (shown marked `lang="en"`).
    pub description: String,
    /// "Back to the app" as a link (query or fragment answers)…
    pub back_href: Option<String>,
    /// …or as a form (`form_post` answers).
    pub back_form: Option<BackForm>,
}

#[derive(Debug, Serialize)]
pub struct OpErrorPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub message: String,
    #[serde(flatten)]
    pub error: OpErrorView,
}

/// The reasons with their own wording; any other falls back to `op_error.other.*`.
pub const OP_ERROR_REASONS: [&str; 18] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "login_required",
    "consent_required",
    "interaction_required",
    "invalid_client",
    "unknown_app",
    "redirect_uri",
    "request_expired",
    "no_subject",
    "not_assigned",
    "csrf",
    "other",
];

/// Renders an OpenID Provider error page (see [`OpErrorView`]).
pub fn render_op_error(chrome: Chrome, view: OpErrorView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let reason = [view.reason.as_str(), view.error.as_str()]
        .into_iter()
        .find(|r| i18n::has(lang, &format!("op_error.{r}.title")))
        .unwrap_or("other");
    let page = OpErrorPage {
        title: i18n::t(lang, &format!("op_error.{reason}.title"), &[]),
        message: i18n::t(lang, &format!("op_error.{reason}.text"), &[]),
        chrome,
        page: "op-error",
        error: view,
    };
    render("op_error.html", &page)
}

/// "Sign out?": asked when an app starts a logout without an `id_token_hint`.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutConfirmView {
    pub form_action: String,
    pub csrf_token: String,
    /// The logout request's parameters, carried through the form.
    pub fields: Vec<HiddenView>,
    /// Who is signed in, when known.
    pub user_identifier: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogoutConfirmPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub logout: LogoutConfirmView,
}

pub fn render_logout_confirm(chrome: Chrome, view: LogoutConfirmView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let page = LogoutConfirmPage {
        title: i18n::t(lang, "logout.title", &[]),
        chrome,
        page: "logout",
        logout: view,
    };
    render("logout_confirm.html", &page)
}

#[derive(Debug, Serialize)]
pub struct SignedOutPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    /// Front-channel logout URLs, each loaded in an iframe.
    pub frames: Vec<String>,
    /// Where the app asked the browser to go afterwards (a "Continue" link).
    pub next: Option<String>,
}

/// "You are signed out" (a logout with nowhere to go back to).
pub fn render_signed_out(chrome: Chrome) -> Result<String, String> {
    render_signed_out_with(chrome, vec![], None)
}

/// "You are signed out" with the front-channel logout iframes of the apps the session signed
/// in to, and a link on to the app's `post_logout_redirect_uri` when it gave one.
pub fn render_signed_out_with(
    chrome: Chrome,
    frames: Vec<String>,
    next: Option<String>,
) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let page = SignedOutPage {
        title: i18n::t(lang, "signed_out.title", &[]),
        chrome,
        page: "signed-out",
        frames,
        next,
    };
    render("signed_out.html", &page)
}

/// `/ui/device` (RFC 8628): the form that takes a device's user code, or, once the consent
/// page decided, the result.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub form_action: String,
    pub csrf_token: String,
    /// What the form shows in the code field (from `verification_uri_complete`, or as typed).
    pub user_code: String,
    /// Set when the code entered was refused (the page shows the localised reason).
    pub error: Option<String>,
    pub done: Option<DeviceDoneView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceDoneView {
    pub app: String,
    pub approved: bool,
}

#[derive(Debug, Serialize)]
pub struct DevicePage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub device: DeviceView,
}

pub fn render_device(chrome: Chrome, view: DeviceView) -> Result<String, String> {
    let lang = Lang::parse(&chrome.lang).unwrap_or(Lang::En);
    let page = DevicePage {
        title: i18n::t(lang, "device.title", &[]),
        chrome,
        page: "device",
        device: view,
    };
    render("device.html", &page)
}
