//! An Alipay Open Platform emulator: the web authorization page and the RPC gateway, on one
//! loopback port.
//!
//! - `GET /oauth2/publicAppAuthorize.htm`: `app_id`, `scope` (`auth_user`, `auth_base`),
//!   `redirect_uri`, `state`. An unknown app or a `redirect_uri` outside the app's authorization
//!   callback domain ([`AlipayEmulator::register_redirect_uri`]) is an error page; the callback
//!   gets `app_id`, `source=alipay_wallet`, `scope`, `auth_code` and `state`. `user=deny`
//!   goes back with `error=access_denied` (the emulator's reading: the real page has a cancel
//!   button that ends in the app); `user=<key>` (or [`AlipayEmulator::set_next_user`]) picks a
//!   person.
//! - `POST /gateway.do` (parameters in the query, the form body, or both): the common
//!   parameters `app_id`, `method`, `format=JSON`, `charset`, `sign_type=RSA2`, `timestamp`
//!   (`yyyy-MM-dd HH:mm:ss`, Beijing time, within 15 minutes), `version=1.0` and `sign`, the
//!   RSA2 signature checked with the public key of the app's private key
//!   ([`AlipayEmulator::app_private_key_pem`]), as the gateway does. Always HTTP 200.
//!   - `alipay.system.oauth.token` (`grant_type=authorization_code`, `code`):
//!     `{"alipay_system_oauth_token_response": {access_token, user_id | open_id, expires_in,
//!     refresh_token, re_expires_in, auth_start}, "sign"}`, or
//!     `{"error_response": {code: "40002", msg: "Invalid Arguments", sub_code:
//!     "isv.code-invalid", sub_msg}, "sign"}` for an unknown, reused or expired code (codes live
//!     ten minutes here).
//!   - `alipay.user.info.share` (`auth_token`): the profile with `code: "10000"`, or `code:
//!     "20001"`, `sub_code: "aop.invalid-auth-token"` inside the same member.
//!   - Common-parameter errors are `error_response` with code `40002` and `sub_code`
//!     `isv.invalid-app-id`, `isv.invalid-signature-type`, `isv.invalid-signature`,
//!     `isv.invalid-timestamp` or `isv.invalid-method`.
//! - Every answer is signed with the emulator's own Alipay key (its public half:
//!   [`AlipayEmulator::alipay_public_key_pem`]) over the exact text of the `…_response` member;
//!   [`AlipayEmulator::set_answer_signing`] makes it sign with another key or not at all, for
//!   the forged-answer tests.
//! - The app is an "OpenID" app by default (answers carry `open_id`, per app);
//!   [`AlipayEmulator::set_ids`] switches it to a legacy app (`user_id`, 2088…) or both.

use crate::common::{
    Client, Grants, Redeemed, esc, query_without_user, random_hex, redirect, s256,
};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The emulated gateway's signing key (Alipay's private key; fake, made for this emulator).
const GATEWAY_KEY: &str = include_str!("alipay_keys/gateway_private.pem");
/// The registered app's private key (应用私钥), whose public half was "uploaded" to Alipay.
const APP_KEY: &str = include_str!("alipay_keys/app_private.pem");
/// A valid RSA key nobody uploaded: the "wrong private key" of the tests, and the forger's
/// key of [`Signing::OtherKey`].
pub const UNKNOWN_PRIVATE_KEY: &str = include_str!("alipay_keys/other_private.pem");

/// A fake Alipay account.
#[derive(Debug, Clone, Copy)]
pub struct AlipayUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The legacy, cross-app id (2088 and 12 digits).
    pub user_id: &'static str,
    pub nick_name: &'static str,
    pub province: &'static str,
    pub city: &'static str,
    pub gender: &'static str,
}

/// 张小花 and 王大明.
pub const USERS: [AlipayUser; 2] = [
    AlipayUser {
        key: "xiaohua",
        user_id: "2088102150477652",
        nick_name: "张小花",
        province: "浙江省",
        city: "杭州市",
        gender: "F",
    },
    AlipayUser {
        key: "daming",
        user_id: "2088002656718920",
        nick_name: "王大明",
        province: "上海",
        city: "上海市",
        gender: "M",
    },
];

