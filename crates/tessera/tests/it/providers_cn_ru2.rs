//! The provider types of the China/Russia catalogue, part two (issue 17): WeCom,
//! Odnoklassniki, Weibo, Baidu and Douyin end to end
//! through the browser flow against its emulator in tessera-emulators, with the default mapper
//! `tessera demo` writes: sign-up, sign-in into the same identity, fill-the-gaps without an
//! email, every error shape as a clear message in the page's language; and the emulator
//! refusing what the real service refuses. The journey helpers are tessera_testkit::journey's.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::baidu::BaiduEmulator;
use tessera_testkit::emulators::douyin::DouyinEmulator;
use tessera_testkit::emulators::odnoklassniki::OkEmulator;
use tessera_testkit::emulators::wecom::WecomEmulator;
use tessera_testkit::emulators::weibo::WeiboEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, location, oidc_identifiers,
    param, press_provider, refused_in_every_language, sign_in, sign_up_and_again,
    sign_up_giving_an_email, start_error, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

// ---- WeCom ---------------------------------------------------------------------------------

/// `tessera demo`'s WeCom mapper, the one docs/providers/wecom.md shows.
const WECOM_MAPPER: &str = include_str!("../../demo/wecom.jsonnet");

/// A `wecom` entry; `extra` adds or replaces keys (`scope`, `auth_url`, `wecom_agent_id`).
fn wecom_yaml(w: &WecomEmulator, secret: &str, extra: &[(&str, &str)]) -> String {
    let mut keys: Vec<(&str, String)> = vec![
        ("wecom_agent_id", format!("\"{}\"", w.agent_id())),
        ("auth_url", w.web_login_url()),
        ("api_base_url", w.base_url().to_string()),
    ];
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k, v.to_string()));
    }
    let mut yaml = format!(
        "          - id: wecom\n            provider: wecom\n            label: WeCom\n            client_id: {}\n            client_secret: {secret}\n            mapper_url: base64://{}\n",
        w.corp_id(),
        b64(WECOM_MAPPER)
    );
    for (k, v) in keys {
        yaml.push_str(&format!("            {k}: {v}\n"));
    }
    yaml
}

async fn wecom_server(backend: Backend, w: &WecomEmulator, extra: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start(backend, &config(&wecom_yaml(w, w.client_secret(), extra))).await;
    w.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/wecom",
        s.public
    ));
    s
}

each_backend!(wecom_web_login_fills_the_email_then_signs_in_again);
async fn wecom_web_login_fills_the_email_then_signs_in_again(backend: Backend) {
    let w = WecomEmulator::start().await;
    let s = wecom_server(backend, &w, &[]).await;
    // The web login URL as WeCom documents it: CorpApp, the corp id as appid, the AgentId.
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "wecom", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&w.web_login_url()), "{authorize}");
    assert_eq!(param(&authorize, "login_type").as_deref(), Some("CorpApp"));
    assert_eq!(param(&authorize, "appid").as_deref(), Some(w.corp_id()));
    assert_eq!(param(&authorize, "agentid").as_deref(), Some(w.agent_id()));
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("张三") && page.contains("李四"), "{page}");

    // Web login gives no user ticket and a new app's contact API no email: the person types one.
    let (me, ids) = sign_up_giving_an_email(&s, ("wecom", "zhangsan"), "zhangsan@example.cn").await;
    let subject = format!("wecom:{}:ZhangSan", w.corp_id());
    assert_eq!(ids, json!([subject]));
    assert_eq!(me["traits"]["name"]["first"], "张三");
    assert_eq!(me["metadata_public"]["wecom_corpid"], w.corp_id());
    assert_eq!(me["metadata_public"]["wecom_userid"], "ZhangSan");

    // Again from another browser: the same identity, and the app token was fetched once.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "wecom", "zhangsan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    assert_eq!(w.token_requests(), 2);
    assert_eq!(w.gettoken_calls(), 1, "the app token is cached");
    s.stop().await;
}

#[tokio::test]
async fn wecom_in_app_privateinfo_shares_the_corp_mailbox() {
    let w = WecomEmulator::start().await;
    let auth = w.in_app_auth_url();
    let s = wecom_server(
        Backend::Sqlite,
        &w,
        &[("scope", "[snsapi_privateinfo]"), ("auth_url", &auth)],
    )
    .await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "wecom", "https://app.example.com/after").await;
    let u = url::Url::parse(&authorize).unwrap();
    assert_eq!(u.fragment(), Some("wechat_redirect"));
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("snsapi_privateinfo")
    );
    assert_eq!(param(&authorize, "agentid").as_deref(), Some(w.agent_id()));
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));

    // The user ticket's detail has the corp mailbox: signed up without a form.
    let r = sign_in(&b, &s, "login", "wecom", "zhangsan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "zhangsan@corp.example.cn");
    let id = me["id"].as_str().unwrap();
    assert_eq!(
        oidc_identifiers(&s, id).await,
        json!([format!("wecom:{}:ZhangSan", w.corp_id())])
    );
    // 李四 has no address at all: fill-the-gaps.
    let (_, ids) = sign_up_giving_an_email(&s, ("wecom", "lisi"), "lisi@example.cn").await;
    assert_eq!(ids, json!([format!("wecom:{}:LiSi", w.corp_id())]));
}

