//! Steps of a browser journey through the self-service flows, shared by the end-to-end tests
//! (password, social and per-provider suites) so each reads as the journey it checks.

use crate::{Browser, TestServer, csrf_of};
use base64::Engine as _;
use serde_json::{Value, json};

/// The `Location` of a redirect, or "" when there is none.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The flow id in a UI URL (`…?flow=<id>`).
pub fn flow_id_of(loc: &str) -> String {
    loc.split("flow=").nth(1).unwrap_or_default().to_string()
}

/// A flow as JSON, fetched with the browser's cookies.
pub async fn flow_json(b: &Browser, s: &TestServer, kind: &str, id: &str) -> Value {
    get_json(
        b,
        &format!("{}/self-service/{kind}/flows?id={id}", s.public),
    )
    .await
}

/// A GET asking for JSON, with the browser's cookies; the answer's body.
async fn get_json(b: &Browser, url: &str) -> Value {
    b.get(url, true)
        .await
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"))
}

/// Opens a browser flow of `kind` as a single-page app would (JSON), with the browser's
/// cookies; returns the flow.
pub async fn open_flow(b: &Browser, s: &TestServer, kind: &str) -> Value {
    get_json(b, &format!("{}/self-service/{kind}/browser", s.public)).await
}

/// Submits `fields` to a flow's form (its `ui.action`), with the flow's CSRF token first, as
/// the hosted page's form would; `json` asks for a JSON answer instead of a redirect.
pub async fn submit(
    b: &Browser,
    flow: &Value,
    fields: &[(&str, &str)],
    json: bool,
) -> reqwest::Response {
    let csrf = csrf_of(flow);
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post_form(
        flow["ui"]["action"]
            .as_str()
            .expect("the flow has a form action"),
        &all,
        json,
    )
    .await
}

/// `/sessions/whoami` with the browser's cookies (an error object when signed out).
pub async fn whoami(b: &Browser, s: &TestServer) -> Value {
    get_json(b, &format!("{}/sessions/whoami", s.public)).await
}

