//! `telegram`: the classic Telegram Login Widget (core.telegram.org/widgets/login), which has no
//! OAuth at all: Telegram hands over the person's data signed with a key derived from the bot
//! token, and the site checks the signature itself.
//!
//! Tessera uses the widget's redirect form, so its pages run no script of Telegram's: the
//! button sends the browser to `oauth.telegram.org/auth?bot_id=…&origin=…&return_to=…`, where
//! `return_to` is the callback with the attempt's single-use `state` in its query. After the
//! person confirms, Telegram sends the browser back to `return_to` with
//! `#tgAuthResult=<base64 JSON>` appended; browsers never send a fragment to a server, so the
//! callback first serves a small page that posts the value back ([`Provider::fragment_param`]).
//!
//! Checking a result, as Telegram's "Checking authorization" describes it: the
//! data-check-string is every received field except `hash`, as `key=value`, sorted by key and
//! joined by line feeds; `hash` must be the hex HMAC-SHA-256 of it under the SHA-256 of the bot
//! token (compared in constant time). A result signed for another bot, or with any field
//! changed, fails that test. `auth_date` (Unix seconds) must then be recent: at most
//! `telegram_auth_max_age` old (5 minutes unless configured), and not more than a minute in
//! the future. The result carries no code the upstream spends, so the engine records each
//! accepted `hash` until the result would be too old anyway ([`Provider::single_use`]): a
//! captured result (from a browser's history, say) cannot be replayed.
//!
//! The subject is Telegram's numeric user `id`. Telegram gives no email: the registration page
//! asks for one when the schema needs it.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2;
use crate::provider::{AuthRequest, Callback, Profile, Provider, SingleUse, Tokens};
use crate::upstream::{Upstream, UpstreamError};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Telegram's login page for the widget's redirect form.
const AUTH_URL: &str = "https://oauth.telegram.org/auth";
/// The issuer given to the widget's claims.
pub const ISSUER: &str = "https://oauth.telegram.org";
/// Where Telegram puts its answer: the callback URL's fragment, under this name.
pub const RESULT_PARAM: &str = "tgAuthResult";
/// How old a result may be unless `telegram_auth_max_age` says otherwise. Telegram dates the
/// result when the person confirms, and the browser comes straight back, so a genuine result
/// is seconds old; five minutes leave room for a slow phone and some clock skew, while a
/// result copied from a history or a log is useless soon after.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// The bounds of `telegram_auth_max_age`.
const MAX_AGE_RANGE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(86_400));
/// How far in the future `auth_date` may be (the two clocks differ a little).
const FUTURE_SKEW_S: i64 = 60;
/// The largest `tgAuthResult` read (a result is a few hundred bytes).
const MAX_RESULT_LEN: usize = 4096;
const ENDPOINT: &str = "Telegram login result";

pub struct Telegram {
    cfg: ProviderConfig,
    auth_url: String,
    /// HMAC-SHA-256 keyed by SHA-256 of the bot token.
    key: ring::hmac::Key,
    max_age: Duration,
}