#[tokio::test]
async fn wecom_legacy_app_reads_the_email_from_the_contact_api() {
    let w = WecomEmulator::start().await;
    w.set_legacy_app(true);
    let s = wecom_server(Backend::Sqlite, &w, &[]).await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "wecom", "zhangsan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "zhangsan@corp.example.cn");
}

#[tokio::test]
async fn wecom_wrong_secret_and_spent_code_are_clear_localised_messages() {
    let w = WecomEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&wecom_yaml(&w, "not-the-secret", &[])),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("wecom", "zhangsan"),
        "Вход через WeCom отклонён",
        "企业微信拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("WeCom refused the sign-in")
            && text.contains("WeCom error 40001")
            && text.contains("invalid credential"),
        "{text}"
    );
    assert_eq!(w.token_requests(), 0, "no app token, no code spent");

    // A code that expired before it reached WeCom: 40029.
    let s = wecom_server(Backend::Sqlite, &w, &[]).await;
    w.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("wecom", "zhangsan"),
        "Вход через WeCom отклонён",
        "企业微信拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("WeCom error 40029") && text.contains("invalid code"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn wecom_a_stale_app_token_is_fetched_again_once() {
    let w = WecomEmulator::start().await;
    let s = wecom_server(Backend::Sqlite, &w, &[]).await;
    sign_up_giving_an_email(&s, ("wecom", "zhangsan"), "zhangsan@example.cn").await;
    assert_eq!(w.gettoken_calls(), 1);
    // The cached token expired (WeCom says 42001): one new token, and the sign-in goes on.
    w.expire_tokens(true);
    w.expire_tokens_from_now_on(false);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "wecom", "zhangsan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(w.gettoken_calls(), 2);
    // A new token that is expired as well is not retried forever: a clear message.
    w.expire_tokens(true);
    let text = refused_in_every_language(
        &s,
        ("wecom", "zhangsan"),
        "Вход через WeCom отклонён",
        "企业微信拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("WeCom error 42001") && text.contains("access_token expired"),
        "{text}"
    );
    assert_eq!(w.gettoken_calls(), 3);
}

