//! The global provider types of Kratos's catalogue (issue 18) end to end through the browser
//! flow against their emulators in tessera-emulators, with the default mapper `tessera demo`
//! writes: Google (sign-up, sign-in again into the same identity, the Workspace `hd` rule, both
//! spellings of Google's issuer, `email_verified`, every error as a clear message in the page's
//! language, the emulator refusing what Google refuses); Discord (the same journey, `verified`
//! for the email, a scope unticked on Discord's consent page refused); and a Kratos `kratos.yml` naming these
//! types (and the refused `jackson` / `fedcm-test`) at start.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::discord::DiscordEmulator;
use tessera_testkit::emulators::google::{GoogleEmulator, IssuerSpelling};
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, location, param, press_provider,
    refused_in_every_language, sign_in, sign_up_and_again, start_error, upstream, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

// ---- Google --------------------------------------------------------------------------------

/// `tessera demo`'s Google mapper, the one docs/providers/google.md shows.
const GOOGLE_MAPPER: &str = include_str!("../../demo/google.jsonnet");

fn google_yaml(g: &GoogleEmulator, secret: &str, extra: &str) -> String {
    format!(
        "          - id: google\n            provider: google\n            client_id: {}\n            client_secret: {secret}\n            issuer_url: {}\n            scope: [email, profile]\n            mapper_url: base64://{}\n{extra}",
        g.client_id(),
        g.issuer(),
        b64(GOOGLE_MAPPER)
    )
}

async fn google_server(
    backend: Backend,
    g: &GoogleEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(backend, &config(&google_yaml(g, secret, extra))).await;
    g.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/google",
        s.public
    ));
    s
}

each_backend!(google_sign_up_then_sign_in_again_into_the_same_identity);
async fn google_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let g = GoogleEmulator::start().await;
    let s = google_server(backend, &g, g.client_secret(), "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "google", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/o/oauth2/v2/auth?", g.issuer())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid email profile")
    );
    assert!(param(&authorize, "nonce").is_some_and(|n| !n.is_empty()));
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256"),
        "Google's discovery lists S256, so PKCE is used"
    );
    assert!(param(&authorize, "hd").is_none(), "no hosted domain asked");
    assert!(param(&authorize, "access_type").is_none());
    sign_up_and_again(
        &s,
        "google",
        ("ivan", "ivan.petrov@gmail.com"),
        g.sub_of("ivan"),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn google_unverified_email_is_not_taken_and_the_page_asks_for_one() {
    let g = GoogleEmulator::start().await;
    let s = google_server(Backend::Sqlite, &g, g.client_secret(), "").await;
    // Мария's address is not verified at Google (`email_verified: false`): the mapper leaves it
    // out, so the registration page asks for one with her name filled in.
    fill_the_gap(&s, "google", g.sub_of("maria")).await;
}

#[tokio::test]
async fn google_hosted_domain_is_requested_then_checked_in_the_id_token() {
    let g = GoogleEmulator::start().await;
    let s = google_server(
        Backend::Sqlite,
        &g,
        g.client_secret(),
        "            google_hosted_domain: example.com\n",
    )
    .await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "google", "https://app.example.com/after").await;
    assert_eq!(param(&authorize, "hd").as_deref(), Some("example.com"));
    // The account chooser shows only that domain's accounts…
    let chooser = b.get(&authorize, false).await.text().await.unwrap();
    assert!(
        chooser.contains("anna@example.com") && !chooser.contains("bob@other.example"),
        "{chooser}"
    );
    // …and Anna of example.com signs up.
    let r = b.get(&upstream(&b, &authorize, "anna").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "anna@example.com");
    assert_eq!(me["metadata_public"]["google_hd"], "example.com");

    // `hd` is only a hint: someone who edits the URL gets a token of another domain, or of a
    // personal account, and both are refused after the token is verified.
    let text = refused_in_every_language(
        &s,
        ("google", "bob"),
        "Не удалось завершить вход через Google",
        "通过 Google 登录未能完成",
    )
    .await;
    assert!(
        text.contains("`other.example`") && text.contains("only accounts of `example.com`"),
        "{text}"
    );
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "google", "ivan").await;
    let text = tessera_testkit::journey::refusal(&b, &s, r).await;
    assert!(text.contains("personal account"), "{text}");
    assert_eq!(identities(&s).await.len(), 1, "only Anna");

    let err = start_error(&config(&google_yaml(
        &g,
        g.client_secret(),
        "            google_hosted_domain: https://example.com\n",
    )))
    .await;
    assert!(
        err.contains("providers.0.google_hosted_domain") && err.contains("not a domain"),
        "{err}"
    );
    assert_needs_a_secret(&config(&google_yaml(&g, "\"\"", ""))).await;
}

