//! A WeCom (企业微信) emulator for a corp's self-built app: web login
//! (`login.work.weixin.qq.com/wwlogin/sso/login`), the in-app authorization
//! (`open.weixin.qq.com/connect/oauth2/authorize`) and the `qyapi.weixin.qq.com` calls sign-in
//! makes, on one loopback port.
//!
//! - `GET /wwlogin/sso/login`: `login_type=CorpApp`, `appid` (the corp id), `agentid`,
//!   `redirect_uri`, `state`. `GET /connect/oauth2/authorize`: `appid`, `redirect_uri`,
//!   `response_type=code`, `scope` (`snsapi_base` or `snsapi_privateinfo`), `state`, `agentid`.
//!   Another corp or agent, a `redirect_uri` outside the app's trusted domain (可信域名,
//!   [`WecomEmulator::register_redirect_uri`]), another login type, scope or response type is
//!   an error page **without a redirect**, as at WeCom; so is a cancel (`user=deny`): WeCom
//!   does not go back to the site. `user=<key>` (or [`WecomEmulator::set_next_user`]) picks a
//!   member; the callback gets `code` and `state`. Codes live five minutes and are single use.
//! - Every API answer is HTTP 200 with `{errcode, errmsg}` (`errmsg` carries WeCom's hint and
//!   `more info at …?e=<code>`): `GET /cgi-bin/gettoken?corpid&corpsecret` (41002 corpid
//!   missing, 40013 invalid corpid, 41004 corpsecret missing, 40001 invalid credential);
//!   `GET /cgi-bin/auth/getuserinfo?access_token&code` (41001 missing, 40014 invalid or 42001
//!   expired access_token — [`WecomEmulator::expire_tokens`] —, 40029 invalid code: unknown,
//!   reused or expired) answers `userid` for a member, plus a `user_ticket` after a
//!   `snsapi_privateinfo` consent, and `openid` + `external_userid` for a non-member;
//!   `GET /cgi-bin/user/get?access_token&userid` (60111 userid not found) leaves out email,
//!   mobile, avatar and gender unless the app was created before 2022-06-20
//!   ([`WecomEmulator::set_legacy_app`]); `POST /cgi-bin/auth/getuserdetail?access_token` with
//!   `{"user_ticket"}` gives them (41046 missing, 40093 invalid ticket: these two codes are
//!   the emulator's reading; WeCom's list does not name them clearly).

use crate::common::{Client, esc, query_without_user, random_hex, s256};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A fake person on the consent page.
#[derive(Debug, Clone, Copy)]
pub struct WecomUser {
    /// What `user=` takes.
    pub key: &'static str,
    /// The member's `userid`; empty for someone outside the corp.
    pub userid: &'static str,
    pub name: &'static str,
    /// The address the member set (`email`); empty: none.
    pub email: &'static str,
    /// The corp mailbox (`biz_mail`); empty: none.
    pub biz_mail: &'static str,
    pub mobile: &'static str,
    /// `"1"` male, `"2"` female, `"0"` not set.
    pub gender: &'static str,
}

/// 张三 (with a corp mailbox), 李四 (no email at all) and a WeChat user outside the corp.
pub const USERS: [WecomUser; 3] = [
    WecomUser {
        key: "zhangsan",
        userid: "ZhangSan",
        name: "张三",
        email: "",
        biz_mail: "zhangsan@corp.example.cn",
        mobile: "13800000001",
        gender: "1",
    },
    WecomUser {
        key: "lisi",
        userid: "LiSi",
        name: "李四",
        email: "",
        biz_mail: "",
        mobile: "13800000002",
        gender: "2",
    },
    WecomUser {
        key: "outsider",
        userid: "",
        name: "王五",
        email: "",
        biz_mail: "",
        mobile: "",
        gender: "0",
    },
];

const CODE_TTL: Duration = Duration::from_secs(300);

struct Code {
    user: WecomUser,
    private_info: bool,
    issued: Instant,
    used: bool,
}

struct Shared {
    client: Client,
    agent_id: String,
    trusted_domains: Mutex<Vec<String>>,
    legacy: AtomicBool,
    expire_new: AtomicBool,
    code_ttl: Mutex<Duration>,
    codes: Mutex<HashMap<String, Code>>,
    /// app token → expired
    tokens: Mutex<HashMap<String, bool>>,
    /// user_ticket → member
    tickets: Mutex<HashMap<String, WecomUser>>,
    gettoken_calls: Mutex<u64>,
}

