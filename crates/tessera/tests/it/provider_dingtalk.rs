//! The `dingtalk` provider type end to end, against the DingTalk emulator (tessera-emulators, through tessera-testkit)
//! (same paths, `authCode` callback, camelCase JSON and `{code, message, requestid}` errors as
//! DingTalk): sign-up, sign-in into the same identity, fill-the-gaps when DingTalk has no email,
//! DingTalk's error answers shown on the flow, scopes DingTalk does not have refused at start,
//! and the emulator's own refusals.

use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::dingtalk::{CORP_ID, DingtalkEmulator, LINA, OLGA, ZHANGWEI};
use tessera_testkit::journey::{flow_id_of, flow_json, location, whoami};
use tessera_testkit::{Backend, Browser, TestServer, csrf_of, each_backend};

/// Email only when DingTalk has one (it never says whether it is verified, so this is a
/// site's choice), the nick as the name, the unionId and corpId as metadata.
const MAPPER: &str = r#"local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: {
      dingtalk_union_id: claims.raw_claims.unionId,
      [if 'corpId' in claims.raw_claims then 'dingtalk_corp_id' else null]: claims.raw_claims.corpId,
      [if 'phone_number' in claims then 'phone' else null]: claims.phone_number,
    },
  },
}
"#;

fn provider_yaml(dt: &DingtalkEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: dingtalk\n            provider: dingtalk\n            label: DingTalk\n            client_id: {}\n            client_secret: {secret}\n            mapper_url: base64://{}\n            auth_url: {}\n            api_base_url: {}\n{extra}",
        dt.client_id(),
        base64::engine::general_purpose::STANDARD.encode(MAPPER),
        dt.auth_url(),
        dt.base_url(),
    )
}

fn config(providers: &str) -> String {
    format!(
        "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n"
    )
}

async fn server_with(
    backend: Backend,
    dt: &DingtalkEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(backend, &config(&provider_yaml(dt, secret, extra))).await;
    dt.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/dingtalk",
        s.public
    ));
    s
}

async fn server(dt: &DingtalkEmulator) -> TestServer {
    server_with(Backend::Sqlite, dt, dt.client_secret(), "").await
}

/// Opens a browser flow and presses "Sign in with DingTalk"; returns the upstream URL.
async fn press_dingtalk(b: &Browser, s: &TestServer, kind: &str) -> String {
    tessera_testkit::journey::press_provider(
        b,
        s,
        kind,
        "dingtalk",
        "https://app.example.com/after",
    )
    .await
}

/// A whole browser sign-in as `user`; returns the callback's final response.
async fn sign_in(b: &Browser, s: &TestServer, kind: &str, user: &str) -> reqwest::Response {
    let authorize = press_dingtalk(b, s, kind).await;
    let r = b.get(&format!("{authorize}&user={user}"), false).await;
    assert_eq!(r.status(), 302, "the emulator answered {}", r.status());
    let callback = location(&r);
    assert!(callback.contains("authCode="), "{callback}");
    b.get(&callback, false).await
}

async fn identities(s: &TestServer) -> Vec<Value> {
    reqwest::get(format!("{}/admin/identities", s.admin))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json")
}

async fn oidc_identifiers(s: &TestServer, id: &str) -> Value {
    let full: Value = reqwest::get(format!(
        "{}/admin/identities/{id}?include_credential=oidc",
        s.admin
    ))
    .await
    .expect("admin")
    .json()
    .await
    .expect("json");
    full["credentials"]["oidc"]["identifiers"].clone()
}

each_backend!(dingtalk_sign_up_then_sign_in_again_into_the_same_identity);
async fn dingtalk_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let dt = DingtalkEmulator::start().await;
    let s = server_with(
        backend,
        &dt,
        dt.client_secret(),
        "            scope: [openid, corpid]\n",
    )
    .await;
    let b = Browser::default();
    let authorize = press_dingtalk(&b, &s, "login").await;
    let u = url::Url::parse(&authorize).expect("authorize URL");
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(u.path(), "/oauth2/auth");
    assert_eq!(q["scope"], "openid corpid");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["response_type"], "code");
    assert!(
        !q.contains_key("nonce") && !q.contains_key("code_challenge"),
        "{authorize}"
    );

    let r = b
        .get(&format!("{authorize}&user={}", ZHANGWEI.key), false)
        .await;
    let r = b.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after", "{backend:?}");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "zhangwei@example.cn");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "张伟");
    assert_eq!(
        me["identity"]["metadata_public"],
        json!({"dingtalk_union_id": ZHANGWEI.union_id, "dingtalk_corp_id": CORP_ID, "phone": "+8613800138000"})
    );
    let id = me["identity"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("dingtalk:{}", ZHANGWEI.open_id)])
    );

    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", ZHANGWEI.key).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    assert_eq!(dt.token_requests(), 2);
}

#[tokio::test]
async fn union_id_as_subject_and_a_cyrillic_name() {
    let dt = DingtalkEmulator::start().await;
    let s = server_with(
        Backend::Sqlite,
        &dt,
        dt.client_secret(),
        "            subject_source: union_id\n",
    )
    .await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", OLGA.key).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Ольга Иванова");
    assert!(
        me["identity"]["metadata_public"]
            .get("dingtalk_corp_id")
            .is_none()
    );
    let id = me["identity"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("dingtalk:{}", OLGA.union_id)])
    );
}