#[tokio::test]
async fn wecom_someone_outside_the_corp_is_refused() {
    let w = WecomEmulator::start().await;
    let s = wecom_server(Backend::Sqlite, &w, &[]).await;
    let text = refused_in_every_language(
        &s,
        ("wecom", "outsider"),
        "Ответ сервиса WeCom",
        "企业微信返回的信息无法使用",
    )
    .await;
    assert!(text.contains("WeCom sent an answer"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn wecom_configuration_is_checked_at_start() {
    let w = WecomEmulator::start().await;
    for (extra, key) in [
        (("wecom_agent_id", "\"\""), "providers.0.wecom_agent_id"),
        (("scope", "[snsapi_login]"), "providers.0.scope"),
    ] {
        let err = start_error(&config(&wecom_yaml(&w, w.client_secret(), &[extra]))).await;
        assert!(err.contains(key), "{err}");
    }
    assert_needs_a_secret(&config(&wecom_yaml(&w, "\"\"", &[]))).await;
}

#[tokio::test]
async fn wecom_emulator_refuses_what_wecom_refuses() {
    let w = WecomEmulator::start().await;
    w.register_redirect_uri("http://127.0.0.1:9/cb");
    let c = TestServer::client();
    let base = w.base_url().to_string();
    let get = |path: String| {
        let c = c.clone();
        async move {
            let r = c.get(path).send().await.unwrap();
            assert_eq!(r.status(), 200, "WeCom answers everything with HTTP 200");
            r.text().await.unwrap()
        }
    };
    let json_get = |path: String| {
        let get = &get;
        async move { serde_json::from_str::<Value>(&get(path).await).unwrap() }
    };
    let login = |q: &str| format!("{}?login_type=CorpApp&{q}&user=zhangsan", w.web_login_url());
    let (corp, agent) = (w.corp_id().to_string(), w.agent_id().to_string());
    // Wrong corp, wrong agent, a redirect outside the trusted domain, another login type: a
    // page, never a redirect.
    for (q, needle) in [
        (
            format!("appid=wwnope&agentid={agent}&redirect_uri=http://127.0.0.1:9/cb"),
            "appid",
        ),
        (
            format!("appid={corp}&agentid=1&redirect_uri=http://127.0.0.1:9/cb"),
            "agentid",
        ),
        (
            format!("appid={corp}&agentid={agent}&redirect_uri=http://evil.example/cb"),
            "redirect_uri",
        ),
    ] {
        let page = get(login(&q)).await;
        assert!(page.contains(needle), "{page}");
    }
    let page = get(format!(
        "{}?login_type=ServiceApp&appid={corp}&agentid={agent}&redirect_uri=http://127.0.0.1:9/cb&user=zhangsan",
        w.web_login_url()
    ))
    .await;
    assert!(page.contains("login_type"), "{page}");

    // gettoken: missing, unknown corp, wrong secret.
    let e = json_get(format!("{base}/cgi-bin/gettoken?corpsecret=x")).await;
    assert_eq!(e["errcode"], 41002);
    let e = json_get(format!(
        "{base}/cgi-bin/gettoken?corpid=wwnope&corpsecret=x"
    ))
    .await;
    assert_eq!(e["errcode"], 40013);
    let e = json_get(format!(
        "{base}/cgi-bin/gettoken?corpid={corp}&corpsecret=x"
    ))
    .await;
    assert_eq!(e["errcode"], 40001);
    assert!(
        e["errmsg"].as_str().unwrap().contains("more info at"),
        "{e}"
    );
    let ok = json_get(format!(
        "{base}/cgi-bin/gettoken?corpid={corp}&corpsecret={}",
        w.client_secret()
    ))
    .await;
    assert_eq!(ok["errcode"], 0);
    assert_eq!(ok["expires_in"], 7200);
    let token = ok["access_token"].as_str().unwrap().to_string();

    // A code is spent once; a forged token is refused before the code is looked at.
    let r = c
        .get(login(&format!(
            "appid={corp}&agentid={agent}&redirect_uri=http://127.0.0.1:9/cb&state=s"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let back = location(&r);
    assert_eq!(param(&back, "state").as_deref(), Some("s"));
    let code = param(&back, "code").unwrap();
    let e = json_get(format!(
        "{base}/cgi-bin/auth/getuserinfo?access_token=forged&code={code}"
    ))
    .await;
    assert_eq!(e["errcode"], 40014);
    let who = json_get(format!(
        "{base}/cgi-bin/auth/getuserinfo?access_token={token}&code={code}"
    ))
    .await;
    assert_eq!(who["userid"], "ZhangSan");
    assert!(
        who.get("user_ticket").is_none(),
        "web login gives no ticket"
    );
    let e = json_get(format!(
        "{base}/cgi-bin/auth/getuserinfo?access_token={token}&code={code}"
    ))
    .await;
    assert_eq!(e["errcode"], 40029, "reused code");

    // The contact API leaves private fields out for a new app; an unknown userid is 60111.
    let u = json_get(format!(
        "{base}/cgi-bin/user/get?access_token={token}&userid=ZhangSan"
    ))
    .await;
    assert_eq!(u["name"], "张三");
    assert!(
        u.get("biz_mail").is_none() && u.get("mobile").is_none(),
        "{u}"
    );
    let e = json_get(format!(
        "{base}/cgi-bin/user/get?access_token={token}&userid=nobody"
    ))
    .await;
    assert_eq!(e["errcode"], 60111);

    // A forged user ticket.
    let e: Value = c
        .post(format!(
            "{base}/cgi-bin/auth/getuserdetail?access_token={token}"
        ))
        .json(&json!({"user_ticket": "forged"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["errcode"], 40093);
}

// ---- Odnoklassniki (OK.ru) -----------------------------------------------------------------

/// `tessera demo`'s OK mapper, the one docs/providers/odnoklassniki.md shows.
const OK_MAPPER: &str = include_str!("../../demo/odnoklassniki.jsonnet");

/// An `odnoklassniki` entry with `VALUABLE_ACCESS;GET_EMAIL`; `extra` adds or replaces keys.
fn ok_yaml(ok: &OkEmulator, secret: &str, extra: &[(&str, &str)]) -> String {
    let mut keys: Vec<(&str, String)> = vec![
        (
            "odnoklassniki_application_key",
            ok.application_key().to_string(),
        ),
        ("scope", "[VALUABLE_ACCESS, GET_EMAIL]".into()),
        ("auth_url", ok.auth_url()),
        ("api_base_url", ok.base_url().to_string()),
    ];
    for (k, v) in extra {
        keys.retain(|(key, _)| key != k);
        keys.push((k, v.to_string()));
    }
    let mut yaml = format!(
        "          - id: odnoklassniki\n            provider: odnoklassniki\n            label: OK\n            client_id: \"{}\"\n            client_secret: {secret}\n            mapper_url: base64://{}\n",
        ok.client_id(),
        b64(OK_MAPPER)
    );
    for (k, v) in keys {
        yaml.push_str(&format!("            {k}: {v}\n"));
    }
    yaml
}

async fn ok_server(backend: Backend, ok: &OkEmulator, extra: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start(backend, &config(&ok_yaml(ok, ok.client_secret(), extra))).await;
    ok.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/odnoklassniki",
        s.public
    ));
    s
}

each_backend!(ok_sign_up_then_sign_in_into_the_same_identity);
async fn ok_sign_up_then_sign_in_into_the_same_identity(backend: Backend) {
    let ok = OkEmulator::start().await;
    let s = ok_server(backend, &ok, &[]).await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "odnoklassniki",
        "https://app.example.com/after",
    )
    .await;
    assert!(authorize.starts_with(&ok.auth_url()), "{authorize}");
    // OK's permissions are joined with semicolons.
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("VALUABLE_ACCESS;GET_EMAIL")
    );
    let id = sign_up_and_again(
        &s,
        "odnoklassniki",
        ("ivan", "ivan.petrov@ok.example"),
        "574893018273",
    )
    .await;
    assert_eq!(ok.token_requests(), 2);
    assert!(!id.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn ok_without_an_email_the_user_fills_the_gap() {
    let ok = OkEmulator::start().await;
    let s = ok_server(Backend::Sqlite, &ok, &[]).await;
    fill_the_gap(&s, "odnoklassniki", "574893018274").await;
}

#[tokio::test]
async fn ok_without_get_email_asks_for_the_email() {
    // The default scope is VALUABLE_ACCESS alone (GET_EMAIL needs OK's grant): no email.
    let ok = OkEmulator::start().await;
    ok.set_email_permission(false);
    let s = ok_server(Backend::Sqlite, &ok, &[("scope", "[]")]).await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "odnoklassniki",
        "https://app.example.com/after",
    )
    .await;
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("VALUABLE_ACCESS")
    );
    let (_, ids) = sign_up_giving_an_email(&s, ("odnoklassniki", "ivan"), "ivan@example.ru").await;
    assert_eq!(ids, json!(["odnoklassniki:574893018273"]));
}

#[tokio::test]
async fn ok_wrong_secret_is_refused_at_the_token_call_in_every_language() {
    let ok = OkEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&ok_yaml(&ok, "not-the-secret", &[])),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("odnoklassniki", "ivan"),
        "Вход через Одноклассники отклонён",
        "OK 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("OK refused the sign-in") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn ok_a_wrong_application_key_breaks_the_signed_call_with_a_clear_message() {
    // The token call knows nothing of the public key; the signed API call refuses it (101).
    let ok = OkEmulator::start().await;
    let s = ok_server(
        Backend::Sqlite,
        &ok,
        &[("odnoklassniki_application_key", "CBANOTTHEKEY")],
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("odnoklassniki", "ivan"),
        "Вход через Одноклассники отклонён",
        "OK 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("OK error 101") && text.contains("PARAM_API_KEY"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn ok_cancel_and_expired_code_are_clear_messages() {
    let ok = OkEmulator::start().await;
    let s = ok_server(Backend::Sqlite, &ok, &[]).await;
    let text = refused_in_every_language(
        &s,
        ("odnoklassniki", "deny"),
        "Вход через Одноклассники отменён",
        "OK 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert_eq!(ok.token_requests(), 0);
    ok.set_code_ttl(Duration::ZERO);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "odnoklassniki", "ivan").await;
    let text = tessera_testkit::journey::refusal(&b, &s, r).await;
    assert!(
        text.contains("invalid_grant") && text.contains("Expired code"),
        "{text}"
    );
}

#[tokio::test]
async fn ok_configuration_is_checked_at_start() {
    let ok = OkEmulator::start().await;
    for (extra, key) in [
        (
            ("odnoklassniki_application_key", "\"\""),
            "providers.0.odnoklassniki_application_key",
        ),
        (
            ("scope", "[\"VALUABLE_ACCESS;GET_EMAIL\"]"),
            "providers.0.scope",
        ),
    ] {
        let err = start_error(&config(&ok_yaml(&ok, ok.client_secret(), &[extra]))).await;
        assert!(err.contains(key), "{err}");
    }
    assert_needs_a_secret(&config(&ok_yaml(&ok, "\"\"", &[]))).await;
}

/// OK's signature, computed here independently of the provider and the emulator.
fn ok_sig(params: &[(&str, &str)], token: &str, secret: &str) -> String {
    use md5::{Digest, Md5};
    let hex = |s: String| -> String {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut p = params.to_vec();
    p.sort();
    let joined: String = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    hex(format!("{joined}{}", hex(format!("{token}{secret}"))))
}

#[tokio::test]
async fn ok_emulator_refuses_forged_signatures_and_spent_codes() {
    let ok = OkEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    ok.register_redirect_uri(back);
    let c = TestServer::client();
    let authorize = |q: String| format!("{}?{q}", ok.auth_url());
    // Another redirect_uri or app: an error page, no redirect.
    for q in [
        format!(
            "client_id={}&response_type=code&scope=VALUABLE_ACCESS&redirect_uri=http://evil.example/cb&user=ivan",
            ok.client_id()
        ),
        "client_id=1&response_type=code&scope=VALUABLE_ACCESS&redirect_uri=http://127.0.0.1:9/cb&user=ivan".to_string(),
    ] {
        let r = c.get(authorize(q)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("invalid_request"));
    }
    let code_for = |user: &'static str| {
        let c = c.clone();
        let url = authorize(format!(
            "client_id={}&response_type=code&scope=VALUABLE_ACCESS;GET_EMAIL&redirect_uri={back}&state=s&user={user}",
            ok.client_id()
        ));
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").unwrap()
        }
    };
    let token_call = |code: String, redirect: &str| {
        c.post(format!("{}/oauth/token.do", ok.base_url())).query(&[
            ("code", code.as_str()),
            ("client_id", ok.client_id()),
            ("client_secret", ok.client_secret()),
            ("redirect_uri", redirect),
            ("grant_type", "authorization_code"),
        ])
    };
    // Another redirect_uri at the token call spends nothing useful: invalid_grant.
    let code = code_for("ivan").await;
    let r = token_call(code, "http://127.0.0.1:9/other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    let code = code_for("ivan").await;
    let t: Value = token_call(code.clone(), back)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["token_type"], "session");
    let token = t["access_token"].as_str().unwrap().to_string();
    let again: Value = token_call(code, back)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["error"], "invalid_grant", "a code is spent once");

    let params = [
        ("application_key", ok.application_key()),
        ("format", "json"),
        ("method", "users.getCurrentUser"),
    ];
    let call = |sig: String, token: &str| {
        c.get(format!("{}/fb.do", ok.base_url()))
            .query(&params)
            .query(&[("access_token", token), ("sig", sig.as_str())])
    };
    let me: Value = call(ok_sig(&params, &token, ok.client_secret()), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["uid"], "574893018273");
    assert_eq!(me["email"], "ivan.petrov@ok.example");
    // Forged: signed with another secret, or over other parameters, or not at all.
    for sig in [
        ok_sig(&params, &token, "guessed-secret"),
        ok_sig(&params[..2], &token, ok.client_secret()),
        String::new(),
    ] {
        let r = call(sig, &token).send().await.unwrap();
        assert_eq!(r.status(), 200, "OK's API errors come with HTTP 200");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error_code"], 104, "{e}");
        assert!(
            e["error_msg"]
                .as_str()
                .unwrap()
                .starts_with("PARAM_SIGNATURE")
        );
    }
    // A revoked token, correctly signed: 102.
    ok.revoke_tokens();
    let e: Value = call(ok_sig(&params, &token, ok.client_secret()), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["error_code"], 102);
}

// ---- Weibo ---------------------------------------------------------------------------------

/// `tessera demo`'s Weibo mapper, the one docs/providers/weibo.md shows.
const WEIBO_MAPPER: &str = include_str!("../../demo/weibo.jsonnet");

fn weibo_yaml(w: &WeiboEmulator, secret: &str) -> String {
    format!(
        "          - id: weibo\n            provider: weibo\n            label: Weibo\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        w.client_id(),
        w.auth_url(),
        w.base_url(),
        b64(WEIBO_MAPPER)
    )
}

async fn weibo_server(backend: Backend, w: &WeiboEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&weibo_yaml(w, secret))).await;
    w.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/weibo",
        s.public
    ));
    s
}