/// A running WeCom emulator on 127.0.0.1. Stops when dropped.
pub struct WecomEmulator {
    shared: Arc<Shared>,
    _task: crate::Task,
}

impl WecomEmulator {
    /// A corp with one self-built app on a free loopback port; panics when none can be bound,
    /// which only tests want.
    pub async fn start() -> WecomEmulator {
        Self::serve(crate::free_loopback_port("WeCom").await)
            .expect("read the emulator's local address")
    }

    /// On a listener the caller bound (`tessera demo` chooses the address). Needs a Tokio
    /// runtime.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<WecomEmulator> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            client: Client::new(
                addr,
                "ww5a1c9e3b7d2f4a60",
                "Xk3vQ9pL2mN7rT4wY8zB1cD6fG0hJ5kS2uV7xA9eR4o",
            ),
            agent_id: "1000002".into(),
            trusted_domains: Mutex::new(vec![]),
            legacy: AtomicBool::new(false),
            expire_new: AtomicBool::new(false),
            code_ttl: Mutex::new(CODE_TTL),
            codes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            tickets: Mutex::new(HashMap::new()),
            gettoken_calls: Mutex::new(0),
        });
        let app = Router::new()
            .route("/wwlogin/sso/login", get(web_login))
            .route("/connect/oauth2/authorize", get(in_app))
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/auth/getuserinfo", get(getuserinfo))
            .route("/cgi-bin/user/get", get(user_get))
            .route("/cgi-bin/auth/getuserdetail", post(getuserdetail))
            .with_state(shared.clone());
        Ok(WecomEmulator {
            shared,
            _task: crate::spawn(listener, app),
        })
    }

    /// The corp id (`client_id`).
    pub fn corp_id(&self) -> &str {
        &self.shared.client.client_id
    }

    /// The app's Secret (`client_secret`).
    pub fn client_secret(&self) -> &str {
        &self.shared.client.client_secret
    }

    /// The app's AgentId (`wecom_agent_id`).
    pub fn agent_id(&self) -> &str {
        &self.shared.agent_id
    }

    /// The member every following authorize request picks without the consent page.
    pub fn set_next_user(&self, key: Option<&str>) {
        self.shared.client.set_next_user(key);
    }

    /// How many codes were presented to `getuserinfo`.
    pub fn token_requests(&self) -> u64 {
        self.shared.client.token_requests()
    }

    /// How many app tokens were fetched (`gettoken`).
    pub fn gettoken_calls(&self) -> u64 {
        *self.shared.gettoken_calls.lock().expect("lock")
    }

    /// `http://127.0.0.1:<port>`: the `api_base_url` (it stands for `https://qyapi.weixin.qq.com`).
    pub fn base_url(&self) -> &str {
        &self.shared.client.base
    }

    /// Stands for `https://login.work.weixin.qq.com/wwlogin/sso/login`.
    pub fn web_login_url(&self) -> String {
        format!("{}/wwlogin/sso/login", self.shared.client.base)
    }

    /// Stands for `https://open.weixin.qq.com/connect/oauth2/authorize` (inside the WeCom app).
    pub fn in_app_auth_url(&self) -> String {
        format!("{}/connect/oauth2/authorize", self.shared.client.base)
    }

    /// Registers the trusted domain (可信域名) of `uri`: its host and port. Until one is
    /// registered, any absolute `redirect_uri` is accepted.
    pub fn register_redirect_uri(&self, uri: impl Into<String>) {
        if let Some(d) = domain(&uri.into()) {
            self.shared.trusted_domains.lock().expect("lock").push(d);
        }
    }

    /// An app created before 2022-06-20: `user/get` still returns email, mobile, avatar and
    /// gender.
    pub fn set_legacy_app(&self, on: bool) {
        self.shared.legacy.store(on, Ordering::SeqCst);
    }

    /// How long codes issued from now on stay valid (WeCom: five minutes).
    pub fn set_code_ttl(&self, ttl: Duration) {
        *self.shared.code_ttl.lock().expect("lock") = ttl;
    }

    /// Every app token issued so far has expired (42001), and so will the next ones while `on`.
    pub fn expire_tokens(&self, on: bool) {
        for v in self.shared.tokens.lock().expect("lock").values_mut() {
            *v = on;
        }
        self.expire_tokens_from_now_on(on);
    }

    /// Whether the app tokens issued from now on are expired at once (those issued before stay
    /// as they are): a token fetched again after WeCom said 42001 works only while `false`.
    pub fn expire_tokens_from_now_on(&self, on: bool) {
        self.shared.expire_new.store(on, Ordering::SeqCst);
    }
}

