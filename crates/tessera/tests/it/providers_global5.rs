//! Global provider types of issue 18, part five, end to end through the browser flow against
//! their emulators in tessera-emulators, with the default mapper `tessera demo` writes:
//! Facebook (Kratos's `facebook`: sign-up and sign-in again into the same identity, the email
//! never verified, an account without one filled in, a token of another app refused through
//! `appsecret_proof`, Graph's errors as clear messages in the page's language, the emulator
//! refusing what Facebook refuses); X (OAuth 2.0 with PKCE, where Kratos's `x` is OAuth 1.0a:
//! the same journey, a phone-only account filled in, a code injected into another sign-in
//! refused by its PKCE check, a refused scope, the emulator's refusals); Amazon (the same
//! journey with `pkce: force` as a Kratos entry has it, Amazon's errors shown in its words,
//! scopes other than Amazon's three refused at start, the emulator's refusals).

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::amazon::AmazonEmulator;
use tessera_testkit::emulators::facebook::FacebookEmulator;
use tessera_testkit::emulators::x::XEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, flow_id_of, flow_json, identities, location,
    param, press_provider, refusal, refused_in_every_language, sign_in, sign_up_and_again,
    start_error, upstream,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// The callback URL of provider `id` on `s`, as registered with an emulator.
fn callback(s: &TestServer, id: &str) -> String {
    format!("{}/self-service/methods/oidc/callback/{id}", s.public)
}

// ---- Facebook ------------------------------------------------------------------------------

/// `tessera demo`'s Facebook mapper, the one docs/providers/facebook.md shows.
const FACEBOOK_MAPPER: &str = include_str!("../../demo/facebook.jsonnet");

fn facebook_yaml(fb: &FacebookEmulator, secret: &str) -> String {
    format!(
        "          - id: facebook\n            provider: facebook\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        fb.client_id(),
        fb.auth_url(),
        fb.base_url(),
        b64(FACEBOOK_MAPPER)
    )
}

async fn facebook_server(backend: Backend, fb: &FacebookEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&facebook_yaml(fb, secret))).await;
    fb.register_redirect_uri(callback(&s, "facebook"));
    s
}

each_backend!(facebook_sign_up_then_sign_in_again_into_the_same_identity);
async fn facebook_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let fb = FacebookEmulator::start().await;
    let s = facebook_server(backend, &fb, fb.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "facebook", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&fb.auth_url()), "{authorize}");
    // Comma-separated, as Facebook's dialog documents; no PKCE unless forced.
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("email,public_profile")
    );
    assert_eq!(param(&authorize, "code_challenge"), None);
    let id = sign_up_and_again(
        &s,
        "facebook",
        ("ivan", "ivan.petrov@example.ru"),
        fb.id_of("ivan"),
    )
    .await;
    let me: Value = reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["metadata_public"]["facebook_id"], fb.id_of("ivan"));
    assert_eq!(fb.token_requests(), 2);
    s.stop().await;
}

each_backend!(facebook_an_account_without_an_email_fills_the_gap);
async fn facebook_an_account_without_an_email_fills_the_gap(backend: Backend) {
    let fb = FacebookEmulator::start().await;
    let s = facebook_server(backend, &fb, fb.client_secret()).await;
    fill_the_gap(&s, "facebook", fb.id_of("maria")).await;
    s.stop().await;
}

#[tokio::test]
async fn facebook_email_is_never_called_verified() {
    // Kratos marks any address Facebook returns as verified; Tessera does not, so a mapper
    // that takes only verified addresses (the standard one) leaves Иван's out and the
    // registration page asks for one.
    let fb = FacebookEmulator::start().await;
    let yaml = facebook_yaml(&fb, fb.client_secret()).replace(
        &b64(FACEBOOK_MAPPER),
        &b64(include_str!("../../demo/oidc_standard.jsonnet")),
    );
    let s = TestServer::start(Backend::Sqlite, &config(&yaml)).await;
    fb.register_redirect_uri(callback(&s, "facebook"));
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "facebook", "ivan").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "registration", &flow_id_of(&loc)).await;
    let nodes = flow["ui"]["nodes"].as_array().unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["attributes"]["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(node("traits.email")["messages"][0]["id"], 4000002, "{flow}");
    assert_eq!(node("traits.name.first")["attributes"]["value"], "Иван");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn facebook_a_token_of_another_app_is_refused_by_its_appsecret_proof() {
    let fb = FacebookEmulator::start().await;
    let s = facebook_server(Backend::Sqlite, &fb, fb.client_secret()).await;
    // The token endpoint hands out a token that belongs to another app: the proof Tessera
    // computes with this app's secret cannot match, and Graph refuses the profile call.
    fb.set_tokens_for_other_app(true);
    let text = refused_in_every_language(
        &s,
        ("facebook", "ivan"),
        "Вход через Facebook отклонён",
        "Facebook 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains(
            "GraphMethodException #100 — Invalid appsecret_proof provided in the API argument"
        ),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    fb.set_tokens_for_other_app(false);

    // Graph's other errors, each said clearly.
    fb.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("facebook", "ivan"),
        "Вход через Facebook отклонён",
        "Facebook 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("OAuthException #100 — This authorization code has expired."),
        "{text}"
    );
    fb.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("facebook", "deny"),
        "Вход через Facebook отменён",
        "Facebook 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = facebook_server(Backend::Sqlite, &fb, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("facebook", "ivan"),
        "Вход через Facebook отклонён",
        "Facebook 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("OAuthException #1 — Error validating client secret."),
        "{text}"
    );
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&facebook_yaml(&fb, "\"\""))).await;
}

