//! The provider types of the China/Russia catalogue, part three (issue 17): Alipay and Telegram's
//! OpenID Connect login (`telegram_oidc`) end to end
//! through the browser flow against their emulators in tessera-emulators, with the default mapper
//! `tessera demo` writes: sign-up through fill-the-gaps, sign-in into the same identity, the
//! `user_id`/`open_id` subject choice, RSA2 request signatures (a wrong private key refused like
//! the real gateway), Alipay's answer signatures (a forged, unsigned or altered answer refused),
//! keys checked at start, every error shape as a clear message in the page's language; and the
//! emulator refusing what Alipay refuses. The journey helpers are tessera_testkit::journey's.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tessera_testkit::emulators::alipay::{AlipayEmulator, Ids, Signing, UNKNOWN_PRIVATE_KEY};
use tessera_testkit::emulators::telegram_oidc::TelegramOidcEmulator;
use tessera_testkit::journey::{
    assert_needs_a_secret, b64, config, identities, location, param, press_provider,
    refused_in_every_language, sign_in, sign_up_giving_an_email, start_error, upstream, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// `tessera demo`'s Alipay mapper, the one docs/providers/alipay.md shows.
const ALIPAY_MAPPER: &str = include_str!("../../demo/alipay.jsonnet");

/// A YAML double-quoted scalar (PEM keys span lines).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// An `alipay` entry with the app's private key `key` and Alipay's public key `public`.
fn alipay_yaml(ap: &AlipayEmulator, key: &str, public: &str, extra: &str) -> String {
    format!(
        "          - id: alipay\n            provider: alipay\n            label: Alipay\n            client_id: \"{}\"\n            client_secret: {}\n            alipay_public_key: {}\n            auth_url: {}\n            api_base_url: {}\n            mapper_url: base64://{}\n{extra}",
        ap.app_id(),
        q(key),
        q(public),
        ap.auth_url(),
        ap.base_url(),
        b64(ALIPAY_MAPPER)
    )
}

async fn alipay_server(
    backend: Backend,
    ap: &AlipayEmulator,
    key: &str,
    extra: &str,
) -> TestServer {
    let public = ap.alipay_public_key_pem();
    let s = TestServer::start(backend, &config(&alipay_yaml(ap, key, &public, extra))).await;
    ap.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/alipay",
        s.public
    ));
    s
}