each_backend!(weibo_sign_up_fills_the_email_then_signs_in_again);
async fn weibo_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let w = WeiboEmulator::start().await;
    let s = weibo_server(backend, &w, w.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "weibo", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&w.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "client_id").as_deref(),
        Some(w.client_id())
    );
    assert!(
        param(&authorize, "scope").is_none(),
        "basic access needs no scope"
    );
    // Weibo shares no email: fill-the-gaps; the id past 2^53 stays exact (idstr).
    let (me, ids) = sign_up_giving_an_email(&s, ("weibo", "xiaoming"), "xiaoming@example.cn").await;
    assert_eq!(ids, json!(["weibo:9187664653001234567"]));
    assert_eq!(me["traits"]["name"]["first"], "小明同学");
    assert_eq!(me["metadata_public"]["weibo_uid"], "9187664653001234567");
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "weibo", "xiaoming").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    assert_eq!(w.token_requests(), 2);
    s.stop().await;
}

#[tokio::test]
async fn weibo_errors_are_clear_localised_messages() {
    let w = WeiboEmulator::start().await;
    let s = weibo_server(Backend::Sqlite, &w, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("weibo", "xiaoming"),
        "Вход через Weibo отклонён",
        "微博拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Weibo refused the sign-in")
            && text.contains("Weibo error 21323")
            && text.contains("invalid_client"),
        "{text}"
    );
    let s = weibo_server(Backend::Sqlite, &w, w.client_secret()).await;
    let text = refused_in_every_language(
        &s,
        ("weibo", "deny"),
        "Вход через Weibo отменён",
        "微博登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    w.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("weibo", "xiaoming"),
        "Вход через Weibo отклонён",
        "微博拒绝了此次登录",
    )
    .await;
    assert!(text.contains("Weibo error 21325"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn weibo_needs_a_secret() {
    let w = WeiboEmulator::start().await;
    assert_needs_a_secret(&config(&weibo_yaml(&w, "\"\""))).await;
}

#[tokio::test]
async fn weibo_emulator_refuses_what_weibo_refuses() {
    let w = WeiboEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    w.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |redirect: &str, user: &str| {
        format!(
            "{}?client_id={}&redirect_uri={redirect}&response_type=code&state=s&user={user}",
            w.auth_url(),
            w.client_id()
        )
    };
    let r = c
        .get(auth("http://evil.example/cb", "xiaoming"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("21322"));
    let code = || async {
        let r = c.get(auth(back, "xiaoming")).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, redirect: &'static str| {
        c.post(format!("{}/oauth2/access_token", w.base_url()))
            .form(&[
                ("client_id", w.client_id().to_string()),
                ("client_secret", w.client_secret().to_string()),
                ("grant_type", "authorization_code".into()),
                ("code", code),
                ("redirect_uri", redirect.into()),
            ])
            .send()
    };
    let r = token(code().await, "http://127.0.0.1:9/other")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], 21325);
    let first = code().await;
    let t: Value = token(first.clone(), back)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["uid"], "9187664653001234567", "uid is text");
    let again: Value = token(first, back).await.unwrap().json().await.unwrap();
    assert_eq!(again["error_code"], 21325, "a code is spent once");
    let access = t["access_token"].as_str().unwrap();
    let show = |token: &str, uid: &str| {
        c.get(format!("{}/2/users/show.json", w.base_url()))
            .query(&[("access_token", token), ("uid", uid)])
            .send()
    };
    // Another person's profile with this token, a forged token.
    let r = show(access, "9187664653001234569").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = show("forged", "9187664653001234567").await.unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], 21332);
    let me: Value = show(access, "9187664653001234567")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["idstr"], "9187664653001234567");
    assert!(me["id"].is_u64());
}