#[tokio::test]
async fn facebook_emulator_refuses_what_facebook_refuses() {
    let fb = FacebookEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    fb.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str| {
        format!(
            "{}?client_id={client}&redirect_uri={redirect}&state=s&response_type=code&scope=email,public_profile&user=ivan",
            fb.auth_url()
        )
    };
    for (url, says) in [
        (auth("nobody", back), "Invalid App ID"),
        (
            auth(fb.client_id(), "http://evil.example/cb"),
            "URL Blocked",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let code = || async {
        let r = c.get(auth(fb.client_id(), back)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str| {
        c.post(format!("{}/oauth/access_token", fb.base_url()))
            .form(&[
                ("client_id", fb.client_id()),
                ("client_secret", secret),
                ("redirect_uri", back),
                ("code", code.as_str()),
            ])
            .send()
    };
    let r = token(code().await, "wrong").await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (&e["error"]["type"], &e["error"]["code"]),
        (&json!("OAuthException"), &json!(1))
    );
    let fresh = code().await;
    let r = token(fresh.clone(), fb.client_secret()).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_string();
    assert!(t.get("refresh_token").is_none(), "{t}");
    let r = token(fresh, fb.client_secret()).await.unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["error_subcode"], 36009, "a code works once: {e}");

    // Graph's /me with the app's "Require App Secret": no proof, a wrong proof, the right one.
    let me = |proof: Option<String>| {
        let mut q = vec![("fields", "id,name,email".to_string())];
        if let Some(p) = proof {
            q.push(("appsecret_proof", p));
        }
        c.get(format!("{}/me", fb.base_url()))
            .bearer_auth(&access)
            .query(&q)
            .send()
    };
    let r = me(None).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "API calls from the server require an appsecret_proof argument"
    );
    let r = me(Some("00".repeat(32))).await.unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["error"]["message"],
        "Invalid appsecret_proof provided in the API argument"
    );
    let proof = tessera_social::facebook::appsecret_proof(fb.client_secret(), &access);
    let r = me(Some(proof)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": fb.id_of("ivan"), "name": "Иван Петров", "email": "ivan.petrov@example.ru"})
    );
    fb.revoke_tokens();
    let r = me(Some(String::new())).await.unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], 190, "{e}");
    // The person refuses on the dialog.
    let r = c
        .get(auth(fb.client_id(), back).replace("user=ivan", "user=deny"))
        .send()
        .await
        .unwrap();
    let loc = location(&r);
    assert_eq!(param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&loc, "error_reason").as_deref(), Some("user_denied"));
}

// ---- X -------------------------------------------------------------------------------------

/// `tessera demo`'s X mapper, the one docs/providers/x.md shows.
const X_MAPPER: &str = include_str!("../../demo/x.jsonnet");

fn x_yaml(x: &XEmulator, secret: &str) -> String {
    format!(
        "          - id: x\n            provider: x\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        x.client_id(),
        x.auth_url(),
        x.base_url(),
        b64(X_MAPPER)
    )
}

async fn x_server(backend: Backend, x: &XEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&x_yaml(x, secret))).await;
    x.register_redirect_uri(callback(&s, "x"));
    s
}

each_backend!(x_sign_up_then_sign_in_again_into_the_same_identity);
async fn x_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let x = XEmulator::start().await;
    let s = x_server(backend, &x, x.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "x", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&x.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("tweet.read users.read users.email")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let id = sign_up_and_again(&s, "x", ("ivan", "ivan.petrov@example.ru"), x.id_of("ivan")).await;
    let me: Value = reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["metadata_public"]["x_username"], "ivanpetrov");
    s.stop().await;
}

