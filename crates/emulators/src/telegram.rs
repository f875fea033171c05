//! A Telegram Login Widget emulator (`oauth.telegram.org`, the widget's redirect form), on one
//! loopback port.
//!
//! - `GET /auth?bot_id=…&origin=…&return_to=…`: `bot_id` must be the bot's numeric id, `origin`
//!   the domain linked to the bot (BotFather's `/setdomain`,
//!   [`TelegramWidgetEmulator::set_domain`]; until one is set any is accepted) and `return_to`
//!   a URL on that origin; otherwise an error page ("Bot domain invalid", as Telegram says).
//!   Then the confirmation page listing the fake accounts; choosing one redirects to
//!   `return_to` with `#tgAuthResult=<base64url JSON>` appended (the query of `return_to`,
//!   Tessera's `state`, kept as is), and "Cancel" with `#tgAuthResult=false`.
//! - The result holds `id`, `first_name`, `last_name`, `username`, `photo_url` (when the
//!   account has them), `auth_date` (now) and `hash`: the hex HMAC-SHA-256 of the
//!   data-check-string (the other fields as sorted `key=value` lines) keyed by the SHA-256 of
//!   the bot token, as Telegram's "Checking authorization" describes. Never an email.
//!
//! Tests make it misbehave: [`TelegramWidgetEmulator::set_auth_date_offset`] dates results in
//! the past, [`TelegramWidgetEmulator::sign_with`] signs with another bot's token.

use crate::common::{esc, hmac_sha256, query_without_user};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The emulated bot.
pub const BOT_ID: &str = "7712345678";
/// Its token (fake, made for this emulator): what `client_secret` holds.
pub const BOT_TOKEN: &str = "7712345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// A fake Telegram account as the widget describes it.
#[derive(Debug, Clone, Copy)]
pub struct WidgetUser {
    /// What `user=` takes.
    pub key: &'static str,
    pub id: u64,
    pub first_name: &'static str,
    pub last_name: Option<&'static str>,
    pub username: Option<&'static str>,
}

/// Иван Петров (with a @username and a photo) and Мария Смирнова (neither), the same people
/// as the OpenID Connect emulator's.
pub const USERS: [WidgetUser; 2] = [
    WidgetUser {
        key: "ivan",
        id: 184_467_321,
        first_name: "Иван",
        last_name: Some("Петров"),
        username: Some("ivan_petrov"),
    },
    WidgetUser {
        key: "maria",
        id: 5_512_093_877,
        first_name: "Мария",
        last_name: Some("Смирнова"),
        username: None,
    },
];

struct Shared {
    base: String,
    domain: Mutex<Option<String>>,
    next_user: Mutex<Option<String>>,
    auth_date_offset: Mutex<i64>,
    signing_token: Mutex<String>,
}

