//! The OAuth 2.0 authorization-code plumbing the non-OIDC provider types share (`vk`, `vkid`,
//! `github`, `dingtalk`): the authorization URL, the callback's code, the code exchange and the
//! API calls after it. Each provider still builds its own requests, byte for byte as its
//! upstream documents them; this module only sends them and reads the answers, so refusing an
//! error answer (with HTTP 200 too), requiring the access token and naming what is missing are
//! written once.

use crate::claims::subject_string;
use crate::config::ProviderConfig;
use crate::provider::Tokens;
use crate::upstream::{
    ReadError, Upstream, UpstreamError, excerpt, oauth_error, oauth_or_status, required_text, text,
};
use reqwest::RequestBuilder;
use serde_json::{Map, Value};
use url::Url;

/// An endpoint: the configured full URL, else the documented path below `api_base_url` (which
/// replaces the provider's origin, for private deployments and tests), else the default.
pub fn endpoint(full: &str, api_base_url: &str, default_origin: &str, path: &str) -> String {
    if !full.trim().is_empty() {
        full.to_string()
    } else if !api_base_url.trim().is_empty() {
        format!("{}{path}", api_base_url.trim_end_matches('/'))
    } else {
        format!("{default_origin}{path}")
    }
}

/// Types whose token request carries a client secret refuse an entry without one, at start,
/// where the administrator sees it; `hint` says where the upstream's console shows it.
pub fn require_secret(cfg: &ProviderConfig, hint: &str) -> Result<(), (String, String)> {
    if cfg.client_secret.trim().is_empty() {
        return Err((
            "client_secret".into(),
            format!(
                "client_secret is required for `{}` providers{hint}",
                cfg.provider
            ),
        ));
    }
    Ok(())
}

/// The DingTalk-style choice between a per-app and a developer-wide subject (DingTalk, Feishu,
/// QQ): `subject_source` empty, `open_id` or `openid` is the per-app id (`false`), `union_id`
/// or `unionid` the developer-wide one (`true`); anything else is refused at start, the
/// message naming `platform`.
pub fn union_id_subject(cfg: &ProviderConfig, platform: &str) -> Result<bool, (String, String)> {
    match cfg.subject_source.as_str() {
        "" | "open_id" | "openid" => Ok(false),
        "union_id" | "unionid" => Ok(true),
        other => Err((
            "subject_source".into(),
            format!(
                "`{other}` is not a {platform} subject source: use `open_id` (the default: the id this app sees) or `union_id` (the same across the apps of one developer account)"
            ),
        )),
    }
}

/// Where to send the browser: `auth` with `pairs` appended in their order.
pub fn authorization_url<'a>(
    auth: &str,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Url, UpstreamError> {
    let mut url = Url::parse(auth).map_err(|e| UpstreamError::Missing {
        endpoint: "configuration".into(),
        what: format!("a valid auth_url ({e})"),
    })?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

/// A parameter the callback must carry (the code, VK ID's `device_id`); `None` is a
/// callback error saying `missing`.
pub fn from_callback<'c>(value: Option<&'c str>, missing: &str) -> Result<&'c str, UpstreamError> {
    value.ok_or_else(|| UpstreamError::Callback(missing.into()))
}

