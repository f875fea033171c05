//! `alipay`: sign-in with Alipay (支付宝) through the Open Platform's web authorization
//! (`openauth.alipay.com`) and its RPC gateway (`openapi.alipay.com/gateway.do`).
//!
//! Alipay is not OAuth 2.0 on the wire. The callback carries **`auth_code`** (and `app_id`,
//! `scope`, `state`), not `code`. The code is redeemed by the gateway method
//! `alipay.system.oauth.token`, and the profile read by `alipay.user.info.share`; every call is
//! a set of parameters **signed with the app's RSA private key** (RSA2: SHA256withRSA,
//! PKCS#1 v1.5, over the `k=v` pairs sorted by key and joined with `&`, `sign` and empty
//! values left out), and every answer `{"<method>_response": {…}, "sign": "…"}` is **signed by
//! Alipay**: the signature covers the exact text of the `…_response` member, and is checked
//! with Alipay's public key before anything in the answer is believed. A success answer that
//! is unsigned or whose signature fails is refused (`upstream_unverified`); an error answer
//! (`error_response`, or `code` other than `"10000"` with a `sub_code`) is shown as Alipay's
//! words, after its signature is checked when it has one.
//!
//! Keys: `client_id` is the app's APPID, `client_secret` the app's private key (应用私钥), and
//! `alipay_public_key` Alipay's public key (支付宝公钥), both PEM (PKCS#8 or PKCS#1) or the
//! console's bare base64, parsed and checked at start (2048 bits or more, and not the app's own
//! public key pasted by mistake).
//!
//! The subject: Alipay gives older apps a `user_id` (2088…, the same person in every app) and
//! apps created since its OpenID migration an `open_id` (per app). By default the subject is
//! `user_id` when Alipay sends one and `open_id` otherwise; `subject_source: user_id` or
//! `open_id` insists on one and refuses a sign-in without it. No email.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, Tokens};
use crate::upstream::{Upstream, UpstreamError, excerpt, text};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://openauth.alipay.com/oauth2/publicAppAuthorize.htm";
const GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
const TOKEN_METHOD: &str = "alipay.system.oauth.token";
const USER_METHOD: &str = "alipay.user.info.share";
/// The issuer given to Alipay's claims.
pub const ISSUER: &str = "https://openapi.alipay.com";
/// The `code` of a successful business answer.
const SUCCESS: &str = "10000";

/// Which id is the subject (`subject_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSource {
    /// `user_id` when Alipay sends one, else `open_id`.
    Auto,
    UserId,
    OpenId,
}

pub struct Alipay {
    cfg: ProviderConfig,
    http: Upstream,
    key: RsaPrivateKey,
    alipay_key: RsaPublicKey,
    subject: SubjectSource,
    auth_url: String,
    gateway: String,
}

/// Reads an RSA private key: PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) or the bare
/// base64 DER the Alipay key tool and console show.
pub fn private_key(text: &str) -> Result<RsaPrivateKey, String> {
    let t = text.trim();
    if t.contains("PUBLIC KEY") {
        return Err(
            "this is a public key; client_secret takes the app's private key (应用私钥)".into(),
        );
    }
    let key = if t.starts_with("-----BEGIN") {
        RsaPrivateKey::from_pkcs8_pem(t)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(t))
            .map_err(|e| format!("not an RSA private key in PEM ({e})"))?
    } else {
        let der = bare_base64(t)?;
        RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .map_err(|e| format!("not an RSA private key ({e})"))?
    };
    strong_enough(key.size())?;
    Ok(key)
}

/// Reads an RSA public key: PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or bare base64 DER.
pub fn public_key(text: &str) -> Result<RsaPublicKey, String> {
    let t = text.trim();
    if t.contains("PRIVATE KEY") {
        return Err("this is a private key; alipay_public_key takes Alipay's public key (支付宝公钥), which never leaves Alipay's side as a private key".into());
    }
    let key = if t.starts_with("-----BEGIN") {
        RsaPublicKey::from_public_key_pem(t)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(t))
            .map_err(|e| format!("not an RSA public key in PEM ({e})"))?
    } else {
        let der = bare_base64(t)?;
        RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .map_err(|e| format!("not an RSA public key ({e})"))?
    };
    strong_enough(key.size())?;
    Ok(key)
}