// ---- Baidu ---------------------------------------------------------------------------------

/// `tessera demo`'s Baidu mapper, the one docs/providers/baidu.md shows.
const BAIDU_MAPPER: &str = include_str!("../../demo/baidu.jsonnet");

fn baidu_yaml(bd: &BaiduEmulator, secret: &str) -> String {
    format!(
        "          - id: baidu\n            provider: baidu\n            label: Baidu\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        bd.client_id(),
        bd.auth_url(),
        bd.base_url(),
        b64(BAIDU_MAPPER)
    )
}

async fn baidu_server(backend: Backend, bd: &BaiduEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&baidu_yaml(bd, secret))).await;
    bd.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/baidu",
        s.public
    ));
    s
}

each_backend!(baidu_sign_up_fills_the_email_then_signs_in_again);
async fn baidu_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let bd = BaiduEmulator::start().await;
    let s = baidu_server(backend, &bd, bd.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "baidu", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&bd.auth_url()), "{authorize}");
    assert_eq!(param(&authorize, "scope").as_deref(), Some("basic"));
    let (me, ids) = sign_up_giving_an_email(&s, ("baidu", "zhaolei"), "zhaolei@example.cn").await;
    let openid = bd.openid_of("zhaolei");
    assert_eq!(ids, json!([format!("baidu:{openid}")]));
    assert_eq!(
        me["traits"]["name"]["first"], "z***i",
        "Baidu masks the name"
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "baidu", "zhaolei").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn baidu_errors_are_clear_localised_messages() {
    let bd = BaiduEmulator::start().await;
    let s = baidu_server(Backend::Sqlite, &bd, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("baidu", "zhaolei"),
        "Вход через Baidu отклонён",
        "百度拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Baidu refused the sign-in") && text.contains("invalid_client"),
        "{text}"
    );
    // An HTTP-200 REST error at getInfo.
    let s = baidu_server(Backend::Sqlite, &bd, bd.client_secret()).await;
    bd.expire_tokens(true);
    let text = refused_in_every_language(
        &s,
        ("baidu", "zhaolei"),
        "Вход через Baidu отклонён",
        "百度拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Baidu error 111") && text.contains("Access token expired"),
        "{text}"
    );
    bd.expire_tokens(false);
    let text = refused_in_every_language(
        &s,
        ("baidu", "deny"),
        "Вход через Baidu отменён",
        "百度登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&baidu_yaml(&bd, "\"\""))).await;
}

