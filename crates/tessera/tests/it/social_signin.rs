//! Social sign-in through a generic OIDC upstream (the fake in tessera-testkit, which checks
//! PKCE, secrets and codes like a real one): sign-up, sign-in into the same identity,
//! fill-the-gaps, linking to an existing account, settings link/unlink, API and AJAX callers,
//! and every hostile answer an upstream or a mapper can give.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::config::{base64_url, merge};
use tessera_testkit::fake_oidc::{Behavior, FakeOidc, FakeOptions};
use tessera_testkit::journey::{assert_stored_error, flow_id_of, flow_json, location, whoami};
use tessera_testkit::journey::{open_flow, submit};
use tessera_testkit::{Backend, Browser, Config, TestServer, csrf_of, each_backend, message_ids};

/// The seed-004 GitHub mapper shape: email only when verified, plus a name and metadata.
const MAPPER: &str = r#"local claims = { email_verified: false } + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if 'name' in claims then 'name' else null]: { first: claims.name },
    },
    metadata_public: { upstream_subject: claims.sub },
  },
}
"#;

/// One `generic` provider entry pointing at `fake`, with `mapper` as its data mapper.
fn provider(id: &str, fake: &FakeOidc, mapper: &str) -> Value {
    json!({
        "id": id,
        "provider": "generic",
        "label": format!("Acme {id}"),
        "client_id": fake.client_id(),
        "client_secret": fake.client_secret(),
        "issuer_url": fake.issuer(),
        "mapper_url": base64_url(mapper),
        "scope": ["email", "profile"],
    })
}

/// The social sign-in configuration around `providers`; with `session_hook`, registration
/// through either method signs the new user in.
fn config(providers: Vec<Value>, session_hook: bool) -> Config {
    let mut c = Config::new().with(json!({"selfservice": {
        "default_browser_return_url": "https://app.example.com/home",
        "allowed_return_urls": ["https://app.example.com/"],
    }}));
    for p in providers {
        c = c.provider(p);
    }
    if session_hook {
        c = c.session_hook(&["oidc", "password"]);
    }
    c
}

/// A server with the one provider `acme`; `extra` is merged into its entry.
async fn server(fake: &FakeOidc, extra: Value) -> TestServer {
    let mut acme = provider("acme", fake, MAPPER);
    merge(&mut acme, extra);
    TestServer::start(Backend::Sqlite, config(vec![acme], true)).await
}

/// Opens a browser flow and presses "Continue with <provider>"; returns the upstream URL.
async fn press_provider(b: &Browser, s: &TestServer, kind: &str, provider: &str) -> String {
    let r = b
        .get(
            &format!(
                "{}/self-service/{kind}/browser?return_to=https://app.example.com/after",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let id = flow_id_of(&location(&r));
    let flow = flow_json(b, s, kind, &id).await;
    let buttons: Vec<&Value> = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["group"] == "oidc" && n["attributes"]["name"] == "provider")
        .collect();
    assert!(
        buttons.iter().any(|n| n["attributes"]["value"] == provider),
        "a button for {provider}: {flow}"
    );
    // The hosted page shows it as its own form, which needs no identifier or password.
    let page = b
        .get(&format!("{}/ui/{kind}?flow={id}", s.public), false)
        .await
        .text()
        .await
        .unwrap();
    let form = page
        .split("<form")
        .find(|f| f.contains(&format!("name=\"provider\" value=\"{provider}\"")))
        .expect("a form with the provider button");
    assert!(
        form.contains("csrf_token") && !form.contains("required"),
        "{form}"
    );
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&flow)), ("provider", provider)],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let to = location(&r);
    assert!(
        b.cookie("tessera_continuity").is_some(),
        "continuity cookie set"
    );
    to
}

/// Lets the (fake) upstream answer and returns the callback URL it sends the browser to.
async fn upstream(b: &Browser, authorize: &str) -> String {
    let r = b.get(authorize, false).await;
    assert_eq!(r.status(), 303, "upstream answered {}", r.status());
    location(&r)
}

/// A whole browser sign-in; returns the final response of the callback.
async fn sign_in(b: &Browser, s: &TestServer, kind: &str) -> reqwest::Response {
    let authorize = press_provider(b, s, kind, "acme").await;
    let callback = upstream(b, &authorize).await;
    b.get(&callback, false).await
}

