//! Kratos's hooks end to end: `web_hook` against a scripted sink (refusing, rewriting,
//! failing, hanging, answering garbage, authenticating, and what `ctx` holds) and
//! `revoke_active_sessions`. A refused or failed interrupting hook leaves nothing written, on
//! both backends.

use serde_json::{Value, json};
use tessera_testkit::config::base64_url;
use tessera_testkit::journey;
use tessera_testkit::webhook_sink::{Reply, WebhookSink};
use tessera_testkit::{Backend, Browser, Config, TestServer, each_backend};

const PASSWORD: &str = "correct horse battery staple";
/// Kratos's documented example body: the whole `ctx`.
const WHOLE_CTX: &str = "function(ctx) ctx";
const EMAIL_ONLY: &str = "function(ctx) { email: ctx.identity.traits.email }";

pub(crate) fn hook(url: &str, body: &str, extra: Value) -> Value {
    let mut config = json!({"url": url, "method": "POST", "body": base64_url(body)});
    tessera_testkit::config::merge(&mut config, extra);
    json!({"hook": "web_hook", "config": config})
}

/// Registration by password runs `hooks` (after the session hook).
fn registration_hooks(hooks: Vec<Value>) -> Config {
    let mut list = vec![json!({"hook": "session"})];
    list.extend(hooks);
    Config::new().with(json!({"selfservice": {"flows": {"registration": {"after": {
        "password": {"hooks": list}
    }}}}}))
}