#[tokio::test]
async fn baidu_emulator_refuses_what_baidu_refuses() {
    let bd = BaiduEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    bd.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |redirect: &str| {
        format!(
            "{}?response_type=code&client_id={}&redirect_uri={redirect}&scope=basic&state=s&user=zhaolei",
            bd.auth_url(),
            bd.client_id()
        )
    };
    let r = c.get(auth("http://evil.example/cb")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));
    let code = || async {
        let r = c.get(auth(back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, redirect: &'static str| {
        c.get(format!("{}/oauth/2.0/token", bd.base_url()))
            .query(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("client_id", bd.client_id()),
                ("client_secret", bd.client_secret()),
                ("redirect_uri", redirect),
            ])
            .send()
    };
    let r = token(code().await, "http://127.0.0.1:9/other")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let first = code().await;
    let t: Value = token(first.clone(), back)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap().to_string();
    let again: Value = token(first, back).await.unwrap().json().await.unwrap();
    assert_eq!(again["error"], "invalid_grant", "a code is spent once");
    let info = |token: String| {
        c.get(format!("{}/rest/2.0/passport/users/getInfo", bd.base_url()))
            .query(&[("access_token", token)])
            .send()
    };
    let me: Value = info(access.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(me["openid"], bd.openid_of("zhaolei"));
    let r = info("forged".into()).await.unwrap();
    assert_eq!(r.status(), 200, "REST errors come with HTTP 200");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], 110);
    bd.revoke_tokens();
    let e: Value = info(access).await.unwrap().json().await.unwrap();
    assert_eq!(e["error_code"], 110);
}

