//! The `github` provider type end to end, against the GitHub emulator (tessera-emulators, through tessera-testkit) (same
//! paths, JSON and HTTP-200 errors as GitHub): sign-up, sign-in into the same identity with
//! the seed-004 GitHub mapper, fill-the-gaps for missing and unverified emails, GitHub's error
//! answers shown on the flow, a scope GitHub did not grant, and the emulator's own refusals.

use crate::GITHUB_MAPPER;
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::github::{GithubEmulator, IVAN, NOEMAIL, OCTOCAT, UNVERIFIED};
use tessera_testkit::journey::{flow_id_of, flow_json, location, whoami};
use tessera_testkit::{Backend, Browser, TestServer, csrf_of, each_backend};

fn provider_yaml(gh: &GithubEmulator, secret: &str) -> String {
    format!(
        "          - id: github\n            provider: github\n            label: GitHub\n            client_id: {}\n            client_secret: {secret}\n            mapper_url: base64://{}\n            scope: [user:email]\n            auth_url: {}\n            token_url: {}\n            api_base_url: {}\n",
        gh.client_id(),
        base64::engine::general_purpose::STANDARD.encode(GITHUB_MAPPER),
        gh.auth_url(),
        gh.token_url(),
        gh.base_url(),
    )
}

fn config(providers: &str) -> String {
    format!(
        "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n"
    )
}

async fn server_with(backend: Backend, gh: &GithubEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&provider_yaml(gh, secret))).await;
    gh.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/github",
        s.public
    ));
    s
}

async fn server(gh: &GithubEmulator) -> TestServer {
    server_with(Backend::Sqlite, gh, gh.client_secret()).await
}

/// Opens a browser flow and presses "Sign in with GitHub"; returns the upstream URL.
async fn press_github(b: &Browser, s: &TestServer, kind: &str) -> String {
    tessera_testkit::journey::press_provider(b, s, kind, "github", "https://app.example.com/after")
        .await
}

/// A whole browser sign-in as `user`; returns the callback's final response.
async fn sign_in(b: &Browser, s: &TestServer, kind: &str, user: &str) -> reqwest::Response {
    let authorize = press_github(b, s, kind).await;
    let r = b.get(&format!("{authorize}&user={user}"), false).await;
    assert_eq!(r.status(), 302, "the emulator answered {}", r.status());
    b.get(&location(&r), false).await
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

/// A sign-in that must end on the login page with a message containing `needle`.
async fn refused(s: &TestServer, user: &str, needle: &str) {
    let b = Browser::default();
    let r = sign_in(&b, s, "login", user).await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, s, "login", &flow_id_of(&loc)).await;
    let text = flow["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains(needle), "`{needle}` in {flow}");
    assert!(whoami(&b, s).await.get("identity").is_none());
    assert!(identities(s).await.is_empty());
}

each_backend!(github_sign_up_then_sign_in_again_into_the_same_identity);
async fn github_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let gh = GithubEmulator::start().await;
    let s = server_with(backend, &gh, gh.client_secret()).await;
    let b = Browser::default();
    let authorize = press_github(&b, &s, "login").await;
    let u = url::Url::parse(&authorize).expect("authorize URL");
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(u.path(), "/login/oauth/authorize");
    assert_eq!(q["scope"], "user:email");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/self-service/methods/oidc/callback/github", s.public)
    );
    assert!(
        !q.contains_key("nonce"),
        "GitHub has no id_token: {authorize}"
    );

    let r = b
        .get(&format!("{authorize}&user={}", OCTOCAT.key), false)
        .await;
    let r = b.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after", "{backend:?}");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "octocat@example.com");
    assert_eq!(
        me["identity"]["metadata_public"]["github_username"],
        "octocat"
    );
    let id = me["identity"]["id"].as_str().expect("id").to_string();
    assert_eq!(oidc_identifiers(&s, &id).await, json!(["github:583231"]));

    // Another browser, from the registration page: the same identity.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", OCTOCAT.key).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    assert_eq!(gh.token_requests(), 2);
}

