//! Kratos's global provider types of issue 18, second part, end to end through the browser
//! flow against their emulators with `tessera demo`'s default mappers: Microsoft (the
//! `{tenantid}` issuer template filled from the token's `tid` and then enforced, tenant rules,
//! `xms_edov` as the only verified-email signal, the subject sources), Apple (the client
//! secret signed from `apple_private_key`, the cross-site `form_post` callback bound to the
//! browser that started the sign-in, the name sent once, `email_verified` as a string), and a
//! `kratos.yml` naming every Kratos `provider:` value.

use serde_json::json;
use tessera_testkit::emulators::apple::AppleEmulator;
use tessera_testkit::emulators::microsoft::{CONSUMERS, CONTOSO, MicrosoftEmulator};
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, location, oidc_identifiers,
    param, press_provider, refusal, refused_in_every_language, sign_in, sign_up_and_again,
    start_error, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

// ---- Microsoft -----------------------------------------------------------------------------

/// `tessera demo`'s Microsoft mapper, the one docs/providers/microsoft.md shows.
const MICROSOFT_MAPPER: &str = include_str!("../../demo/microsoft.jsonnet");

fn microsoft_yaml(m: &MicrosoftEmulator, secret: &str, tenant: &str, extra: &str) -> String {
    format!(
        "          - id: microsoft\n            provider: microsoft\n            microsoft_tenant: {tenant}\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            api_base_url: {}\n            scope: [profile, email]\n            mapper_url: base64://{}\n{extra}",
        m.client_id(),
        m.base_url(),
        m.base_url(),
        b64(MICROSOFT_MAPPER)
    )
}

async fn microsoft_server(
    backend: Backend,
    m: &MicrosoftEmulator,
    tenant: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(
        backend,
        &config(&microsoft_yaml(m, m.client_secret(), tenant, extra)),
    )
    .await;
    m.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/microsoft",
        s.public
    ));
    s
}

