//! Kratos's global provider types of issue 18, sixth part, end to end through the browser
//! flow against their emulators with `tessera demo`'s default mappers, on both backends:
//! `github-app` (a GitHub App's user-to-server sign-in: no scopes, `/user/emails` behind the
//! app's "Email addresses" permission), `salesforce` (the My Domain issuer enforced),
//! `netid` (claims released only as the `claims` parameter asks, declined ones absent),
//! `patreon` (JSON:API, an unconfirmed email never verified) and `uaepass` (fixed endpoints,
//! `acr_values`, SOP1 accounts marked as not identity-verified).

use tessera_testkit::emulators::github::GithubEmulator;
use tessera_testkit::emulators::oidc_preset::{Kind, PresetEmulator};
use tessera_testkit::emulators::patreon::PatreonEmulator;
use tessera_testkit::emulators::uaepass::UaePassEmulator;
use tessera_testkit::journey::{
    asks_for_the_email, assert_needs_a_secret, b64, config, fill_the_gap, identities, identity,
    location, param, press_provider, refused_in_every_language, server_for, sign_in,
    sign_up_and_again,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

// ---- GitHub App ----------------------------------------------------------------------------

/// `tessera demo`'s GitHub App mapper, the one docs/providers/github-app.md shows.
const GITHUB_APP_MAPPER: &str = include_str!("../../demo/github_app.jsonnet");

/// A Kratos `github-app` entry as people write it, scopes included (a GitHub App ignores
/// them).
fn github_app_yaml(gh: &GithubEmulator, secret: &str) -> String {
    format!(
        "          - id: github-app\n            provider: github-app\n            client_id: {}\n            client_secret: {secret}\n            scope: [user:email]\n            auth_url: {}\n            token_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        gh.client_id(),
        gh.auth_url(),
        gh.token_url(),
        gh.base_url(),
        b64(GITHUB_APP_MAPPER)
    )
}

async fn github_app_server(backend: Backend, gh: &GithubEmulator) -> TestServer {
    server_for(
        backend,
        &github_app_yaml(gh, gh.client_secret()),
        "github-app",
        |cb| gh.register_redirect_uri(cb),
    )
    .await
}

each_backend!(github_app_signs_up_then_in_again_into_the_same_identity);
async fn github_app_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let gh = GithubEmulator::start_app().await;
    let s = github_app_server(backend, &gh).await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "github-app",
        "https://app.example.com/after",
    )
    .await;
    assert!(
        authorize.starts_with(&format!("{}?", gh.auth_url())),
        "{authorize}"
    );
    // The entry's `scope` is not sent: a GitHub App's reach is its permissions.
    assert_eq!(param(&authorize, "scope"), None, "{authorize}");
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    // Иван's verified primary address from /user/emails; the subject is his numeric id, the
    // same as with `github` (an OAuth app), so people keep their account across the switch.
    sign_up_and_again(&s, "github-app", ("ivan", "ivan@example.ru"), "1003").await;
    s.stop().await;
}