fn domain(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_string(),
    })
}

/// WeCom's page for a request it will not send back to the site (HTTP 200).
fn wecom_page(title: &str, message: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>{t}</title>\n<h1>{t}</h1>\n<p>{}</p>\n",
        esc(message),
        t = esc(title)
    ))
    .into_response()
}

async fn web_login(s: State<Arc<Shared>>, q: Query<HashMap<String, String>>) -> Response {
    let scope = (q.get("login_type").map(String::as_str) == Some("CorpApp")).then_some("");
    authorize(s, q, scope, "/wwlogin/sso/login").await
}

async fn in_app(s: State<Arc<Shared>>, q: Query<HashMap<String, String>>) -> Response {
    let scope = match q.get("scope").map(String::as_str) {
        Some("snsapi_base") => Some("snsapi_base"),
        Some("snsapi_privateinfo") => Some("snsapi_privateinfo"),
        _ => None,
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return wecom_page("参数错误", "response_type 参数错误");
    }
    authorize(s, q, scope, "/connect/oauth2/authorize").await
}

/// `scope`: `None` for a login type or scope WeCom does not take here.
async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    scope: Option<&str>,
    path: &str,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("appid") != s.client.client_id {
        return wecom_page("参数错误", "appid 参数错误：企业不存在");
    }
    if get("agentid") != s.agent_id {
        return wecom_page("参数错误", "agentid 参数错误：应用不存在或已停用");
    }
    let Some(scope) = scope else {
        return wecom_page("参数错误", "login_type 或 scope 参数错误");
    };
    let registered = s.trusted_domains.lock().expect("lock").clone();
    let redirect_uri = get("redirect_uri");
    match domain(redirect_uri) {
        Some(d) if registered.is_empty() || registered.contains(&d) => {}
        _ => {
            return wecom_page(
                "redirect_uri 与配置的授权完成回跳域名不一致",
                "请检查应用的可信域名配置",
            );
        }
    }
    let pick = s.client.pick(&q);
    if pick.as_deref() == Some("deny") {
        return wecom_page("已取消", "你已取消此次登录");
    }
    let Some(pick) = pick else {
        return consent_page(path, &q);
    };
    let Some(user) = USERS.iter().find(|u| u.key == pick).copied() else {
        return wecom_page("参数错误", &format!("no emulated member `{pick}`"));
    };
    let code = s256(&random_hex(""));
    s.codes.lock().expect("lock").insert(
        code.clone(),
        Code {
            user,
            private_info: scope == "snsapi_privateinfo",
            issued: Instant::now(),
            used: false,
        },
    );
    let Ok(mut back) = url::Url::parse(redirect_uri) else {
        return wecom_page("参数错误", "redirect_uri 参数错误");
    };
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

fn consent_page(path: &str, q: &HashMap<String, String>) -> Response {
    let base = query_without_user(q);
    let mut items = String::new();
    for u in USERS {
        let who = if u.userid.is_empty() {
            format!("{}（非企业成员）", u.name)
        } else {
            u.name.to_string()
        };
        items.push_str(&format!(
            "<li><a href=\"{path}?{}&amp;user={}\">{}</a></li>\n",
            esc(&base),
            u.key,
            esc(&who)
        ));
    }
    Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><meta charset=utf-8><title>企业微信登录</title>\n<h1>企业微信登录（模拟器）</h1>\n<p>请使用企业微信扫码登录。选择要登录的成员：</p>\n<ul>\n{items}</ul>\n<p><a href=\"{path}?{}&amp;user=deny\">取消</a></p>\n",
        esc(&base)
    ))
    .into_response()
}

/// `{errcode, errmsg}` with HTTP 200, the message in WeCom's form.
fn wx_error(code: u32, msg: &str) -> Response {
    let hint = &random_hex("")[..16];
    Json(json!({
        "errcode": code,
        "errmsg": format!("{msg}, hint: [{hint}], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"),
    }))
    .into_response()
}