// ---- The login page with many providers ----------------------------------------------------

/// Provider entries for `types` (no upstream is contacted to render the page).
fn many_providers(types: &[&str]) -> String {
    let mut yaml = String::new();
    for t in types {
        // Alipay's secret is an RSA private key and it needs Alipay's public key: any two
        // valid keys render the page.
        let (secret, alipay) = if *t == "alipay" {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            use tessera_testkit::emulators::alipay::UNKNOWN_PRIVATE_KEY;
            let other = rsa::RsaPrivateKey::from_pkcs8_pem(ALIPAY_APP_KEY)
                .unwrap()
                .to_public_key()
                .to_public_key_pem(Default::default())
                .unwrap();
            (
                serde_json::to_string(UNKNOWN_PRIVATE_KEY).unwrap(),
                format!(
                    "            alipay_public_key: {}\n",
                    serde_json::to_string(&other).unwrap()
                ),
            )
        } else if *t == "telegram" {
            // The Login Widget's secret is the bot token, of the bot `client_id` names.
            (
                tessera_testkit::emulators::telegram::BOT_TOKEN.to_string(),
                String::new(),
            )
        } else {
            ("s".to_string(), String::new())
        };
        // A Telegram client id is the bot's numeric id.
        let client_id = if t.starts_with("telegram") {
            "7712345678".to_string()
        } else {
            format!("c-{t}")
        };
        yaml.push_str(&format!(
            "          - id: {t}\n            provider: {t}\n            client_id: \"{client_id}\"\n            client_secret: {secret}\n            wecom_agent_id: \"1000002\"\n            odnoklassniki_application_key: CBA\n{alipay}            mapper_url: base64://{}\n",
            b64(WEIBO_MAPPER)
        ));
    }
    yaml
}

/// A valid RSA key for the page-only Alipay entry (the emulator's app key).
const ALIPAY_APP_KEY: &str = include_str!("../../../emulators/src/alipay_keys/app_private.pem");

/// The hosted login page's HTML in `lang`.
async fn login_page(s: &TestServer, lang: &str) -> String {
    let b = Browser::default();
    let r = b
        .get(&format!("{}/self-service/login/browser", s.public), false)
        .await;
    assert_eq!(r.status(), 303);
    b.get(&format!("{}&ui_locales={lang}", location(&r)), false)
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn many_providers_fold_behind_a_more_options_disclosure() {
    // Every issue-17 type at once (and GitHub): the page stays usable at 360 px.
    let types = [
        "wechat",
        "wecom",
        "qq",
        "weibo",
        "baidu",
        "odnoklassniki",
        "mailru",
        "yandex",
        "feishu",
        "lark",
        "douyin",
        "alipay",
        "telegram_oidc",
        "telegram",
        "github",
    ];
    let s = TestServer::start(Backend::Sqlite, &config(&many_providers(&types))).await;
    for (lang, summary) in [
        ("en", "More options (11)"),
        ("zh-CN", "更多登录方式（11）"),
        ("ru", "Другие способы входа (11)"),
    ] {
        let page = login_page(&s, lang).await;
        assert_eq!(
            page.matches("<details class=\"more-options\">").count(),
            1,
            "{page}"
        );
        assert!(page.contains(summary), "{lang}: {page}");
        let (before, after) = page.split_once("<details").unwrap();
        for (i, t) in types.iter().enumerate() {
            let button = format!("name=\"provider\" value=\"{t}\"");
            let in_view = before.contains(&button);
            let folded = after.contains(&button);
            assert!(in_view != folded, "{lang}: `{t}` once, in view or folded");
            assert_eq!(
                in_view,
                i < 4,
                "{lang}: `{t}` (the first four stay in view)"
            );
        }
    }
    // A folded provider's button works like any other.
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "baidu", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with("https://openapi.baidu.com/oauth/2.0/authorize?"),
        "{authorize}"
    );
    // At 360 px in a real browser: no sideways scrolling, the disclosure opens; screenshots.
    let shots = tessera_testkit::browser::screenshot_dir("more-options");
    tessera_testkit::browser::run_script("more-options.mjs", &s.public, &[], &shots, &[]).await;
    for lang in ["en", "zh-CN", "ru"] {
        assert!(
            shots
                .join(format!("more-options-{lang}-open-360.png"))
                .is_file()
        );
    }
}

#[tokio::test]
async fn a_few_providers_stay_in_view() {
    // Five buttons: folding one would save nothing.
    let types = ["wechat", "wecom", "qq", "weibo", "baidu"];
    let s = TestServer::start(Backend::Sqlite, &config(&many_providers(&types))).await;
    let page = login_page(&s, "en").await;
    assert!(!page.contains("more-options"), "{page}");
    for t in types {
        assert!(
            page.contains(&format!("name=\"provider\" value=\"{t}\"")),
            "{t}"
        );
    }
}

// ---- Douyin --------------------------------------------------------------------------------