/// A running Telegram Login Widget emulator on 127.0.0.1. Stops when dropped.
pub struct TelegramWidgetEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl TelegramWidgetEmulator {
    /// On a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> TelegramWidgetEmulator {
        Self::serve(crate::free_loopback_port("Telegram Login Widget").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<TelegramWidgetEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            domain: Mutex::new(None),
            next_user: Mutex::new(None),
            auth_date_offset: Mutex::new(0),
            signing_token: Mutex::new(BOT_TOKEN.into()),
        });
        let app = Router::new()
            .route("/auth", get(authorize))
            .with_state(shared.clone());
        Ok(TelegramWidgetEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// The bot's numeric id (`client_id`).
    pub fn bot_id(&self) -> &str {
        BOT_ID
    }

    /// The bot token (`client_secret`).
    pub fn bot_token(&self) -> &str {
        BOT_TOKEN
    }

    /// `http://127.0.0.1:<port>/auth`: the `auth_url` (it stands for
    /// `https://oauth.telegram.org/auth`).
    pub fn auth_url(&self) -> String {
        format!("{}/auth", self.shared.base)
    }

    /// Links the bot to `origin` (`https://id.example.com`), as `/setdomain` does.
    pub fn set_domain(&self, origin: impl Into<String>) {
        *lock(&self.shared.domain) = Some(origin.into());
    }

    /// The account every following request picks without the page (`None`: show it); a
    /// `user=` parameter wins.
    pub fn set_next_user(&self, key: Option<&str>) {
        *lock(&self.shared.next_user) = key.map(String::from);
    }

    /// Dates the following results `secs` seconds off now (negative: in the past).
    pub fn set_auth_date_offset(&self, secs: i64) {
        *lock(&self.shared.auth_date_offset) = secs;
    }

    /// Signs the following results with `token` (another bot's), or again with the bot's.
    pub fn sign_with(&self, token: Option<&str>) {
        *lock(&self.shared.signing_token) = token.unwrap_or(BOT_TOKEN).into();
    }

    /// The Telegram id of the fake account `key`.
    pub fn id_of(&self, key: &str) -> u64 {
        user(key)
            .map(|u| u.id)
            .unwrap_or_else(|| panic!("no fake Telegram user `{key}`"))
    }

    /// A signed `tgAuthResult` for `key`, dated `auth_date`, signed with `token`, as the
    /// redirect would carry it (for tests that post results of their own).
    pub fn result_for(key: &str, auth_date: i64, token: &str) -> String {
        let u = user(key).unwrap_or_else(|| panic!("no fake Telegram user `{key}`"));
        URL_SAFE_NO_PAD.encode(signed_fields(&u, auth_date, token).to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn user(key: &str) -> Option<WidgetUser> {
    USERS.iter().find(|u| u.key == key).copied()
}

/// The account's fields with Telegram's `hash`.
fn signed_fields(u: &WidgetUser, auth_date: i64, token: &str) -> Value {
    let mut f = Map::new();
    f.insert("id".into(), json!(u.id));
    f.insert("first_name".into(), json!(u.first_name));
    if let Some(l) = u.last_name {
        f.insert("last_name".into(), json!(l));
    }
    if let Some(n) = u.username {
        f.insert("username".into(), json!(n));
        f.insert(
            "photo_url".into(),
            json!(format!("https://t.me/i/userpic/320/{n}.jpg")),
        );
    }
    f.insert("auth_date".into(), json!(auth_date));
    let mut lines: Vec<String> = f
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect();
    lines.sort();
    let tag = hmac_sha256(
        &Sha256::digest(token.as_bytes()),
        lines.join("\n").as_bytes(),
    );
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    f.insert("hash".into(), json!(hex));
    Value::Object(f)
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::OK,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Telegram Login</title>\n<h1>Log in with Telegram</h1>\n<p>{}</p>\n",
            esc(message)
        )),
    )
        .into_response()
}

fn origin_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// A redirect to `return_to` with the result in the fragment.
fn back(return_to: &str, result: &str) -> Response {
    let to = format!("{return_to}#tgAuthResult={result}");
    match HeaderValue::from_str(&to) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page("Invalid return_to."),
    }
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("bot_id") != BOT_ID {
        return error_page("Bot invalid");
    }
    let origin = get("origin");
    let domain_ok = lock(&s.domain).as_deref().is_none_or(|d| d == origin);
    let return_to = get("return_to");
    if !domain_ok || origin_of(return_to).as_deref() != Some(origin) {
        return error_page("Bot domain invalid");
    }
    let pick = q
        .get("user")
        .cloned()
        .or_else(|| lock(&s.next_user).clone());
    let Some(pick) = pick else {
        return confirm_page(&q);
    };
    if pick == "deny" {
        return back(return_to, "false");
    }
    let Some(u) = user(&pick) else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let auth_date = now + *lock(&s.auth_date_offset);
    let token = lock(&s.signing_token).clone();
    let fields = signed_fields(&u, auth_date, &token);
    back(return_to, &URL_SAFE_NO_PAD.encode(fields.to_string()))
}

fn confirm_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        let name = [Some(u.first_name), u.last_name]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        items.push_str(&format!(
            "<li><a href=\"/auth?{}&amp;user={}\">{}{}</a></li>\n",
            esc(&base),
            u.key,
            esc(&name),
            u.username
                .map(|n| format!(" (@{})", esc(n)))
                .unwrap_or_default()
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><meta charset=utf-8><title>Log in with Telegram</title>\n<h1>Log in with Telegram (emulator)</h1>\n<p>{} wants to log you in with your Telegram account. Choose the account:</p>\n<ul>\n{items}</ul>\n<p><a href=\"/auth?{}&amp;user=deny\">Cancel</a></p>\n",
        esc(q.get("origin").map(String::as_str).unwrap_or_default()),
        esc(&base)
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let tag = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