/// The refusal of a request whose app token is missing, unknown or expired; `None`: valid.
fn bad_app_token(s: &Shared, q: &HashMap<String, String>) -> Option<Response> {
    let Some(t) = q.get("access_token").filter(|t| !t.is_empty()) else {
        return Some(wx_error(41001, "access_token missing"));
    };
    match s.tokens.lock().expect("lock").get(t) {
        None => Some(wx_error(40014, "invalid access_token")),
        Some(true) => Some(wx_error(42001, "access_token expired")),
        Some(false) => None,
    }
}

async fn gettoken(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    if get("corpid").is_empty() {
        return wx_error(41002, "corpid missing");
    }
    if get("corpid") != s.client.client_id {
        return wx_error(40013, "invalid corpid");
    }
    if get("corpsecret").is_empty() {
        return wx_error(41004, "corpsecret missing");
    }
    if get("corpsecret") != s.client.client_secret {
        return wx_error(40001, "invalid credential");
    }
    *s.gettoken_calls.lock().expect("lock") += 1;
    let token = random_hex("")[..32].to_string() + &random_hex("");
    s.tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), s.expire_new.load(Ordering::SeqCst));
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
        .into_response()
}

async fn getuserinfo(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = bad_app_token(&s, &q) {
        return r;
    }
    s.client.count_token_request();
    let mut codes = s.codes.lock().expect("lock");
    let Some(code) = codes.get_mut(q.get("code").map(String::as_str).unwrap_or_default()) else {
        return wx_error(40029, "invalid code");
    };
    let ttl = *s.code_ttl.lock().expect("lock");
    if code.used || code.issued.elapsed() >= ttl {
        return wx_error(40029, "invalid code");
    }
    code.used = true;
    let (user, private_info) = (code.user, code.private_info);
    drop(codes);
    if user.userid.is_empty() {
        let openid = format!("oAAAAA{}", &s256(user.key)[..22]);
        return Json(json!({"errcode": 0, "errmsg": "ok", "openid": openid,
            "external_userid": format!("wmAAAA{}", &s256(user.name)[..22])}))
        .into_response();
    }
    let mut answer = json!({"errcode": 0, "errmsg": "ok", "userid": user.userid});
    if private_info {
        let ticket = random_hex("")[..32].to_string();
        s.tickets.lock().expect("lock").insert(ticket.clone(), user);
        answer["user_ticket"] = ticket.into();
        answer["expires_in"] = 1800.into();
    }
    Json(answer).into_response()
}

fn member(userid: &str) -> Option<WecomUser> {
    USERS
        .iter()
        .find(|u| !u.userid.is_empty() && u.userid == userid)
        .copied()
}

/// The private fields of a member (`user/get` of a legacy app, `getuserdetail`).
fn private_fields(answer: &mut Value, u: &WecomUser) {
    answer["gender"] = u.gender.into();
    answer["avatar"] = format!("https://wework.qpic.cn/wwpic/{}/0", &s256(u.userid)[..16]).into();
    answer["mobile"] = u.mobile.into();
    answer["email"] = u.email.into();
    answer["biz_mail"] = u.biz_mail.into();
}

async fn user_get(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = bad_app_token(&s, &q) {
        return r;
    }
    let Some(u) = member(q.get("userid").map(String::as_str).unwrap_or_default()) else {
        return wx_error(60111, "invalid string value `userid`. userid not found");
    };
    let mut answer = json!({"errcode": 0, "errmsg": "ok", "userid": u.userid, "name": u.name,
        "department": [1], "order": [0], "position": "", "status": 1, "isleader": 0,
        "main_department": 1, "open_userid": format!("woAAAA{}", &s256(u.userid)[..22])});
    if s.legacy.load(Ordering::SeqCst) {
        private_fields(&mut answer, &u);
    }
    Json(answer).into_response()
}

async fn getuserdetail(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bad_app_token(&s, &q) {
        return r;
    }
    let ticket = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("user_ticket")
            .and_then(Value::as_str)
            .map(String::from)
    });
    let Some(ticket) = ticket.filter(|t| !t.is_empty()) else {
        return wx_error(41046, "user_ticket missing");
    };
    let Some(u) = s.tickets.lock().expect("lock").get(&ticket).copied() else {
        return wx_error(40093, "invalid user_ticket");
    };
    let mut answer = json!({"errcode": 0, "errmsg": "ok", "userid": u.userid});
    private_fields(&mut answer, &u);
    Json(answer).into_response()
}