/// `tessera demo`'s Douyin mapper, the one docs/providers/douyin.md shows.
const DOUYIN_MAPPER: &str = include_str!("../../demo/douyin.jsonnet");

fn douyin_yaml(dy: &DouyinEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: douyin\n            provider: douyin\n            label: Douyin\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        dy.client_id(),
        dy.auth_url(),
        dy.base_url(),
        b64(DOUYIN_MAPPER)
    )
}

async fn douyin_server(
    backend: Backend,
    dy: &DouyinEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(backend, &config(&douyin_yaml(dy, secret, extra))).await;
    dy.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/douyin",
        s.public
    ));
    s
}

each_backend!(douyin_sign_up_fills_the_email_then_signs_in_again);
async fn douyin_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let dy = DouyinEmulator::start().await;
    let s = douyin_server(backend, &dy, dy.client_secret(), "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "douyin", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&dy.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "client_key").as_deref(),
        Some(dy.client_id())
    );
    assert!(
        param(&authorize, "client_id").is_none(),
        "Douyin names it client_key"
    );
    assert_eq!(param(&authorize, "scope").as_deref(), Some("user_info"));
    let (me, ids) = sign_up_giving_an_email(&s, ("douyin", "xiaolu"), "xiaolu@example.cn").await;
    assert_eq!(ids, json!([format!("douyin:{}", dy.open_id_of("xiaolu"))]));
    assert_eq!(me["traits"]["name"]["first"], "小鹿");
    assert_eq!(
        me["metadata_public"]["douyin_union_id"],
        dy.union_id_of("xiaolu")
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "douyin", "xiaolu").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn douyin_subject_is_the_union_id_when_asked() {
    let dy = DouyinEmulator::start().await;
    let s = douyin_server(
        Backend::Sqlite,
        &dy,
        dy.client_secret(),
        "            subject_source: union_id\n",
    )
    .await;
    let (_, ids) = sign_up_giving_an_email(&s, ("douyin", "ajie"), "ajie@example.cn").await;
    assert_eq!(ids, json!([format!("douyin:{}", dy.union_id_of("ajie"))]));
    let err = start_error(&config(&douyin_yaml(
        &dy,
        dy.client_secret(),
        "            subject_source: email\n",
    )))
    .await;
    assert!(err.contains("providers.0.subject_source"), "{err}");
    assert_needs_a_secret(&config(&douyin_yaml(&dy, "\"\"", ""))).await;
}

#[tokio::test]
async fn douyin_errors_inside_data_are_clear_localised_messages() {
    let dy = DouyinEmulator::start().await;
    let s = douyin_server(Backend::Sqlite, &dy, "not-the-secret", "").await;
    let text = refused_in_every_language(
        &s,
        ("douyin", "xiaolu"),
        "Вход через Douyin отклонён",
        "抖音拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Douyin refused the sign-in") && text.contains("Douyin error 10013"),
        "{text}"
    );
    let s = douyin_server(Backend::Sqlite, &dy, dy.client_secret(), "").await;
    dy.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("douyin", "xiaolu"),
        "Вход через Douyin отклонён",
        "抖音拒绝了此次登录",
    )
    .await;
    assert!(text.contains("Douyin error 10007"), "{text}");
    let text = refused_in_every_language(
        &s,
        ("douyin", "deny"),
        "Вход через Douyin отменён",
        "抖音登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn douyin_emulator_refuses_what_douyin_refuses() {
    let dy = DouyinEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    dy.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |redirect: &str| {
        format!(
            "{}?client_key={}&response_type=code&scope=user_info&redirect_uri={redirect}&state=s&user=xiaolu",
            dy.auth_url(),
            dy.client_id()
        )
    };
    let r = c.get(auth("http://evil.example/cb")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("redirect_uri"));
    let r = c.get(auth(back)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&location(&r), "code").unwrap();
    let token = |code: &str| {
        c.post(format!("{}/oauth/access_token/", dy.base_url()))
            .form(&[
                ("client_key", dy.client_id()),
                ("client_secret", dy.client_secret()),
                ("code", code),
                ("grant_type", "authorization_code"),
            ])
            .send()
    };
    let r = token(&code).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["data"]["error_code"], 0);
    let access = t["data"]["access_token"].as_str().unwrap().to_string();
    let again: Value = token(&code).await.unwrap().json().await.unwrap();
    assert_eq!(again["data"]["error_code"], 10007, "a code is spent once");
    let info = |token: &str, open_id: &str| {
        c.post(format!("{}/oauth/userinfo/", dy.base_url()))
            .form(&[("access_token", token), ("open_id", open_id)])
            .send()
    };
    let other = dy.open_id_of("ajie");
    let e: Value = info(&access, &other).await.unwrap().json().await.unwrap();
    assert_eq!(e["err_no"], 28001008, "another person's open_id");
    dy.revoke_tokens();
    let r = info(&access, &dy.open_id_of("xiaolu")).await.unwrap();
    assert_eq!(r.status(), 200, "errors come with HTTP 200");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["err_no"], 28001003);
}