impl Telegram {
    pub fn make(
        cfg: ProviderConfig,
        _http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the bot token @BotFather gave (`123456789:AA…`), which signs Telegram's answers",
        )?;
        let id = cfg.client_id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err((
                "client_id".into(),
                format!(
                    "`{}` is not a Telegram bot id: client_id is the bot's numeric id, the digits before `:` in its token (not its @username)",
                    cfg.client_id
                ),
            ));
        }
        let token = cfg.client_secret.trim();
        let Some((token_bot, _)) = token.split_once(':').filter(|(b, r)| {
            !b.is_empty()
                && b.chars().all(|c| c.is_ascii_digit())
                && r.len() >= 30
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) else {
            return Err((
                "client_secret".into(),
                "not a Telegram bot token: client_secret is the whole token @BotFather gave, `<bot id>:<35 letters, digits, _ or ->`".into(),
            ));
        };
        if token_bot != id {
            return Err((
                "client_secret".into(),
                format!(
                    "the bot token belongs to bot {token_bot}, not to client_id {id}: use the token and the id of the same bot"
                ),
            ));
        }
        let max_age = if cfg.telegram_auth_max_age.trim().is_empty() {
            DEFAULT_MAX_AGE
        } else {
            let d = tessera_core::duration::parse(&cfg.telegram_auth_max_age)
                .map_err(|e| ("telegram_auth_max_age".to_string(), e))?;
            if d < MAX_AGE_RANGE.0 || d > MAX_AGE_RANGE.1 {
                return Err((
                    "telegram_auth_max_age".into(),
                    format!(
                        "`{}` is out of range: use between 30s and 24h (the default, 5m, suits a browser that comes straight back from Telegram)",
                        cfg.telegram_auth_max_age
                    ),
                ));
            }
            d
        };
        let secret = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        Ok(Arc::new(Telegram {
            auth_url: oauth2::endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref()),
            max_age,
            cfg,
        }))
    }

    /// Checks a `tgAuthResult` at `now` (Unix seconds); the verified fields.
    pub fn verify(&self, result: Option<&str>, now: i64) -> Result<Verified, UpstreamError> {
        let fields = decode(result)?;
        let hash = fields
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| lacks("hash"))?;
        let tag = hex(hash).ok_or_else(|| unverified("`hash` is not 64 hex digits"))?;
        let check = data_check_string(&fields)?;
        ring::hmac::verify(&self.key, check.as_bytes(), &tag).map_err(|_| {
            unverified(
                "`hash` does not match the data under this bot's token: the result was altered, forged, or issued for another bot",
            )
        })?;
        let auth_date = fields
            .get("auth_date")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .ok_or_else(|| lacks("auth_date"))?;
        let max_age = self.max_age.as_secs() as i64;
        if now - auth_date > max_age {
            return Err(UpstreamError::Callback(format!(
                "Telegram confirmed this sign-in {} ago, and this site accepts a confirmation for {} only",
                ago(now - auth_date),
                ago(max_age)
            )));
        }
        if auth_date - now > FUTURE_SKEW_S {
            return Err(UpstreamError::Callback(
                "Telegram's confirmation is dated in the future; the server's clock may be wrong"
                    .into(),
            ));
        }
        let subject = fields
            .get("id")
            .and_then(subject_string)
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| lacks("id"))?;
        Ok(Verified {
            subject,
            hash: hash.to_ascii_lowercase(),
            until_ms: (auth_date + max_age + 1) * 1000,
            fields,
        })
    }
}

/// A result whose signature and age were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub hash: String,
    /// Unix milliseconds after which the result is too old anyway.
    pub until_ms: i64,
    pub fields: Map<String, Value>,
}

fn lacks(field: &str) -> UpstreamError {
    UpstreamError::Callback(format!("Telegram's answer lacks `{field}`"))
}

fn unverified(detail: &str) -> UpstreamError {
    UpstreamError::Unverified {
        endpoint: ENDPOINT.into(),
        detail: detail.into(),
    }
}

/// "3 min" / "40 s", for the stale-result message.
fn ago(secs: i64) -> String {
    if secs >= 120 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// `tgAuthResult` as a JSON object: base64 (standard or URL-safe alphabet, padded or not) of
/// UTF-8 JSON. An absent or empty value, or Telegram's `false`, means no one confirmed.
pub fn decode(result: Option<&str>) -> Result<Map<String, Value>, UpstreamError> {
    let raw = result.map(str::trim).unwrap_or_default();
    if raw.is_empty() || raw == "false" {
        return Err(UpstreamError::OAuth {
            endpoint: "Telegram login".into(),
            error: "access_denied".into(),
            description: String::new(),
        });
    }
    let garbage = || {
        UpstreamError::Callback(format!(
            "Telegram's answer (`{RESULT_PARAM}`) is not the base64-encoded JSON Telegram sends"
        ))
    };
    if raw.len() > MAX_RESULT_LEN {
        return Err(garbage());
    }
    let standard: String = raw
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(standard)
        .map_err(|_| garbage())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(garbage()),
    }
}

/// Telegram's data-check-string: `key=value` for every field but `hash`, sorted by key, joined
/// by `\n`; numbers and booleans as written in the JSON. A field holding anything else (null,
/// a list, an object) is not something Telegram signs.
pub fn data_check_string(fields: &Map<String, Value>) -> Result<String, UpstreamError> {
    let mut lines = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        if k == "hash" {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(UpstreamError::Callback(format!(
                    "Telegram's answer has a field `{}` that is not text or a number",
                    k.chars().take(40).collect::<String>()
                )));
            }
        };
        lines.push(format!("{k}={v}"));
    }
    lines.sort();
    Ok(lines.join("\n"))
}