#[tokio::test]
async fn github_app_without_the_email_permission_is_refused_saying_what_to_grant() {
    let gh = GithubEmulator::start_app().await;
    let s = github_app_server(Backend::Sqlite, &gh).await;
    gh.set_email_permission(false);
    let text = refused_in_every_language(
        &s,
        ("github-app", "ivan"),
        "Вход через GitHub отклонён",
        "GitHub 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("HTTP 403 at /user/emails")
            && text.contains("needs the account permission \"Email addresses\""),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    // With the permission, the same person signs in.
    gh.set_email_permission(true);
    let r = sign_in(&Browser::default(), &s, "login", "github-app", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn github_app_never_takes_an_unverified_primary_email_and_needs_a_secret() {
    let gh = GithubEmulator::start_app().await;
    let s = github_app_server(Backend::Sqlite, &gh).await;
    // Una's primary address is not verified at GitHub: the mapper does not take it, so the
    // registration asks for one rather than claiming hers.
    asks_for_the_email(&s, "github-app", "unverified").await;
    // Someone without any address is asked too.
    asks_for_the_email(&s, "github-app", "noemail").await;
    assert_needs_a_secret(&config(&github_app_yaml(&gh, "\"\""))).await;
}

// ---- Salesforce ----------------------------------------------------------------------------

/// `tessera demo`'s Salesforce mapper, the one docs/providers/salesforce.md shows.
const SALESFORCE_MAPPER: &str = include_str!("../../demo/salesforce.jsonnet");

/// A `salesforce` entry for the emulator's org, whose My Domain is the emulator's issuer.
fn salesforce_yaml(e: &PresetEmulator, secret: &str) -> String {
    format!(
        "          - id: salesforce\n            provider: salesforce\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            scope: [profile, email]\n            mapper_url: base64://{}\n",
        e.client_id(),
        e.issuer(),
        b64(SALESFORCE_MAPPER)
    )
}

async fn salesforce_server(backend: Backend, e: &PresetEmulator, secret: &str) -> TestServer {
    server_for(backend, &salesforce_yaml(e, secret), "salesforce", |cb| {
        e.register_redirect_uri(cb)
    })
    .await
}

each_backend!(salesforce_signs_up_then_in_again_into_the_same_identity);
async fn salesforce_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let e = PresetEmulator::start(Kind::Salesforce).await;
    let s = salesforce_server(backend, &e, e.client_secret()).await;
    let b = Browser::default();
    let authorize = press_provider(
        &b,
        &s,
        "login",
        "salesforce",
        "https://app.example.com/after",
    )
    .await;
    assert!(
        authorize.starts_with(&format!("{}/services/oauth2/authorize?", e.issuer())),
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
    // The subject is Иван's identity URL, as Kratos stores it.
    let sub = e.sub_of("ivan");
    assert!(
        sub.starts_with("https://login.salesforce.com/id/00D"),
        "{sub}"
    );
    let id = sign_up_and_again(&s, "salesforce", ("ivan", "ivan.petrov@example.org"), &sub).await;
    let me = identity(&s, &id).await;
    // userinfo's org and user ids reached the mapper (merged over the id_token's claims).
    assert_eq!(
        me["metadata_public"]["salesforce_org_id"], "00D5g000004ErtSEAS",
        "{me}"
    );
    assert!(
        sub.ends_with(
            me["metadata_public"]["salesforce_user_id"]
                .as_str()
                .unwrap_or("?")
        ),
        "{me}"
    );
    s.stop().await;
}

#[tokio::test]
async fn salesforce_refuses_a_token_of_another_org_or_login_server() {
    let e = PresetEmulator::start(Kind::Salesforce).await;
    let s = salesforce_server(Backend::Sqlite, &e, e.client_secret()).await;
    // Signed with Salesforce's key, but issued by the shared login server rather than this
    // org's My Domain, then by another org's My Domain: neither is this entry's issuer.
    for other in [
        "https://login.salesforce.com",
        "https://other-org.my.salesforce.com",
    ] {
        e.set_forged_issuer(Some(other));
        let text = refused_in_every_language(
            &s,
            ("salesforce", "ivan"),
            "Не удалось проверить ответ Salesforce",
            "无法验证来自 Salesforce 的响应",
        )
        .await;
        assert!(text.contains("could not be verified"), "{other}: {text}");
    }
    e.set_forged_issuer(None);
    assert!(identities(&s).await.is_empty());
    // Мария's address is not verified at Salesforce: never taken, the page asks for one.
    fill_the_gap(&s, "salesforce", &e.sub_of("maria")).await;
}

#[tokio::test]
async fn salesforce_wrong_secret_is_its_own_error_and_a_secret_is_required() {
    let e = PresetEmulator::start(Kind::Salesforce).await;
    let s = salesforce_server(Backend::Sqlite, &e, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("salesforce", "ivan"),
        "Вход через Salesforce отклонён",
        "Salesforce 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains(
            "Salesforce refused the sign-in: invalid_client — invalid client credentials"
        ),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&salesforce_yaml(&e, "\"\""))).await;
}

// ---- netID ---------------------------------------------------------------------------------

/// The standard OpenID Connect mapper, netID's default (docs/providers/netid.md).
const OIDC_STANDARD_MAPPER: &str = include_str!("../../demo/oidc_standard.jsonnet");

/// A `netid` entry at the emulated broker, with `extra` keys (`requested_claims`).
fn netid_yaml(e: &PresetEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: netid\n            provider: netid\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            mapper_url: base64://{}\n{extra}",
        e.client_id(),
        e.issuer(),
        b64(OIDC_STANDARD_MAPPER)
    )
}

async fn netid_server(backend: Backend, e: &PresetEmulator, extra: &str) -> TestServer {
    server_for(
        backend,
        &netid_yaml(e, e.client_secret(), extra),
        "netid",
        |cb| e.register_redirect_uri(cb),
    )
    .await
}