async fn identities(s: &TestServer) -> Vec<Value> {
    reqwest::get(format!("{}/admin/identities", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn admin_identity(s: &TestServer, id: &str) -> Value {
    reqwest::get(format!(
        "{}/admin/identities/{id}?include_credential=oidc",
        s.admin
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

fn ids(flow: &Value) -> Vec<u64> {
    message_ids(flow).into_iter().map(|(_, id)| id).collect()
}

#[tokio::test]
async fn sign_up_then_sign_in_again_into_the_same_identity() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;

    let b = Browser::default();
    let r = sign_in(&b, &s, "login").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://app.example.com/after");
    assert!(
        b.cookie("tessera_continuity").is_none(),
        "continuity cookie cleared"
    );
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "fake.user@example.com");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Fake User");
    assert_eq!(
        me["identity"]["metadata_public"]["upstream_subject"],
        "fake-user-1"
    );
    assert_eq!(me["authentication_methods"][0]["method"], "oidc");
    let id = me["identity"]["id"].as_str().unwrap().to_string();

    let full = admin_identity(&s, &id).await;
    assert_eq!(
        full["credentials"]["oidc"]["identifiers"],
        json!(["acme:fake-user-1"])
    );
    assert_eq!(
        full["credentials"]["oidc"]["config"]["providers"][0],
        json!({"provider": "acme", "subject": "fake-user-1"}),
        "no tokens are kept without store_tokens"
    );

    // A second browser, starting from the registration page: signs in to the same identity.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration").await;
    assert_eq!(r.status(), 303);
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    assert!(fake.token_requests() >= 2);
}

#[tokio::test]
async fn missing_traits_are_asked_for_and_merged_with_the_mapped_ones() {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "unverified@example.com", "email_verified": false, "name": "Gap Filler"}),
        ..Default::default()
    })
    .await;
    let s = server(&fake, json!({})).await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login").await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let id = flow_id_of(&loc);
    let flow = flow_json(&b, &s, "registration", &id).await;
    assert_eq!(flow["return_to"], "https://app.example.com/after");
    let nodes = flow["ui"]["nodes"].as_array().unwrap();
    let email = nodes
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .expect("an email field");
    assert_eq!(email["group"], "oidc");
    assert_eq!(email["messages"][0]["id"], 4000002, "{email}");
    let first = nodes
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.name.first")
        .unwrap();
    assert_eq!(
        first["attributes"]["value"], "Gap Filler",
        "mapped value pre-filled"
    );
    assert!(identities(&s).await.is_empty(), "nothing created yet");
    // The hosted page renders the same form: the gap marked, the mapped value kept.
    let page = b.get(&loc, false).await.text().await.unwrap();
    assert!(page.contains("name=\"traits.email\""), "{page}");
    assert!(page.contains("value=\"Gap Filler\""), "{page}");
    assert!(page.contains("name=\"provider\" value=\"acme\""), "{page}");
    assert!(page.contains("aria-invalid=\"true\""), "{page}");

    // An invalid email is refused and asked again; the mapped name is kept.
    let action = flow["ui"]["action"].as_str().unwrap().to_string();
    let csrf = csrf_of(&flow);
    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("provider", "acme"),
                ("traits.email", "not-an-email"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 400);
    let again: Value = r.json().await.unwrap();
    assert!(ids(&again).contains(&4000004), "invalid format: {again}");
    assert!(identities(&s).await.is_empty());

    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("provider", "acme"),
                ("traits.email", "filled@example.com"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["traits"]["email"], "filled@example.com");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Gap Filler");

    // Next time the same upstream account signs straight in.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(
        whoami(&b2, &s).await["identity"]["id"],
        me["identity"]["id"]
    );
}

/// The seed-004 mapper plus the address the upstream verified, which is what lets Tessera
/// offer "sign in to link" to the owner of an existing account with that address.
const VERIFYING_MAPPER: &str = r#"local claims = { email_verified: false } + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
    },
    verified_addresses: if 'email' in claims && claims.email_verified
                        then [{ value: claims.email, via: 'email' }] else [],
  },
}
"#;

/// A mapper that trusts whatever email the upstream sends (as the seed DingTalk and VK mappers
/// do): the precondition of the account-takeover attack (security review H2).
const TRUSTING_MAPPER: &str = r#"local claims = std.extVar('claims');
{ identity: { traits: { email: claims.email } } }
"#;

async fn server_with(fake: &FakeOidc, mapper: &str) -> TestServer {
    server_on(Backend::Sqlite, fake, mapper).await
}

async fn server_on(backend: Backend, fake: &FakeOidc, mapper: &str) -> TestServer {
    TestServer::start(backend, config(vec![provider("acme", fake, mapper)], true)).await
}

/// Signs in with the password on a "sign in to link" page; returns the confirmation flow.
async fn prove_password(b: &Browser, s: &TestServer, flow: &Value, password: &str) -> Value {
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[
                ("csrf_token", &csrf_of(flow)),
                ("method", "password"),
                ("identifier", "alice@example.com"),
                ("password", password),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.contains("/ui/login?flow="), "{loc}");
    flow_json(b, s, "login", &flow_id_of(&loc)).await
}

