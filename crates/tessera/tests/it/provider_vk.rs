//! The `vk` (legacy VK OAuth) and `vkid` (VK ID, OAuth 2.1) provider types, end to end through
//! the browser flow against the emulators in tessera-emulators, with the seed-003 VK mapper: sign-up,
//! sign-in into the same identity, fill-the-gaps without an email, VK's HTTP-200 API errors,
//! a wrong client secret, VK ID's `device_id` and PKCE; and the emulators refusing what VK
//! refuses.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::emulators::vk::VkEmulator;
use tessera_testkit::emulators::vkid::VkIdEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, fill_the_gap, identities, location, param, query_of,
    refusal, sign_in, sign_up_and_again, upstream,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// Seed 003's VK mapper, restored: the email only when VK sent one (it never says whether it
/// is verified), and the name.
const MAPPER: &str = r#"local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      name: { first: claims.given_name, last: claims.family_name },
    },
  },
}
"#;

fn vk_yaml(vk: &VkEmulator, secret: &str) -> String {
    format!(
        "          - id: vk\n            provider: vk\n            label: VK\n            client_id: \"{}\"\n            client_secret: {secret}\n            auth_url: {}\n            token_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n            scope: [email]\n",
        vk.client_id(),
        vk.auth_url(),
        vk.token_url(),
        vk.base_url(),
        b64(MAPPER)
    )
}

fn vkid_yaml(vkid: &VkIdEmulator) -> String {
    format!(
        "          - id: vkid\n            provider: vkid\n            label: VK ID\n            client_id: \"{}\"\n            api_base_url: {}\n            mapper_url: base64://{}\n            scope: [vkid.personal_info, email, phone]\n",
        vkid.client_id(),
        vkid.base_url(),
        b64(MAPPER)
    )
}

/// Opens a browser flow and presses the provider's button; returns the upstream URL.
async fn press_provider(b: &Browser, s: &TestServer, kind: &str, provider: &str) -> String {
    tessera_testkit::journey::press_provider(b, s, kind, provider, "https://app.example.com/after")
        .await
}

// ---- VK ------------------------------------------------------------------------------------

each_backend!(vk_sign_up_then_sign_in_into_the_same_identity);
async fn vk_sign_up_then_sign_in_into_the_same_identity(backend: Backend) {
    let vk = VkEmulator::start().await;
    let s = TestServer::start(backend, &config(&vk_yaml(&vk, vk.client_secret()))).await;
    vk.register_redirect_uri(&format!(
        "{}/self-service/methods/oidc/callback/vk",
        s.public
    ));
    // The consent page a person would see lists the fake users.
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "vk").await;
    assert_eq!(param(&authorize, "v").as_deref(), Some("5.131"));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("email"));
    let page = b.get(&authorize, false).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Иван Петров") && page.contains("Мария Смирнова"),
        "{page}"
    );
    assert!(page.contains("user=ivan"), "{page}");

    sign_up_and_again(&s, "vk", ("ivan", "ivan.petrov@example.ru"), "100001").await;
    assert!(vk.users_get_requests() >= 2);
    s.stop().await;
}

#[tokio::test]
async fn vk_without_an_email_the_user_fills_the_gap() {
    let vk = VkEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&vk_yaml(&vk, vk.client_secret()))).await;
    fill_the_gap(&s, "vk", "100002").await;
}

#[tokio::test]
async fn vk_users_get_error_with_http_200_is_a_clear_message() {
    let vk = VkEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&vk_yaml(&vk, vk.client_secret()))).await;
    vk.fail_users_get(true);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "vk", "ivan").await;
    let text = refusal(&b, &s, r).await;
    assert!(
        text.contains("VK refused the sign-in") && text.contains("User authorization failed"),
        "{text}"
    );
    assert!(identities(&s).await.is_empty());
    vk.fail_users_get(false);
    let r = sign_in(&Browser::default(), &s, "login", "vk", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
}

#[tokio::test]
async fn vk_wrong_client_secret_is_refused_with_a_clear_message() {
    let vk = VkEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&vk_yaml(&vk, "not-the-key"))).await;
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "vk", "ivan").await;
    let text = refusal(&b, &s, r).await;
    assert!(text.contains("client_secret is incorrect"), "{text}");
    assert_eq!(vk.users_get_requests(), 0);
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn vk_provider_requires_a_client_secret() {
    let vk = VkEmulator::start().await;
    assert_needs_a_secret(&config(&vk_yaml(&vk, "\"\""))).await;
}