each_backend!(microsoft_sign_up_then_sign_in_again_into_the_same_identity);
async fn microsoft_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let m = MicrosoftEmulator::start().await;
    let s = microsoft_server(backend, &m, "common", "").await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "microsoft",
        "https://app.example.com/after",
    )
    .await;
    assert!(
        authorize.starts_with(&format!("{}/common/oauth2/v2.0/authorize?", m.base_url())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid profile email")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    // Иван's personal account: the `common` document's issuer is the `{tenantid}` template,
    // filled in with his token's `tid` (the personal accounts' directory).
    let id = sign_up_and_again(
        &s,
        "microsoft",
        ("ivan", "ivan.petrov@outlook.com"),
        &m.sub_of("ivan"),
    )
    .await;
    let me: serde_json::Value = reqwest::get(format!("{}/admin/identities/{id}", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["metadata_public"]["microsoft_tenant"], CONSUMERS);
    s.stop().await;
}

#[tokio::test]
async fn microsoft_email_without_xms_edov_is_not_taken() {
    let m = MicrosoftEmulator::start().await;
    let s = microsoft_server(Backend::Sqlite, &m, "common", "").await;
    // Мария's directory never verified her email's domain (no `xms_edov`): an unverified
    // `email` could be set by any directory's admin, so the page asks for one.
    fill_the_gap(&s, "microsoft", &m.sub_of("maria")).await;
}

#[tokio::test]
async fn microsoft_a_token_whose_issuer_is_not_its_directory_is_refused() {
    let m = MicrosoftEmulator::start().await;
    let s = microsoft_server(Backend::Sqlite, &m, "common", "").await;
    // Signed with Microsoft's key, but `tid` says Contoso while `iss` is Fabrikam's directory
    // (Мария's): the issuer Tessera expects comes from `tid` and must match exactly.
    m.set_forged_tid(Some(CONTOSO));
    let text = refused_in_every_language(
        &s,
        ("microsoft", "maria"),
        "Не удалось проверить ответ Microsoft",
        "无法验证来自 Microsoft 的响应",
    )
    .await;
    assert!(text.contains("could not be verified"), "{text}");
    // A `tid` that is not a tenant id cannot choose an issuer at all.
    m.set_forged_tid(Some("{tenantid}"));
    let b = Browser::default();
    let text = refusal(&b, &s, sign_in(&b, &s, "login", "microsoft", "ivan").await).await;
    assert!(text.contains("could not be verified"), "{text}");
    // An issuer of another authority with a valid-looking `tid`.
    m.set_forged_tid(None);
    m.set_forged_issuer(Some(&format!("https://evil.example/{CONSUMERS}/v2.0")));
    let b = Browser::default();
    let text = refusal(&b, &s, sign_in(&b, &s, "login", "microsoft", "ivan").await).await;
    assert!(text.contains("could not be verified"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn microsoft_tenant_rules_one_directory_and_organizations_only() {
    let m = MicrosoftEmulator::start().await;
    // One directory, by its domain: its discovery document names Contoso's issuer, so a
    // token of another directory (here forged to pass Microsoft's own check) is refused.
    let s = microsoft_server(Backend::Sqlite, &m, "contoso.example", "").await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "microsoft", "anna").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(
        whoami(&b, &s).await["identity"]["traits"]["email"],
        "anna@contoso.example"
    );
    // The same directory by its tenant id. Someone edits the authorize URL to `common`, so
    // the emulator admits Иван's personal account; Tessera expects Contoso's issuer.
    let contoso_only = microsoft_server(Backend::Sqlite, &m, CONTOSO, "").await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &contoso_only,
        "login",
        "microsoft",
        "https://app.example.com/after",
    )
    .await;
    let cross = authorize.replace(&format!("/{CONTOSO}/"), "/common/");
    let callback = tessera_testkit::journey::upstream(&b, &cross, "ivan").await;
    let text = refusal(&b, &contoso_only, b.get(&callback, false).await).await;
    assert!(text.contains("could not be verified"), "{text}");

    // `organizations`: work and school accounts only; a personal account is refused with a
    // sentence saying so, even when it reaches the callback.
    let s = microsoft_server(Backend::Sqlite, &m, "organizations", "").await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "microsoft",
        "https://app.example.com/after",
    )
    .await;
    let cross = authorize.replace("/organizations/", "/common/");
    let callback = tessera_testkit::journey::upstream(&b, &cross, "ivan").await;
    let text = refusal(&b, &s, b.get(&callback, false).await).await;
    assert!(
        text.contains("only work or school Microsoft accounts"),
        "{text}"
    );
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "microsoft", "anna").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn microsoft_subject_sources_me_and_tid_oid() {
    let m = MicrosoftEmulator::start().await;
    let anna = m.user("anna");
    for (source, subject) in [
        ("me", anna.oid.to_string()),
        ("tid_oid", format!("{}:{}", anna.tid, anna.oid)),
    ] {
        let s = microsoft_server(
            Backend::Sqlite,
            &m,
            "common",
            &format!("            subject_source: {source}\n"),
        )
        .await;
        let b = Browser::default();
        let r = sign_in(&b, &s, "login", "microsoft", "anna").await;
        assert_eq!(location(&r), "https://app.example.com/after");
        let id = whoami(&b, &s).await["identity"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            oidc_identifiers(&s, &id).await,
            json!([format!("microsoft:{subject}")]),
            "{source}"
        );
    }
    let err = start_error(&config(&microsoft_yaml(
        &m,
        m.client_secret(),
        "common",
        "            subject_source: email\n",
    )))
    .await;
    assert!(
        err.contains("providers.0.subject_source") && err.contains("tid_oid"),
        "{err}"
    );
}

#[tokio::test]
async fn microsoft_errors_are_clear_localised_messages_and_the_config_is_checked() {
    let m = MicrosoftEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&microsoft_yaml(&m, "not-the-secret", "common", "")),
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("microsoft", "ivan"),
        "Вход через Microsoft отклонён",
        "Microsoft 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Microsoft refused the sign-in: invalid_client")
            && text.contains("AADSTS7000215"),
        "{text}"
    );
    let s = microsoft_server(Backend::Sqlite, &m, "common", "").await;
    let text = refused_in_every_language(
        &s,
        ("microsoft", "deny"),
        "Вход через Microsoft отменён",
        "Microsoft 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());

    assert_needs_a_secret(&config(&microsoft_yaml(&m, "\"\"", "common", ""))).await;
    let err = start_error(&config(&microsoft_yaml(&m, m.client_secret(), "\"\"", ""))).await;
    assert!(
        err.contains("providers.0.microsoft_tenant") && err.contains("organizations"),
        "{err}"
    );
}