each_backend!(netid_signs_up_then_in_again_into_the_same_identity);
async fn netid_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let e = PresetEmulator::start(Kind::Netid).await;
    assert!(e.issuer().ends_with('/'), "netID's issuer ends with `/`");
    let s = netid_server(backend, &e, "").await;
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "netid", "https://app.example.com/after").await;
    assert_eq!(param(&authorize, "scope").as_deref(), Some("openid"));
    // Without `requested_claims`, the email (essential) and the name are asked for.
    let asked: serde_json::Value =
        serde_json::from_str(&param(&authorize, "claims").unwrap_or_default()).unwrap();
    assert_eq!(asked["userinfo"]["email"]["essential"], true, "{asked}");
    assert!(asked["userinfo"].get("given_name").is_some(), "{asked}");
    // Declining what is essential is not possible on netID's page.
    e.set_declined_claims(&["email", "email_verified"]);
    sign_up_and_again(
        &s,
        "netid",
        ("ivan", "ivan.petrov@example.org"),
        &e.sub_of("ivan"),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn netid_a_requested_claim_the_person_declines_is_missing_and_asked_for() {
    let e = PresetEmulator::start(Kind::Netid).await;
    // The entry asks for the email without marking it essential: the person may decline it.
    let s = netid_server(
        Backend::Sqlite,
        &e,
        "            requested_claims:\n              userinfo:\n                email: null\n                email_verified: null\n                given_name: null\n                family_name: null\n",
    )
    .await;
    e.set_declined_claims(&["email", "email_verified"]);
    asks_for_the_email(&s, "netid", "ivan").await;
    // An entry that does not ask for the email never gets one, whatever the person allows.
    e.set_declined_claims(&[]);
    let s = netid_server(
        Backend::Sqlite,
        &e,
        "            requested_claims:\n              userinfo:\n                given_name: {essential: true}\n",
    )
    .await;
    asks_for_the_email(&s, "netid", "ivan").await;
    // Мария's address is unverified: not taken either.
    let s = netid_server(Backend::Sqlite, &e, "").await;
    fill_the_gap(&s, "netid", &e.sub_of("maria")).await;
}

#[tokio::test]
async fn netid_refuses_a_token_of_another_issuer_and_needs_a_secret() {
    let e = PresetEmulator::start(Kind::Netid).await;
    let s = netid_server(Backend::Sqlite, &e, "").await;
    // The broker's issuer without its trailing `/` is another issuer.
    e.set_forged_issuer(Some(e.issuer().trim_end_matches('/')));
    let text = refused_in_every_language(
        &s,
        ("netid", "ivan"),
        "Не удалось проверить ответ netID",
        "无法验证来自 netID 的响应",
    )
    .await;
    assert!(text.contains("could not be verified"), "{text}");
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&netid_yaml(&e, "\"\"", ""))).await;
}

// ---- Patreon -------------------------------------------------------------------------------

/// `tessera demo`'s Patreon mapper, the one docs/providers/patreon.md shows.
const PATREON_MAPPER: &str = include_str!("../../demo/patreon.jsonnet");

fn patreon_yaml(p: &PatreonEmulator, secret: &str) -> String {
    format!(
        "          - id: patreon\n            provider: patreon\n            client_id: {}\n            client_secret: {secret}\n            scope: [identity, \"identity[email]\"]\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        p.client_id(),
        p.base_url(),
        b64(PATREON_MAPPER)
    )
}

async fn patreon_server(backend: Backend, p: &PatreonEmulator, secret: &str) -> TestServer {
    server_for(backend, &patreon_yaml(p, secret), "patreon", |cb| {
        p.register_redirect_uri(cb)
    })
    .await
}

each_backend!(patreon_signs_up_then_in_again_into_the_same_identity);
async fn patreon_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let p = PatreonEmulator::start().await;
    let s = patreon_server(backend, &p, p.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "patreon", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize?", p.base_url())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("identity identity[email]")
    );
    assert_eq!(
        param(&authorize, "code_challenge"),
        None,
        "no PKCE at Patreon"
    );
    let id = sign_up_and_again(
        &s,
        "patreon",
        ("ivan", "ivan.petrov@example.org"),
        p.id_of("ivan"),
    )
    .await;
    let me = identity(&s, &id).await;
    assert_eq!(
        me["metadata_public"]["patreon_vanity"], "ivanpetrov",
        "{me}"
    );
    s.stop().await;
}

#[tokio::test]
async fn patreon_never_marks_an_unconfirmed_email_verified() {
    let p = PatreonEmulator::start().await;
    let s = patreon_server(Backend::Sqlite, &p, p.client_secret()).await;
    // Мария's address is in the identity answer, but Patreon never confirmed it.
    fill_the_gap(&s, "patreon", p.id_of("maria")).await;
    let all = identities(&s).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0]["traits"]["email"], "maria@example.ru",
        "the one she typed"
    );
    assert!(
        all[0]["verifiable_addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["verified"] == false),
        "{}",
        all[0]
    );
}