/// Which ids the app's answers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// An app created since Alipay's OpenID migration: `open_id` only (the default).
    OpenId,
    /// A legacy app: `user_id` only.
    UserId,
    Both,
}

/// How the gateway signs its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// With the emulator's Alipay key, as Alipay does.
    Genuine,
    /// With [`UNKNOWN_PRIVATE_KEY`]: a forged answer.
    OtherKey,
    /// No `sign` at all.
    None,
}

const CODE_TTL: Duration = Duration::from_secs(600);

/// The user's `open_id` in the app `app_id`.
pub fn open_id(app_id: &str, user: &AlipayUser) -> String {
    let h = s256(&format!("{app_id}/{}", user.key)).replace(['-', '_'], "x");
    format!("074a{}", &h[..40])
}

#[derive(Clone)]
struct Code {
    user: AlipayUser,
}

struct Shared {
    client: Client,
    gateway_key: RsaPrivateKey,
    other_key: RsaPrivateKey,
    app_public: RsaPublicKey,
    domains: Mutex<Vec<String>>,
    ids: Mutex<Ids>,
    signing: Mutex<Signing>,
    grants: Grants<Code, AlipayUser>,
}

/// A running Alipay emulator on 127.0.0.1. Stops when dropped.
pub struct AlipayEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

fn key(pem: &str) -> std::io::Result<RsaPrivateKey> {
    RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| std::io::Error::other(e.to_string()))
}

impl AlipayEmulator {
    /// An app on a free loopback port; panics when none can be bound, which only tests want.
    pub async fn start() -> AlipayEmulator {
        Self::serve(crate::free_loopback_port("Alipay").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<AlipayEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            // Alipay apps have no client secret: the app's key pair stands for it.
            client: Client::new(addr, "2021004112600001", ""),
            gateway_key: key(GATEWAY_KEY)?,
            other_key: key(UNKNOWN_PRIVATE_KEY)?,
            app_public: key(APP_KEY)?.to_public_key(),
            domains: Mutex::new(vec![]),
            ids: Mutex::new(Ids::OpenId),
            signing: Mutex::new(Signing::Genuine),
            grants: Grants::new(CODE_TTL),
        });
        let app = Router::new()
            .route("/oauth2/publicAppAuthorize.htm", get(authorize))
            .route("/gateway.do", post(gateway))
            .with_state(shared.clone());
        Ok(AlipayEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// The app's APPID (`client_id`).
    pub fn app_id(&self) -> &str {
        &self.shared.client.client_id
    }

    /// The user every following authorize request picks without showing the page.
    pub fn set_next_user(&self, key: Option<&str>) {
        self.shared.client.set_next_user(key);
    }

    /// How many gateway calls of `alipay.system.oauth.token` the emulator received.
    pub fn token_requests(&self) -> u64 {
        self.shared.client.token_requests()
    }

    /// The app's private key (应用私钥, PKCS#8 PEM): Tessera's `client_secret`.
    pub fn app_private_key_pem(&self) -> &'static str {
        APP_KEY
    }

    /// Alipay's public key (支付宝公钥, PEM): Tessera's `alipay_public_key`.
    pub fn alipay_public_key_pem(&self) -> String {
        self.shared
            .gateway_key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for
    /// `https://openapi.alipay.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://openauth.alipay.com/oauth2/publicAppAuthorize.htm`.
    pub fn auth_url(&self) -> String {
        format!("{}/oauth2/publicAppAuthorize.htm", self.shared.client.base)
    }

    /// Stands for `https://openapi.alipay.com/gateway.do`.
    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.shared.client.base)
    }

    /// Registers the authorization callback domain of `uri` (host and port). Until one is
    /// registered, any is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        if let Some(d) = domain(&uri.into()) {
            self.shared.domains.lock().expect("lock").push(d);
        }
    }

    /// How long codes issued from now on stay valid.
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.shared.grants.set_code_ttl(ttl);
    }

    /// Which ids the answers carry from now on.
    pub fn set_ids(&self, ids: Ids) {
        *self.shared.ids.lock().expect("lock") = ids;
    }

    /// How answers are signed from now on.
    pub fn set_answer_signing(&self, signing: Signing) {
        *self.shared.signing.lock().expect("lock") = signing;
    }

    /// The `open_id` of the fake user `key` in this app.
    pub fn open_id_of(&self, key: &str) -> String {
        open_id(&self.shared.client.client_id, user(key))
    }

    /// The `user_id` of the fake user `key`.
    pub fn user_id_of(&self, key: &str) -> &'static str {
        user(key).user_id
    }
}