// ---- Apple ---------------------------------------------------------------------------------

/// `tessera demo`'s Apple mapper, the one docs/providers/apple.md shows.
const APPLE_MAPPER: &str = include_str!("../../demo/apple.jsonnet");

/// YAML block-scalar lines of a PEM, indented for a provider entry's key.
fn pem_block(pem: &str) -> String {
    pem.lines()
        .map(|l| format!("              {l}\n"))
        .collect()
}

fn apple_yaml(a: &AppleEmulator, key_pem: &str, extra: &str) -> String {
    format!(
        "          - id: apple\n            provider: apple\n            client_id: {}\n            apple_team_id: {}\n            apple_private_key_id: {}\n            apple_private_key: |\n{}            issuer_url: {}\n            scope: [name, email]\n            mapper_url: base64://{}\n{extra}",
        a.client_id(),
        a.team_id(),
        a.key_id(),
        pem_block(key_pem),
        a.issuer(),
        b64(APPLE_MAPPER)
    )
}

async fn apple_server(backend: Backend, a: &AppleEmulator) -> TestServer {
    let s = TestServer::start(backend, &config(&apple_yaml(a, a.private_key_pem(), ""))).await;
    a.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/apple",
        s.public
    ));
    s
}

/// What Apple's page posts: its form's action and fields, read as a browser reads them.
async fn apple_form(b: &Browser, authorize: &str, user: &str) -> (String, Vec<(String, String)>) {
    let page = b.get(&format!("{authorize}&user={user}"), false).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let attr = |tag: &str, name: &str| {
        tag.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(unescape)
            .unwrap_or_default()
    };
    let form = html.split("<form").nth(1).expect("a form");
    let action = attr(form, "action");
    let fields = html
        .split("<input")
        .skip(1)
        .map(|tag| (attr(tag, "name"), attr(tag, "value")))
        .collect();
    (action, fields)
}