fn bare_base64(t: &str) -> Result<Vec<u8>, String> {
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err("is empty".into());
    }
    STANDARD.decode(compact).map_err(|_| {
        "neither PEM (-----BEGIN …) nor the base64 key text the Alipay console shows".into()
    })
}

/// RSA2 keys are 2048 bits (Alipay's key tool makes nothing shorter).
fn strong_enough(bytes: usize) -> Result<(), String> {
    if bytes * 8 < 2048 {
        return Err(format!(
            "is a {}-bit RSA key; RSA2 needs 2048 bits or more",
            bytes * 8
        ));
    }
    Ok(())
}

/// The RSA2 string to sign: the pairs sorted by key, `k=v` joined with `&`, without `sign` and
/// without empty values; values as they are (not URL-encoded).
pub fn signing_string<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .into_iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RSA2 signature of `content`, base64.
pub fn sign(key: &RsaPrivateKey, content: &str) -> Result<String, rsa::Error> {
    let digest = Sha256::digest(content.as_bytes());
    Ok(STANDARD.encode(key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest)?))
}

/// Whether `signature` (base64) is Alipay's RSA2 signature of `content`.
pub fn verify(key: &RsaPublicKey, content: &str, signature: &str) -> bool {
    let Ok(sig) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let digest = Sha256::digest(content.as_bytes());
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .is_ok()
}

/// The members of a JSON object answer with the exact text of each value, in order: Alipay's
/// signature covers the `…_response` member as sent, so it is cut from the body, never
/// re-serialised. `None`: not a JSON object.
pub fn members(body: &str) -> Option<Vec<(String, &str)>> {
    let mut out = Vec::new();
    let mut rest = body.trim_start().strip_prefix('{')?.trim_start();
    if let Some(after) = rest.strip_prefix('}') {
        return after.trim().is_empty().then_some(out);
    }
    loop {
        let mut keys = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        let key = keys.next()?.ok()?;
        rest = rest[keys.byte_offset()..].trim_start().strip_prefix(':')?;
        rest = rest.trim_start();
        let mut values =
            serde_json::Deserializer::from_str(rest).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        let end = values.byte_offset();
        out.push((key, &rest[..end]));
        rest = rest[end..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else {
            let after = rest.strip_prefix('}')?;
            return after.trim().is_empty().then_some(out);
        }
    }
}

/// Beijing time (UTC+8, Alipay's clock) as `yyyy-MM-dd HH:mm:ss`, the gateway's `timestamp`.
pub fn beijing_timestamp(unix_seconds: i64) -> String {
    let t = unix_seconds + 8 * 3600;
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The business object of a gateway answer (`body`), once Alipay's signature over it is
/// verified with `alipay_key`: the `node` member (`alipay_system_oauth_token_response`), unless
/// the answer reports an error (`error_response`, or a `code` other than `10000`).
pub fn read_answer(
    endpoint: &str,
    body: &[u8],
    node: &str,
    alipay_key: &RsaPublicKey,
) -> Result<Value, UpstreamError> {
    let invalid = || UpstreamError::InvalidJson {
        endpoint: endpoint.into(),
        detail: format!(
            "not a gateway answer object (body starts with {:?})",
            excerpt(body)
        ),
    };
    let text = std::str::from_utf8(body).map_err(|_| invalid())?;
    let members = members(text).ok_or_else(invalid)?;
    let get = |k: &str| members.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
    let signature: Option<String> = get("sign").and_then(|s| serde_json::from_str(s).ok());
    let unverified = |detail: &str| UpstreamError::Unverified {
        endpoint: endpoint.into(),
        detail: detail.into(),
    };
    let (raw, is_error) = match (get(node), get("error_response")) {
        (Some(raw), _) => (raw, false),
        (None, Some(raw)) => (raw, true),
        (None, None) => {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: format!("`{node}` or `error_response`"),
            });
        }
    };
    match &signature {
        Some(sig) if !verify(alipay_key, raw, sig) => {
            return Err(unverified(
                "the `sign` does not verify with alipay_public_key (a forged answer, or the wrong Alipay public key configured)",
            ));
        }
        // An unsigned error still only stops the sign-in; an unsigned success is not believed.
        None if !is_error => return Err(unverified("the answer carries no `sign`")),
        _ => {}
    }
    let value: Value = serde_json::from_str(raw).map_err(|_| invalid())?;
    let code = value.get("code").and_then(subject_string);
    if is_error || code.as_deref().is_some_and(|c| c != SUCCESS) {
        return Err(business_error(endpoint, &value));
    }
    if !value.is_object() {
        return Err(invalid());
    }
    Ok(value)
}