each_backend!(alipay_sign_up_fills_the_email_then_signs_in_again);
async fn alipay_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let ap = AlipayEmulator::start().await;
    let s = alipay_server(backend, &ap, ap.app_private_key_pem(), "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "alipay", "https://app.example.com/after").await;
    assert!(authorize.starts_with(&ap.auth_url()), "{authorize}");
    assert_eq!(param(&authorize, "app_id").as_deref(), Some(ap.app_id()));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("auth_user"));
    assert!(
        param(&authorize, "client_id").is_none(),
        "Alipay names it app_id"
    );
    assert!(
        param(&authorize, "code_challenge").is_none(),
        "no PKCE at Alipay"
    );
    let page = b.get(&authorize, false).await.text().await.unwrap();
    assert!(page.contains("张小花") && page.contains("王大明"), "{page}");
    // The callback carries auth_code, not code.
    let callback = upstream(&b, &authorize, "xiaohua").await;
    assert!(param(&callback, "auth_code").is_some() && param(&callback, "code").is_none());

    // Alipay shares no email: the person types one; a new (OpenID) app's subject is open_id.
    let (me, ids) = sign_up_giving_an_email(&s, ("alipay", "xiaohua"), "xiaohua@example.cn").await;
    assert_eq!(ids, json!([format!("alipay:{}", ap.open_id_of("xiaohua"))]));
    assert_eq!(me["traits"]["name"]["first"], "张小花");
    assert_eq!(
        me["metadata_public"]["alipay_open_id"],
        ap.open_id_of("xiaohua")
    );
    assert!(me["metadata_public"].get("alipay_user_id").is_none());

    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "alipay", "xiaohua").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn alipay_subject_is_user_id_or_open_id_as_chosen() {
    // A legacy app gets both ids: by default the subject is the cross-app user_id …
    let ap = AlipayEmulator::start().await;
    ap.set_ids(Ids::Both);
    let s = alipay_server(Backend::Sqlite, &ap, ap.app_private_key_pem(), "").await;
    let (me, ids) = sign_up_giving_an_email(&s, ("alipay", "daming"), "daming@example.cn").await;
    assert_eq!(ids, json!([format!("alipay:{}", ap.user_id_of("daming"))]));
    assert_eq!(
        me["metadata_public"]["alipay_user_id"],
        ap.user_id_of("daming")
    );

    // … and subject_source: open_id insists on the per-app id.
    let s = alipay_server(
        Backend::Sqlite,
        &ap,
        ap.app_private_key_pem(),
        "            subject_source: open_id\n",
    )
    .await;
    let (_, ids) = sign_up_giving_an_email(&s, ("alipay", "daming"), "daming@example.cn").await;
    assert_eq!(ids, json!([format!("alipay:{}", ap.open_id_of("daming"))]));

    // subject_source: user_id on an app Alipay moved to OpenID: refused, nothing created.
    ap.set_ids(Ids::OpenId);
    let s = alipay_server(
        Backend::Sqlite,
        &ap,
        ap.app_private_key_pem(),
        "            subject_source: user_id\n",
    )
    .await;
    let text = refused_in_every_language(
        &s,
        ("alipay", "daming"),
        "Ответ сервиса Alipay не удалось обработать",
        "支付宝返回的信息无法使用",
    )
    .await;
    assert!(text.contains("Alipay sent an answer"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn alipay_keys_are_checked_at_start_with_the_key_named() {
    let ap = AlipayEmulator::start().await;
    let public = ap.alipay_public_key_pem();
    let key = ap.app_private_key_pem();
    let err = |k: &str, p: &str, extra: &str| {
        let yaml = config(&alipay_yaml(&ap, k, p, extra));
        async move { start_error(&yaml).await }
    };
    let e = err("", &public, "").await;
    assert!(
        e.contains("providers.0.client_secret") && e.contains("client_secret is required"),
        "{e}"
    );
    let e = err("not a key", &public, "").await;
    assert!(
        e.contains("providers.0.client_secret") && e.contains("the app's private key"),
        "{e}"
    );
    let e = err(&public, &public, "").await;
    assert!(e.contains("this is a public key"), "{e}");
    let e = err(key, "", "").await;
    assert!(
        e.contains("providers.0.alipay_public_key") && e.contains("支付宝公钥"),
        "{e}"
    );
    let e = err(key, key, "").await;
    assert!(
        e.contains("providers.0.alipay_public_key") && e.contains("this is a private key"),
        "{e}"
    );
    // The app's own public key where Alipay's belongs: the common mix-up, named.
    let own = {
        use rsa::pkcs8::EncodePublicKey;
        RsaPrivateKey::from_pkcs8_pem(key)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap()
    };
    let e = err(key, &own, "").await;
    assert!(e.contains("app's own public key (应用公钥)"), "{e}");
    let e = err(key, &public, "            subject_source: union_id\n").await;
    assert!(e.contains("providers.0.subject_source"), "{e}");
}

#[tokio::test]
async fn alipay_errors_are_clear_localised_messages() {
    let ap = AlipayEmulator::start().await;
    // A private key Alipay never saw: the gateway refuses the request's signature.
    let s = alipay_server(Backend::Sqlite, &ap, UNKNOWN_PRIVATE_KEY, "").await;
    let text = refused_in_every_language(
        &s,
        ("alipay", "xiaohua"),
        "Вход через Alipay отклонён",
        "支付宝拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Alipay refused the sign-in")
            && text.contains("Alipay error 40002 isv.invalid-signature"),
        "{text}"
    );

    let s = alipay_server(Backend::Sqlite, &ap, ap.app_private_key_pem(), "").await;
    ap.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("alipay", "xiaohua"),
        "Вход через Alipay отклонён",
        "支付宝拒绝了此次登录",
    )
    .await;
    assert!(
        text.contains("Alipay error 40002 isv.code-invalid") && text.contains("授权码code无效"),
        "{text}"
    );
    let text = refused_in_every_language(
        &s,
        ("alipay", "deny"),
        "Вход через Alipay отменён",
        "支付宝登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn alipay_answers_are_believed_only_with_alipays_signature() {
    let ap = AlipayEmulator::start().await;
    let s = alipay_server(Backend::Sqlite, &ap, ap.app_private_key_pem(), "").await;
    for signing in [Signing::OtherKey, Signing::None] {
        ap.set_answer_signing(signing);
        let text = refused_in_every_language(
            &s,
            ("alipay", "xiaohua"),
            "Не удалось проверить ответ Alipay",
            "无法验证来自支付宝的响应",
        )
        .await;
        assert!(
            text.contains("could not be verified"),
            "{signing:?}: {text}"
        );
    }
    // Genuine answers, but Tessera holds another public key for Alipay: refused as well.
    ap.set_answer_signing(Signing::Genuine);
    let other_public = {
        use rsa::pkcs8::EncodePublicKey;
        RsaPrivateKey::from_pkcs8_pem(UNKNOWN_PRIVATE_KEY)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap()
    };
    let s2 = TestServer::start(
        Backend::Sqlite,
        &config(&alipay_yaml(
            &ap,
            ap.app_private_key_pem(),
            &other_public,
            "",
        )),
    )
    .await;
    ap.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/alipay",
        s2.public
    ));
    let b = Browser::default();
    let r = sign_in(&b, &s2, "login", "alipay", "xiaohua").await;
    let text = tessera_testkit::journey::refusal(&b, &s2, r).await;
    assert!(text.contains("could not be verified"), "{text}");
    assert!(identities(&s).await.is_empty() && identities(&s2).await.is_empty());
}

