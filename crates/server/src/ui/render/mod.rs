//! Rendering: the minijinja environment (templates embedded in the binary) and the view models
//! the templates receive. A view model is built from a flow's UI nodes and messages only — the
//! same ones the JSON API returns — translated into the page language here, so templates only
//! lay things out.
//!
//! - [`env`]: the environment, the formatter and `t(...)`;
//! - [`chrome`]: what every page shows around its content, and messages;
//! - [`forms`]: a flow's nodes as forms ([`FormKind`]), fields and buttons;
//! - [`flows`]: the flow, error and landing pages;
//! - [`op`]: the OpenID Provider's pages.

pub mod chrome;
pub mod env;
pub mod flows;
pub mod forms;
pub mod op;

pub use chrome::{BrandView, Chrome, LangLink, MessageView, message_view, switch_href};
pub use env::{TEMPLATES, render};
pub use flows::{ErrorPage, FlowPage, WelcomePage};
pub use forms::{
    ButtonView, FieldView, FlowContext, FormKind, FormView, HiddenView, OptionView, agreement_html,
    flow_forms,
};
pub use op::{
    BackForm, ConsentPage, ConsentView, DeviceDoneView, DevicePage, DeviceView, LogoutConfirmPage,
    LogoutConfirmView, OP_ERROR_REASONS, OpErrorPage, OpErrorView, ScopeLine, SignedOutPage,
    render_consent, render_device, render_logout_confirm, render_op_error, render_signed_out,
    render_signed_out_with,
};

#[cfg(test)]
mod tests;