/// The browser auto-submits Apple's form: a cross-site POST, so it carries none of the
/// browser's `SameSite=Lax` cookies. Returns where Tessera sends the browser next.
async fn cross_site_post(action: &str, fields: &[(String, String)]) -> reqwest::Response {
    TestServer::client()
        .post(action)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// A whole Apple sign-in of `user` in browser `b`: the form post, then the same-site GET.
async fn apple_sign_in(b: &Browser, s: &TestServer, user: &str) -> reqwest::Response {
    let authorize = press_provider(b, s, "login", "apple", "https://app.example.com/after").await;
    let (action, fields) = apple_form(b, &authorize, user).await;
    let r = cross_site_post(&action, &fields).await;
    assert_eq!(r.status(), 303);
    b.get(&location(&r), false).await
}

each_backend!(apple_sign_up_through_form_post_then_sign_in_again);
async fn apple_sign_up_through_form_post_then_sign_in_again(backend: Backend) {
    let a = AppleEmulator::start().await;
    let s = apple_server(backend, &a).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "apple", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/auth/authorize?", a.issuer())),
        "{authorize}"
    );
    assert_eq!(param(&authorize, "scope").as_deref(), Some("name email"));
    assert_eq!(
        param(&authorize, "response_mode").as_deref(),
        Some("form_post")
    );
    assert!(param(&authorize, "nonce").is_some_and(|n| !n.is_empty()));
    // Apple posts the answer from its own site; the name comes this once, in `user`.
    let (action, fields) = apple_form(&b, &authorize, "ivan").await;
    assert!(fields.iter().any(|(k, _)| k == "user"), "{fields:?}");
    let r = cross_site_post(&action, &fields).await;
    assert_eq!(r.status(), 303);
    let get = location(&r);
    assert!(
        get.starts_with(&format!(
            "{}/self-service/methods/oidc/callback/apple?",
            s.public
        )),
        "re-issued as a same-site GET: {get}"
    );
    let r = b.get(&get, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@icloud.com");
    assert_eq!(me["traits"]["name"]["first"], "Иван");
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(me["metadata_public"]["apple_private_email"], false);
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("apple:{}", a.sub_of("ivan"))])
    );

    // The second time Apple sends no name: the same person signs in, the name stays.
    let b2 = Browser::default();
    let authorize = press_provider(
        &b2,
        &s,
        "registration",
        "apple",
        "https://app.example.com/after",
    )
    .await;
    let (action, fields) = apple_form(&b2, &authorize, "ivan").await;
    assert!(!fields.iter().any(|(k, _)| k == "user"), "{fields:?}");
    let r = cross_site_post(&action, &fields).await;
    let r = b2.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b2, &s).await["identity"].clone();
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["traits"]["name"]["first"], "Иван");
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn apple_an_attackers_cross_site_post_does_not_sign_the_victim_in() {
    let a = AppleEmulator::start().await;
    let s = apple_server(Backend::Sqlite, &a).await;
    // The attacker starts a sign-in in their own browser and stops at Apple's answer: a form
    // with a code and state for the attacker's Apple ID.
    let attacker = Browser::default();
    let authorize = press_provider(
        &attacker,
        &s,
        "login",
        "apple",
        "https://app.example.com/after",
    )
    .await;
    let (action, fields) = apple_form(&attacker, &authorize, "anna").await;
    // Their page makes the victim's browser post it. The victim even has a sign-in of their
    // own under way (a continuity cookie of their own).
    let victim = Browser::default();
    press_provider(
        &victim,
        &s,
        "login",
        "apple",
        "https://app.example.com/after",
    )
    .await;
    assert!(victim.cookie("tessera_continuity").is_some());
    let before = a.token_requests();
    let r = cross_site_post(&action, &fields).await;
    assert_eq!(r.status(), 303);
    let r = victim.get(&location(&r), false).await;
    tessera_testkit::journey::assert_stored_error(&s, &r, "did not start this sign-in").await;
    assert!(whoami(&victim, &s).await.get("identity").is_none());
    assert_eq!(a.token_requests(), before, "the code was never exchanged");
    assert!(identities(&s).await.is_empty());

    // A post straight at the callback from a browser that has no attempt at all fares the
    // same: the state stays with the browser that holds its continuity cookie.
    let r = cross_site_post(&action, &fields).await;
    let r = Browser::default().get(&location(&r), false).await;
    tessera_testkit::journey::assert_stored_error(&s, &r, "did not start this sign-in").await;
    assert_eq!(a.token_requests(), before, "the code was never exchanged");
    // A state nobody holds is refused as unknown.
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state".to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    let r = cross_site_post(&action, &forged).await;
    let r = Browser::default().get(&location(&r), false).await;
    tessera_testkit::journey::assert_stored_error(&s, &r, "unknown, expired or was already used")
        .await;
}