fn user(key: &str) -> &'static AlipayUser {
    USERS
        .iter()
        .find(|u| u.key == key)
        .unwrap_or_else(|| panic!("no fake Alipay user `{key}`"))
}

fn domain(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_string(),
    })
}

fn error_page(message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>支付宝授权</title>\n<h1>授权失败</h1>\n<p>{}</p>\n",
        esc(message)
    ))
    .into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("app_id") != s.client.client_id {
        return error_page("应用不存在或 app_id 错误 (invalid app_id)");
    }
    let redirect_uri = get("redirect_uri");
    let registered = s.domains.lock().expect("lock").clone();
    match domain(redirect_uri) {
        Some(d) if registered.is_empty() || registered.contains(&d) => {}
        _ => return error_page("redirect_uri 与应用授权回调地址不一致"),
    }
    if !matches!(get("scope"), "auth_user" | "auth_base") {
        return error_page("scope 参数错误");
    }
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return error_page("redirect_uri 参数错误");
    };
    let Some(pick) = s.client.pick(&q) else {
        return consent_page(&q);
    };
    if pick == "deny" {
        back.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", get("state"));
        return redirect(&back);
    }
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return error_page(&format!("no emulated user `{pick}`"));
    };
    let code = random_hex("")[..32].to_string();
    s.grants.issue_code(&code, Code { user });
    back.query_pairs_mut()
        .append_pair("app_id", &s.client.client_id)
        .append_pair("source", "alipay_wallet")
        .append_pair("scope", get("scope"))
        .append_pair("auth_code", &code)
        .append_pair("state", get("state"));
    redirect(&back)
}

fn consent_page(q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        items.push_str(&format!(
            "<li><a href=\"/oauth2/publicAppAuthorize.htm?{}&amp;user={}\">{}</a></li>\n",
            esc(&base),
            u.key,
            esc(u.nick_name)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>支付宝授权</title>\n<h1>支付宝快捷登录（模拟器）</h1>\n<p>该应用将获取你的支付宝头像、昵称等公开信息。选择要登录的支付宝账户：</p>\n<ul>\n{items}</ul>\n<p><a href=\"/oauth2/publicAppAuthorize.htm?{}&amp;user=deny\">取消</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

/// RSA2 over `content`, base64.
fn rsa2(key: &RsaPrivateKey, content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map(|s| STANDARD.encode(s))
        .unwrap_or_default()
}

/// An answer: `{"<node>": business, "sign": …}`, signed over the member's exact text.
fn answer(s: &Shared, node: &str, business: Value) -> Response {
    let text = business.to_string();
    let sign = match *s.signing.lock().expect("lock") {
        Signing::Genuine => Some(rsa2(&s.gateway_key, &text)),
        Signing::OtherKey => Some(rsa2(&s.other_key, &text)),
        Signing::None => None,
    };
    let node_json = Value::String(node.into());
    let body = match sign {
        Some(sig) => format!("{{{node_json}:{text},\"sign\":{}}}", Value::String(sig)),
        None => format!("{{{node_json}:{text}}}"),
    };
    ([(header::CONTENT_TYPE, "text/html;charset=utf-8")], body).into_response()
}

fn invalid(s: &Shared, sub_code: &str, sub_msg: &str) -> Response {
    answer(
        s,
        "error_response",
        json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": sub_msg}),
    )
}

/// `yyyy-MM-dd HH:mm:ss` within 15 minutes of now, read as Beijing time.
fn fresh_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|x| x.parse::<i64>().ok());
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) =
        (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19))
    else {
        return false;
    };
    // days_from_civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + h * 3600 + mi * 60 + se - 8 * 3600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    (unix - now).abs() <= 15 * 60
}