#[tokio::test]
async fn a_missing_email_is_asked_for_then_signs_straight_in() {
    let dt = DingtalkEmulator::start().await;
    let s = server(&dt).await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", LINA.key).await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "registration", &flow_id_of(&loc)).await;
    let nodes = flow["ui"]["nodes"].as_array().expect("nodes");
    let name = nodes
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.name.first")
        .expect("a name field");
    assert_eq!(name["attributes"]["value"], "李娜", "mapped value kept");
    assert!(identities(&s).await.is_empty());
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[
                ("csrf_token", &csrf_of(&flow)),
                ("provider", "dingtalk"),
                ("traits.email", "lina@filled.example"),
            ],
            false,
        )
        .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "lina@filled.example");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "李娜");

    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", LINA.key).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(
        whoami(&b2, &s).await["identity"]["id"],
        me["identity"]["id"]
    );
}

#[tokio::test]
async fn dingtalk_errors_are_shown_on_the_flow() {
    let dt = DingtalkEmulator::start().await;
    let s = server_with(Backend::Sqlite, &dt, "not-the-secret", "").await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", ZHANGWEI.key).await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "login", &flow_id_of(&loc)).await;
    let text = flow["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains(
            "DingTalk refused the sign-in: invalidClientIdOrSecret — 无效的clientId或者clientSecret"
        ),
        "{flow}"
    );
    assert!(whoami(&b, &s).await.get("identity").is_none());
    assert!(identities(&s).await.is_empty());
    let page = b.get(&loc, false).await.text().await.expect("page");
    assert!(page.contains("invalidClientIdOrSecret"), "{page}");
}

#[tokio::test]
async fn scopes_dingtalk_does_not_have_are_refused_at_start() {
    let dt = DingtalkEmulator::start().await;
    let dir = tessera_testkit::temp_dir();
    let yaml = format!(
        "dsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n{}",
        config(&provider_yaml(
            &dt,
            dt.client_secret(),
            "            scope: [openid, contact]\n"
        ))
    );
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("scope:"))
        .expect("a scope line")
        + 1;
    let path = dir.join("tessera.yml");
    std::fs::write(&path, &yaml).expect("write");
    let loaded = tessera_config::load(&[path], &Default::default()).expect("loads");
    let settings = tessera_config::resolve(&loaded, true, None).expect("resolves");
    let err = match tessera_server::app::build_engine_with(
        settings,
        true,
        Some(tessera_testkit::tessera_bin()),
    )
    .await
    {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    };
    for needle in [
        "providers.0.scope".to_string(),
        format!("tessera.yml:{line}"),
        "provider `dingtalk`".into(),
        "`openid` or `openid corpid`".into(),
    ] {
        assert!(err.contains(&needle), "`{needle}` in:\n{err}");
    }
}

// ---- the emulator itself refuses what DingTalk refuses -------------------------------------

fn authorize_url(dt: &DingtalkEmulator, redirect_uri: &str) -> url::Url {
    let mut u = url::Url::parse(&dt.auth_url()).expect("url");
    u.query_pairs_mut()
        .append_pair("client_id", dt.client_id())
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st")
        .append_pair("prompt", "consent")
        .append_pair("user", ZHANGWEI.key);
    u
}

async fn token(dt: &DingtalkEmulator, body: Value) -> (u16, Value) {
    let r = TestServer::client()
        .post(dt.token_url())
        .json(&body)
        .send()
        .await
        .expect("token");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn the_emulator_refuses_reused_codes_wrong_redirect_uris_and_secrets() {
    let dt = DingtalkEmulator::start().await;
    let cb = "http://127.0.0.1:1/callback";
    dt.register_redirect_uri(cb);
    let c = TestServer::client();

    // Without a pick, a person chooses on the consent page.
    let mut page_url = authorize_url(&dt, cb);
    let pairs: Vec<(String, String)> = page_url
        .query_pairs()
        .filter(|(k, _)| k != "user")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    page_url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = c.get(page_url).send().await.expect("consent page");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("html");
    for u in [ZHANGWEI, LINA, OLGA] {
        assert!(
            html.contains(u.nick) && html.contains(&format!("user={}", u.key)),
            "{html}"
        );
    }

    // Another redirect_uri: an error page, no redirect.
    let r = c
        .get(authorize_url(&dt, "https://evil.example/cb"))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 400);
    assert!(location(&r).is_empty());

    let r = c
        .get(authorize_url(&dt, cb))
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), 302);
    let back = url::Url::parse(&location(&r)).expect("redirect");
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "authCode")
        .map(|(_, v)| v.into_owned())
        .expect("authCode");
    let body = json!({"clientId": dt.client_id(), "clientSecret": dt.client_secret(), "code": code, "grantType": "authorization_code"});

    // A wrong secret does not burn the code.
    let mut wrong = body.clone();
    wrong["clientSecret"] = json!("nope");
    let (status, e) = token(&dt, wrong).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (400, Some("invalidClientIdOrSecret"))
    );
    assert!(
        e["requestid"].is_string() && e["message"].is_string(),
        "{e}"
    );

    let (status, t) = token(&dt, body.clone()).await;
    assert_eq!(status, 200, "{t}");
    assert!(t.get("corpId").is_none(), "no corpid scope, no corpId");
    let me: Value = c
        .get(format!("{}/v1.0/contact/users/me", dt.base_url()))
        .header(
            "x-acs-dingtalk-access-token",
            t["accessToken"].as_str().expect("token"),
        )
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["openId"], ZHANGWEI.open_id);
    assert_eq!(me["nick"], "张伟");

    // Reused.
    let (status, e) = token(&dt, body).await;
    assert_eq!((status, e["code"].as_str()), (400, Some("invalidAuthCode")));

    // No token, no profile.
    let r = c
        .get(format!("{}/v1.0/contact/users/me", dt.base_url()))
        .header("x-acs-dingtalk-access-token", "forged")
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 401);
}