#[tokio::test]
async fn alipay_callback_for_another_app_is_refused() {
    let ap = AlipayEmulator::start().await;
    let s = alipay_server(Backend::Sqlite, &ap, ap.app_private_key_pem(), "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "alipay", "https://app.example.com/after").await;
    let callback = upstream(&b, &authorize, "xiaohua").await;
    let mut url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "app_id" {
                "2021000000000099".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = b.get(url.as_str(), false).await;
    let text = tessera_testkit::journey::refusal(&b, &s, r).await;
    assert!(text.contains("another Alipay app"), "{text}");
    assert_eq!(ap.token_requests(), 0, "the code was never redeemed");
}

/// The gateway's RSA2 signature, computed here independently of Tessera's code.
fn signed(key: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    pairs.sort();
    let content = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let key = RsaPrivateKey::from_pkcs8_pem(key).unwrap();
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(content.as_bytes()),
        )
        .unwrap();
    let mut out: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.push(("sign".into(), STANDARD.encode(sig)));
    out
}

/// Beijing time now, `yyyy-MM-dd HH:mm:ss`.
fn beijing_now() -> String {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    tessera_social::alipay::beijing_timestamp(unix)
}

/// The business member of a gateway answer, after checking Alipay's signature over its text.
fn verified(ap: &AlipayEmulator, body: &str, node: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap();
    let start = body.find(&format!("\"{node}\":")).unwrap() + node.len() + 3;
    let end = body.rfind(",\"sign\":").unwrap();
    let public = RsaPublicKey::from_public_key_pem(&ap.alipay_public_key_pem()).unwrap();
    let sig = STANDARD.decode(v["sign"].as_str().unwrap()).unwrap();
    public
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&body.as_bytes()[start..end]),
            &sig,
        )
        .expect("Alipay's signature over the member's text");
    v[node].clone()
}