#[tokio::test]
async fn a_person_picks_a_user_on_the_consent_page() {
    let gh = GithubEmulator::start().await;
    let s = server(&gh).await;
    let b = Browser::default();
    let authorize = press_github(&b, &s, "login").await;
    let page = b.get(&authorize, false).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    for u in [OCTOCAT, NOEMAIL, UNVERIFIED, IVAN] {
        assert!(html.contains(u.name), "{} listed: {html}", u.name);
    }
    let href = html
        .split("href=\"")
        .skip(1)
        .filter_map(|h| h.split('"').next())
        .find(|h| h.ends_with("user=ivan"))
        .expect("a link for Иван")
        .replace("&amp;", "&");
    let r = b.get(&format!("{}{href}", gh.base_url()), false).await;
    assert_eq!(r.status(), 302);
    let r = b.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "ivan@example.ru");
    assert_eq!(
        me["identity"]["metadata_public"]["github_username"],
        "ivan-petrov"
    );
}

#[tokio::test]
async fn a_missing_or_unverified_email_is_asked_for_then_signs_straight_in() {
    let gh = GithubEmulator::start().await;
    let s = server(&gh).await;
    for user in [UNVERIFIED, NOEMAIL] {
        let b = Browser::default();
        let r = sign_in(&b, &s, "login", user.key).await;
        let loc = location(&r);
        assert!(
            loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
            "{}: {loc}",
            user.key
        );
        let flow = flow_json(&b, &s, "registration", &flow_id_of(&loc)).await;
        let email = flow["ui"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["attributes"]["name"] == "traits.email")
            .expect("an email field")
            .clone();
        assert_eq!(
            email["attributes"]["value"],
            Value::Null,
            "an unverified email is not pre-filled: {email}"
        );
        assert!(
            identities(&s)
                .await
                .iter()
                .all(|i| i["metadata_public"]["github_username"] != user.login)
        );
        let filled = format!("{}@filled.example", user.key);
        let r = b
            .post_form(
                flow["ui"]["action"].as_str().expect("action"),
                &[
                    ("csrf_token", &csrf_of(&flow)),
                    ("provider", "github"),
                    ("traits.email", &filled),
                ],
                false,
            )
            .await;
        assert_eq!(location(&r), "https://app.example.com/after");
        let me = whoami(&b, &s).await;
        assert_eq!(me["identity"]["traits"]["email"], filled.as_str());
        assert_eq!(
            me["identity"]["metadata_public"]["github_username"],
            user.login
        );
        let id = me["identity"]["id"].as_str().expect("id").to_string();
        assert_eq!(
            oidc_identifiers(&s, &id).await,
            json!([format!("github:{}", user.id)])
        );

        // Next time: straight in, no questions.
        let b2 = Browser::default();
        let r = sign_in(&b2, &s, "login", user.key).await;
        assert_eq!(location(&r), "https://app.example.com/after");
        assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    }
    assert_eq!(identities(&s).await.len(), 2);
}