each_backend!(x_a_phone_only_account_fills_the_gap);
async fn x_a_phone_only_account_fills_the_gap(backend: Backend) {
    let x = XEmulator::start().await;
    let s = x_server(backend, &x, x.client_secret()).await;
    fill_the_gap(&s, "x", x.id_of("maria")).await;
    s.stop().await;
}

#[tokio::test]
async fn x_a_code_injected_into_another_sign_in_fails_its_pkce_check() {
    let x = XEmulator::start().await;
    let s = x_server(Backend::Sqlite, &x, x.client_secret()).await;
    // The attacker signs in at X as themselves and keeps the code instead of using it.
    let attacker = Browser::default();
    let authorize =
        press_provider(&attacker, &s, "login", "x", "https://app.example.com/after").await;
    let stolen = param(&upstream(&attacker, &authorize, "maria").await, "code").unwrap();
    // The victim's sign-in comes back with the attacker's code in place of their own: the
    // victim's verifier does not match the challenge the attacker's code was issued for.
    let victim = Browser::default();
    let authorize =
        press_provider(&victim, &s, "login", "x", "https://app.example.com/after").await;
    let callback = upstream(&victim, &authorize, "ivan").await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                stolen.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = victim.get(url.as_str(), false).await;
    let text = refusal(&victim, &s, r).await;
    assert!(
        text.contains("invalid_request — Value passed for the authorization code was invalid."),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());

    // A refused scope, a wrong secret and a cancel, each said clearly.
    x.set_withheld_scope(Some("users.email"));
    let text = refused_in_every_language(
        &s,
        ("x", "ivan"),
        "Не удалось завершить вход через X",
        "通过 X 登录未能完成",
    )
    .await;
    assert!(
        text.contains("did not grant the permission `users.email`"),
        "{text}"
    );
    x.set_withheld_scope(None);
    let text =
        refused_in_every_language(&s, ("x", "deny"), "Вход через X отменён", "X 登录已取消").await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = x_server(Backend::Sqlite, &x, "not-the-secret").await;
    let text = refused_in_every_language(
        &s2,
        ("x", "ivan"),
        "Вход через X отклонён",
        "X 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("unauthorized_client — Missing valid authorization header"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    // PKCE cannot be turned off.
    let err = start_error(&config(&format!(
        "{}            pkce: never\n",
        x_yaml(&x, "s")
    )))
    .await;
    assert!(
        err.contains("providers.0.pkce") && err.contains("X requires PKCE"),
        "{err}"
    );
}

#[tokio::test]
async fn x_emulator_refuses_what_x_refuses() {
    let x = XEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    x.register_redirect_uri(back);
    let c = TestServer::client();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let auth = |client: &str, redirect: &str, pkce: &str| {
        format!(
            "{}?response_type=code&client_id={client}&redirect_uri={redirect}&scope=tweet.read%20users.read&state=s&user=ivan{pkce}",
            x.auth_url()
        )
    };
    let pkce =
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    for url in [
        auth("nobody", back, pkce),
        auth(x.client_id(), "http://evil.example/cb", pkce),
        auth(x.client_id(), back, ""),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        assert!(r.text().await.unwrap().contains("Something went wrong"));
    }
    let code = || async {
        let r = c.get(auth(x.client_id(), back, pkce)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        param(&location(&r), "code").unwrap()
    };
    let token = |code: String, secret: &str, verifier: &str| {
        c.post(format!("{}/2/oauth2/token", x.base_url()))
            .basic_auth(x.client_id(), Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", back),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let r = token(code().await, "wrong", verifier).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    let r = token(code().await, x.client_secret(), "another-verifier")
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "Value passed for the authorization code was invalid."
    );
    let fresh = code().await;
    let r = token(fresh.clone(), x.client_secret(), verifier)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "tweet.read users.read");
    assert!(
        t.get("refresh_token").is_none(),
        "only with offline.access: {t}"
    );
    let r = token(fresh, x.client_secret(), verifier).await.unwrap();
    assert_eq!(r.status(), 400, "a code works once");
    // users.email was not granted: no confirmed_email even when asked for.
    let me = c
        .get(format!(
            "{}/2/users/me?user.fields=confirmed_email",
            x.base_url()
        ))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.json::<Value>().await.unwrap(),
        json!({"data": {"id": x.id_of("ivan"), "name": "Иван Петров", "username": "ivanpetrov"}})
    );
    x.revoke_tokens();
    let r = c
        .get(format!("{}/2/users/me", x.base_url()))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["title"], "Unauthorized");
}

// ---- Amazon --------------------------------------------------------------------------------