#[tokio::test]
async fn alipay_emulator_refuses_what_alipay_refuses() {
    let ap = AlipayEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    ap.register_redirect_uri(back);
    let c = TestServer::client();
    let auth = |app: &str, redirect: &str| {
        format!(
            "{}?app_id={app}&scope=auth_user&redirect_uri={redirect}&state=s&user=xiaohua",
            ap.auth_url()
        )
    };
    for (app, redirect, needle) in [
        ("2021000000000099", back, "app_id"),
        (ap.app_id(), "http://evil.example/cb", "redirect_uri"),
    ] {
        let r = c.get(auth(app, redirect)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains(needle));
    }
    let r = c.get(auth(ap.app_id(), back)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let cb = location(&r);
    assert_eq!(param(&cb, "app_id").as_deref(), Some(ap.app_id()));
    let code = param(&cb, "auth_code").unwrap();

    let ts = beijing_now();
    let call = |key: &'static str,
                method: &'static str,
                extra: Vec<(&'static str, String)>,
                ts: String| {
        let app = ap.app_id().to_string();
        let url = ap.gateway_url();
        let c = c.clone();
        async move {
            let mut params: Vec<(&str, &str)> = vec![
                ("app_id", &app),
                ("method", method),
                ("format", "JSON"),
                ("charset", "utf-8"),
                ("sign_type", "RSA2"),
                ("timestamp", &ts),
                ("version", "1.0"),
            ];
            for (k, v) in &extra {
                params.push((k, v));
            }
            let r = c
                .post(url)
                .form(&signed(key, &params))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "errors come with HTTP 200");
            r.text().await.unwrap()
        }
    };
    let token_params = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
        ]
    };
    // Signed with a key the app never uploaded: refused before the code is looked at.
    let body = call(
        UNKNOWN_PRIVATE_KEY,
        "alipay.system.oauth.token",
        token_params(&code),
        ts.clone(),
    )
    .await;
    let e = verified(&ap, &body, "error_response");
    assert_eq!(
        (e["code"].as_str(), e["sub_code"].as_str()),
        (Some("40002"), Some("isv.invalid-signature"))
    );
    // A stale timestamp.
    let body = call(
        ap.app_private_key_pem(),
        "alipay.system.oauth.token",
        token_params(&code),
        "2020-01-01 00:00:00".into(),
    )
    .await;
    assert_eq!(
        verified(&ap, &body, "error_response")["sub_code"],
        "isv.invalid-timestamp"
    );
    // The genuine call, once.
    let body = call(
        ap.app_private_key_pem(),
        "alipay.system.oauth.token",
        token_params(&code),
        ts.clone(),
    )
    .await;
    let t = verified(&ap, &body, "alipay_system_oauth_token_response");
    assert_eq!(t["open_id"], ap.open_id_of("xiaohua"));
    let access = t["access_token"].as_str().unwrap().to_string();
    let body = call(
        ap.app_private_key_pem(),
        "alipay.system.oauth.token",
        token_params(&code),
        ts.clone(),
    )
    .await;
    assert_eq!(
        verified(&ap, &body, "error_response")["sub_code"],
        "isv.code-invalid",
        "a code is spent once"
    );
    // The profile, and a token Alipay does not know.
    let body = call(
        ap.app_private_key_pem(),
        "alipay.user.info.share",
        vec![("auth_token", access)],
        ts.clone(),
    )
    .await;
    let u = verified(&ap, &body, "alipay_user_info_share_response");
    assert_eq!(
        (u["code"].as_str(), u["nick_name"].as_str()),
        (Some("10000"), Some("张小花"))
    );
    let body = call(
        ap.app_private_key_pem(),
        "alipay.user.info.share",
        vec![("auth_token", "authusrBnope".into())],
        ts.clone(),
    )
    .await;
    let u = verified(&ap, &body, "alipay_user_info_share_response");
    assert_eq!(
        (u["code"].as_str(), u["sub_code"].as_str()),
        (Some("20001"), Some("aop.invalid-auth-token"))
    );
    let body = call(ap.app_private_key_pem(), "alipay.user.nope", vec![], ts).await;
    assert_eq!(
        verified(&ap, &body, "error_response")["sub_code"],
        "isv.invalid-method"
    );
}

// ---- Telegram (OpenID Connect) -------------------------------------------------------------

/// `tessera demo`'s Telegram mapper, the one docs/providers/telegram_oidc.md shows.
const TELEGRAM_MAPPER: &str = include_str!("../../demo/telegram_oidc.jsonnet");

fn telegram_yaml(tg: &TelegramOidcEmulator, id: &str, secret: &str, extra: &str) -> String {
    format!(
        "          - id: telegram\n            provider: telegram_oidc\n            label: Telegram\n            client_id: \"{id}\"\n            client_secret: {secret}\n            issuer_url: {}\n            mapper_url: base64://{}\n{extra}",
        tg.issuer(),
        b64(TELEGRAM_MAPPER)
    )
}

async fn telegram_server(
    backend: Backend,
    tg: &TelegramOidcEmulator,
    secret: &str,
    extra: &str,
) -> TestServer {
    let s = TestServer::start(
        backend,
        &config(&telegram_yaml(tg, tg.client_id(), secret, extra)),
    )
    .await;
    tg.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/telegram",
        s.public
    ));
    s
}