#[tokio::test]
async fn github_errors_are_shown_on_the_flow() {
    // A wrong client secret: GitHub answers HTTP 200 with `incorrect_client_credentials`.
    let gh = GithubEmulator::start().await;
    let s = server_with(Backend::Sqlite, &gh, "not-the-secret").await;
    refused(
        &s,
        OCTOCAT.key,
        "GitHub refused the sign-in: incorrect_client_credentials — The client_id and/or client_secret passed are incorrect.",
    )
    .await;

    // The user (or an organisation policy) did not grant the configured scope.
    let s = server(&gh).await;
    gh.set_granted_scopes(Some(&["read:user"]));
    refused(&s, OCTOCAT.key, "user:email").await;
    gh.set_granted_scopes(None);

    // The user pressed "Cancel" on GitHub's page.
    refused(&s, "deny", "cancelled or denied").await;

    // And then it works.
    let r = sign_in(&Browser::default(), &s, "login", OCTOCAT.key).await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

// ---- the emulator itself refuses what GitHub refuses ---------------------------------------

async fn code_for(gh: &GithubEmulator, redirect_uri: &str, challenge: Option<&str>) -> String {
    let mut u = url::Url::parse(&gh.auth_url()).expect("url");
    u.query_pairs_mut()
        .append_pair("client_id", gh.client_id())
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "user:email")
        .append_pair("state", "st")
        .append_pair("user", OCTOCAT.key);
    if let Some(c) = challenge {
        u.query_pairs_mut()
            .append_pair("code_challenge", c)
            .append_pair("code_challenge_method", "S256");
    }
    let r = TestServer::client().get(u).send().await.expect("authorize");
    assert_eq!(r.status(), 302);
    let back = url::Url::parse(&location(&r)).expect("redirect");
    assert!(back.as_str().starts_with(redirect_uri), "{back}");
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

async fn exchange(gh: &GithubEmulator, fields: &[(&str, &str)]) -> (u16, Value) {
    let r = TestServer::client()
        .post(gh.token_url())
        .header("accept", "application/json")
        .form(fields)
        .send()
        .await
        .expect("token");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn the_emulator_refuses_reused_codes_wrong_redirect_uris_secrets_and_verifiers() {
    let gh = GithubEmulator::start().await;
    let cb = "http://127.0.0.1:1/callback";
    let (id, secret) = (gh.client_id().to_string(), gh.client_secret().to_string());

    let code = code_for(&gh, cb, None).await;
    let ok = [
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", cb),
    ];
    let (status, t) = exchange(&gh, &ok).await;
    assert_eq!(status, 200);
    assert_eq!(t["scope"], "user:email");
    let token = t["access_token"].as_str().expect("a token").to_string();
    // The API answers with that token, and refuses without it.
    let user: Value = TestServer::client()
        .get(format!("{}/user", gh.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    assert_eq!(user["id"], OCTOCAT.id);
    let r = TestServer::client()
        .get(format!("{}/user/emails", gh.base_url()))
        .bearer_auth("gho_forged")
        .send()
        .await
        .expect("emails");
    assert_eq!(r.status(), 401);

    // Reused: HTTP 200 with an error, as GitHub.
    let (status, t) = exchange(&gh, &ok).await;
    assert_eq!(
        (status, t["error"].as_str()),
        (200, Some("bad_verification_code"))
    );

    // Wrong secret.
    let code = code_for(&gh, cb, None).await;
    let (_, t) = exchange(
        &gh,
        &[
            ("client_id", &id),
            ("client_secret", "nope"),
            ("code", &code),
            ("redirect_uri", cb),
        ],
    )
    .await;
    assert_eq!(t["error"], "incorrect_client_credentials");

    // Another redirect_uri than at authorize.
    let (_, t) = exchange(
        &gh,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:1/elsewhere"),
        ],
    )
    .await;
    assert_eq!(t["error"], "redirect_uri_mismatch");

    // A PKCE verifier that does not match the challenge.
    let code = code_for(&gh, cb, Some(RFC7636_CHALLENGE)).await;
    let (_, t) = exchange(
        &gh,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
            ("code_verifier", "another-verifier"),
        ],
    )
    .await;
    assert_eq!(t["error"], "bad_verification_code");
    let code = code_for(&gh, cb, Some(RFC7636_CHALLENGE)).await;
    let (_, t) = exchange(
        &gh,
        &[
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
            ("code_verifier", RFC7636_VERIFIER),
        ],
    )
    .await;
    assert!(t["access_token"].is_string(), "{t}");

    // A registered callback URL: another redirect_uri at authorize goes back to the registered
    // one with `redirect_uri_mismatch`.
    gh.register_redirect_uri(cb);
    let mut u = url::Url::parse(&gh.auth_url()).expect("url");
    u.query_pairs_mut()
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", "https://evil.example/cb")
        .append_pair("state", "st")
        .append_pair("user", OCTOCAT.key);
    let r = TestServer::client().get(u).send().await.expect("authorize");
    let loc = location(&r);
    assert!(
        loc.starts_with(cb) && loc.contains("error=redirect_uri_mismatch"),
        "{loc}"
    );
    assert!(!loc.contains("code="), "{loc}");
}

/// RFC 7636 appendix B: a verifier and its S256 challenge, independent of the code under test.
const RFC7636_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7636_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