#[tokio::test]
async fn apple_the_unsigned_user_field_never_supplies_the_email() {
    let a = AppleEmulator::start().await;
    let s = apple_server(Backend::Sqlite, &a).await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "apple", "https://app.example.com/after").await;
    let (action, mut fields) = apple_form(&b, &authorize, "ivan").await;
    // Someone rewrites the unsigned `user` field on the way: only the names are taken from
    // it, the email comes from the signed id_token.
    for (k, v) in fields.iter_mut() {
        if k == "user" {
            *v = json!({"name": {"firstName": "Boss", "lastName": "Man"}, "email": "boss@example.com"})
                .to_string();
        }
    }
    let r = cross_site_post(&action, &fields).await;
    let r = b.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@icloud.com");
    assert_eq!(me["traits"]["name"]["first"], "Boss");
}

#[tokio::test]
async fn apple_email_verified_is_a_string_and_only_true_means_true() {
    let a = AppleEmulator::start().await;
    let s = apple_server(Backend::Sqlite, &a).await;
    // Anna hides her address: a relay address, verified, kept with the relay flag.
    let b = Browser::default();
    let r = apple_sign_in(&b, &s, "anna").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "x7k2m9p4qz@privaterelay.appleid.com");
    assert_eq!(me["metadata_public"]["apple_private_email"], true);
    // `"false"`, or anything that is not `"true"`/`true`, is not a verified email: the
    // registration page asks for one.
    for v in [json!("false"), json!("yes")] {
        let s = apple_server(Backend::Sqlite, &a).await;
        a.set_email_verified(v.clone());
        let b = Browser::default();
        let r = apple_sign_in(&b, &s, "ivan").await;
        assert!(
            location(&r).starts_with(&format!("{}/ui/registration?flow=", s.public)),
            "{v}: {}",
            location(&r)
        );
    }
    // Apple's SDKs have also sent a boolean.
    let s = apple_server(Backend::Sqlite, &a).await;
    a.set_email_verified(json!(true));
    let b = Browser::default();
    let r = apple_sign_in(&b, &s, "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn apple_a_wrong_key_and_a_cancel_are_clear_messages_and_the_keys_are_checked() {
    let a = AppleEmulator::start().await;
    // The client secret signed with another key than the one registered at Apple.
    let other = AppleEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&apple_yaml(&a, other.private_key_pem(), "")),
    )
    .await;
    let b = Browser::default();
    let text = refusal(&b, &s, apple_sign_in(&b, &s, "ivan").await).await;
    assert!(
        text.contains("Apple refused the sign-in: invalid_client"),
        "{text}"
    );
    let s = apple_server(Backend::Sqlite, &a).await;
    let b = Browser::default();
    let r = apple_sign_in(&b, &s, "deny").await;
    let loc = location(&r);
    let text = refusal(&b, &s, r).await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let ru = b
        .get(&format!("{loc}&ui_locales=ru"), false)
        .await
        .text()
        .await
        .unwrap();
    assert!(ru.contains("Вход через Apple отменён"), "{ru}");
    assert!(identities(&s).await.is_empty());

    let err = start_error(&config(&apple_yaml(&a, a.private_key_pem(), "").replace(
        &format!("apple_team_id: {}", a.team_id()),
        "apple_team_id: \"\"",
    )))
    .await;
    assert!(
        err.contains("providers.0.apple_team_id") && err.contains("required"),
        "{err}"
    );
    let err = start_error(&config(&apple_yaml(
        &a,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        "",
    )))
    .await;
    assert!(
        err.contains("providers.0.apple_private_key") && err.contains(".p8"),
        "{err}"
    );
}

// ---- A kratos.yml naming every Kratos provider type ----------------------------------------

/// Every `provider:` value Kratos accepts.
const KRATOS_TYPES: [&str; 27] = [
    "generic",
    "google",
    "github",
    "github-app",
    "gitlab",
    "microsoft",
    "discord",
    "salesforce",
    "slack",
    "facebook",
    "auth0",
    "vk",
    "yandex",
    "apple",
    "spotify",
    "netid",
    "dingtalk",
    "linkedin",
    "linkedin_v2",
    "patreon",
    "lark",
    "x",
    "line",
    "jackson",
    "fedcm-test",
    "amazon",
    "uaepass",
];

