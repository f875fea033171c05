//! The view models of the flow pages (`/ui/login`, `/ui/registration`, `/ui/settings`), the
//! error page and the landing page.

use super::chrome::{Chrome, MessageView};
use super::forms::FormView;
use serde::Serialize;

/// `/ui/login`, `/ui/registration` and `/ui/settings`.
#[derive(Debug, Serialize)]
pub struct FlowPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub subtitle: String,
    pub messages: Vec<MessageView>,
    pub forms: Vec<FormView>,
    /// Pre-escaped "By continuing, you agree to …" (login page, when links are set).
    pub notice_html: String,
    /// Login: link to registration; registration: link to login; settings: back link.
    pub switch_href: String,
    pub logout_href: String,
    pub home_href: String,
    pub signed_in_as: String,
    /// Login: "Forgot password?" (to a recovery flow) when recovery is on.
    pub recovery_href: String,
}

/// `/ui/error`.
#[derive(Debug, Serialize)]
pub struct ErrorPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub message: String,
    pub code: String,
    pub start_href: String,
}

/// `/ui/welcome`: where a sign-in lands when no `return_to` was given.
#[derive(Debug, Serialize)]
pub struct WelcomePage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub page: &'static str,
    pub title: String,
    pub identifier: Option<String>,
    pub settings_href: String,
    pub logout_href: String,
    pub login_href: String,
    pub registration_href: String,
}