async fn gateway(
    State(s): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let mut p: HashMap<String, String> = query;
    p.extend(url::form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if get("app_id") != s.client.client_id {
        return invalid(&s, "isv.invalid-app-id", "无效的AppID参数");
    }
    if get("sign_type") != "RSA2" {
        return invalid(&s, "isv.invalid-signature-type", "无效的签名类型");
    }
    let mut pairs: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, v)| k.as_str() != "sign" && !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    let content = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let signed = STANDARD.decode(get("sign")).ok().is_some_and(|sig| {
        s.app_public
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(content.as_bytes()),
                &sig,
            )
            .is_ok()
    });
    if !signed {
        return invalid(
            &s,
            "isv.invalid-signature",
            &format!(
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{content}"
            ),
        );
    }
    if !fresh_timestamp(get("timestamp")) {
        return invalid(&s, "isv.invalid-timestamp", "非法的时间戳参数");
    }
    match get("method") {
        "alipay.system.oauth.token" => token(&s, get("grant_type"), get("code")),
        "alipay.user.info.share" => user_info(&s, get("auth_token")),
        _ => invalid(&s, "isv.invalid-method", "不存在的方法名"),
    }
}

fn ids_of(s: &Shared, user: &AlipayUser) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    let ids = *s.ids.lock().expect("lock");
    if ids != Ids::OpenId {
        m.insert("user_id".into(), user.user_id.into());
    }
    if ids != Ids::UserId {
        m.insert("open_id".into(), open_id(&s.client.client_id, user).into());
    }
    m
}

fn token(s: &Shared, grant_type: &str, code: &str) -> Response {
    s.client.count_token_request();
    if grant_type != "authorization_code" {
        return invalid(s, "isv.grant-type-invalid", "不支持的grantType");
    }
    let c = match s.grants.redeem(code) {
        Redeemed::Fresh(c) => c,
        Redeemed::Expired(_) => return invalid(s, "isv.code-invalid", "授权码code无效"),
        Redeemed::Unknown | Redeemed::Used => {
            return invalid(s, "isv.code-invalid", "授权码code无效");
        }
    };
    let access = format!("authusrB{}", &random_hex("")[..32]);
    s.grants.issue_token(&access, c.user);
    let mut business = ids_of(s, &c.user);
    business.insert("access_token".into(), access.into());
    business.insert("expires_in".into(), 1_296_000.into());
    business.insert(
        "refresh_token".into(),
        format!("authusrB{}", &random_hex("")[..32]).into(),
    );
    business.insert("re_expires_in".into(), 2_592_000.into());
    business.insert("auth_start".into(), "2026-12-04 11:00:00".into());
    answer(
        s,
        "alipay_system_oauth_token_response",
        Value::Object(business),
    )
}

fn user_info(s: &Shared, auth_token: &str) -> Response {
    let node = "alipay_user_info_share_response";
    let Some(user) = s.grants.token_user(auth_token) else {
        return answer(
            s,
            node,
            json!({"code": "20001", "msg": "Insufficient Token Permissions", "sub_code": "aop.invalid-auth-token", "sub_msg": "无效的访问令牌"}),
        );
    };
    let mut business = serde_json::Map::new();
    business.insert("code".into(), "10000".into());
    business.insert("msg".into(), "Success".into());
    business.extend(ids_of(s, &user));
    business.insert(
        "avatar".into(),
        format!(
            "https://tfs.alipayobjects.com/images/partner/{}.png",
            user.key
        )
        .into(),
    );
    business.insert("nick_name".into(), user.nick_name.into());
    business.insert("province".into(), user.province.into());
    business.insert("city".into(), user.city.into());
    business.insert("gender".into(), user.gender.into());
    answer(s, node, Value::Object(business))
}