/// Opens a browser flow of `kind` (with `return_to`) and presses the social button of
/// `provider`; returns the upstream URL the browser is sent to.
pub async fn press_provider(
    b: &Browser,
    s: &TestServer,
    kind: &str,
    provider: &str,
    return_to: &str,
) -> String {
    let r = b
        .get(
            &format!(
                "{}/self-service/{kind}/browser?return_to={return_to}",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let flow = flow_json(b, s, kind, &flow_id_of(&location(&r))).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[("csrf_token", &csrf_of(&flow)), ("provider", provider)],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    location(&r)
}

/// An error page shown to the user: HTML with `status`, never a redirect, and saying `needle`;
/// returns the page.
pub async fn assert_error_page(r: reqwest::Response, status: u16, needle: &str) -> String {
    assert_eq!(r.status().as_u16(), status);
    assert!(r.headers().get("location").is_none(), "never redirected");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let text = r.text().await.expect("page body");
    assert!(text.contains(needle), "page lacks {needle:?}: {text}");
    text
}

/// A redirect to the hosted error page of a stored error whose `reason` says `reason`, checked
/// through `/self-service/errors`; returns the page's URL and the error's id.
pub async fn assert_stored_error(
    s: &TestServer,
    r: &reqwest::Response,
    reason: &str,
) -> (String, String) {
    let loc = location(r);
    let prefix = format!("{}/ui/error?id=", s.public);
    let Some(id) = loc.strip_prefix(&prefix) else {
        panic!("expected a redirect to {prefix}…, got {loc:?}");
    };
    let err: Value = TestServer::client()
        .get(format!("{}/self-service/errors?id={id}", s.public))
        .send()
        .await
        .expect("GET /self-service/errors")
        .json()
        .await
        .expect("stored error json");
    let said = err["error"]["reason"].as_str().unwrap_or_default();
    assert!(said.contains(reason), "reason lacks {reason:?}: {err}");
    (loc.clone(), id.to_string())
}

// ---- Social sign-in journeys, shared by the per-provider suites ----------------------------

/// Base64 (standard), for `base64://` mapper URLs.
pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A configuration with social sign-in on, the `providers` entries (YAML list items indented
/// for `providers:`), return URLs under `https://app.example.com/` and a session right after
/// an OIDC registration.
pub fn config(providers: &str) -> String {
    format!(
        "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n"
    )
}

/// The query pairs of `url`.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// One query parameter of `url`.
pub fn param(url: &str, key: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Picks `user` on the emulator's consent page; returns the callback URL it sends the browser to.
/// Like a browser, it does not send the URL's fragment (WeChat's `#wechat_redirect`).
pub async fn upstream(b: &Browser, authorize: &str, user: &str) -> String {
    let mut url = url::Url::parse(authorize).unwrap();
    url.set_fragment(None);
    url.query_pairs_mut().append_pair("user", user);
    let r = b.get(url.as_str(), false).await;
    assert_eq!(r.status(), 302, "upstream answered {}", r.status());
    location(&r)
}

/// A whole browser sign-in as `user`; returns the callback's response.
pub async fn sign_in(
    b: &Browser,
    s: &TestServer,
    kind: &str,
    provider: &str,
    user: &str,
) -> reqwest::Response {
    let authorize = press_provider(b, s, kind, provider, "https://app.example.com/after").await;
    let callback = upstream(b, &authorize, user).await;
    b.get(&callback, false).await
}

/// Every identity, through the admin API.
pub async fn identities(s: &TestServer) -> Vec<Value> {
    reqwest::get(format!("{}/admin/identities", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The OIDC credential identifiers (`<provider>:<subject>`) of identity `id`.
pub async fn oidc_identifiers(s: &TestServer, id: &str) -> Value {
    let full: Value = reqwest::get(format!(
        "{}/admin/identities/{id}?include_credential=oidc",
        s.admin
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    full["credentials"]["oidc"]["identifiers"].clone()
}

/// The callback ended on the login page: returns its message, after checking nobody was
/// signed in.
pub async fn refusal(b: &Browser, s: &TestServer, r: reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(b, s, "login", &flow_id_of(&loc)).await;
    assert!(whoami(b, s).await.get("identity").is_none());
    let page = b.get(&loc, false).await.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    flow["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Builds an engine from `yaml` (a `config(...)` document), which must fail; returns the
/// error, for the start-time refusals of provider entries.
pub async fn start_error(yaml: &str) -> String {
    let path = crate::temp_dir().join("tessera.yml");
    std::fs::write(
        &path,
        format!("dsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n{yaml}"),
    )
    .unwrap();
    let loaded = tessera_config::load(&[path], &Default::default()).unwrap();
    let settings = tessera_config::resolve(&loaded, true, None).unwrap();
    match tessera_server::app::build_engine_with(settings, true, Some(crate::tessera_bin())).await {
        Ok(_) => panic!("the configuration was accepted"),
        Err(e) => e.to_string(),
    }
}

/// A configuration whose first provider has no client secret does not start, naming the key.
pub async fn assert_needs_a_secret(yaml: &str) {
    let err = start_error(yaml).await;
    assert!(
        err.contains("providers.0.client_secret") && err.contains("client_secret is required"),
        "{err}"
    );
}

/// A sign-in as `user` that ends on the login page with a message: returns the English
/// message, and checks the Russian and Chinese pages say it in their language with the
/// provider's local name.
pub async fn refused_in_every_language(
    s: &TestServer,
    (provider, user): (&str, &str),
    ru: &str,
    zh: &str,
) -> String {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", provider, user).await;
    let loc = location(&r);
    let en = refusal(&b, s, r).await;
    for (lang, needle) in [("ru", ru), ("zh-CN", zh)] {
        let page = b
            .get(&format!("{loc}&ui_locales={lang}"), false)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(needle), "{lang}: {page}");
    }
    en
}

/// A first sign-in with a provider that shares no email (WeChat, QQ): the registration page
/// asks for one with the nickname filled in; returns the identity made and its credential
/// identifiers.
pub async fn sign_up_giving_an_email(
    s: &TestServer,
    (provider, user): (&str, &str),
    email: &str,
) -> (Value, Value) {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", provider, user).await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, s, "registration", &flow_id_of(&loc)).await;
    let email_node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .cloned()
        .unwrap_or_default();
    assert_eq!(email_node["messages"][0]["id"], 4000002, "{flow}");
    let r = submit(
        &b,
        &flow,
        &[("provider", provider), ("traits.email", email)],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], email);
    let id = me["id"].as_str().unwrap();
    (me.clone(), oidc_identifiers(s, id).await)
}

/// Signs `user` up (`email` known), then in again from another browser; returns the
/// identity id. The emulators' "ivan" is Иван Петров.
pub async fn sign_up_and_again(
    s: &TestServer,
    provider: &str,
    (user, email): (&str, &str),
    subject: &str,
) -> String {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", provider, user).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, s).await;
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Иван");
    assert_eq!(me["identity"]["traits"]["name"]["last"], "Петров");
    assert_eq!(me["identity"]["traits"]["email"], email);
    let id = me["identity"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(s, &id).await,
        json!([format!("{provider}:{subject}")])
    );

    let b2 = Browser::default();
    let r = sign_in(&b2, s, "registration", provider, user).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(s).await.len(), 1);
    id
}

/// The emulators' "maria" (Мария Смирнова) has no email: the registration page asks for it with her name filled in, and the
/// next sign-in goes straight into the identity made.
pub async fn fill_the_gap(s: &TestServer, provider: &str, subject: &str) {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", provider, "maria").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, s, "registration", &flow_id_of(&loc)).await;
    let nodes = flow["ui"]["nodes"].as_array().unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["attributes"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {flow}"))
            .clone()
    };
    assert_eq!(node("traits.email")["messages"][0]["id"], 4000002);
    assert_eq!(node("traits.name.first")["attributes"]["value"], "Мария");
    assert!(identities(s).await.is_empty(), "nothing created yet");
    let page = b.get(&loc, false).await.text().await.unwrap();
    assert!(page.contains("Мария"), "{page}");

    let r = submit(
        &b,
        &flow,
        &[("provider", provider), ("traits.email", "maria@example.ru")],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, s).await;
    assert_eq!(me["identity"]["traits"]["email"], "maria@example.ru");
    assert_eq!(me["identity"]["traits"]["name"]["last"], "Смирнова");
    let id = me["identity"]["id"].as_str().unwrap();
    assert_eq!(
        oidc_identifiers(s, id).await,
        json!([format!("{provider}:{subject}")])
    );

    let b2 = Browser::default();
    let r = sign_in(&b2, s, "login", provider, "maria").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, s).await["identity"]["id"], id);
}

/// Starts a server for the one provider entry `yaml` and registers its callback (`id`) at the
/// emulator with `register`.
pub async fn server_for(
    backend: crate::Backend,
    yaml: &str,
    id: &str,
    register: impl FnOnce(String),
) -> TestServer {
    let s = TestServer::start(backend, &config(yaml)).await;
    register(format!(
        "{}/self-service/methods/oidc/callback/{id}",
        s.public
    ));
    s
}

/// The identity `id` through the admin API.
pub async fn identity(s: &TestServer, id: &str) -> Value {
    reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A first sign-in that must stop on the registration page asking for the email the mapper
/// did not take; nothing is created.
pub async fn asks_for_the_email(s: &TestServer, provider: &str, user: &str) {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", provider, user).await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{provider}: {loc}"
    );
    let flow = flow_json(&b, s, "registration", &flow_id_of(&loc)).await;
    let email = flow["ui"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .cloned()
        .unwrap_or_default();
    assert_eq!(email["attributes"]["value"], Value::Null, "{flow}");
    assert_eq!(email["messages"][0]["id"], 4000002, "{flow}");
    assert!(identities(s).await.is_empty(), "nothing created yet");
}