#[tokio::test]
async fn patreon_refusals_are_its_own_words_and_a_secret_is_required() {
    let p = PatreonEmulator::start().await;
    let s = patreon_server(Backend::Sqlite, &p, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("patreon", "ivan"),
        "Вход через Patreon отклонён",
        "Patreon 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Patreon refused the sign-in: invalid_client"),
        "{text}"
    );
    let s = patreon_server(Backend::Sqlite, &p, p.client_secret()).await;
    let text = refused_in_every_language(
        &s,
        ("patreon", "deny"),
        "Вход через Patreon отменён",
        "Patreon 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&patreon_yaml(&p, "\"\""))).await;
}

// ---- UAE PASS ------------------------------------------------------------------------------

/// `tessera demo`'s UAE PASS mapper, the one docs/providers/uaepass.md shows.
const UAEPASS_MAPPER: &str = include_str!("../../demo/uaepass.jsonnet");

/// A `uaepass` entry whose environment (`issuer_url`) is the emulator.
fn uaepass_yaml(u: &UaePassEmulator, secret: &str) -> String {
    format!(
        "          - id: uaepass\n            provider: uaepass\n            label: UAE PASS\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            scope: [\"urn:uae:digitalid:profile:general\"]\n            mapper_url: base64://{}\n",
        u.client_id(),
        u.base_url(),
        b64(UAEPASS_MAPPER)
    )
}

async fn uaepass_server(backend: Backend, u: &UaePassEmulator, secret: &str) -> TestServer {
    server_for(backend, &uaepass_yaml(u, secret), "uaepass", |cb| {
        u.register_redirect_uri(cb)
    })
    .await
}

each_backend!(uaepass_signs_up_then_in_again_into_the_same_identity);
async fn uaepass_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    let u = UaePassEmulator::start().await;
    let s = uaepass_server(backend, &u, u.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "uaepass", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/idshub/authorize?", u.base_url())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "acr_values").as_deref(),
        Some("urn:safelayer:tws:policies:authentication:level:low")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    // Иван, a SOP3 resident: Emirates ID verified; the email UAE PASS verified is taken.
    let id = sign_up_and_again(
        &s,
        "uaepass",
        ("ivan", "ivan.petrov@example.ae"),
        &u.sub_of("ivan"),
    )
    .await;
    let me = identity(&s, &id).await;
    assert_eq!(me["metadata_public"]["uaepass_user_type"], "SOP3", "{me}");
    assert_eq!(me["metadata_public"]["uaepass_emirates_id_verified"], true);
    assert_eq!(
        me["metadata_public"]["uaepass_uuid"],
        u.sub_of("ivan").trim_start_matches("UAEPASS/")
    );
    s.stop().await;
}

#[tokio::test]
async fn uaepass_a_sop1_account_signs_in_marked_as_not_identity_verified() {
    let u = UaePassEmulator::start().await;
    let s = uaepass_server(Backend::Sqlite, &u, u.client_secret()).await;
    // Мария's basic (SOP1) account: UAE PASS verified her email and mobile but not her
    // Emirates ID, and sends no `idn`: she signs in, and the identity says what she is.
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "uaepass", "maria").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let all = identities(&s).await;
    assert_eq!(all.len(), 1);
    let me = identity(&s, all[0]["id"].as_str().unwrap()).await;
    assert_eq!(me["traits"]["email"], "maria.smirnova@example.ae", "{me}");
    assert_eq!(me["metadata_public"]["uaepass_user_type"], "SOP1", "{me}");
    assert_eq!(
        me["metadata_public"]["uaepass_emirates_id_verified"], false,
        "{me}"
    );
}

#[tokio::test]
async fn uaepass_refusals_are_clear_and_a_secret_is_required() {
    let u = UaePassEmulator::start().await;
    let s = uaepass_server(Backend::Sqlite, &u, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("uaepass", "ivan"),
        "Вход через UAE PASS отклонён",
        "UAE PASS 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("UAE PASS refused the sign-in: invalid_client"),
        "{text}"
    );
    let s = uaepass_server(Backend::Sqlite, &u, u.client_secret()).await;
    let text = refused_in_every_language(
        &s,
        ("uaepass", "deny"),
        "Вход через UAE PASS отменён",
        "UAE PASS 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&uaepass_yaml(&u, "\"\""))).await;
}