/// 64 hex digits as 32 bytes.
fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// The widget's fields as the mapper's claims.
pub fn claims(v: &Verified) -> Value {
    let f = &v.fields;
    let text = |k: &str| {
        f.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), v.subject.clone().into());
    let name = [text("first_name"), text("last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        c.insert("name".into(), name.into());
    }
    put_text(&mut c, "given_name", text("first_name"));
    put_text(&mut c, "family_name", text("last_name"));
    put_text(&mut c, "preferred_username", text("username"));
    put_text(&mut c, "picture", text("photo_url"));
    // Everything Telegram sent but the signature itself.
    let mut raw = f.clone();
    raw.remove("hash");
    normalize_claims(&c, Some(&raw))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Provider for Telegram {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let mut return_to = Url::parse(req.redirect_uri).map_err(|e| UpstreamError::Missing {
            endpoint: "configuration".into(),
            what: format!("a valid callback URL ({e})"),
        })?;
        // The state rides in `return_to`, which Telegram sends the browser back to unchanged.
        return_to.query_pairs_mut().append_pair("state", req.state);
        let origin = return_to.origin().ascii_serialization();
        oauth2::authorization_url(
            &self.auth_url,
            vec![
                ("bot_id", self.cfg.client_id.trim()),
                ("origin", origin.as_str()),
                ("return_to", return_to.as_str()),
            ],
        )
    }

    fn fragment_param(&self) -> Option<&'static str> {
        Some(RESULT_PARAM)
    }

    fn single_use(&self, cb: &Callback) -> Option<SingleUse> {
        // Asked after `exchange` accepted the same callback; a second reading at a later
        // second can only stretch `until_ms`.
        let fields = decode(cb.get(RESULT_PARAM)).ok()?;
        let hash = fields.get("hash")?.as_str()?.to_ascii_lowercase();
        let auth_date = fields
            .get("auth_date")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))?;
        Some(SingleUse {
            key: hash,
            until_ms: (auth_date + self.max_age.as_secs() as i64 + 1) * 1000,
        })
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let v = self.verify(cb.get(RESULT_PARAM), now_s())?;
        Ok(Profile {
            subject: v.subject.clone(),
            claims: claims(&v),
            tokens: Tokens::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "7712345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn make(extra: Value) -> Result<Arc<dyn Provider>, (String, String)> {
        let mut v = json!({"id": "tg", "provider": "telegram", "client_id": "7712345678",
            "client_secret": TOKEN});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        Telegram::make(serde_json::from_value(v).unwrap(), Upstream::new().unwrap())
    }

    fn telegram() -> Telegram {
        let secret = ring::digest::digest(&ring::digest::SHA256, TOKEN.as_bytes());
        Telegram {
            cfg: serde_json::from_value(json!({"id": "tg", "provider": "telegram"})).unwrap(),
            auth_url: AUTH_URL.into(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref()),
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// Signs `fields` as Telegram does for `token`, and encodes them as `tgAuthResult`.
    fn signed(token: &str, mut fields: Value) -> String {
        let secret = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref());
        let check = data_check_string(fields.as_object().unwrap()).unwrap();
        let tag = ring::hmac::sign(&key, check.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        fields["hash"] = hex.into();
        base64::engine::general_purpose::STANDARD.encode(fields.to_string())
    }

    const NOW: i64 = 1_800_000_000;

    fn ivan() -> Value {
        json!({"id": 184467321, "first_name": "Иван", "last_name": "Петров",
            "username": "ivan_petrov", "photo_url": "https://t.me/i/userpic/320/ivan.jpg",
            "auth_date": NOW - 10})
    }

    #[test]
    fn the_data_check_string_is_sorted_lines_without_the_hash() {
        let f = json!({"username": "u", "id": 5, "hash": "x", "auth_date": 7, "first_name": "A"});
        assert_eq!(
            data_check_string(f.as_object().unwrap()).unwrap(),
            "auth_date=7\nfirst_name=A\nid=5\nusername=u"
        );
        assert!(data_check_string(json!({"id": null}).as_object().unwrap()).is_err());
    }

    #[test]
    fn a_genuine_result_is_accepted_with_its_claims() {
        let t = telegram();
        let v = t.verify(Some(&signed(TOKEN, ivan())), NOW).unwrap();
        assert_eq!(v.subject, "184467321");
        assert_eq!(v.until_ms, (NOW - 10 + 300 + 1) * 1000);
        let c = claims(&v);
        assert_eq!(c["sub"], "184467321");
        assert_eq!(c["name"], "Иван Петров");
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["preferred_username"], "ivan_petrov");
        assert_eq!(c["picture"], "https://t.me/i/userpic/320/ivan.jpg");
        assert_eq!(c["raw_claims"]["auth_date"], NOW - 10);
        assert!(c["raw_claims"].get("hash").is_none());
        assert!(c.get("email").is_none());
        // URL-safe base64 without padding reads the same.
        let urlsafe = signed(TOKEN, ivan())
            .replace('+', "-")
            .replace('/', "_")
            .replace('=', "");
        assert!(t.verify(Some(&urlsafe), NOW).is_ok());
    }

    #[test]
    fn forged_altered_foreign_stale_and_garbage_results_are_refused() {
        let t = telegram();
        let code = |r: Result<Verified, UpstreamError>| r.err().unwrap().user_code();
        // Another bot's token signed it.
        let other = "5512093877:AAFoTheOtherBotsTokenxxxxxxxxxxxxxx";
        assert_eq!(
            code(t.verify(Some(&signed(other, ivan())), NOW)),
            "upstream_unverified"
        );
        // A field changed after signing.
        let genuine = signed(TOKEN, ivan());
        let mut f = decode(Some(&genuine)).unwrap();
        f.insert("id".into(), json!(1));
        let altered =
            base64::engine::general_purpose::STANDARD.encode(Value::Object(f).to_string());
        assert_eq!(code(t.verify(Some(&altered), NOW)), "upstream_unverified");
        // A made-up hash, and no hash.
        let mut f = ivan();
        f["hash"] = "00".repeat(32).into();
        let forged = base64::engine::general_purpose::STANDARD.encode(f.to_string());
        assert_eq!(code(t.verify(Some(&forged), NOW)), "upstream_unverified");
        let bare = base64::engine::general_purpose::STANDARD.encode(ivan().to_string());
        assert_eq!(code(t.verify(Some(&bare), NOW)), "upstream_callback");
        // Too old, from the future.
        let e = t.verify(Some(&genuine), NOW + 600).err().unwrap();
        assert!(e.user_message("Telegram").contains("10 min ago"), "{e}");
        let mut f = ivan();
        f["auth_date"] = (NOW + 600).into();
        assert_eq!(
            code(t.verify(Some(&signed(TOKEN, f)), NOW)),
            "upstream_callback"
        );
        // Not base64, not JSON, not an object; nothing at all.
        for bad in ["%%%", "bm90IGpzb24", "WzEsMl0", &"A".repeat(5000)] {
            assert_eq!(code(t.verify(Some(bad), NOW)), "upstream_callback", "{bad}");
        }
        assert_eq!(code(t.verify(None, NOW)), "upstream_denied");
        assert_eq!(code(t.verify(Some("false"), NOW)), "upstream_denied");
    }

    #[tokio::test]
    async fn the_start_sends_the_state_inside_return_to() {
        let p = make(json!({})).ok().unwrap();
        let url = p
            .authorization_url(&AuthRequest {
                state: "st4te",
                nonce: "n",
                code_verifier: "v",
                redirect_uri: "https://id.example.com/self-service/methods/oidc/callback/tg",
            })
            .await
            .unwrap();
        let q: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert!(url.as_str().starts_with(AUTH_URL), "{url}");
        assert_eq!(
            q,
            vec![
                ("bot_id".to_string(), "7712345678".to_string()),
                ("origin".into(), "https://id.example.com".into()),
                (
                    "return_to".into(),
                    "https://id.example.com/self-service/methods/oidc/callback/tg?state=st4te"
                        .into()
                ),
            ]
        );
        assert_eq!(p.fragment_param(), Some(RESULT_PARAM));
    }

    #[test]
    fn entries_are_checked_at_start_naming_the_key() {
        let key = |extra: Value| make(extra).err().unwrap().0;
        assert_eq!(key(json!({"client_id": "@my_bot"})), "client_id");
        assert_eq!(key(json!({"client_secret": "s"})), "client_secret");
        assert_eq!(
            key(json!({"client_secret": "1111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"})),
            "client_secret",
            "another bot's token"
        );
        assert_eq!(key(json!({"client_secret": ""})), "client_secret");
        assert_eq!(
            key(json!({"telegram_auth_max_age": "5"})),
            "telegram_auth_max_age"
        );
        assert_eq!(
            key(json!({"telegram_auth_max_age": "48h"})),
            "telegram_auth_max_age"
        );
        assert!(make(json!({"telegram_auth_max_age": "2m"})).is_ok());
    }
}