#[tokio::test]
async fn google_issuer_is_accepted_in_both_spellings_and_nothing_else() {
    let g = GoogleEmulator::start().await;
    let s = google_server(Backend::Sqlite, &g, g.client_secret(), "").await;
    // Google writes `iss` as `accounts.google.com` as well as `https://accounts.google.com`.
    g.set_issuer_spelling(IssuerSpelling::Bare);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "google", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let id = whoami(&b, &s).await["identity"]["id"].clone();
    g.set_issuer_spelling(IssuerSpelling::Full);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "google", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(
        whoami(&b, &s).await["identity"]["id"],
        id,
        "the same person"
    );

    // A token signed with Google's key but naming another issuer is not Google's answer.
    g.set_issuer_spelling(IssuerSpelling::Other(
        "https://accounts.evil.example".into(),
    ));
    let text = refused_in_every_language(
        &s,
        ("google", "ivan"),
        "Не удалось проверить ответ Google",
        "无法验证来自 Google 的响应",
    )
    .await;
    assert!(text.contains("could not be verified"), "{text}");
    g.set_issuer_spelling(IssuerSpelling::Other(format!(
        "evil.example/{}",
        g.issuer()
    )));
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "google", "ivan").await;
    let text = tessera_testkit::journey::refusal(&b, &s, r).await;
    assert!(text.contains("could not be verified"), "{text}");
}

