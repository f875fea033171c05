//! `telegram_oidc`: "Log In with Telegram", Telegram's OpenID Connect login
//! (core.telegram.org/bots/telegram-login), on the generic OIDC machinery with Telegram's
//! settings filled in.
//!
//! The issuer is `https://oauth.telegram.org` (discovery at
//! `/.well-known/openid-configuration`, authorization `/auth`, token `/token`, keys
//! `/.well-known/jwks.json`); the authorization-code flow with PKCE S256, which Telegram
//! supports and Tessera always uses here; `client_id` is the bot's id and `client_secret` the
//! secret BotFather shows in the bot's Login Widget settings (not the bot token); the redirect
//! URI must be among the bot's allowed URLs. The id_token carries `sub`, `name`,
//! `preferred_username` and `picture`, and `phone_number` with the `phone` scope; **never an
//! email**, so the registration page asks for one when the schema needs it.

use crate::config::{Pkce, ProviderConfig};
use crate::provider::Provider;
use crate::upstream::Upstream;
use std::sync::Arc;

/// Telegram's OpenID Connect issuer.
pub const ISSUER: &str = "https://oauth.telegram.org";

pub struct TelegramOidc;

impl TelegramOidc {
    pub fn make(
        mut cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        crate::oauth2::require_secret(
            &cfg,
            ": the Client Secret BotFather shows under Bot Settings → Login Widget (not the bot token)",
        )?;
        if !cfg.client_id.trim().chars().all(|c| c.is_ascii_digit()) {
            return Err((
                "client_id".into(),
                format!(
                    "`{}` is not a Telegram bot id: client_id is the bot's numeric id (the digits before `:` in its token)",
                    cfg.client_id
                ),
            ));
        }
        if cfg.issuer_url.trim().is_empty() {
            cfg.issuer_url = ISSUER.into();
        }
        // Telegram documents PKCE; use it whatever discovery says.
        if cfg.pkce == Pkce::Auto {
            cfg.pkce = Pkce::Force;
        }
        if cfg.scope.is_empty() {
            cfg.scope = vec!["openid".into(), "profile".into()];
        }
        crate::generic::Generic::make(cfg, http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_get_telegrams_settings_and_are_checked() {
        let make = |v: serde_json::Value| {
            let cfg: ProviderConfig = serde_json::from_value(v).unwrap();
            TelegramOidc::make(cfg, Upstream::new().unwrap())
        };
        let p = make(
            json!({"id": "tg", "provider": "telegram_oidc", "client_id": "7712345678",
            "client_secret": "s"}),
        )
        .ok()
        .unwrap();
        assert_eq!(p.config().issuer_url, ISSUER);
        assert_eq!(p.config().pkce, Pkce::Force);
        assert_eq!(p.config().scope, vec!["openid", "profile"]);
        let e = make(
            json!({"id": "tg", "provider": "telegram_oidc", "client_id": "7712345678:AAE-token",
            "client_secret": "s"}),
        )
        .err()
        .unwrap();
        assert_eq!(e.0, "client_id");
        let e = make(json!({"id": "tg", "provider": "telegram_oidc", "client_id": "1"}))
            .err()
            .unwrap();
        assert_eq!(e.0, "client_secret");
    }
}