#[tokio::test]
async fn an_existing_email_is_linked_only_after_proof_and_an_explicit_yes() {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "Alice@Example.com", "email_verified": true}),
        ..Default::default()
    })
    .await;
    let s = server_with(&fake, VERIFYING_MAPPER).await;
    let alice = s
        .register("alice@example.com", "correct horse battery")
        .await;
    let alice_id = alice["identity"]["id"].as_str().unwrap().to_string();

    let b = Browser::default();
    let r = sign_in(&b, &s, "login").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "login", &flow_id_of(&loc)).await;
    assert!(ids(&flow).contains(&1010016), "{flow}");
    assert!(
        whoami(&b, &s).await.get("identity").is_none(),
        "not signed in"
    );
    assert_eq!(identities(&s).await.len(), 1, "no second identity");
    let full = admin_identity(&s, &alice_id).await;
    assert!(full["credentials"].get("oidc").is_none(), "not linked yet");

    // A wrong password links nothing.
    let r = submit(
        &b,
        &flow,
        &[
            ("method", "password"),
            ("identifier", "alice@example.com"),
            ("password", "wrong password!!"),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none()
    );

    // Proving the account only leads to the question, which names the upstream account.
    let confirm = prove_password(&b, &s, &flow, "correct horse battery").await;
    assert!(ids(&confirm).contains(&1010901), "{confirm}");
    let question = confirm["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        question.contains("Acme acme") && question.contains("alice@example.com"),
        "names the upstream account: {confirm}"
    );
    assert!(whoami(&b, &s).await.get("identity").is_none());
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none(),
        "nothing linked before the answer"
    );
    let page = b
        .get(
            &format!(
                "{}/ui/login?flow={}",
                s.public,
                confirm["id"].as_str().unwrap()
            ),
            false,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"link_decision\" value=\"confirm\""),
        "{page}"
    );

    // Yes: linked, and signed in.
    let r = submit(&b, &confirm, &[("link_decision", "confirm")], false).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b, &s).await["identity"]["id"], alice_id.as_str());
    let full = admin_identity(&s, &alice_id).await;
    assert_eq!(
        full["credentials"]["oidc"]["identifiers"],
        json!(["acme:fake-user-1"])
    );

    // From now on the social sign-in goes straight to Alice.
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], alice_id.as_str());
}

#[tokio::test]
async fn declining_the_link_signs_in_without_linking() {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "alice@example.com", "email_verified": true}),
        ..Default::default()
    })
    .await;
    let s = server_with(&fake, VERIFYING_MAPPER).await;
    let alice = s
        .register("alice@example.com", "correct horse battery")
        .await;
    let alice_id = alice["identity"]["id"].as_str().unwrap().to_string();
    let b = Browser::default();
    let loc = location(&sign_in(&b, &s, "login").await);
    let flow = flow_json(&b, &s, "login", &flow_id_of(&loc)).await;
    let confirm = prove_password(&b, &s, &flow, "correct horse battery").await;
    let r = submit(&b, &confirm, &[("link_decision", "skip")], false).await;
    assert_eq!(r.status(), 303);
    assert_eq!(whoami(&b, &s).await["identity"]["id"], alice_id.as_str());
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none()
    );
    // The answered flow cannot be answered again.
    let r = submit(&b, &confirm, &[("link_decision", "confirm")], true).await;
    assert_eq!(r.status(), 400);
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none()
    );
}

/// Security review H2 and L7: an attacker whose upstream account carries the victim's
/// *unverified* email gets no link prompt and learns nothing about the victim's account.
#[tokio::test]
async fn an_unverified_colliding_email_gets_the_plain_message_and_no_link_prompt() {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "alice@example.com", "email_verified": false}),
        ..Default::default()
    })
    .await;
    let s = server_with(&fake, TRUSTING_MAPPER).await;
    let alice = s
        .register("alice@example.com", "correct horse battery")
        .await;
    let alice_id = alice["identity"]["id"].as_str().unwrap().to_string();
    let attacker = Browser::default();
    let loc = location(&sign_in(&attacker, &s, "login").await);
    let flow = flow_json(&attacker, &s, "login", &flow_id_of(&loc)).await;
    let got = ids(&flow);
    assert!(got.contains(&4000027) && !got.contains(&1010016), "{flow}");
    assert!(
        !flow.to_string().contains("available_oidc_providers"),
        "no details of the existing account: {flow}"
    );
    assert!(
        flow["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["attributes"]["value"] != "alice@example.com"),
        "the address is not pre-filled: {flow}"
    );
    assert_eq!(identities(&s).await.len(), 1);
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none()
    );
}