/// Alipay's error words: `Alipay error 40002 isv.code-invalid — 授权码code无效`.
fn business_error(endpoint: &str, v: &Value) -> UpstreamError {
    let code = v
        .get("code")
        .and_then(subject_string)
        .unwrap_or_else(|| "?".into());
    let error = match text(v, "sub_code") {
        Some(sub) => format!("Alipay error {code} {sub}"),
        None => format!("Alipay error {code}"),
    };
    let description = text(v, "sub_msg")
        .or_else(|| text(v, "msg"))
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    UpstreamError::OAuth {
        endpoint: endpoint.into(),
        error,
        description,
    }
}

impl Alipay {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the app's private key (应用私钥) from Alipay's key tool, PEM or base64",
        )?;
        let key = private_key(&cfg.client_secret).map_err(|e| {
            (
                "client_secret".to_string(),
                format!("client_secret (the app's private key): {e}"),
            )
        })?;
        if cfg.alipay_public_key.trim().is_empty() {
            return Err((
                "alipay_public_key".into(),
                "alipay_public_key is required for `alipay` providers: Alipay's public key (支付宝公钥) from the app's 接口加签方式 settings at open.alipay.com, which verifies Alipay's answers".into(),
            ));
        }
        let alipay_key = public_key(&cfg.alipay_public_key).map_err(|e| {
            (
                "alipay_public_key".to_string(),
                format!("alipay_public_key: {e}"),
            )
        })?;
        if alipay_key == key.to_public_key() {
            return Err((
                "alipay_public_key".into(),
                "alipay_public_key is the app's own public key (应用公钥); it must be Alipay's public key (支付宝公钥), shown next to it once the app's key is uploaded".into(),
            ));
        }
        let subject = match cfg.subject_source.as_str() {
            "" => SubjectSource::Auto,
            "user_id" => SubjectSource::UserId,
            "open_id" | "openid" => SubjectSource::OpenId,
            other => {
                return Err((
                    "subject_source".into(),
                    format!(
                        "`{other}` is not an Alipay subject source: leave it out (user_id when Alipay sends one, else open_id), or use `user_id` (2088…, the same in every app) or `open_id` (per app; apps created since Alipay's OpenID migration get only this)"
                    ),
                ));
            }
        };
        Ok(Arc::new(Alipay {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            gateway: endpoint(&cfg.token_url, &cfg.api_base_url, GATEWAY, "/gateway.do"),
            key,
            alipay_key,
            subject,
            cfg,
            http,
        }))
    }

    /// One signed gateway call of `method` with its own parameters; the verified business
    /// object of the answer member `node`.
    async fn call(
        &self,
        method: &str,
        extra: &[(&str, &str)],
        node: &str,
    ) -> Result<Value, UpstreamError> {
        let endpoint = format!("Alipay {method}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let timestamp = beijing_timestamp(now);
        let mut params: Vec<(&str, &str)> = vec![
            ("app_id", self.cfg.client_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", &timestamp),
            ("version", "1.0"),
        ];
        params.extend_from_slice(extra);
        let signature = sign(&self.key, &signing_string(params.iter().copied())).map_err(|e| {
            UpstreamError::Unreachable {
                endpoint: endpoint.clone(),
                detail: format!("signing the request failed: {e}"),
            }
        })?;
        params.push(("sign", &signature));
        let rb = self.http.client().post(&self.gateway).form(&params);
        let (status, body) = self.http.send(&endpoint, rb).await?;
        if !status.is_success() {
            return Err(crate::upstream::oauth_or_status(
                &endpoint,
                status.as_u16(),
                &body,
            ));
        }
        read_answer(&endpoint, &body, node, &self.alipay_key)
    }
}

/// `alipay.user.info.share`'s business object as the mapper's claims, with the subject
/// `source` picks.
pub fn claims(user: &Value, source: SubjectSource) -> Result<(String, Value), UpstreamError> {
    let user_id = user.get("user_id").and_then(subject_string);
    let open_id = user.get("open_id").and_then(subject_string);
    let subject = match source {
        SubjectSource::Auto => user_id.or(open_id),
        SubjectSource::UserId => user_id,
        SubjectSource::OpenId => open_id,
    }
    .ok_or_else(|| UpstreamError::Missing {
        endpoint: format!("Alipay {USER_METHOD}"),
        what: match source {
            SubjectSource::Auto => "a `user_id` or `open_id`".into(),
            SubjectSource::UserId => "a `user_id` (subject_source: user_id; apps created since Alipay's OpenID migration get only open_id)".into(),
            SubjectSource::OpenId => "an `open_id` (subject_source: open_id; the app still gets user_id: switch it to OpenID at open.alipay.com)".into(),
        },
    })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "nick_name"));
    put_text(&mut c, "picture", text(user, "avatar"));
    let mut raw = user.as_object().cloned().unwrap_or_default();
    raw.remove("code");
    raw.remove("msg");
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Alipay {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Alipay's web authorization has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("auth_user", ",");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("app_id", self.cfg.client_id.as_str()),
                ("scope", &scope),
                ("redirect_uri", req.redirect_uri),
                ("state", req.state),
            ],
        )
    }

    /// Alipay calls the code `auth_code`.
    fn code<'c>(&self, cb: &'c Callback) -> Option<&'c str> {
        cb.get("auth_code")
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        if let Some(app) = cb.get("app_id")
            && app != self.cfg.client_id
        {
            return Err(UpstreamError::Callback(format!(
                "the callback is for another Alipay app ({app})"
            )));
        }
        let code = oauth2::from_callback(self.code(cb), "Alipay sent no auth_code")?;
        let token = self
            .call(
                TOKEN_METHOD,
                &[("grant_type", "authorization_code"), ("code", code)],
                "alipay_system_oauth_token_response",
            )
            .await?;
        let token_endpoint = format!("Alipay {TOKEN_METHOD}");
        let access =
            crate::upstream::required_text(&token, "access_token", &token_endpoint)?.to_string();
        let user = self
            .call(
                USER_METHOD,
                &[("auth_token", access.as_str())],
                "alipay_user_info_share_response",
            )
            .await?;
        for key in ["user_id", "open_id"] {
            let of_token = token.get(key).and_then(subject_string);
            let of_user = user.get(key).and_then(subject_string);
            if let (Some(t), Some(u)) = (&of_token, &of_user)
                && t != u
            {
                return Err(UpstreamError::Missing {
                    endpoint: format!("Alipay {USER_METHOD}"),
                    what: format!("the user of the token ({key} {t})"),
                });
            }
        }
        // The token answer names the person too; the profile may omit the id.
        let mut user = user;
        if let Some(o) = user.as_object_mut() {
            for key in ["user_id", "open_id"] {
                if !o.contains_key(key)
                    && let Some(v) = token.get(key)
                {
                    o.insert(key.into(), v.clone());
                }
            }
        }
        let (subject, claims) = claims(&user, self.subject)?;
        Ok(Profile {
            subject,
            claims,
            tokens: Tokens {
                access_token: Some(access),
                refresh_token: text(&token, "refresh_token").map(String::from),
                id_token: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const APP_KEY: &str = include_str!("../testdata/alipay_app_private_key.pem");
    const GATEWAY_KEY: &str = include_str!("../testdata/alipay_gateway_private_key.pem");
    const ALIPAY_PUBLIC: &str = include_str!("../testdata/alipay_public_key.pem");

    #[test]
    fn the_string_to_sign_is_sorted_without_sign_and_empty_values() {
        let s = signing_string([
            ("timestamp", "2026-12-04 11:00:00"),
            ("app_id", "2021000000000001"),
            ("sign", "x"),
            ("app_auth_token", ""),
            ("code", "a+b=c&d"),
        ]);
        assert_eq!(
            s,
            "app_id=2021000000000001&code=a+b=c&d&timestamp=2026-12-04 11:00:00"
        );
    }

    #[test]
    fn timestamps_are_beijing_time() {
        // 2026-12-04T03:04:48Z is 11:04:48 in Beijing.
        assert_eq!(beijing_timestamp(1_796_353_488), "2026-12-04 11:04:48");
        assert_eq!(beijing_timestamp(0), "1970-01-01 08:00:00");
        // The day turns at 16:00 UTC; leap day.
        assert_eq!(beijing_timestamp(1_709_222_400), "2024-03-01 00:00:00");
        assert_eq!(beijing_timestamp(1_709_222_399), "2024-02-29 23:59:59");
    }

    #[test]
    fn members_keep_the_exact_text_of_each_value() {
        let body = r#" { "a_response" : {"code":"10000", "x":[1,{"y":"}\""}]} ,"sign":"c2ln" } "#;
        let m = members(body).unwrap();
        assert_eq!(m[0].0, "a_response");
        assert_eq!(m[0].1, r#"{"code":"10000", "x":[1,{"y":"}\""}]}"#);
        assert_eq!(m[1], ("sign".to_string(), "\"c2ln\""));
        assert_eq!(members("{}").unwrap().len(), 0);
        for bad in [
            "[]",
            "{\"a\":1",
            "{\"a\":1} x",
            "{\"a\" 1}",
            "",
            "{\"a\":1,}",
        ] {
            assert!(members(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_are_read_in_every_shape_and_refused_precisely() {
        let k = private_key(APP_KEY).unwrap();
        let bare: String = APP_KEY
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(private_key(&bare).unwrap(), k, "the console's bare base64");
        let public = public_key(ALIPAY_PUBLIC).unwrap();
        let e = private_key(ALIPAY_PUBLIC).unwrap_err();
        assert!(e.contains("public key"), "{e}");
        let e = public_key(APP_KEY).unwrap_err();
        assert!(e.contains("private key"), "{e}");
        let e = private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            .unwrap_err();
        assert!(e.contains("not an RSA private key in PEM"), "{e}");
        let e = public_key("not a key!").unwrap_err();
        assert!(e.contains("neither PEM"), "{e}");
        assert_ne!(public, k.to_public_key());
    }

    fn answer(node: &str, business: &str, key: Option<&str>) -> Vec<u8> {
        match key {
            Some(k) => {
                let sig = sign(&private_key(k).unwrap(), business).unwrap();
                format!("{{\"{node}\":{business},\"sign\":\"{sig}\"}}").into_bytes()
            }
            None => format!("{{\"{node}\":{business}}}").into_bytes(),
        }
    }

    #[test]
    fn answers_are_believed_only_with_alipays_signature() {
        let alipay = public_key(ALIPAY_PUBLIC).unwrap();
        let node = "alipay_system_oauth_token_response";
        let business = r#"{"access_token":"t","user_id":"2088102150477652","expires_in":1296000}"#;
        let v = read_answer(
            "t",
            &answer(node, business, Some(GATEWAY_KEY)),
            node,
            &alipay,
        )
        .unwrap();
        assert_eq!(v["user_id"], "2088102150477652");
        // Signed by another key (the app's, say), unsigned, or altered after signing.
        let forged = read_answer("t", &answer(node, business, Some(APP_KEY)), node, &alipay);
        assert_eq!(forged.unwrap_err().user_code(), "upstream_unverified");
        let unsigned = read_answer("t", &answer(node, business, None), node, &alipay);
        assert_eq!(unsigned.unwrap_err().user_code(), "upstream_unverified");
        let body = String::from_utf8(answer(node, business, Some(GATEWAY_KEY)))
            .unwrap()
            .replace("2088102150477652", "2088000000000001");
        let altered = read_answer("t", body.as_bytes(), node, &alipay);
        assert_eq!(altered.unwrap_err().user_code(), "upstream_unverified");
    }

    #[test]
    fn errors_are_alipays_words() {
        let alipay = public_key(ALIPAY_PUBLIC).unwrap();
        let err = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"授权码code无效"}"#;
        for key in [Some(GATEWAY_KEY), None] {
            let e = read_answer(
                "t",
                &answer("error_response", err, key),
                "x_response",
                &alipay,
            )
            .unwrap_err();
            let msg = e.user_message("Alipay");
            assert!(
                msg.contains("Alipay error 40002 isv.code-invalid")
                    && msg.contains("授权码code无效"),
                "{msg}"
            );
        }
        // A forged error is not shown as Alipay's.
        let e = read_answer(
            "t",
            &answer("error_response", err, Some(APP_KEY)),
            "x_response",
            &alipay,
        )
        .unwrap_err();
        assert_eq!(e.user_code(), "upstream_unverified");
        let node = "alipay_user_info_share_response";
        let business = r#"{"code":"20001","msg":"Insufficient Token Permissions","sub_code":"aop.invalid-auth-token","sub_msg":"无效的访问令牌"}"#;
        let e = read_answer(
            "t",
            &answer(node, business, Some(GATEWAY_KEY)),
            node,
            &alipay,
        )
        .unwrap_err();
        assert!(
            e.user_message("Alipay")
                .contains("20001 aop.invalid-auth-token"),
            "{e}"
        );
        let e = read_answer("t", b"<html>busy</html>", node, &alipay).unwrap_err();
        assert!(matches!(e, UpstreamError::InvalidJson { .. }), "{e}");
        let e = read_answer("t", b"{\"sign\":\"x\"}", node, &alipay).unwrap_err();
        assert!(matches!(e, UpstreamError::Missing { .. }), "{e}");
    }

    #[test]
    fn the_subject_follows_subject_source() {
        let both = json!({"code": "10000", "msg": "Success", "user_id": "2088102150477652",
            "open_id": "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5", "nick_name": "支付宝小宝",
            "avatar": "https://tfs.alipayobjects.com/images/partner/T1uIxXXbpXXXXXXXX"});
        let (s, c) = claims(&both, SubjectSource::Auto).unwrap();
        assert_eq!(s, "2088102150477652");
        assert_eq!(c["nickname"], "支付宝小宝");
        assert!(c["raw_claims"].get("code").is_none());
        assert_eq!(
            claims(&both, SubjectSource::OpenId).unwrap().0,
            "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
        );
        let open_only = json!({"open_id": "o-1"});
        assert_eq!(claims(&open_only, SubjectSource::Auto).unwrap().0, "o-1");
        assert!(claims(&open_only, SubjectSource::UserId).is_err());
        assert!(claims(&json!({}), SubjectSource::Auto).is_err());
    }

    #[test]
    fn entries_are_checked_at_start() {
        let make = |secret: &str, public: &str, source: &str| {
            let cfg: ProviderConfig = serde_json::from_value(json!({
                "id": "alipay", "provider": "alipay", "client_id": "2021000000000001",
                "client_secret": secret, "alipay_public_key": public, "subject_source": source,
            }))
            .unwrap();
            Alipay::make(cfg, Upstream::new().unwrap()).err()
        };
        assert!(make(APP_KEY, ALIPAY_PUBLIC, "").is_none());
        assert!(make(APP_KEY, ALIPAY_PUBLIC, "open_id").is_none());
        let key_of = |e: Option<(String, String)>| e.map(|(k, _)| k);
        assert_eq!(
            key_of(make(APP_KEY, "", "")).as_deref(),
            Some("alipay_public_key")
        );
        assert_eq!(
            key_of(make("s", ALIPAY_PUBLIC, "")).as_deref(),
            Some("client_secret")
        );
        assert_eq!(
            key_of(make(APP_KEY, ALIPAY_PUBLIC, "email")).as_deref(),
            Some("subject_source")
        );
        let own = private_key(APP_KEY).unwrap().to_public_key();
        let own_pem =
            rsa::pkcs8::EncodePublicKey::to_public_key_pem(&own, Default::default()).unwrap();
        let (k, m) = make(APP_KEY, &own_pem, "").unwrap();
        assert_eq!(k, "alipay_public_key");
        assert!(m.contains("应用公钥"), "{m}");
    }
}