/// Sends a provider's request and reads its JSON answer: a non-2xx answer through the
/// provider's `read_error`, and an OAuth `{error, error_description}` as an error whatever the
/// status (GitHub and VK answer errors with HTTP 200).
pub async fn call(
    http: &Upstream,
    endpoint: &str,
    req: RequestBuilder,
    read_error: ReadError,
) -> Result<Value, UpstreamError> {
    let v = http.json_with(endpoint, req, read_error).await?;
    match oauth_error(endpoint, &v) {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// The error envelope of the Chinese platforms' APIs, which answer errors with HTTP 200 and a
/// numeric code beside the data: WeChat's and WeCom's `{errcode, errmsg}`, QQ's `{ret, msg}`,
/// Feishu's `{code, msg}`. A `code_key` that is absent or `0` means success; anything else is an
/// [`UpstreamError::OAuth`] whose message carries the code and the platform's own words, e.g.
/// "WeChat error 40029 — invalid code".
pub fn errcode_error(
    endpoint: &str,
    v: &Value,
    (platform, code_key, msg_key): (&str, &str, &str),
) -> Option<UpstreamError> {
    let code = v.get(code_key)?;
    let ok = code.as_i64() == Some(0) || code.as_str() == Some("0");
    if ok || code.is_null() {
        return None;
    }
    let code = subject_string(code).unwrap_or_else(|| code.to_string());
    Some(UpstreamError::OAuth {
        endpoint: endpoint.into(),
        error: format!("{platform} error {code}"),
        description: text(v, msg_key)
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect(),
    })
}

/// [`call`] for an API with an [`errcode_error`] envelope: the answer (JSON, JSONP or a form:
/// [`lenient_json`]), unless it reports an error, with HTTP 200 (WeChat, QQ) or 4xx (Feishu):
/// the envelope's code and words win over the status, then an OAuth `{error,
/// error_description}`, then the status.
pub async fn call_enveloped(
    http: &Upstream,
    endpoint: &str,
    req: RequestBuilder,
    envelope: (&str, &str, &str),
) -> Result<Value, UpstreamError> {
    let (status, body) = http.send(endpoint, req).await?;
    let parsed = lenient_json(endpoint, &body);
    if let Ok(v) = &parsed
        && let Some(e) = errcode_error(endpoint, v, envelope).or_else(|| oauth_error(endpoint, v))
    {
        return Err(e);
    }
    if !status.is_success() {
        return Err(oauth_or_status(endpoint, status.as_u16(), &body));
    }
    parsed
}

/// The JSON inside a JSONP answer (`callback( {...} );`, QQ's default); other text as it is.
pub fn unwrap_jsonp(body: &str) -> &str {
    let t = body.trim();
    match t.strip_prefix("callback") {
        Some(rest) => rest
            .trim_start()
            .strip_prefix('(')
            .and_then(|r| {
                r.trim_end()
                    .trim_end_matches(';')
                    .trim_end()
                    .strip_suffix(')')
            })
            .map(str::trim)
            .unwrap_or(t),
        None => t,
    }
}

/// An answer that may be JSON, JSONP or `application/x-www-form-urlencoded` text (QQ's token
/// endpoint answers a form on success and JSONP on failure), as a JSON value: a form becomes an
/// object of strings. Not a form either: [`UpstreamError::InvalidJson`].
pub fn lenient_json(endpoint: &str, body: &[u8]) -> Result<Value, UpstreamError> {
    let text = String::from_utf8_lossy(body);
    let inner = unwrap_jsonp(&text);
    if let Ok(v) = serde_json::from_str::<Value>(inner) {
        return Ok(v);
    }
    let pairs: Map<String, Value> = url::form_urlencoded::parse(inner.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    if inner.contains('=') && !pairs.is_empty() && !inner.contains(['{', '<']) {
        return Ok(Value::Object(pairs));
    }
    Err(UpstreamError::InvalidJson {
        endpoint: endpoint.into(),
        detail: format!(
            "neither JSON, JSONP nor a form (body starts with {:?})",
            excerpt(body)
        ),
    })
}

/// The token must have been issued to this app: profile calls that name the app a token
/// belongs to (Yandex's `/info`, QQ's `/me`, Mail.ru's `userinfo`: `client_id`) must name
/// `client_id`, so a token another app obtained for the same person is refused.
pub fn issued_to(answer: &Value, client_id: &str, endpoint: &str) -> Result<(), UpstreamError> {
    match answer.get("client_id").and_then(subject_string) {
        Some(c) if c != client_id => Err(UpstreamError::Missing {
            endpoint: endpoint.into(),
            what: format!("a token issued to this app (it was issued to client_id {c})"),
        }),
        _ => Ok(()),
    }
}

/// A token endpoint's answer, with the access token it must carry.
pub struct TokenAnswer {
    pub raw: Value,
    pub access_token: String,
}

impl TokenAnswer {
    /// A string field of the answer; empty counts as absent.
    pub fn text(&self, key: &str) -> Option<&str> {
        text(&self.raw, key)
    }

    /// The tokens to keep: the access token, and the refresh and id tokens under the
    /// provider's names for them (`None`: the provider has none).
    pub fn tokens(&self, refresh_key: Option<&str>, id_token_key: Option<&str>) -> Tokens {
        let s = |k: Option<&str>| k.and_then(|k| self.text(k)).map(String::from);
        Tokens {
            access_token: Some(self.access_token.clone()),
            refresh_token: s(refresh_key),
            id_token: s(id_token_key),
        }
    }

    /// The profile must be the user the code was issued for: when the token answer names a
    /// user (`user_id`), it must be `subject`.
    pub fn same_user(&self, subject: &str, endpoint: &str) -> Result<(), UpstreamError> {
        match self.raw.get("user_id").and_then(subject_string) {
            Some(uid) if uid != subject => Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: format!("the user of the token (user_id {uid}, profile {subject})"),
            }),
            _ => Ok(()),
        }
    }
}

/// Exchanges an authorization code: [`call`] on the provider's token request, then the access
/// token under `access_key` (`access_token`, DingTalk's `accessToken`).
pub async fn exchange_code(
    http: &Upstream,
    endpoint: &str,
    req: RequestBuilder,
    read_error: ReadError,
    access_key: &str,
) -> Result<TokenAnswer, UpstreamError> {
    let raw = call(http, endpoint, req, read_error).await?;
    let access_token = required_text(&raw, access_key, endpoint)?.to_string();
    Ok(TokenAnswer { raw, access_token })
}

/// [`exchange_code`] for a token endpoint with an [`errcode_error`] envelope (WeChat, Feishu,
/// QQ): [`call_enveloped`], then the `access_token` it must carry.
pub async fn exchange_enveloped(
    http: &Upstream,
    endpoint: &str,
    req: RequestBuilder,
    envelope: (&str, &str, &str),
) -> Result<TokenAnswer, UpstreamError> {
    let raw = call_enveloped(http, endpoint, req, envelope).await?;
    let access_token = required_text(&raw, "access_token", endpoint)?.to_string();
    Ok(TokenAnswer { raw, access_token })
}

/// An answer that must be a JSON object (a user profile).
pub fn object(v: Value, endpoint: &str) -> Result<Map<String, Value>, UpstreamError> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(UpstreamError::Missing {
            endpoint: endpoint.into(),
            what: "a JSON object".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_follow_overrides() {
        let e = |full, base| endpoint(full, base, "https://api.vk.com", "/method/users.get");
        assert_eq!(e("", ""), "https://api.vk.com/method/users.get");
        assert_eq!(
            e("", "http://127.0.0.1:9/"),
            "http://127.0.0.1:9/method/users.get"
        );
        assert_eq!(e("http://x/u", "http://127.0.0.1:9"), "http://x/u");
    }

    #[test]
    fn authorization_urls_keep_the_pairs_in_order() {
        let url = authorization_url(
            "https://oauth.example/authorize?x=1",
            [("client_id", "c"), ("scope", "a b"), ("state", "s")],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://oauth.example/authorize?x=1&client_id=c&scope=a+b&state=s"
        );
        assert!(authorization_url("not a url", []).is_err());
    }

    #[test]
    fn token_answers_name_their_user_and_tokens() {
        let t = TokenAnswer {
            raw: json!({"access_token": "a", "refresh_token": "r", "id_token": "", "user_id": 7}),
            access_token: "a".into(),
        };
        assert!(t.same_user("7", "x").is_ok());
        assert!(t.same_user("8", "x").is_err());
        let tokens = t.tokens(Some("refresh_token"), Some("id_token"));
        assert_eq!(tokens.access_token.as_deref(), Some("a"));
        assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
        assert_eq!(tokens.id_token, None, "an empty token is no token");
        assert_eq!(t.tokens(None, None).refresh_token, None);
        assert!(object(json!([]), "x").is_err());
        assert!(object(json!({"id": 1}), "x").is_ok());
    }

    #[test]
    fn a_token_of_another_app_is_refused() {
        assert!(issued_to(&json!({"client_id": "ours"}), "ours", "x").is_ok());
        assert!(issued_to(&json!({"client_id": 101}), "101", "x").is_ok());
        assert!(
            issued_to(&json!({}), "ours", "x").is_ok(),
            "not every answer names it"
        );
        let e = issued_to(&json!({"client_id": "theirs"}), "ours", "x").unwrap_err();
        assert!(e.to_string().contains("theirs"), "{e}");
    }

    #[test]
    fn jsonp_and_forms_are_read_as_json() {
        assert_eq!(
            unwrap_jsonp("callback( {\"openid\":\"o\"} );\n"),
            "{\"openid\":\"o\"}"
        );
        assert_eq!(unwrap_jsonp("{\"a\":1}"), "{\"a\":1}");
        let v = lenient_json(
            "t",
            b"callback( {\"error\":100020,\"error_description\":\"code is reused error\"} );",
        )
        .unwrap();
        assert_eq!(v["error"], 100020);
        let v = lenient_json("t", b"access_token=AT&expires_in=7776000&refresh_token=RT").unwrap();
        assert_eq!(
            (v["access_token"].as_str(), v["expires_in"].as_str()),
            (Some("AT"), Some("7776000"))
        );
        assert!(lenient_json("t", b"<html>busy</html>").is_err());
        assert!(lenient_json("t", b"").is_err());
    }

    #[test]
    fn errcode_envelopes_are_errors_unless_zero() {
        let wechat = ("WeChat", "errcode", "errmsg");
        let e = errcode_error(
            "t",
            &json!({"errcode": 40029, "errmsg": "invalid code, rid: 1"}),
            wechat,
        )
        .unwrap();
        let msg = e.user_message("WeChat");
        assert!(
            msg.contains("WeChat error 40029") && msg.contains("invalid code"),
            "{msg}"
        );
        assert!(errcode_error("t", &json!({"errcode": 0, "errmsg": "ok"}), wechat).is_none());
        assert!(errcode_error("t", &json!({"openid": "o"}), wechat).is_none());
        let qq = ("QQ", "ret", "msg");
        assert!(errcode_error("t", &json!({"ret": "0"}), qq).is_none());
        assert!(errcode_error("t", &json!({"ret": -1, "msg": "x"}), qq).is_some());
    }
}