/// Refused on purpose, with what to use instead (docs/social-sign-in.md).
const REFUSED: [&str; 2] = ["jackson", "fedcm-test"];

/// Kratos types this version does not implement yet: refused at start with the documented
/// message that says so and what to use meanwhile. This list only shrinks.
const NOT_YET: [&str; 0] = [];

/// A `kratos.yml` with one entry per Kratos type, each with the keys its type needs, as a
/// Kratos user has them (no Tessera keys).
fn every_kratos_type_yml(apple_key: &str) -> String {
    let mapper = b64(MICROSOFT_MAPPER);
    let mut entries = String::new();
    for (i, t) in KRATOS_TYPES.iter().enumerate() {
        let extra = match *t {
            "generic" | "auth0" | "gitlab" | "netid" => {
                "            issuer_url: https://issuer.example\n".to_string()
            }
            "microsoft" => "            microsoft_tenant: common\n".to_string(),
            "apple" => format!(
                "            apple_team_id: 7K2M9P4QZA\n            apple_private_key_id: R8T2VX5C3N\n            apple_private_key: |\n{}",
                pem_block(apple_key)
            ),
            _ => String::new(),
        };
        let secret = if *t == "apple" {
            "\"\""
        } else {
            "kratos-secret"
        };
        entries.push_str(&format!(
            "          - id: p{i}\n            provider: {t}\n            client_id: \"1234567\"\n            client_secret: {secret}\n            mapper_url: base64://{mapper}\n{extra}"
        ));
    }
    entries
}

#[tokio::test]
async fn a_kratos_yml_naming_every_kratos_provider_type_loads_or_refuses_as_documented() {
    let a = AppleEmulator::start().await;
    let err = start_error(&config(&every_kratos_type_yml(a.private_key_pem()))).await;
    // One problem per refused entry, and none for any other.
    let refused: Vec<&str> = KRATOS_TYPES
        .iter()
        .enumerate()
        .filter(|(i, _)| err.contains(&format!("providers.{i}.")))
        .map(|(_, t)| *t)
        .collect();
    let expected: Vec<&str> = KRATOS_TYPES
        .iter()
        .copied()
        .filter(|t| REFUSED.contains(t) || NOT_YET.contains(t))
        .collect();
    assert_eq!(refused, expected, "{err}");
    for t in REFUSED {
        assert!(
            err.contains(&format!("`provider: {t}`")) && err.contains("instead"),
            "{t}: {err}"
        );
    }
    for t in NOT_YET {
        assert!(
            err.contains(&format!(
                "`provider: {t}` is a Kratos provider type this version of Tessera does not implement yet"
            )),
            "{t}: {err}"
        );
    }
    assert!(!err.contains("unknown provider type"), "{err}");

    // Without the refused entries, the same file starts.
    let kept: String = every_kratos_type_yml(a.private_key_pem())
        .split("          - id: ")
        .filter(|e| !e.is_empty())
        .filter(|e| {
            let t = e
                .lines()
                .find_map(|l| l.trim().strip_prefix("provider: "))
                .unwrap_or_default();
            !REFUSED.contains(&t) && !NOT_YET.contains(&t)
        })
        .map(|e| format!("          - id: {e}"))
        .collect();
    let dir = tessera_testkit::temp_dir();
    let path = dir.join("kratos.yml");
    std::fs::write(
        &path,
        format!(
            "dsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n{}",
            config(&kept)
        ),
    )
    .unwrap();
    let loaded = tessera_config::load(&[path], &Default::default()).unwrap();
    let settings = tessera_config::resolve(&loaded, true, None).unwrap();
    let engine = tessera_server::app::build_engine_with(
        settings,
        true,
        Some(tessera_testkit::tessera_bin()),
    )
    .await;
    assert!(engine.is_ok(), "{:?}", engine.err().map(|e| e.to_string()));
}