pub(crate) async fn identity_count(s: &TestServer) -> usize {
    let list: Value = TestServer::client()
        .get(format!("{}/admin/identities", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array().expect("a list").len()
}

/// Submits an API registration; returns (status, body).
async fn try_register(s: &TestServer, email: &str) -> (u16, Value, String) {
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = flow["id"].as_str().unwrap().to_string();
    let r = c
        .post(format!("{}/self-service/registration?flow={id}", s.public))
        .header("user-agent", "hooks-test/1.0")
        .header("accept-language", "ru")
        .header("authorization", "Bearer must-not-leak")
        .json(&json!({"method": "password", "traits": {"email": email}, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap(), id)
}

/// Kratos's refusal answer with one message (id 4777001) on `traits.email` (or the form, in a
/// flow without that field).
pub(crate) fn refusal(text: &str) -> Reply {
    Reply::json(
        400,
        json!({"messages": [{
            "instance_ptr": "#/traits/email",
            "messages": [{"id": 4_777_001, "text": text, "type": "error", "context": {"domain": "blocked.example"}}]
        }]}),
    )
}

async fn an_interrupting_hook_refuses_a_registration(backend: Backend) {
    let sink = WebhookSink::start().await;
    sink.answer("/check", refusal("This domain may not sign up."));
    let s = TestServer::start(
        backend,
        registration_hooks(vec![hook(
            &sink.url("/check"),
            EMAIL_ONLY,
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let (status, flow, id) = try_register(&s, "ann@blocked.example").await;
    assert_eq!(status, 400, "{flow}");
    let email = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .expect("the email node");
    assert_eq!(email["messages"][0]["id"], 4_777_001, "{flow}");
    assert_eq!(email["messages"][0]["text"], "This domain may not sign up.");
    assert_eq!(email["messages"][0]["context"]["domain"], "blocked.example");
    assert_eq!(identity_count(&s).await, 0, "nothing is written");
    assert_eq!(
        sink.calls("/check")[0].json(),
        json!({"email": "ann@blocked.example"})
    );

    // The flow stays usable: once the hook agrees, the same flow completes.
    sink.answer("/check", Reply::json(200, json!({})));
    let r = TestServer::client()
        .post(format!("{}/self-service/registration?flow={id}", s.public))
        .json(&json!({"method": "password", "traits": {"email": "ann@fine.example"}, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(identity_count(&s).await, 1);
}

async fn a_parsing_hook_rewrites_traits_and_metadata(backend: Backend) {
    let sink = WebhookSink::start().await;
    sink.answer(
        "/enrich",
        Reply::json(
            200,
            json!({"identity": {
                "traits": {"email": "rewritten@example.com"},
                "metadata_public": {"plan": "gold"},
                "metadata_admin": {"crm_id": 42}
            }}),
        ),
    );
    let s = TestServer::start(
        backend,
        registration_hooks(vec![hook(
            &sink.url("/enrich"),
            EMAIL_ONLY,
            json!({"response": {"parse": true}}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s, "original@example.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["traits"]["email"], "rewritten@example.com");
    let id = body["identity"]["id"].as_str().unwrap();
    let stored: Value = TestServer::client()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["traits"]["email"], "rewritten@example.com");
    assert_eq!(stored["metadata_public"]["plan"], "gold");
    assert_eq!(stored["metadata_admin"]["crm_id"], 42);
    // The identifier follows the rewritten trait.
    assert_eq!(s.login("rewritten@example.com", PASSWORD).await.0, 200);
    assert_eq!(s.login("original@example.com", PASSWORD).await.0, 400);
}

async fn a_parsing_hook_cannot_break_the_schema(backend: Backend) {
    let sink = WebhookSink::start().await;
    sink.answer(
        "/enrich",
        Reply::json(200, json!({"identity": {"traits": {"email": 12}}})),
    );
    let s = TestServer::start(
        backend,
        registration_hooks(vec![hook(
            &sink.url("/enrich"),
            EMAIL_ONLY,
            json!({"response": {"parse": true}}),
        )]),
    )
    .await;
    let (status, flow, _) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 400, "{flow}");
    assert!(flow.to_string().contains("4000"), "{flow}");
    assert_eq!(identity_count(&s).await, 0);
}

async fn an_interrupting_hook_answering_garbage_fails_cleanly(backend: Backend) {
    let sink = WebhookSink::start().await;
    sink.answer("/garbage", Reply::text(403, "<html>forbidden</html>"));
    let s = TestServer::start(
        backend,
        registration_hooks(vec![hook(
            &sink.url("/garbage"),
            EMAIL_ONLY,
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 503, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("HTTP 403")
            && reason.contains("messages")
            && reason.contains("Nothing was saved"),
        "{body}"
    );
    assert_eq!(identity_count(&s).await, 0);
    // A 2xx answer that a parsing hook cannot read fails the same way.
    sink.answer("/garbage", Reply::text(200, "not json"));
    let s2 = TestServer::start(
        backend,
        registration_hooks(vec![hook(
            &sink.url("/garbage"),
            EMAIL_ONLY,
            json!({"response": {"parse": true}}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s2, "ann@example.com").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(identity_count(&s2).await, 0);
}

each_backend!(
    an_interrupting_hook_refuses_a_registration,
    a_parsing_hook_rewrites_traits_and_metadata,
    a_parsing_hook_cannot_break_the_schema,
    an_interrupting_hook_answering_garbage_fails_cleanly,
);

#[tokio::test]
async fn a_hanging_interrupting_hook_times_out_with_nothing_written() {
    let sink = WebhookSink::start().await;
    sink.answer("/slow", Reply::Hang);
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![hook(
            &sink.url("/slow"),
            EMAIL_ONLY,
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("did not answer within"),
        "{body}"
    );
    assert_eq!(identity_count(&s).await, 0);
}

#[tokio::test]
async fn a_fire_and_forget_hook_that_fails_does_not_stop_the_flow_and_is_retried() {
    let sink = WebhookSink::start().await;
    sink.answer("/notify", Reply::text(500, "down"));
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![hook(
            &sink.url("/notify"),
            EMAIL_ONLY,
            json!({"response": {"ignore": true}}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(identity_count(&s).await, 1);
    // Three attempts in all, then it gives up.
    let calls = sink.wait_for("/notify", 3).await;
    assert!(
        calls
            .iter()
            .all(|c| c.json() == json!({"email": "ann@example.com"}))
    );
}

#[tokio::test]
async fn auth_and_configured_headers_reach_the_target() {
    let sink = WebhookSink::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![
            hook(
                &sink.url("/key"),
                EMAIL_ONLY,
                json!({
                    "headers": {"X-Tenant": "acme"},
                    "auth": {"type": "api_key", "config": {"name": "X-Api-Key", "value": "k-123", "in": "header"}}
                }),
            ),
            hook(
                &sink.url("/cookie"),
                EMAIL_ONLY,
                json!({"auth": {"type": "api_key", "config": {"name": "hook_key", "value": "c-456", "in": "cookie"}}}),
            ),
            hook(
                &sink.url("/basic"),
                EMAIL_ONLY,
                json!({"auth": {"type": "basic_auth", "config": {"user": "kratos", "password": "s3cret"}}}),
            ),
        ]),
    )
    .await;
    let (status, body, _) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 200, "{body}");
    let key = sink.wait_for("/key", 1).await;
    assert_eq!(key[0].header("x-api-key"), Some("k-123"));
    assert_eq!(key[0].header("x-tenant"), Some("acme"));
    assert_eq!(key[0].header("content-type"), Some("application/json"));
    let cookie = sink.wait_for("/cookie", 1).await;
    assert_eq!(cookie[0].header("cookie"), Some("hook_key=c-456"));
    let basic = sink.wait_for("/basic", 1).await;
    // base64("kratos:s3cret")
    assert_eq!(
        basic[0].header("authorization"),
        Some("Basic a3JhdG9zOnMzY3JldA==")
    );
}

#[tokio::test]
async fn ctx_has_what_kratos_documents_and_no_secrets() {
    let sink = WebhookSink::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![hook(
            &sink.url("/ctx"),
            WHOLE_CTX,
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let (status, body, flow_id) = try_register(&s, "ann@example.com").await;
    assert_eq!(status, 200, "{body}");
    let call = &sink.calls("/ctx")[0];
    let ctx = call.json();
    assert_eq!(ctx["flow"]["id"], flow_id.as_str());
    assert_eq!(ctx["flow"]["type"], "api");
    assert_eq!(ctx["identity"]["traits"]["email"], "ann@example.com");
    assert_eq!(
        ctx["identity"]["id"], body["identity"]["id"],
        "the id that is saved"
    );
    assert_eq!(ctx["request_method"], "POST");
    assert_eq!(
        ctx["request_url"],
        format!("{}/self-service/registration?flow={flow_id}", s.public)
    );
    assert_eq!(
        ctx["request_headers"]["User-Agent"],
        json!(["hooks-test/1.0"])
    );
    assert_eq!(ctx["request_headers"]["Accept-Language"], json!(["ru"]));
    assert!(ctx["request_cookies"].is_object());
    // Kratos omits the session before it exists; credentials, passwords and tokens never go.
    assert!(ctx.get("session").is_none(), "{ctx}");
    assert!(ctx["identity"].get("credentials").is_none(), "{ctx}");
    let text = String::from_utf8_lossy(&call.body);
    for secret in [PASSWORD, "must-not-leak", "Authorization", "$argon2"] {
        assert!(!text.contains(secret), "`{secret}` leaked into ctx: {text}");
    }
    let token = body["session_token"].as_str().unwrap();
    assert!(!text.contains(token));
}

#[tokio::test]
async fn browser_ctx_never_carries_the_session_or_csrf_cookie() {
    let sink = WebhookSink::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        Config::new().session_hook(&["password"]).with(
            json!({"selfservice": {"flows": {"settings": {"before": {"hooks": [
                hook(&sink.url("/settings"), WHOLE_CTX, json!({}))
            ]}}}}}),
        ),
    )
    .await;
    let b = Browser::default();
    let flow = journey::open_flow(&b, &s, "registration").await;
    let r = journey::submit(
        &b,
        &flow,
        &[
            ("method", "password"),
            ("traits.email", "ann@example.com"),
            ("password", PASSWORD),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let session_cookie = b.cookie("tessera_session").expect("signed in");
    let settings = journey::open_flow(&b, &s, "settings").await;
    assert!(settings["id"].is_string(), "{settings}");
    let call = &sink.wait_for("/settings", 1).await[0];
    let ctx = call.json();
    let text = String::from_utf8_lossy(&call.body);
    assert!(
        !text.contains(&session_cookie),
        "the session cookie leaked: {text}"
    );
    assert!(
        !ctx["request_cookies"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("csrf") || k.contains("session")),
        "{ctx}"
    );
    // A settings `before` hook sees the session (Kratos), without its token.
    assert_eq!(
        ctx["session"]["identity"]["traits"]["email"],
        "ann@example.com"
    );
    assert_eq!(ctx["request_method"], "GET");
}

#[tokio::test]
async fn the_hosted_page_shows_a_refusal_in_chinese() {
    let sink = WebhookSink::start().await;
    sink.answer("/check", refusal("此邮箱域名不允许注册"));
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![hook(
            &sink.url("/check"),
            EMAIL_ONLY,
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let b = Browser::default();
    let r = b
        .get(
            &format!(
                "{}/self-service/registration/browser?ui_locales=zh-CN",
                s.public
            ),
            false,
        )
        .await;
    let page = r.headers()["location"].to_str().unwrap().to_string();
    let _ = b.get(&page, false).await;
    let flow = journey::open_flow(&b, &s, "registration").await;
    let r = journey::submit(
        &b,
        &flow,
        &[
            ("method", "password"),
            ("traits.email", "ann@blocked.example"),
            ("password", PASSWORD),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let html = b.get(&back, false).await.text().await.unwrap();
    assert!(html.contains("<html lang=\"zh-CN\">"), "{html}");
    assert!(html.contains("此邮箱域名不允许注册"), "{html}");
    assert_eq!(identity_count(&s).await, 0);
}

#[tokio::test]
async fn a_login_hook_can_refuse_and_revoke_active_sessions_ends_the_others() {
    let sink = WebhookSink::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        Config::new().with(json!({"selfservice": {"flows": {"login": {"after": {"password": {"hooks": [
            {"hook": "revoke_active_sessions"},
            hook(&sink.url("/login"), "function(ctx) { id: ctx.identity.id }", json!({"can_interrupt": true}))
        ]}}}}}})),
    )
    .await;
    s.register("ann@example.com", PASSWORD).await;
    let (status, first) = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{first}");
    let first_token = first["session_token"].as_str().unwrap().to_string();
    let (status, second) = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{second}");
    let second_token = second["session_token"].as_str().unwrap().to_string();
    assert_eq!(
        s.whoami(&first_token).await.0,
        401,
        "the older session was revoked"
    );
    assert_eq!(s.whoami(&second_token).await.0, 200);

    // Refused: no session is issued, and the sessions there are stay.
    sink.answer(
        "/login",
        Reply::json(403, json!({"messages": [{"instance_ptr": "#/", "messages": [{"id": 4_777_002, "text": "Account locked by the app.", "type": "error"}]}]})),
    );
    let (status, flow) = s.login("ann@example.com", PASSWORD).await;
    assert_eq!(status, 400, "{flow}");
    assert_eq!(
        flow["ui"]["messages"][0]["text"],
        "Account locked by the app."
    );
    assert_eq!(s.whoami(&second_token).await.0, 200);
}

#[tokio::test]
async fn a_before_hook_can_refuse_to_start_a_flow() {
    let sink = WebhookSink::start().await;
    sink.answer("/before", refusal("Registrations are closed."));
    let s = TestServer::start(
        Backend::Sqlite,
        Config::new().with(json!({"selfservice": {"flows": {"registration": {"before": {"hooks": [
            hook(&sink.url("/before"), "function(ctx) { flow: ctx.flow.id }", json!({"can_interrupt": true}))
        ]}}}}})),
    )
    .await;
    let r = TestServer::client()
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.to_string().contains("Registrations are closed."),
        "{body}"
    );
    assert!(sink.calls("/before")[0].json()["flow"].is_string());
}

#[tokio::test]
async fn a_settings_hook_refusal_changes_nothing() {
    let sink = WebhookSink::start().await;
    sink.answer("/profile", refusal("That address is reserved."));
    let s = TestServer::start(
        Backend::Sqlite,
        Config::new().with(json!({"selfservice": {"flows": {"settings": {"after": {"profile": {"hooks": [
            hook(&sink.url("/profile"), "function(ctx) { email: ctx.identity.traits.email, who: ctx.session.identity.id }", json!({"can_interrupt": true}))
        ]}}}}}})),
    )
    .await;
    s.register("ann@example.com", PASSWORD).await;
    let (_, login) = s.login("ann@example.com", PASSWORD).await;
    let token = login["session_token"].as_str().unwrap();
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/settings/api", s.public))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = flow["id"].as_str().unwrap();
    let r = c
        .post(format!("{}/self-service/settings?flow={id}", s.public))
        .header("X-Session-Token", token)
        .json(&json!({"method": "profile", "traits": {"email": "admin@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let call = &sink.calls("/profile")[0];
    assert_eq!(
        call.json()["email"],
        "admin@example.com",
        "the hook sees the change"
    );
    let (_, me) = s.whoami(token).await;
    assert_eq!(
        me["identity"]["traits"]["email"], "ann@example.com",
        "nothing changed"
    );
}

#[tokio::test]
async fn bad_web_hook_configurations_are_refused_at_start() {
    for (config, expected) in [
        (
            json!({"url": "ftp://hooks.example/x", "method": "POST"}),
            "http:// or https://",
        ),
        (json!({"url": "https://", "method": "POST"}), "host"),
        (
            json!({"url": "https://u:p@hooks.example/x", "method": "POST"}),
            "credentials",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "BREW"}),
            "HTTP method",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "POST", "response": {"ignore": true, "parse": true}}),
            "cannot also",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "POST", "body": "/etc/passwd"}),
            "file://",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "POST", "auth": {"type": "api_key", "config": {"name": "k"}}}),
            "auth",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "POST", "auth": {"type": "basic_auth", "config": {"user": "u", "password": "s3cret", "extra": 1}}}),
            "auth",
        ),
        (
            json!({"url": "https://hooks.example/x", "method": "POST", "body": base64_url("function(ctx) {")}),
            "body",
        ),
    ] {
        let doc = json!({
            "dsn": "memory",
            "secrets": {"default": ["test-secret-0123456789abcdef"]},
            "selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [
                {"hook": "web_hook", "config": config}
            ]}}}}},
        });
        let text = refusal_of(&doc).await;
        assert!(text.contains(expected), "{config}: {text}");
        assert!(
            text.contains("selfservice.flows.registration.after.password.hooks.0"),
            "{text}"
        );
        assert!(!text.contains("s3cret"));
    }
}

/// Loads a configuration as `serve` does (resolve, then fetch and compile what it names) and
/// returns why it was refused.
async fn refusal_of(doc: &Value) -> String {
    let loaded =
        match tessera_config::load_str("tessera.yml", &doc.to_string(), &Default::default()) {
            Ok(l) => l,
            Err(e) => return e.to_string(),
        };
    let settings = match tessera_config::resolve(&loaded, false, None) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let pool = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        tessera_testkit::tessera_bin(),
        tessera_mapper::worker_args(),
    ));
    match tessera_social::Social::build(&settings, pool).await {
        Ok(_) => panic!("accepted: {doc}"),
        Err(e) => e.to_string(),
    }
}

/// Social sign-in through the fake upstream, from a browser flow of `kind`; returns the
/// callback's answer.
async fn social(b: &Browser, s: &TestServer, kind: &str) -> reqwest::Response {
    use tessera_testkit::journey::{flow_id_of, flow_json, location};
    let r = b
        .get(&format!("{}/self-service/{kind}/browser", s.public), false)
        .await;
    let flow = flow_json(b, s, kind, &flow_id_of(&location(&r))).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[
                ("csrf_token", &tessera_testkit::csrf_of(&flow)),
                ("provider", "acme"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = b.get(&location(&r), false).await;
    assert_eq!(r.status(), 303, "the upstream answers");
    b.get(&location(&r), false).await
}

async fn social_registration_and_login_run_their_oidc_hooks(backend: Backend) {
    use tessera_testkit::fake_oidc::{FakeOidc, FakeOptions};
    use tessera_testkit::journey::{flow_id_of, flow_json, location, whoami};
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let sink = WebhookSink::start().await;
    sink.answer(
        "/oidc-signup",
        refusal("Social sign-up is closed for this domain."),
    );
    let mapper = "local c = std.extVar('claims'); { identity: { traits: { email: c.email } } }";
    let s = TestServer::start(
        backend,
        Config::new()
            .provider(json!({
                "id": "acme", "provider": "generic", "client_id": fake.client_id(),
                "client_secret": fake.client_secret(), "issuer_url": fake.issuer(),
                "mapper_url": base64_url(mapper), "scope": ["email"],
            }))
            .with(json!({"selfservice": {"flows": {
                "registration": {"after": {"oidc": {"hooks": [
                    {"hook": "session"},
                    hook(&sink.url("/oidc-signup"), "function(ctx) { email: ctx.identity.traits.email, flow: ctx.flow.id }", json!({"response": {"parse": true}}))
                ]}}},
                "login": {"after": {"oidc": {"hooks": [
                    hook(&sink.url("/oidc-login"), "function(ctx) { id: ctx.identity.id }", json!({"can_interrupt": true}))
                ]}}},
            }}})),
    )
    .await;
    let b = Browser::default();
    let r = social(&b, &s, "registration").await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    let flow = flow_json(&b, &s, "registration", &flow_id_of(&back)).await;
    assert!(
        flow.to_string()
            .contains("Social sign-up is closed for this domain."),
        "{flow}"
    );
    assert_eq!(identity_count(&s).await, 0, "nothing is written");
    assert_eq!(
        sink.calls("/oidc-signup")[0].json()["email"],
        "fake.user@example.com"
    );

    // Once the hook agrees (and adds metadata), the sign-up completes with its change.
    sink.answer(
        "/oidc-signup",
        Reply::json(
            200,
            json!({"identity": {"metadata_public": {"source": "hook"}}}),
        ),
    );
    let b = Browser::default();
    let r = social(&b, &s, "registration").await;
    assert_eq!(r.status(), 303);
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["metadata_public"]["source"], "hook", "{me}");

    // The login hook sees the identity and can refuse a social sign-in.
    sink.answer("/oidc-login", refusal("Signed out by the app."));
    let b = Browser::default();
    let r = social(&b, &s, "login").await;
    assert_eq!(r.status(), 303);
    assert!(whoami(&b, &s).await.get("identity").is_none());
    let login_call = &sink.calls("/oidc-login")[0];
    assert_eq!(login_call.json()["id"], me["identity"]["id"]);
}

async fn settings_password_change_revokes_other_sessions(backend: Backend) {
    let s = TestServer::start(
        backend,
        Config::new().with(
            json!({"selfservice": {"flows": {"settings": {"after": {"password": {"hooks": [
                {"hook": "revoke_active_sessions"}
            ]}}}}}}),
        ),
    )
    .await;
    s.register("ann@example.com", PASSWORD).await;
    let (_, other) = s.login("ann@example.com", PASSWORD).await;
    let other = other["session_token"].as_str().unwrap().to_string();
    let (_, mine) = s.login("ann@example.com", PASSWORD).await;
    let mine = mine["session_token"].as_str().unwrap().to_string();
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/settings/api", s.public))
        .header("X-Session-Token", &mine)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = flow["id"].as_str().unwrap();
    let r = c
        .post(format!("{}/self-service/settings?flow={id}", s.public))
        .header("X-Session-Token", &mine)
        .json(&json!({"method": "password", "password": "a whole new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.whoami(&other).await.0, 401, "the other session ended");
    assert_eq!(
        s.whoami(&mine).await.0,
        200,
        "the one that changed it stays"
    );
}

each_backend!(
    social_registration_and_login_run_their_oidc_hooks,
    settings_password_change_revokes_other_sessions,
);

#[tokio::test]
async fn a_template_can_cancel_its_call_and_a_failing_template_fails_cleanly() {
    let sink = WebhookSink::start().await;
    sink.answer("/never", refusal("should not be asked"));
    let s = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![
            hook(
                &sink.url("/never"),
                "function(ctx) if std.endsWith(ctx.identity.traits.email, '@internal.example') then error 'cancel' else { e: ctx.identity.traits.email }",
                json!({"can_interrupt": true}),
            ),
        ]),
    )
    .await;
    let (status, body, _) = try_register(&s, "ann@internal.example").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        sink.calls("/never").is_empty(),
        "a cancelled call is not made"
    );
    // Any other template error is a failure: nothing written.
    let (status, body, _) = try_register(&s, "bob@example.com").await;
    assert_eq!(status, 400, "the refusal still applies to others: {body}");
    let s2 = TestServer::start(
        Backend::Sqlite,
        registration_hooks(vec![hook(
            &sink.url("/never"),
            "function(ctx) error 'boom'",
            json!({"can_interrupt": true}),
        )]),
    )
    .await;
    let (status, body, _) = try_register(&s2, "carl@example.com").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(identity_count(&s2).await, 0);
}