each_backend!(telegram_oidc_sign_up_fills_the_email_then_signs_in_again);
async fn telegram_oidc_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let tg = TelegramOidcEmulator::start().await;
    let s = telegram_server(backend, &tg, tg.client_secret(), "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "telegram", "https://app.example.com/after").await;
    assert!(
        authorize.starts_with(&format!("{}/auth?", tg.issuer())),
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "client_id").as_deref(),
        Some(tg.client_id())
    );
    assert_eq!(
        param(&authorize, "scope").as_deref(),
        Some("openid profile")
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256"),
        "PKCE, always"
    );
    assert!(param(&authorize, "nonce").is_some());

    // Telegram never sends an email: the person types one; the id_token's sub is the subject.
    let (me, ids) = sign_up_giving_an_email(&s, ("telegram", "ivan"), "ivan@example.ru").await;
    assert_eq!(ids, json!([format!("telegram:{}", tg.id_of("ivan"))]));
    assert_eq!(me["traits"]["name"]["first"], "Иван");
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(me["metadata_public"]["telegram_username"], "ivan_petrov");
    assert!(
        me["metadata_public"].get("telegram_phone").is_none(),
        "no phone scope"
    );

    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "login", "telegram", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], me["id"]);
    assert_eq!(identities(&s).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn telegram_oidc_phone_scope_and_start_time_checks() {
    let tg = TelegramOidcEmulator::start().await;
    let s = telegram_server(
        Backend::Sqlite,
        &tg,
        tg.client_secret(),
        "            scope: [openid, profile, phone]\n",
    )
    .await;
    let (me, _) = sign_up_giving_an_email(&s, ("telegram", "maria"), "maria@example.ru").await;
    assert_eq!(me["metadata_public"]["telegram_phone"], "+79037654321");
    assert_eq!(me["traits"]["name"]["last"], "Смирнова");
    // The bot token is not a bot id; a secret is required.
    let err = start_error(&config(&telegram_yaml(
        &tg,
        "7712345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "s",
        "",
    )))
    .await;
    assert!(
        err.contains("providers.0.client_id") && err.contains("not a Telegram bot id"),
        "{err}"
    );
    assert_needs_a_secret(&config(&telegram_yaml(&tg, tg.client_id(), "\"\"", ""))).await;
}

#[tokio::test]
async fn telegram_oidc_errors_are_clear_localised_messages() {
    let tg = TelegramOidcEmulator::start().await;
    let s = telegram_server(Backend::Sqlite, &tg, "not-the-secret", "").await;
    let text = refused_in_every_language(
        &s,
        ("telegram", "ivan"),
        "Вход через Telegram отклонён",
        "Telegram 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_client"), "{text}");
    let s = telegram_server(Backend::Sqlite, &tg, tg.client_secret(), "").await;
    tg.set_code_ttl(Duration::ZERO);
    let text = refused_in_every_language(
        &s,
        ("telegram", "ivan"),
        "Вход через Telegram отклонён",
        "Telegram 拒绝了此次登录",
    )
    .await;
    assert!(text.contains("invalid_grant"), "{text}");
    let text = refused_in_every_language(
        &s,
        ("telegram", "deny"),
        "Вход через Telegram отменён",
        "Telegram 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    assert!(identities(&s).await.is_empty());
}

#[tokio::test]
async fn telegram_oidc_emulator_refuses_what_telegram_refuses() {
    let tg = TelegramOidcEmulator::start().await;
    let back = "http://127.0.0.1:9/cb";
    tg.register_redirect_uri(back);
    let c = TestServer::client();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let auth = |redirect: &str, pkce: bool| {
        let mut u = format!(
            "{}/auth?client_id={}&redirect_uri={redirect}&response_type=code&scope=openid&state=s&nonce=n&user=ivan",
            tg.issuer(),
            tg.client_id()
        );
        if pkce {
            u.push_str(&format!(
                "&code_challenge={challenge}&code_challenge_method=S256"
            ));
        }
        u
    };
    for (url, needle) in [
        (auth("http://evil.example/cb", true), "allowed URLs"),
        (auth(back, false), "PKCE"),
    ] {
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains(needle), "{needle}");
    }
    let code = |c: reqwest::Client| {
        let url = auth(back, true);
        async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 302);
            param(&location(&r), "code").unwrap()
        }
    };
    let token = |code: String, secret: &str, verifier: &str| {
        c.post(format!("{}/token", tg.issuer()))
            .basic_auth(tg.client_id(), Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", back),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let secret = tg.client_secret();
    let r = token(code(c.clone()).await, "wrong", verifier)
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = token(
        code(c.clone()).await,
        secret,
        "another-verifier-of-43-characters-xxxxxxxxx",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let once = code(c.clone()).await;
    let r = token(once.clone(), secret, verifier).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let id_token = t["id_token"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], tg.id_of("ivan").to_string());
    assert_eq!(payload["aud"], tg.client_id());
    assert!(
        payload.get("email").is_none(),
        "Telegram never sends an email"
    );
    let r = token(once, secret, verifier).await.unwrap();
    assert_eq!(r.status(), 400, "a code is spent once");
}