/// `tessera demo`'s Amazon mapper, the one docs/providers/amazon.md shows.
const AMAZON_MAPPER: &str = include_str!("../../demo/amazon.jsonnet");

fn amazon_yaml(a: &AmazonEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: amazon\n            provider: amazon\n            client_id: {}\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        a.client_id(),
        a.auth_url(),
        a.base_url(),
        b64(AMAZON_MAPPER)
    )
}

async fn amazon_server(
    backend: Backend,
    a: &AmazonEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(backend, &config(&amazon_yaml(a, secret, extra))).await;
    a.register_redirect_uri(callback(&s, "amazon"));
    s
}

each_backend!(amazon_sign_up_then_sign_in_again_into_the_same_identity);
async fn amazon_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let a = AmazonEmulator::start().await;
    // As a Kratos entry must say it (Kratos refuses `pkce: auto` for Amazon).
    let s = amazon_server(
        backend,
        &a,
        a.client_secret(),
        "            pkce: force\n            scope: [profile, postal_code]\n",
    )
    .await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "amazon", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&a.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("profile postal_code")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let id = sign_up_and_again(
        &s,
        "amazon",
        ("ivan", "ivan.petrov@example.ru"),
        a.id_of("ivan"),
    )
    .await;
    let me: Value = reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["metadata_public"]["amazon_user_id"], a.id_of("ivan"));
    s.stop().await;
}

#[tokio::test]
async fn amazon_errors_are_shown_in_amazons_words() {
    let a = AmazonEmulator::start().await;
    let s = amazon_server(Backend::Sqlite, &a, a.client_secret(), "").await;
    // The profile service fails after a good exchange: Amazon's error, not a generic one.
    a.set_profile_outage(true);
    let text = refused_in_every_language(
        &s,
        ("amazon", "ivan"),
        "Вход через Amazon отклонён",
        "Amazon 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains(
            "Amazon refused the sign-in: ServerError — The server encountered an unexpected error."
        ),
        "{text}"
    );
    a.set_profile_outage(false);
    a.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("amazon", "ivan"),
        "Вход через Amazon отклонён",
        "Amazon 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_grant — The request has an invalid grant parameter : code"),
        "{text}"
    );
    a.set_code_ttl(Duration::from_secs(300));
    let text = refused_in_every_language(
        &s,
        ("amazon", "deny"),
        "Вход через Amazon отменён",
        "Amazon 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let s2 = amazon_server(Backend::Sqlite, &a, "not-the-secret", "").await;
    let text = refused_in_every_language(
        &s2,
        ("amazon", "ivan"),
        "Вход через Amazon отклонён",
        "Amazon 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("invalid_client — Client authentication failed"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
    assert_needs_a_secret(&config(&amazon_yaml(&a, "\"\"", ""))).await;
    // Only Amazon's three scopes exist: refused at start, as Kratos refuses it at sign-in.
    let err = start_error(&config(&amazon_yaml(
        &a,
        "s",
        "            scope: [profile, email]\n",
    )))
    .await;
    assert!(
        err.contains("providers.0.scope")
            && err.contains("`email` is not a Login with Amazon scope"),
        "{err}"
    );
}

#[tokio::test]
async fn amazon_emulator_refuses_what_amazon_refuses() {
    let a = AmazonEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    a.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |client: &str, redirect: &str, scope: &str| {
        format!(
            "{}?client_id={client}&scope={scope}&response_type=code&redirect_uri={redirect}&state=s&user=ivan",
            a.auth_url()
        )
    };
    for url in [
        auth("nobody", back, "profile"),
        auth(a.client_id(), "http://evil.example/cb", "profile"),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("We're sorry"));
    }
    let r = c
        .get(auth(a.client_id(), back, "email"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("invalid_scope")
    );
    let code = |scope: &'static str| {
        let url = auth(a.client_id(), back, scope);
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").unwrap()
        }
    };
    let token = |code: String, secret: &str| {
        c.post(format!("{}/auth/o2/token", a.base_url()))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", back),
                ("client_id", a.client_id()),
                ("client_secret", secret),
            ])
            .send()
    };
    let r = token(code("profile").await, "wrong").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let fresh = code("profile:user_id").await;
    let r = token(fresh.clone(), a.client_secret()).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("Atza|"), "{t}");
    let r = token(fresh, a.client_secret()).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "invalid_grant",
        "a code works once"
    );
    // `profile:user_id` shows the id alone; the token also works as x-amz-access-token.
    let r = c
        .get(format!("{}/user/profile", a.base_url()))
        .header("x-amz-access-token", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"user_id": a.id_of("ivan")})
    );
    a.revoke_tokens();
    let r = c
        .get(format!("{}/user/profile", a.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
}