#[tokio::test]
async fn google_errors_are_clear_localised_messages() {
    let g = GoogleEmulator::start().await;
    let s = google_server(Backend::Sqlite, &g, "GOCSPX-not-the-secret", "").await;
    let text = refused_in_every_language(
        &s,
        ("google", "ivan"),
        "Вход через Google отклонён",
        "Google 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Google refused the sign-in: invalid_client"),
        "{text}"
    );
    let s = google_server(Backend::Sqlite, &g, g.client_secret(), "").await;
    g.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("google", "ivan"),
        "Вход через Google отклонён",
        "Google 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_grant"), "{text}");
    g.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("google", "deny"),
        "Вход через Google отменён",
        "Google 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn google_offline_access_asks_for_a_refresh_token_the_google_way() {
    let g = GoogleEmulator::start().await;
    let s = TestServer::start(
        Backend::Sqlite,
        &config(&google_yaml(&g, g.client_secret(), "").replace(
            "scope: [email, profile]",
            "scope: [email, profile, offline_access]",
        )),
    )
    .await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "google", "https://app.example.com/after").await;
    assert_eq!(param(&authorize, "access_type").as_deref(), Some("offline"));
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid email profile"),
        "offline_access is not a Google scope"
    );
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn google_emulator_refuses_what_google_refuses() {
    let g = GoogleEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    g.register_redirect_uri(back);
    let c = TestServer::client();
    let d: Value = c
        .get(format!("{}/.well-known/openid-configuration", g.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], g.issuer());
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let auth = |client: &str, redirect: &str, extra: &str| {
        format!(
            "{}/o/oauth2/v2/auth?client_id={client}&response_type=code&scope=openid%20email&redirect_uri={redirect}&state=s&nonce=n&user=ivan{extra}",
            g.issuer()
        )
    };
    let r = c
        .get(auth(g.client_id(), "http://evil.example/cb", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));
    let r = c.get(auth("nobody", back, "")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("invalid_client"));

    let verifier = "a-verifier-of-forty-three-characters-xxxxxx";
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };
    let r = c
        .get(auth(
            g.client_id(),
            back,
            &format!("&code_challenge={challenge}&code_challenge_method=S256"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&location(&r), "code").unwrap();
    assert!(
        code.starts_with("4/0A"),
        "Google's codes hold a slash: {code}"
    );
    let token = |code: &str, secret: &str, redirect: &str, verifier: &str| {
        c.post(format!("{}/token", g.issuer()))
            .form(&[
                ("client_id", g.client_id()),
                ("client_secret", secret),
                ("code", code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let r = token(&code, "wrong", back, verifier).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = token(
        &code,
        g.client_secret(),
        back,
        "another-verifier-xxxxxxxxxxxxxxxxxxxxxxxxx",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_description"], "Invalid code verifier.");

    let r = c
        .get(auth(
            g.client_id(),
            back,
            &format!("&code_challenge={challenge}&code_challenge_method=S256"),
        ))
        .send()
        .await
        .unwrap();
    let code = param(&location(&r), "code").unwrap();
    let r = token(
        &code,
        g.client_secret(),
        "http://127.0.0.1:9/other",
        verifier,
    )
    .await
    .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "redirect_uri_mismatch"
    );

    let r = c.get(auth(g.client_id(), back, "")).send().await.unwrap();
    let code = param(&location(&r), "code").unwrap();
    let r = token(&code, g.client_secret(), back, "").await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert!(t["id_token"].is_string() && t.get("refresh_token").is_none());
    let again = token(&code, g.client_secret(), back, "").await.unwrap();
    assert_eq!(again.status(), 400, "a code is spent once");
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let info = c
        .get(format!("{}/v1/userinfo", g.issuer()))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(info.json::<Value>().await.unwrap()["sub"], g.sub_of("ivan"));
    let r = c
        .get(format!("{}/v1/userinfo", g.issuer()))
        .bearer_auth("ya29.forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ---- A Kratos configuration naming these types ---------------------------------------------

/// A `kratos.yml` as a Kratos user has it: `provider: google` with no issuer_url (Google's
/// is fixed) and `provider: discord`, loaded and built into a server. Nothing is fetched at start: Google's discovery
/// document is read at the first sign-in.
#[tokio::test]
async fn a_kratos_yml_naming_the_global_types_starts() {
    let mapper = b64(GOOGLE_MAPPER);
    let dir = tessera_testkit::temp_dir();
    let path = dir.join("kratos.yml");
    std::fs::write(
        &path,
        format!(
            "version: v1.3.0\ndsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\nselfservice:\n  default_browser_return_url: https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: google\n            provider: google\n            client_id: 318224559123-abc.apps.googleusercontent.com\n            client_secret: GOCSPX-secret\n            mapper_url: base64://{mapper}\n            scope:\n              - email\n              - profile\n          - id: discord\n            provider: discord\n            client_id: \"1187452093318451200\"\n            client_secret: discord-secret\n            mapper_url: base64://{mapper}\n"
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

#[tokio::test]
async fn jackson_and_fedcm_test_are_refused_naming_the_key_line_and_the_way_out() {
    for (kind, instead) in [
        ("jackson", "provider: generic"),
        ("fedcm-test", "provider: generic"),
    ] {
        let err = start_error(&config(&format!(
            "          - id: sso\n            provider: {kind}\n            client_id: c\n            client_secret: s\n            mapper_url: base64://{}\n",
            b64(GOOGLE_MAPPER)
        )))
        .await;
        assert!(err.contains("providers.0.provider"), "{err}");
        // The `provider:` line of the file start_error writes.
        assert!(err.contains("tessera.yml:14"), "{err}");
        assert!(err.contains(instead), "{err}");
        assert!(!err.contains("unknown provider type"), "{err}");
    }
}

// ---- Discord -------------------------------------------------------------------------------

/// `tessera demo`'s Discord mapper, the one docs/providers/discord.md shows.
const DISCORD_MAPPER: &str = include_str!("../../demo/discord.jsonnet");

fn discord_yaml(d: &DiscordEmulator, secret: &str) -> String {
    format!(
        "          - id: discord\n            provider: discord\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n",
        d.client_id(),
        d.auth_url(),
        d.base_url(),
        b64(DISCORD_MAPPER)
    )
}

async fn discord_server(backend: Backend, d: &DiscordEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&discord_yaml(d, secret))).await;
    d.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/discord",
        s.public
    ));
    s
}

each_backend!(discord_sign_up_then_sign_in_again_into_the_same_identity);
async fn discord_sign_up_then_sign_in_again_into_the_same_identity(backend: Backend) {
    let d = DiscordEmulator::start().await;
    let s = discord_server(backend, &d, d.client_secret()).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "discord", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&d.auth_url()), "{authorize}");
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("identify email")
    );
    assert_eq!(param(&authorize, "prompt").as_deref(), Some("none"));
    let r = b.get(&upstream(&b, &authorize, "ivan").await, false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan.petrov@example.ru");
    assert_eq!(me["traits"]["name"]["first"], "Иван Петров");
    assert_eq!(me["metadata_public"]["discord_username"], "ivan_petrov");
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        tessera_testkit::journey::oidc_identifiers(&s, &id).await,
        json!([format!("discord:{}", d.id_of("ivan"))])
    );
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "discord", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn discord_unverified_email_is_not_taken_and_an_unticked_scope_is_refused() {
    let d = DiscordEmulator::start().await;
    let s = discord_server(Backend::Sqlite, &d, d.client_secret()).await;
    // Мария's address is not verified at Discord: the registration page asks for one.
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "discord", "maria").await;
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    assert!(identities(&s).await.is_empty());
    // Ivan unticks `email` on Discord's consent page: the token lacks a scope asked for.
    d.set_withheld_scope(Some("email"));
    let text = refused_in_every_language(
        &s,
        ("discord", "ivan"),
        "Не удалось завершить вход через Discord",
        "通过 Discord 登录未能完成",
    )
    .await;
    assert!(
        text.contains("did not grant the permission `email`"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    assert_needs_a_secret(&config(&discord_yaml(&d, "\"\""))).await;
}

#[tokio::test]
async fn discord_errors_are_clear_localised_messages() {
    let d = DiscordEmulator::start().await;
    let s = discord_server(Backend::Sqlite, &d, "not-the-secret").await;
    let text = refused_in_every_language(
        &s,
        ("discord", "ivan"),
        "Вход через Discord отклонён",
        "Discord 拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Discord refused the sign-in: invalid_client"),
        "{text}"
    );
    let s = discord_server(Backend::Sqlite, &d, d.client_secret()).await;
    d.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("discord", "ivan"),
        "Вход через Discord отклонён",
        "Discord 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_grant"), "{text}");
    d.set_code_ttl(Duration::from_secs(600));
    let text = refused_in_every_language(
        &s,
        ("discord", "deny"),
        "Вход через Discord отменён",
        "Discord 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn discord_emulator_refuses_what_discord_refuses() {
    let d = DiscordEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    d.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |redirect: &str| {
        format!(
            "{}?client_id={}&response_type=code&scope=identify%20email&redirect_uri={redirect}&state=s&user=ivan",
            d.auth_url(),
            d.client_id()
        )
    };
    let r = c.get(auth("http://evil.example/cb")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Invalid OAuth2 redirect_uri")
    );
    let r = c.get(auth(back)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&location(&r), "code").unwrap();
    let token = |code: &str, secret: &str, redirect: &str| {
        c.post(format!("{}/api/oauth2/token", d.base_url()))
            .form(&[
                ("client_id", d.client_id()),
                ("client_secret", secret),
                ("code", code),
                ("grant_type", "authorization_code"),
                ("redirect_uri", redirect),
            ])
            .send()
    };
    let r = token(&code, "wrong", back).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = token(&code, d.client_secret(), "http://127.0.0.1:9/other")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(auth(back)).send().await.unwrap();
    let code = param(&location(&r), "code").unwrap();
    let t: Value = token(&code, d.client_secret(), back)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["scope"], "identify email");
    let again = token(&code, d.client_secret(), back).await.unwrap();
    assert_eq!(again.status(), 400, "a code is spent once");
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let me = |token: &str| {
        c.get(format!("{}/api/users/@me", d.base_url()))
            .bearer_auth(token)
            .send()
    };
    let u: Value = me(t["access_token"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["id"], d.id_of("ivan"));
    assert_eq!(u["verified"], true);
    let r = me("forged").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "401: Unauthorized"
    );
}