/// Security review H2, step by step: the attacker starts an **API** flow, signs in upstream
/// with an account carrying the victim's (even verified) email, and phishes the victim with
/// the flow's page. Nothing is linked and the attacker gets no session.
#[tokio::test]
async fn the_api_flow_link_takeover_from_the_review_fails() {
    for (backend, verified) in [
        (Backend::Sqlite, false),
        (Backend::Sqlite, true),
        (Backend::Postgres, false),
        (Backend::Postgres, true),
    ] {
        let fake = FakeOidc::start(FakeOptions {
            claims: json!({"email": "alice@example.com", "email_verified": verified}),
            ..Default::default()
        })
        .await;
        // With a verified address, only the flow's type stands between the attacker and a
        // link prompt.
        let mapper = if verified {
            VERIFYING_MAPPER
        } else {
            TRUSTING_MAPPER
        };
        let s = server_on(backend, &fake, mapper).await;
        let alice = s
            .register("alice@example.com", "correct horse battery")
            .await;
        let alice_id = alice["identity"]["id"].as_str().unwrap().to_string();

        // 1-2. The attacker's API flow and upstream sign-in.
        let app = TestServer::client();
        let api: Value = app
            .get(format!(
                "{}/self-service/login/api?return_session_token_exchange_code=true&return_to=https://app.example.com/native",
                s.public
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let init_code = api["session_token_exchange_code"]
            .as_str()
            .unwrap()
            .to_string();
        let r = app
            .post(api["ui"]["action"].as_str().unwrap())
            .json(&json!({"method": "oidc", "provider": "acme"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let body: Value = r.json().await.unwrap();
        let attacker = Browser::default();
        let callback = upstream(&attacker, body["redirect_browser_to"].as_str().unwrap()).await;
        let r = attacker.get(&callback, false).await;
        let back = location(&r);
        // Back to the app with the flow, never to a hosted page with a password form.
        assert!(
            back.starts_with("https://app.example.com/native?flow="),
            "{back}"
        );
        let flow_id = back.split("flow=").nth(1).unwrap().to_string();
        let flow: Value = app
            .get(format!(
                "{}/self-service/login/flows?id={flow_id}",
                s.public
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(flow["type"], "api");
        let got = ids(&flow);
        assert!(got.contains(&4000027) && !got.contains(&1010016), "{flow}");

        // 3. The phishing page: the hosted UI does not render an API flow.
        let victim = Browser::default();
        let page = victim
            .get(&format!("{}/ui/login?flow={flow_id}", s.public), false)
            .await
            .text()
            .await
            .unwrap();
        assert!(!page.contains("name=\"password\""), "{page}");
        // Even if the victim's password reaches the flow, it links nothing.
        let r = victim
            .post_form(
                &format!("{}/self-service/login?flow={flow_id}", s.public),
                &[
                    ("method", "password"),
                    ("identifier", "alice@example.com"),
                    ("password", "correct horse battery"),
                ],
                true,
            )
            .await;
        assert!(r.status().as_u16() < 500);
        assert!(
            admin_identity(&s, &alice_id).await["credentials"]
                .get("oidc")
                .is_none(),
            "verified={verified}: linked"
        );

        // 4. The attacker signs in upstream again and gets no session for Alice.
        let again = Browser::default();
        let loc = location(&sign_in(&again, &s, "login").await);
        assert!(whoami(&again, &s).await.get("identity").is_none(), "{loc}");
        let r = app
            .get(format!(
                "{}/sessions/token-exchange?init_code={init_code}&return_to_code=x",
                s.public
            ))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 200);
        assert_eq!(identities(&s).await.len(), 1);
    }
}

each_backend!(another_browsers_link_page_is_never_shown_or_accepted);
/// The browser variant: a "sign in to link" page of the attacker's browser flow, sent to the
/// victim, shows the victim a fresh flow of their own, and the attacker's flow cannot be
/// submitted from the victim's browser.
async fn another_browsers_link_page_is_never_shown_or_accepted(backend: Backend) {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "alice@example.com", "email_verified": true}),
        ..Default::default()
    })
    .await;
    let s = server_on(backend, &fake, VERIFYING_MAPPER).await;
    let alice = s
        .register("alice@example.com", "correct horse battery")
        .await;
    let alice_id = alice["identity"]["id"].as_str().unwrap().to_string();
    let attacker = Browser::default();
    let loc = location(&sign_in(&attacker, &s, "login").await);
    let flow_id = flow_id_of(&loc);
    let flow = flow_json(&attacker, &s, "login", &flow_id).await;
    assert!(ids(&flow).contains(&1010016));

    let victim = Browser::default();
    let r = victim
        .get(&format!("{}/ui/login?flow={flow_id}", s.public), false)
        .await;
    assert_eq!(r.status(), 303, "a fresh flow instead of the attacker's");
    assert!(!location(&r).contains(&flow_id));
    // The flow JSON is refused without the attacker's cookie, and carries no usable secret.
    let r = TestServer::client()
        .get(format!(
            "{}/self-service/login/flows?id={flow_id}",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = victim
        .post_form(
            &format!("{}/self-service/login?flow={flow_id}", s.public),
            &[
                ("csrf_token", &csrf_of(&flow)),
                ("method", "password"),
                ("identifier", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        admin_identity(&s, &alice_id).await["credentials"]
            .get("oidc")
            .is_none()
    );
}

#[tokio::test]
async fn settings_link_and_unlink_but_never_the_last_credential() {
    let fake = FakeOidc::start(FakeOptions {
        claims: json!({"email": "bob@example.com", "email_verified": true}),
        ..Default::default()
    })
    .await;
    let s = server(&fake, json!({})).await;
    // Bob signs up with a password, then links Acme in settings.
    let b = Browser::default();
    let flow = open_flow(&b, &s, "registration").await;
    let r = submit(
        &b,
        &flow,
        &[
            ("method", "password"),
            ("traits.email", "bob@example.com"),
            ("password", "correct horse battery"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let bob = whoami(&b, &s).await["identity"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let settings: Value = b
        .get(&format!("{}/self-service/settings/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let link = settings["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "link")
        .expect("a link button");
    assert_eq!(link["attributes"]["value"], "acme");
    assert_eq!(link["meta"]["label"]["id"], 1050002);
    let action = settings["ui"]["action"].as_str().unwrap().to_string();
    let csrf = csrf_of(&settings);
    let r = b
        .post_form(&action, &[("csrf_token", &csrf), ("link", "acme")], false)
        .await;
    assert_eq!(r.status(), 303);
    let callback = upstream(&b, &location(&r)).await;
    let r = b.get(&callback, false).await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/settings?flow=", s.public)),
        "{loc}"
    );
    let after = flow_json(&b, &s, "settings", &flow_id_of(&loc)).await;
    assert_eq!(after["state"], "success", "{after}");
    assert!(
        after["ui"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["attributes"]["name"] == "unlink" && n["attributes"]["value"] == "acme")
    );
    assert_eq!(
        admin_identity(&s, &bob).await["credentials"]["oidc"]["identifiers"],
        json!(["acme:fake-user-1"])
    );

    // Unlink it again.
    let r = b
        .post_form(&action, &[("csrf_token", &csrf), ("unlink", "acme")], true)
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert!(
        admin_identity(&s, &bob).await["credentials"]
            .get("oidc")
            .is_none()
    );

    // A social-only identity cannot unlink its only way in.
    fake.set_claims(
        "carol-sub",
        json!({"email": "carol@example.com", "email_verified": true}),
    );
    let c = Browser::default();
    let r = sign_in(&c, &s, "registration").await;
    assert_eq!(r.status(), 303);
    let carol = whoami(&c, &s).await["identity"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let settings: Value = c
        .get(&format!("{}/self-service/settings/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let r = c
        .post_form(
            settings["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&settings)), ("unlink", "acme")],
            true,
        )
        .await;
    assert_eq!(r.status(), 400);
    let refused: Value = r.json().await.unwrap();
    assert!(
        refused["ui"]["messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("only way to sign in"),
        "{refused}"
    );
    assert_eq!(
        admin_identity(&s, &carol).await["credentials"]["oidc"]["identifiers"],
        json!(["acme:carol-sub"])
    );
}

#[tokio::test]
async fn ajax_and_api_callers_are_told_to_move_the_browser() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;
    // AJAX on a browser flow: 422 with redirect_browser_to, and the continuity cookie.
    let b = Browser::default();
    let flow: Value = b
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&flow)), ("provider", "acme")],
            true,
        )
        .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["id"], "browser_location_change_required");
    let to = body["redirect_browser_to"].as_str().unwrap();
    assert!(
        to.starts_with(&format!("{}/authorize?", fake.issuer())),
        "{to}"
    );
    for p in [
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "client_id=tessera",
    ] {
        assert!(to.contains(p), "{p} in {to}");
    }
    assert!(b.cookie("tessera_continuity").is_some());
    // The SPA then navigates the browser there and the sign-in completes.
    let callback = upstream(&b, to).await;
    let r = b.get(&callback, false).await;
    assert_eq!(
        location(&r),
        s.engine.0.settings.flows.default_return_url.as_str()
    );
    assert!(whoami(&b, &s).await["identity"]["id"].is_string());

    // A native app's API flow without the token exchange is told what it needs.
    let app = TestServer::client();
    let plain: Value = app
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .post(plain["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "oidc", "provider": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["ui"]["messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("return_session_token_exchange_code"),
        "{body}"
    );

    // With it: 422 to move the system browser, then the app redeems the session with both codes.
    let api: Value = app
        .get(format!(
            "{}/self-service/login/api?return_session_token_exchange_code=true&return_to=https://app.example.com/native",
            s.public
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let init_code = api["session_token_exchange_code"]
        .as_str()
        .expect("init code")
        .to_string();
    let r = app
        .post(api["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "oidc", "provider": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["id"], "browser_location_change_required");
    let system_browser = Browser::default();
    let callback = upstream(
        &system_browser,
        body["redirect_browser_to"].as_str().unwrap(),
    )
    .await;
    let r = system_browser.get(&callback, false).await;
    let back = location(&r);
    assert!(
        back.starts_with("https://app.example.com/native?code="),
        "{back}"
    );
    assert!(
        system_browser.cookie("tessera_session").is_none(),
        "the browser gets no session"
    );
    let code = back.split("code=").nth(1).unwrap();
    let wrong = app
        .get(format!(
            "{}/sessions/token-exchange?init_code=nope&return_to_code={code}",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let r = app
        .get(format!(
            "{}/sessions/token-exchange?init_code={init_code}&return_to_code={code}",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    let token = got["session_token"].as_str().unwrap();
    let (status, me) = s.whoami(token).await;
    assert_eq!(status, 200);
    assert_eq!(me["identity"]["traits"]["email"], "fake.user@example.com");
    let again = app
        .get(format!(
            "{}/sessions/token-exchange?init_code={init_code}&return_to_code={code}",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "redeemable once");

    // An unknown provider is a flow message, not a crash.
    let r = app
        .post(plain["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "oidc", "provider": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn without_the_session_hook_the_user_is_sent_to_sign_in() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = TestServer::start(
        Backend::Sqlite,
        config(vec![provider("acme", &fake, MAPPER)], false),
    )
    .await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "registration").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/self-service/login/browser", s.public)),
        "{loc}"
    );
    assert!(loc.contains("return_to="), "{loc}");
    assert!(whoami(&b, &s).await.get("identity").is_none());
    assert_eq!(identities(&s).await.len(), 1);
    // Signing in now works and lands in that identity.
    let r = sign_in(&b, &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(identities(&s).await.len(), 1);
}

#[tokio::test]
async fn a_form_post_callback_is_reissued_as_a_same_site_get() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;
    let b = Browser::default();
    let callback = upstream(&b, &press_provider(&b, &s, "login", "acme").await).await;
    // What `response_mode=form_post` does: the same parameters, POSTed cross-site (so without
    // the Lax continuity cookie; this browser sends none here).
    let url = url::Url::parse(&callback).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let form: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut base = url.clone();
    base.set_query(None);
    let r = TestServer::client()
        .post(base.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let get = location(&r);
    assert!(
        get.starts_with(base.as_str()) && get.contains("state="),
        "{get}"
    );
    // The browser follows it as a top-level GET, with its cookies: signed in.
    let r = b.get(&get, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert!(whoami(&b, &s).await["identity"]["id"].is_string());
}

#[tokio::test]
async fn upstream_tokens_are_kept_encrypted_when_asked() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({"store_tokens": true})).await;
    let b = Browser::default();
    sign_in(&b, &s, "login").await;
    let id = whoami(&b, &s).await["identity"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // At rest: only ciphertext.
    let raw: String = sqlx::query_scalar(
        "SELECT config FROM identity_credentials WHERE type = 'oidc' AND identity_id = $1",
    )
    .bind(&id)
    .fetch_one(
        &sqlx::SqlitePool::connect(&format!("sqlite://{}", s.dir.join("tessera.db").display()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let stored: Value = serde_json::from_str(&raw).unwrap();
    let sealed = stored["providers"][0]["initial_id_token"].as_str().unwrap();
    // The admin API decrypts them on request.
    let full = admin_identity(&s, &id).await;
    let p = &full["credentials"]["oidc"]["config"]["providers"][0];
    let id_token = p["initial_id_token"].as_str().unwrap();
    assert!(id_token.starts_with("eyJ"), "{p}");
    assert!(p["initial_access_token"].is_string());
    // Not a byte of either token is in the stored row: a random ciphertext may hold the
    // letters `eyJ` by chance, but never a JWT's payload segment.
    let payload = id_token.split('.').nth(1).unwrap();
    let access = p["initial_access_token"].as_str().unwrap();
    assert!(
        sealed.starts_with("v1.") && !raw.contains(payload) && !raw.contains(access),
        "{sealed}"
    );
    // Without include_credential, no config at all.
    let plain: Value = reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        plain["credentials"]["oidc"].get("config").is_none(),
        "{plain}"
    );
}

#[tokio::test]
async fn addresses_the_mapper_vouches_for_start_verified() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let mapper = r#"local c = std.extVar('claims');
{ identity: { traits: { email: c.email },
  verified_addresses: if c.email_verified then [{ value: c.email, via: 'email' }] else [] } }"#;
    let s = TestServer::start(
        Backend::Sqlite,
        config(vec![provider("acme", &fake, mapper)], true),
    )
    .await;
    let b = Browser::default();
    sign_in(&b, &s, "login").await;
    let me = whoami(&b, &s).await;
    let addr = &me["identity"]["verifiable_addresses"][0];
    assert_eq!(addr["value"], "fake.user@example.com");
    assert_eq!(addr["verified"], true, "{me}");
    assert_eq!(addr["status"], "completed");
}

#[tokio::test]
async fn upstream_key_rotation_is_followed() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;
    let r = sign_in(&Browser::default(), &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let before = fake.jwks_requests();
    fake.rotate_key();
    let r = sign_in(&Browser::default(), &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(
        fake.jwks_requests(),
        before + 1,
        "refetched once for the new kid"
    );
    // The cached key set serves the next sign-in without another fetch.
    sign_in(&Browser::default(), &s, "login").await;
    assert_eq!(fake.jwks_requests(), before + 1);
}

#[tokio::test]
async fn update_traits_on_login_remaps_every_time() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({"update_traits_on_login": true})).await;
    let b = Browser::default();
    sign_in(&b, &s, "login").await;
    fake.set_claims(
        "fake-user-1",
        json!({"email": "fake.user@example.com", "email_verified": true, "name": "Renamed"}),
    );
    let b2 = Browser::default();
    sign_in(&b2, &s, "login").await;
    assert_eq!(
        whoami(&b2, &s).await["identity"]["traits"]["name"]["first"],
        "Renamed"
    );
}

each_backend!(two_simultaneous_first_sign_ins_make_one_identity);
async fn two_simultaneous_first_sign_ins_make_one_identity(backend: Backend) {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = TestServer::start(backend, config(vec![provider("acme", &fake, MAPPER)], true)).await;
    let (b1, b2) = (Browser::default(), Browser::default());
    let cb1 = upstream(&b1, &press_provider(&b1, &s, "login", "acme").await).await;
    let cb2 = upstream(&b2, &press_provider(&b2, &s, "login", "acme").await).await;
    let (r1, r2) = tokio::join!(b1.get(&cb1, false), b2.get(&cb2, false));
    assert_eq!(location(&r1), "https://app.example.com/after");
    assert_eq!(location(&r2), "https://app.example.com/after");
    let all = identities(&s).await;
    assert_eq!(all.len(), 1, "{backend:?}: {all:?}");
    assert_eq!(
        whoami(&b1, &s).await["identity"]["id"],
        whoami(&b2, &s).await["identity"]["id"]
    );
}

// ---- hostile input -------------------------------------------------------------------------

/// Runs one sign-in against a misbehaving upstream; it must end on the login page with a
/// clear message, and create nothing.
async fn refused_with_message(fake: &FakeOidc, s: &TestServer, behavior: Behavior, needle: &str) {
    fake.set_behavior(behavior.clone());
    let b = Browser::default();
    let r = sign_in(&b, s, "login").await;
    assert_eq!(r.status(), 303, "{behavior:?}");
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
        "{behavior:?}: {loc}"
    );
    let flow = flow_json(&b, s, "login", &flow_id_of(&loc)).await;
    let text = flow["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains(needle), "{behavior:?}: {flow}");
    assert!(whoami(&b, s).await.get("identity").is_none());
    assert!(
        identities(s).await.is_empty(),
        "{behavior:?} created an identity"
    );
    // The page renders the message for a person.
    let page = b.get(&loc, false).await.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    fake.set_behavior(Behavior::Normal);
}

#[tokio::test]
async fn bad_id_tokens_and_broken_token_answers_are_refused() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;
    let unverified = "could not be verified";
    for behavior in [
        Behavior::WrongIss,
        Behavior::WrongAud,
        Behavior::WrongNonce,
        Behavior::Expired,
        Behavior::AlgNone,
        Behavior::BadSignature,
    ] {
        refused_with_message(&fake, &s, behavior, unverified).await;
    }
    refused_with_message(&fake, &s, Behavior::TokenInvalidJson, "could not use").await;
    refused_with_message(&fake, &s, Behavior::Token500, "could not use").await;
    // A token endpoint that closes the connection without answering (issue 21, scenario 4).
    refused_with_message(&fake, &s, Behavior::TokenDrop, "could not be reached").await;
    refused_with_message(&fake, &s, Behavior::AuthorizeWrongIss, "mix-up").await;
    // Security review L3: the upstream advertises RFC 9207, so a callback without `iss` is
    // refused too.
    refused_with_message(&fake, &s, Behavior::AuthorizeOmitIss, "no `iss` parameter").await;
    refused_with_message(
        &fake,
        &s,
        Behavior::AuthorizeError {
            error: "access_denied".into(),
            description: "The user said no".into(),
        },
        "cancelled or denied (The user said no)",
    )
    .await;
    // After all that, a normal sign-in still works.
    let r = sign_in(&Browser::default(), &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn userinfo_that_is_not_json_is_refused() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({"claims_source": "userinfo"})).await;
    refused_with_message(&fake, &s, Behavior::UserinfoInvalidJson, "could not use").await;
    let r = sign_in(&Browser::default(), &s, "login").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert!(fake.userinfo_requests() >= 2);
}

#[tokio::test]
async fn a_silent_upstream_times_out_while_others_keep_signing_in() {
    let slow = FakeOidc::start(FakeOptions::default()).await;
    let fast = FakeOidc::start(FakeOptions {
        subject: "fast-user".into(),
        ..Default::default()
    })
    .await;
    let providers = vec![
        provider("acme", &slow, MAPPER),
        provider("quick", &fast, MAPPER),
    ];
    let s = TestServer::start(Backend::Sqlite, config(providers, true)).await;
    slow.set_behavior(Behavior::TokenHang(Duration::from_secs(30)));
    let b = Browser::default();
    let cb = upstream(&b, &press_provider(&b, &s, "login", "acme").await).await;
    let started = std::time::Instant::now();
    let hung = tokio::spawn(async move {
        let r = b.get(&cb, false).await;
        (location(&r), b)
    });
    // Meanwhile another user signs in through the other provider.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = Browser::default();
    let cb = upstream(&other, &press_provider(&other, &s, "login", "quick").await).await;
    let r = other.get(&cb, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not blocked by the hung upstream"
    );

    let (loc, b) = hung.await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "gave up after the 10 s limit, not the upstream's 30 s: {waited:?}"
    );
    let flow = flow_json(&b, &s, "login", &flow_id_of(&loc)).await;
    assert!(
        flow["ui"]["messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{flow}"
    );
}

#[tokio::test]
async fn a_replayed_state_and_a_foreign_browser_are_refused() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let s = server(&fake, json!({})).await;
    let b = Browser::default();
    let callback = upstream(&b, &press_provider(&b, &s, "login", "acme").await).await;

    // The callback opened in another browser (no continuity cookie, then a forged one):
    // refused, and the state is not spent, so a stranger holding a leaked callback URL cannot
    // spoil the sign-in of the person still in the middle of it.
    let stranger = Browser::default();
    let r = stranger.get(&callback, false).await;
    let (loc, _) = assert_stored_error(&s, &r, "continuity").await;
    let page = stranger.get(&loc, false).await.text().await.unwrap();
    assert!(page.contains("another browser"), "{page}");
    assert!(whoami(&stranger, &s).await.get("identity").is_none());
    let forged = TestServer::client()
        .get(&callback)
        .header("Cookie", "tessera_continuity=forged-value")
        .send()
        .await
        .unwrap();
    assert_stored_error(&s, &forged, "continuity").await;

    // The rightful browser completes with that same callback; replaying it is refused.
    let r = b.get(&callback, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let r = b.get(&callback, false).await;
    let (_, err_id) = assert_stored_error(&s, &r, "already used").await;
    // Error pages never echo text from the URL.
    let page = b
        .get(
            &format!("{}/ui/error?error=<b>Call+us</b>", s.public),
            false,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Call us") && !page.contains("<b>"), "{page}");
    assert_eq!(identities(&s).await.len(), 1);

    // Housekeeping drops stored errors once they are old, and attempts once they expired.
    let store = &s.engine.0.store;
    let now = tessera_core::timefmt::now_ms();
    let id = uuid::Uuid::parse_str(&err_id).unwrap();
    assert!(store.get_error(id).await.unwrap().is_some());
    let kept = store
        .delete_stale_social(now, now - 3_600_000)
        .await
        .unwrap();
    assert_eq!(kept, 0, "nothing is old yet");
    assert!(store.get_error(id).await.unwrap().is_some());
    let removed = store.delete_stale_social(now, now + 1).await.unwrap();
    assert!(removed >= 2, "both stored errors went: {removed}");
    assert!(store.get_error(id).await.unwrap().is_none());
}

#[tokio::test]
async fn hostile_mappers_end_the_sign_in_with_a_message_and_the_server_keeps_serving() {
    let fake = FakeOidc::start(FakeOptions::default()).await;
    let hostile = [
        ("loop", "local f(x) = f(x + 1) + 1; f(0)"),
        ("alloc", "local f(a) = f(a + a); f(['x'])"),
        (
            "big",
            "{ identity: { traits: { email: std.repeat('x', 10 * 1024 * 1024) } } }",
        ),
        ("notobject", "[1, 2, 3]"),
        ("throws", "error 'mapper refused'"),
        ("shape", "{ identity: { traits: 'nope' } }"),
        (
            "import",
            "local secret = importstr '/etc/hostname'; { identity: { traits: { email: secret } } }",
        ),
    ];
    let mut providers: Vec<Value> = hostile
        .iter()
        .map(|(id, src)| provider(id, &fake, src))
        .collect();
    providers.push(provider("good", &fake, MAPPER));
    let s = TestServer::start(Backend::Sqlite, config(providers, true)).await;
    for (id, _) in hostile {
        let b = Browser::default();
        let callback = upstream(&b, &press_provider(&b, &s, "login", id).await).await;
        let r = b.get(&callback, false).await;
        let loc = location(&r);
        assert!(
            loc.starts_with(&format!("{}/ui/login?flow=", s.public)),
            "{id}: {loc}"
        );
        let flow = flow_json(&b, &s, "login", &flow_id_of(&loc)).await;
        assert!(
            flow["ui"]["messages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("profile mapping failed"),
            "{id}: {flow}"
        );
        assert!(identities(&s).await.is_empty(), "{id}");
    }
    let b = Browser::default();
    let callback = upstream(&b, &press_provider(&b, &s, "login", "good").await).await;
    let r = b.get(&callback, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn provider_configuration_errors_name_the_provider_key_and_line() {
    let dir = tessera_testkit::temp_dir();
    std::fs::write(
        dir.join("broken.jsonnet"),
        "{ identity: { traits: { email: } } }",
    )
    .unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "          - id: a\n            provider: generic\n            client_id: x\n            issuer_url: https://a.example\n            mapper_url: base64://e30=\n          - id: a\n            provider: generic\n            client_id: y\n            issuer_url: https://b.example\n            mapper_url: base64://e30=\n".into(),
            vec!["providers.1.id", "duplicate provider id `a`", "tessera.yml:"],
        ),
        (
            "          - id: a\n            provider: myspace\n            client_id: x\n            mapper_url: base64://e30=\n".into(),
            vec!["providers.0.provider", "unknown provider type `myspace`", "generic"],
        ),
        (
            "          - id: a\n            provider: generic\n            client_id: x\n            issuer_url: https://a.example\n            mapper_url: file:///nonexistent/mapper.jsonnet\n".into(),
            vec!["providers.0.mapper_url", "provider `a`"],
        ),
        (
            "          - id: a\n            provider: generic\n            client_id: x\n            issuer_url: https://a.example\n            mapper_url: file://broken.jsonnet\n".into(),
            vec!["providers.0.mapper_url", "provider `a` mapper", "line 1"],
        ),
        (
            "          - id: a\n            provider: generic\n            client_id: x\n            issuer_url: https://a.example\n            mapper_url: base64://e30=\n            scopes: [email]\n".into(),
            vec!["providers.0", "unknown field `scopes`"],
        ),
        (
            "          - id: a\n            provider: generic\n            mapper_url: base64://e30=\n".into(),
            vec!["providers.0.client_id", "providers.0.issuer_url"],
        ),
    ];
    for (providers, needles) in cases {
        // YAML text on purpose: the messages name lines of this very file.
        let yaml = format!(
            "dsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\nselfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}"
        );
        let path = dir.join("tessera.yml");
        std::fs::write(&path, &yaml).unwrap();
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
        for n in needles {
            assert!(err.contains(n), "`{n}` in:\n{err}");
        }
    }
}