#[tokio::test]
async fn vk_emulator_refuses_what_vk_refuses() {
    let vk = VkEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let code = |scope: &'static str| {
        let c = c.clone();
        let url = format!(
            "{}?client_id={}&redirect_uri={back}&response_type=code&scope={scope}&state=s1&v=5.131&user=ivan",
            vk.auth_url(),
            vk.client_id()
        );
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            let loc = location(&r);
            assert_eq!(param(&loc, "state").as_deref(), Some("s1"));
            param(&loc, "code").expect("a code")
        }
    };
    let exchange = |code: String, redirect_uri: &'static str, secret: String| {
        let c = c.clone();
        let url = vk.token_url();
        let id = vk.client_id().to_string();
        async move {
            let r = c
                .post(url)
                .form(&[
                    ("client_id", id.as_str()),
                    ("client_secret", &secret),
                    ("redirect_uri", redirect_uri),
                    ("code", &code),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let secret = vk.client_secret().to_string();

    // Wrong secret: 401 invalid_client.
    let (st, body) = exchange(code("email").await, back, "wrong".into()).await;
    assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")));
    // Another redirect_uri: refused, and the code is spent.
    let c1 = code("email").await;
    let (st, body) = exchange(c1.clone(), "http://127.0.0.1:9/other", secret.clone()).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    let (st, _) = exchange(c1, back, secret.clone()).await;
    assert_eq!(st, 400);
    // A good exchange has the email in the token answer; the code then cannot be reused.
    let c2 = code("email").await;
    let (st, token) = exchange(c2.clone(), back, secret.clone()).await;
    assert_eq!(st, 200, "{token}");
    assert_eq!(token["email"], "ivan.petrov@example.ru");
    assert_eq!(token["user_id"], 100001);
    let (st, body) = exchange(c2, back, secret.clone()).await;
    assert_eq!(
        (st, body["error_description"].as_str()),
        (400, Some("Code is invalid or expired."))
    );
    // Without the email scope there is no email.
    let (_, t2) = exchange(code("").await, back, secret.clone()).await;
    assert!(
        t2.get("email").is_none() && t2["access_token"].is_string(),
        "{t2}"
    );
    // Expired codes are refused.
    vk.set_code_ttl(Duration::ZERO);
    let (st, _) = exchange(code("email").await, back, secret.clone()).await;
    assert_eq!(st, 400);
    vk.set_code_ttl(Duration::from_secs(3600));

    // users.get: errors come with HTTP 200; fields only when asked for.
    let access = token["access_token"].as_str().unwrap();
    let users_get = format!("{}/method/users.get", vk.base_url());
    let r = c
        .get(format!("{users_get}?access_token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["error_code"], 8);
    let r = c
        .get(format!("{users_get}?access_token=forged&v=5.131"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["error_code"], 5, "{body}");
    assert!(
        !body.to_string().contains("forged"),
        "the token is not echoed"
    );
    let r = c
        .get(format!(
            "{users_get}?access_token={access}&v=5.131&fields=sex,bdate"
        ))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let me = &body["response"][0];
    assert_eq!(
        (me["id"].clone(), me["sex"].clone(), me["bdate"].clone()),
        (json!(100001), json!(2), json!("12.4.1990"))
    );
    assert!(me.get("photo_200").is_none(), "not asked for: {me}");

    // Once a redirect URI is registered, others are refused at /authorize, without a redirect.
    vk.register_redirect_uri(back);
    let r = c
        .get(format!(
            "{}?client_id={}&redirect_uri=https://evil.example/cb&response_type=code&user=ivan",
            vk.auth_url(),
            vk.client_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Cancel on the consent page goes back with access_denied.
    let r = c
        .get(format!(
            "{}?client_id={}&redirect_uri={back}&response_type=code&state=s2&deny=1",
            vk.auth_url(),
            vk.client_id()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
}

// ---- VK ID ---------------------------------------------------------------------------------

#[tokio::test]
async fn vkid_sign_up_then_sign_in_and_fill_the_gap() {
    let vkid = VkIdEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&vkid_yaml(&vkid))).await;
    vkid.register_redirect_uri(&format!(
        "{}/self-service/methods/oidc/callback/vkid",
        s.public
    ));
    let b = Browser::default();
    let authorize = press_provider(&b, &s, "login", "vkid").await;
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("vkid.personal_info email phone")
    );
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("Иван Петров"), "{page}");

    sign_up_and_again(&s, "vkid", ("ivan", "ivan.petrov@example.ru"), "100001").await;
    assert!(vkid.user_info_requests() >= 2);
    // Maria has no email at VK: she is asked for one.
    let s2 = TestServer::start(Backend::Sqlite, &config(&vkid_yaml(&vkid))).await;
    vkid.register_redirect_uri(&format!(
        "{}/self-service/methods/oidc/callback/vkid",
        s2.public
    ));
    fill_the_gap(&s2, "vkid", "100002").await;
}

#[tokio::test]
async fn vkid_device_id_is_carried_and_checked_end_to_end() {
    let vkid = VkIdEmulator::start().await;
    let s = TestServer::start(Backend::Sqlite, &config(&vkid_yaml(&vkid))).await;
    // A callback whose device_id is not the one VK ID issued: refused by VK ID.
    let b = Browser::default();
    let callback = upstream(&b, &press_provider(&b, &s, "login", "vkid").await, "ivan").await;
    assert!(param(&callback, "device_id").is_some(), "{callback}");
    let mut u = url::Url::parse(&callback).unwrap();
    let tampered: Vec<(String, String)> = query_of(&callback)
        .into_iter()
        .map(|(k, v)| {
            if k == "device_id" {
                (k, "another-device".into())
            } else {
                (k, v)
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(tampered);
    let text = refusal(&b, &s, b.get(u.as_str(), false).await).await;
    assert!(
        text.contains("VK ID refused the sign-in") && text.contains("device_id"),
        "{text}"
    );
    // A callback without a device_id: Tessera says so without asking VK ID.
    let before = vkid.token_requests();
    let callback = upstream(&b, &press_provider(&b, &s, "login", "vkid").await, "ivan").await;
    let mut u = url::Url::parse(&callback).unwrap();
    let without: Vec<(String, String)> = query_of(&callback)
        .into_iter()
        .filter(|(k, _)| k != "device_id")
        .collect();
    u.query_pairs_mut().clear().extend_pairs(without);
    let text = refusal(&b, &s, b.get(u.as_str(), false).await).await;
    assert!(text.contains("device_id"), "{text}");
    assert_eq!(vkid.token_requests(), before);
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn vkid_emulator_refuses_what_vk_id_refuses() {
    let vkid = VkIdEmulator::start().await;
    let c = TestServer::client();
    let back = "http://127.0.0.1:9/cb";
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = |extra: &str| {
        let c = c.clone();
        let url = format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri={back}&state=st-123&scope=email&user=ivan{extra}",
            vkid.base_url(),
            vkid.client_id()
        );
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            location(&r)
        }
    };
    let with_pkce = &format!("&code_challenge={challenge}&code_challenge_method=S256");
    let token = |form: Vec<(&'static str, String)>| {
        let c = c.clone();
        let url = format!("{}/oauth2/auth", vkid.base_url());
        async move {
            let r = c.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let form = |cb: &str, verifier: Option<&str>, device: Option<&str>, redirect: &str| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", param(cb, "code").unwrap()),
            ("client_id", vkid.client_id().to_string()),
            ("redirect_uri", redirect.to_string()),
            ("state", "st-123".to_string()),
        ];
        if let Some(v) = verifier {
            f.push(("code_verifier", v.to_string()));
        }
        let device = device.map(String::from).or_else(|| param(cb, "device_id"));
        if let Some(d) = device {
            f.push(("device_id", d));
        }
        f
    };

    // PKCE is required at /authorize.
    let loc = authorize("").await;
    assert_eq!(param(&loc, "error").as_deref(), Some("invalid_request"));
    assert!(param(&loc, "code").is_none());

    let cb = authorize(with_pkce).await;
    for k in ["code", "state", "device_id", "type"] {
        assert!(param(&cb, k).is_some(), "{k} in {cb}");
    }
    // Missing verifier.
    let (st, body) = token(form(&cb, None, None, back)).await;
    assert_eq!(st, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier"),
        "{body}"
    );
    // Wrong verifier.
    let cb = authorize(with_pkce).await;
    let (st, body) = token(form(&cb, Some(&"x".repeat(43)), None, back)).await;
    assert_eq!(
        (st, body["error_description"].as_str()),
        (400, Some("code_verifier is invalid"))
    );
    // Wrong device_id.
    let cb = authorize(with_pkce).await;
    let (st, body) = token(form(&cb, Some(verifier), Some("other-device"), back)).await;
    assert_eq!(
        (st, body["error_description"].as_str()),
        (400, Some("device_id is invalid"))
    );
    // Wrong redirect_uri.
    let cb = authorize(with_pkce).await;
    let (st, body) = token(form(&cb, Some(verifier), None, "http://127.0.0.1:9/x")).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    // The right one works once.
    let cb = authorize(with_pkce).await;
    let (st, t) = token(form(&cb, Some(verifier), None, back)).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        (t["user_id"].clone(), t["state"].clone()),
        (json!(100001), json!("st-123"))
    );
    assert!(t["id_token"].is_string() && t["refresh_token"].is_string());
    let (st, body) = token(form(&cb, Some(verifier), None, back)).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_grant")));
    // Expired.
    vkid.set_code_ttl(Duration::ZERO);
    let cb = authorize(with_pkce).await;
    let (st, _) = token(form(&cb, Some(verifier), None, back)).await;
    assert_eq!(st, 400);

    // user_info: only the granted scopes' fields.
    let r = c
        .post(format!("{}/oauth2/user_info", vkid.base_url()))
        .form(&[
            ("client_id", vkid.client_id()),
            ("access_token", t["access_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["user"]["user_id"], "100001");
    assert_eq!(info["user"]["email"], "ivan.petrov@example.ru");
    assert_eq!(info["user"]["birthday"], "12.04.1990");
    assert!(
        info["user"].get("phone").is_none(),
        "phone scope not granted: {info}"
    );
    let r = c
        .post(format!("{}/oauth2/user_info", vkid.base_url()))
        .form(&[("client_id", vkid.client_id()), ("access_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
}
