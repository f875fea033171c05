//! Verification and recovery by code end to end (issue 15, items 2, 3, 6 and 7): the codes
//! travel through the real courier to the emulators' SMTP sink and are read back from the
//! mail. Journeys in Chinese and Russian; then the attacks: wrong codes until the flow is
//! spent, an expired code, a code used twice, a code from another flow, an unknown address
//! (answered exactly like a known one), a browser form without its CSRF token, and the send
//! limit.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_testkit::emulators::smtp_sink::SmtpSink;
use tessera_testkit::journey::{flow_id_of, location, submit};
use tessera_testkit::mail::{code_in, fetch, flow_shape, json_of, mail_to, open};
use tessera_testkit::{Backend, Browser, TestServer, each_backend, message_ids};

fn config(port: u16, extra: &str) -> String {
    format!(
        "courier:\n  smtp:\n    connection_uri: smtp://127.0.0.1:{port}/?disable_starttls=true\n    from_address: accounts@example.org\n  worker:\n    pull_wait: 100ms\nselfservice:\n  flows:\n    verification:\n      enabled: true\n      use: code\n    recovery:\n      enabled: true\n      use: code\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n{extra}"
    )
}

each_backend!(register_verify_by_code_in_chinese);
/// Register in a Chinese browser → `show_verification_ui` sends it to the verification page →
/// the code from the Chinese mail → the address is verified, as whoami and the page say.
async fn register_verify_by_code_in_chinese(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    let b = Browser::default();
    let reg = open(&b, &s, "registration", "?ui_locales=zh-CN").await;
    let r = submit(
        &b,
        &reg,
        &[
            ("method", "password"),
            ("traits.email", "li.wei@example.cn"),
            ("password", "correct horse battery staple"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/ui/verification?flow=", s.public)),
        "{to}"
    );
    let id = flow_id_of(&to);
    let flow = fetch(&b, &s, "verification", &id).await;
    assert_eq!(flow["state"], "sent_email", "{flow}");
    assert_eq!(flow["active"], "code");
    assert!(
        message_ids(&flow).iter().any(|(_, id)| *id == 1080003),
        "{flow}"
    );
    let me = tessera_testkit::journey::whoami(&b, &s).await;
    let address = &me["identity"]["verifiable_addresses"][0];
    assert_eq!(address["verified"], false, "{me}");
    assert_eq!(address["status"], "pending");

    let mail = mail_to(&sink, "li.wei@example.cn", 1).await;
    assert_eq!(mail.subject(), "请验证您的邮箱地址");
    let code = code_in(&mail);
    let r = submit(
        &b,
        &flow,
        &[("method", "code"), ("code", code.as_str())],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(flow_id_of(&location(&r)), id);
    let done = fetch(&b, &s, "verification", &id).await;
    assert_eq!(done["state"], "passed_challenge", "{done}");
    assert!(
        message_ids(&done).iter().any(|(_, id)| *id == 1080002),
        "{done}"
    );
    let me = tessera_testkit::journey::whoami(&b, &s).await;
    let address = &me["identity"]["verifiable_addresses"][0];
    assert_eq!(address["verified"], true, "{me}");
    assert_eq!(address["status"], "completed");
    assert!(address["verified_at"].is_string(), "{me}");
    // The hosted page says so in Chinese.
    let page = b
        .get(
            &format!("{}/ui/verification?flow={id}&ui_locales=zh-CN", s.public),
            false,
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("你的邮箱地址已验证。"), "{page}");
}

each_backend!(forgot_password_by_code_in_russian_revokes_old_sessions);
/// Forgot password in a Russian browser → the code from the Russian mail → a session and a
/// settings flow that takes a new password without the old one → the old session is gone,
/// the new password signs in and the old one does not.
async fn forgot_password_by_code_in_russian_revokes_old_sessions(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    s.register("ivan@example.ru", "old password 12345").await;
    let (status, old) = s.login("ivan@example.ru", "old password 12345").await;
    assert_eq!(status, 200, "{old}");
    let old_token = old["session_token"].as_str().expect("token").to_string();
    // The login page offers the way back in.
    let b = Browser::default();
    let login = open(&b, &s, "login", "").await;
    let page = b
        .get(
            &format!(
                "{}/ui/login?flow={}&ui_locales=ru",
                s.public,
                login["id"].as_str().unwrap_or_default()
            ),
            false,
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("Забыли пароль?"), "{page}");

    let flow = open(&b, &s, "recovery", "?ui_locales=ru").await;
    assert_eq!(flow["state"], "choose_method");
    let (status, sent) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "code"), ("email", "Ivan@Example.ru")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["state"], "sent_email");
    assert!(
        message_ids(&sent).iter().any(|(_, id)| *id == 1060003),
        "{sent}"
    );
    let mail = mail_to(&sink, "ivan@example.ru", 2).await;
    assert!(mail.subject().contains("Восстанов"), "{}", mail.subject());
    let code = code_in(&mail);
    let r = submit(
        &b,
        &sent,
        &[("method", "code"), ("code", code.as_str())],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/ui/settings?flow=", s.public)),
        "{to}"
    );
    let settings = fetch(&b, &s, "settings", &flow_id_of(&to)).await;
    assert!(
        message_ids(&settings).iter().any(|(_, id)| *id == 1060001),
        "{settings}"
    );
    let (status, saved) = json_of(
        submit(
            &b,
            &settings,
            &[
                ("method", "password"),
                ("password", "brand new password 678"),
            ],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        s.whoami(&old_token).await.0,
        401,
        "the old session is revoked"
    );
    assert_eq!(
        s.login("ivan@example.ru", "brand new password 678").await.0,
        200
    );
    assert_eq!(
        s.login("ivan@example.ru", "old password 12345").await.0,
        400
    );
    // The recovered address counts as verified.
    let me = tessera_testkit::journey::whoami(&b, &s).await;
    assert_eq!(
        me["identity"]["verifiable_addresses"][0]["verified"], true,
        "{me}"
    );
}

each_backend!(codes_resist_guessing_reuse_and_enumeration);
/// The attacks on codes and on the address form.
async fn codes_resist_guessing_reuse_and_enumeration(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let extra = "limits:\n  code_sends:\n    per_address_per_hour: 2\n";
    let s = TestServer::start(backend, config(sink.port, extra)).await;
    s.register("known@example.org", "a long enough password")
        .await;
    let b = Browser::default();
    // Registration sent the first verification mail to the known address.
    let _ = mail_to(&sink, "known@example.org", 1).await;

    // Unknown address: the same status and the same flow as a known one; no mail goes out.
    let known = open(&b, &s, "recovery", "").await;
    let (ks, known_sent) = json_of(
        submit(
            &b,
            &known,
            &[("method", "code"), ("email", "known@example.org")],
            true,
        )
        .await,
    )
    .await;
    let unknown = open(&b, &s, "recovery", "").await;
    let (us, unknown_sent) = json_of(
        submit(
            &b,
            &unknown,
            &[("method", "code"), ("email", "nobody@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!((ks, us), (200, 200));
    assert_eq!(
        flow_shape(&known_sent, "email"),
        flow_shape(&unknown_sent, "email")
    );
    let code = code_in(&mail_to(&sink, "known@example.org", 2).await);
    assert!(
        sink.mails()
            .iter()
            .all(|m| !m.to.iter().any(|t| t.contains("nobody"))),
        "no mail to an unknown address"
    );

    // A code works only in its own flow.
    let (status, other) = json_of(
        submit(
            &b,
            &unknown_sent,
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        message_ids(&other).iter().any(|(_, id)| *id == 4060006),
        "{other}"
    );

    // A browser form without its CSRF token is refused.
    let r = b
        .post_form(
            known_sent["ui"]["action"].as_str().expect("action"),
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["id"], "security_csrf_violation");

    // Five wrong codes are answered "wrong"; the sixth try spends the flow, so even the right
    // code no longer works there, and a fresh flow says why.
    for _ in 0..5 {
        let (status, wrong) = json_of(
            submit(
                &b,
                &known_sent,
                &[("method", "code"), ("code", "000000")],
                true,
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            message_ids(&wrong).iter().any(|(_, id)| *id == 4060006),
            "{wrong}"
        );
    }
    let (status, spent) = json_of(
        submit(
            &b,
            &known_sent,
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{spent}");
    assert_ne!(spent["id"], known_sent["id"]);
    assert_eq!(spent["state"], "choose_method");
    assert!(
        message_ids(&spent).iter().any(|(_, id)| *id == 4000902),
        "{spent}"
    );
    assert!(tessera_testkit::journey::whoami(&b, &s).await["error"].is_object());

    // A code is used once: the second use of a good code is refused.
    let flow = open(&b, &s, "verification", "").await;
    let (_, sent) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "code"), ("email", "known@example.org")],
            true,
        )
        .await,
    )
    .await;
    let code = code_in(&mail_to(&sink, "known@example.org", 3).await);
    let (status, ok) = json_of(
        submit(
            &b,
            &sent,
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["state"], "passed_challenge");
    let (status, again) = json_of(
        submit(
            &b,
            &sent,
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{again}");
    assert_eq!(again["error"]["id"], "self_service_flow_completed");

    // The send limit: a third code to the same address within the hour is refused, and says so.
    let flow = open(&b, &s, "verification", "").await;
    let (status, limited) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "code"), ("email", "known@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{limited}");
    assert!(
        message_ids(&limited).iter().any(|(_, id)| *id == 4000903),
        "{limited}"
    );
    assert_eq!(
        sink.mails()
            .iter()
            .filter(|m| m.to.iter().any(|t| t.contains("known@")))
            .count(),
        3
    );
}

each_backend!(an_expired_code_is_refused_and_unverified_logins_wait);
/// A code past its lifespan is refused like a wrong one; with `require_verified_address`, a
/// login with an unverified address is refused with Kratos's 4000010 and no session.
async fn an_expired_code_is_refused_and_unverified_logins_wait(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let extra = "  methods:\n    code:\n      config:\n        lifespan: 1ms\n";
    let yaml = config(sink.port, "").replace("selfservice:\n", &format!("selfservice:\n{extra}"))
        + "    login:\n      after:\n        password:\n          hooks:\n            - hook: require_verified_address\n";
    let s = TestServer::start(backend, yaml).await;
    s.register("slow@example.org", "a long enough password")
        .await;
    let (status, login) = s.login("slow@example.org", "a long enough password").await;
    assert_eq!(status, 400, "{login}");
    assert!(
        message_ids(&login).iter().any(|(_, id)| *id == 4000010),
        "{login}"
    );
    assert!(login.get("session_token").is_none());

    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/verification/api", s.public))
        .send()
        .await
        .expect("init")
        .json()
        .await
        .expect("json");
    let action = flow["ui"]["action"].as_str().expect("action").to_string();
    let sent: Value = c
        .post(&action)
        .json(&json!({"method": "code", "email": "slow@example.org"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let code = code_in(&mail_to(&sink, "slow@example.org", 2).await);
    let r = c
        .post(&action)
        .json(&json!({"method": "code", "code": code}))
        .send()
        .await
        .expect("code");
    let (status, expired) = json_of(r).await;
    assert_eq!(status, 200);
    assert!(
        message_ids(&expired).iter().any(|(_, id)| *id == 4070006),
        "{expired}"
    );
    assert_eq!(
        s.login("slow@example.org", "a long enough password")
            .await
            .0,
        400
    );
}

each_backend!(an_administrators_recovery_code_opens_in_one_browser);
/// `POST /admin/recovery/code` (Kratos's shapes): the link binds the flow to the first browser
/// that opens it, the code then leads to the settings page; another browser gets nothing, and
/// bad requests say what is wrong.
async fn an_administrators_recovery_code_opens_in_one_browser(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    let who = s
        .register("eve@example.org", "a long enough password")
        .await;
    let id = who["identity"]["id"].as_str().expect("id");
    let c = TestServer::client();
    let admin = |path: &str| format!("{}{path}", s.admin);
    let r = c
        .post(admin("/admin/recovery/code"))
        .json(&json!({"identity_id": id, "expires_in": "1h"}))
        .send()
        .await
        .expect("admin");
    let (status, made) = json_of(r).await;
    assert_eq!(status, 201, "{made}");
    let link = made["recovery_link"].as_str().expect("link").to_string();
    let code = made["recovery_code"].as_str().expect("code").to_string();
    assert!(made["expires_at"].is_string());
    assert!(
        link.starts_with(&format!("{}/self-service/recovery?flow=", s.public)),
        "{link}"
    );

    let b = Browser::default();
    let r = b.get(&link, false).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/ui/recovery?flow=", s.public)),
        "{to}"
    );
    let flow = fetch(&b, &s, "recovery", &flow_id_of(&to)).await;
    assert_eq!(flow["state"], "sent_email", "{flow}");
    // Another browser opening the same link is not given the flow.
    let other = Browser::default();
    let _ = other.get(&link, false).await;
    let r = other
        .get(
            &format!(
                "{}/self-service/recovery/flows?id={}",
                s.public,
                flow_id_of(&to)
            ),
            true,
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = submit(
        &b,
        &flow,
        &[("method", "code"), ("code", code.as_str())],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).contains("/ui/settings?flow="),
        "{}",
        location(&r)
    );
    assert_eq!(
        tessera_testkit::journey::whoami(&b, &s).await["identity"]["id"],
        json!(id)
    );

    for (body, status) in [
        (json!({}), 400),
        (json!({"identity_id": "not-a-uuid"}), 400),
        (json!({"identity_id": id, "expires_in": "soon"}), 400),
        (json!({"identity_id": uuid_nil()}), 404),
    ] {
        let r = c
            .post(admin("/admin/recovery/code"))
            .json(&body)
            .send()
            .await
            .expect("admin");
        let (got, answer) = json_of(r).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"]["reason"].is_string() || answer["error"]["message"].is_string(),
            "{answer}"
        );
    }
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

/// Kratos's email-password quickstart (`kratos.yml` verbatim, verification and recovery by
/// code, `show_verification_ui`) run by the real binary, with only its SMTP server pointed at
/// the sink by environment, as its docker-compose points it at mailslurper.
struct Quickstart {
    child: std::process::Child,
    public: String,
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_quickstart(smtp_port: u16) -> Quickstart {
    use std::process::{Command, Stdio};
    let bin = env!("CARGO_BIN_EXE_tessera");
    let dir = tessera_testkit::temp_dir();
    let qs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/kratos-quickstart/email-password");
    let schema = format!("file://{}", qs.join("identity.schema.json").display());
    let dsn = format!("sqlite://{}?mode=rwc", dir.join("kratos.db").display());
    let out = Command::new(bin)
        .args(["migrate", "sql", "up", "-e", "--yes"])
        .env("DSN", &dsn)
        .output()
        .expect("migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..3 {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        };
        let (pp, ap) = (free(), free());
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(qs.join("kratos.yml"))
            .current_dir(&dir)
            .env("DSN", &dsn)
            .env("SERVE_PUBLIC_PORT", pp.to_string())
            .env("SERVE_PUBLIC_BASE_URL", format!("http://127.0.0.1:{pp}/"))
            .env("SERVE_ADMIN_PORT", ap.to_string())
            .env(
                "COURIER_SMTP_CONNECTION_URI",
                format!("smtp://127.0.0.1:{smtp_port}/?disable_starttls=true"),
            )
            .env(
                "IDENTITY_SCHEMAS",
                json!([{"id": "default", "url": schema}]).to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tessera");
        let public = format!("http://127.0.0.1:{pp}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{public}/health/ready")).await
                && r.status() == 200
            {
                return Quickstart { child, public };
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("tessera did not start with the quickstart's kratos.yml");
}

async fn api_post(url: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut req = TestServer::client().post(url).json(&body);
    if let Some(t) = token {
        req = req.header("X-Session-Token", t);
    }
    json_of(req.send().await.expect("POST")).await
}

async fn api_flow(base: &str, kind: &str) -> Value {
    json_of(
        TestServer::client()
            .get(format!("{base}/self-service/{kind}/api"))
            .send()
            .await
            .expect("init"),
    )
    .await
    .1
}

#[tokio::test]
async fn the_quickstart_verifies_and_recovers_by_code_as_a_native_app() {
    let sink = SmtpSink::start(false).await;
    let q = start_quickstart(sink.port).await;
    let p = &q.public;
    let reg = api_flow(p, "registration").await;
    let (status, done) = api_post(
        reg["ui"]["action"].as_str().expect("action"),
        json!({"method": "password", "traits": {"email": "app@example.org"}, "password": "a long enough password"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let token = done["session_token"]
        .as_str()
        .expect("session hook")
        .to_string();
    let show = done["continue_with"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["action"] == "show_verification_ui"))
        .unwrap_or_else(|| panic!("no show_verification_ui in {done}"));
    assert_eq!(show["flow"]["verifiable_address"], "app@example.org");
    let vid = show["flow"]["id"].as_str().expect("flow id");
    let code = code_in(&mail_to(&sink, "app@example.org", 1).await);
    let (status, verified) = api_post(
        &format!("{p}/self-service/verification?flow={vid}"),
        json!({"method": "code", "code": code}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["state"], "passed_challenge");
    let me = json_of(
        TestServer::client()
            .get(format!("{p}/sessions/whoami"))
            .header("X-Session-Token", &token)
            .send()
            .await
            .expect("whoami"),
    )
    .await
    .1;
    assert_eq!(
        me["identity"]["verifiable_addresses"][0]["verified"], true,
        "{me}"
    );

    // Forgot password, as a native app: the code's answer carries the new session's token and
    // the settings flow where the new password goes.
    let rec = api_flow(p, "recovery").await;
    let action = rec["ui"]["action"].as_str().expect("action").to_string();
    let (status, _) = api_post(
        &action,
        json!({"method": "code", "email": "app@example.org"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let code = code_in(&mail_to(&sink, "app@example.org", 2).await);
    let (status, recovered) =
        api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 200, "{recovered}");
    let steps = recovered["continue_with"]
        .as_array()
        .expect("continue_with");
    let new_token = session_token_of(&recovered).expect("a session token");
    let sid = steps
        .iter()
        .find(|c| c["action"] == "show_settings_ui")
        .and_then(|c| c["flow"]["id"].as_str())
        .expect("a settings flow");
    let (status, saved) = api_post(
        &format!("{p}/self-service/settings?flow={sid}"),
        json!({"method": "password", "password": "another long password"}),
        Some(&new_token),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let login = api_flow(p, "login").await;
    let (status, _) = api_post(
        login["ui"]["action"].as_str().expect("action"),
        json!({"method": "password", "identifier": "app@example.org", "password": "another long password"}),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_social_sign_up_verifies_the_addresses_the_upstream_did_not_vouch_for() {
    use tessera_testkit::config::base64_url;
    use tessera_testkit::fake_oidc::{FakeOidc, FakeOptions};
    let sink = SmtpSink::start(false).await;
    let fake = FakeOidc::start(FakeOptions::default()).await;
    // The email becomes a trait, but the mapper declares no verified address.
    let mapper = "local c = std.extVar('claims');\n{ identity: { traits: { email: c.email } } }\n";
    let acme = json!({
        "id": "acme", "provider": "generic", "label": "Acme",
        "client_id": fake.client_id(), "client_secret": fake.client_secret(),
        "issuer_url": fake.issuer(), "mapper_url": base64_url(mapper),
        "scope": ["email"],
    });
    let yaml = config(sink.port, "").replace(
        "        password:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n",
        "        oidc:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n",
    );
    let s = TestServer::start(
        Backend::Sqlite,
        tessera_testkit::Config::from(yaml).provider(acme),
    )
    .await;
    let b = Browser::default();
    let reg = open(&b, &s, "registration", "").await;
    let r = submit(&b, &reg, &[("provider", "acme")], false).await;
    assert_eq!(r.status(), 303);
    let r = b.get(&location(&r), false).await;
    assert_eq!(r.status(), 303, "the fake upstream answers");
    let r = b.get(&location(&r), false).await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/ui/verification?flow=", s.public)),
        "{to}"
    );
    let flow = fetch(&b, &s, "verification", &flow_id_of(&to)).await;
    assert_eq!(flow["state"], "sent_email", "{flow}");
    let me = tessera_testkit::journey::whoami(&b, &s).await;
    let address = me["identity"]["verifiable_addresses"][0]["value"]
        .as_str()
        .expect("an address")
        .to_string();
    let code = code_in(&mail_to(&sink, &address, 1).await);
    let (status, done) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "code"), ("code", code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "passed_challenge");
}

// Web hooks before and after verification and recovery (issue 15, item 5).

/// Kratos's documented example body: the whole `ctx`.
const WHOLE_CTX: &str = "function(ctx) ctx";

/// The code test server with `verification` and `recovery` stages merged over the usual ones
/// (a list replaces the usual list).
fn with_flow_hooks(port: u16, verification: Value, recovery: Value) -> tessera_testkit::Config {
    tessera_testkit::Config::from(config(port, "")).with(json!({"selfservice": {"flows": {
        "verification": verification,
        "recovery": recovery,
    }}}))
}

/// An API flow of `kind` sends a code to `email` (its `n`-th mail): the flow's action and the
/// code.
async fn api_code(
    s: &TestServer,
    sink: &SmtpSink,
    kind: &str,
    email: &str,
    n: usize,
) -> (String, String) {
    let flow = api_flow(&s.public, kind).await;
    let action = flow["ui"]["action"].as_str().expect("action").to_string();
    let (status, sent) = api_post(&action, json!({"method": "code", "email": email}), None).await;
    assert_eq!(status, 200, "{sent}");
    (action, code_in(&mail_to(sink, email, n).await))
}

/// The identity as the admin API has it.
async fn admin_identity(s: &TestServer, id: &str) -> Value {
    json_of(
        TestServer::client()
            .get(format!("{}/admin/identities/{id}", s.admin))
            .send()
            .await
            .expect("GET identity"),
    )
    .await
    .1
}

/// Nothing of a recovery was written: the address is not verified, the old session lives.
async fn unchanged(s: &TestServer, id: &str, old_token: &str) {
    let identity = admin_identity(s, id).await;
    assert_eq!(
        identity["verifiable_addresses"][0]["verified"], false,
        "{identity}"
    );
    assert_eq!(s.whoami(old_token).await.0, 200, "the old session is alive");
}

fn session_token_of(done: &Value) -> Option<String> {
    done["continue_with"]
        .as_array()?
        .iter()
        .find(|c| c["action"] == "set_ory_session_token")
        .and_then(|c| c["ory_session_token"].as_str())
        .map(str::to_string)
}

each_backend!(web_hooks_after_verification_and_recovery_see_the_identity_once);
/// `after` web hooks: verification's sees the identity with the address verified and the
/// completed flow; recovery's runs once, after the code signed the identity in, and never
/// sees the new session's token. An unknown address calls nothing.
async fn web_hooks_after_verification_and_recovery_see_the_identity_once(backend: Backend) {
    use crate::hooks::hook;
    let (smtp, sink) = (
        SmtpSink::start(false).await,
        tessera_testkit::webhook_sink::WebhookSink::start().await,
    );
    let cfg = with_flow_hooks(
        smtp.port,
        json!({"after": {"hooks": [hook(&sink.url("/verified"), WHOLE_CTX, json!({}))]}}),
        json!({"after": {"hooks": [
            {"hook": "revoke_active_sessions"},
            hook(&sink.url("/recovered"), WHOLE_CTX, json!({})),
        ]}}),
    );
    let s = TestServer::start(backend, cfg).await;
    let reg = s
        .register("ann@example.org", "a long enough password")
        .await;
    let id = reg["identity"]["id"].as_str().expect("id").to_string();
    let (action, code) = api_code(&s, &smtp, "verification", "ann@example.org", 2).await;
    let (status, done) = api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "passed_challenge");
    let ctx = sink.wait_for("/verified", 1).await[0].json();
    assert_eq!(ctx["identity"]["id"], id.as_str(), "{ctx}");
    let address = &ctx["identity"]["verifiable_addresses"][0];
    assert_eq!(address["value"], "ann@example.org", "{ctx}");
    assert_eq!(address["verified"], true, "{ctx}");
    assert_eq!(address["status"], "completed", "{ctx}");
    assert!(ctx["identity"]["credentials"].is_null(), "{ctx}");
    assert_eq!(ctx["flow"]["id"], done["id"]);
    assert_eq!(ctx["flow"]["state"], "passed_challenge");
    assert_eq!(ctx["request_method"], "POST");
    assert!(sink.calls("/recovered").is_empty());

    // Recovery of an unknown address answers as usual and calls nothing.
    let unknown = api_flow(&s.public, "recovery").await;
    let (status, _) = api_post(
        unknown["ui"]["action"].as_str().expect("action"),
        json!({"method": "code", "email": "nobody@example.org"}),
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (action, code) = api_code(&s, &smtp, "recovery", "ann@example.org", 3).await;
    let (status, recovered) =
        api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 200, "{recovered}");
    let token = session_token_of(&recovered).expect("a session token");
    let call = sink.wait_for("/recovered", 1).await.remove(0);
    let ctx = call.json();
    assert_eq!(ctx["identity"]["id"], id.as_str(), "{ctx}");
    assert_eq!(ctx["flow"]["id"], recovered["id"]);
    assert_eq!(ctx["flow"]["state"], "passed_challenge");
    assert!(
        ctx["session"].is_null(),
        "Kratos's recovery ctx has no session: {ctx}"
    );
    assert!(
        !String::from_utf8_lossy(&call.body).contains(&token),
        "the session token reached a hook"
    );
    // Once: the code does not work again, and nothing more arrives.
    let (status, again) = api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_ne!(status, 200, "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.calls("/recovered").len(), 1);
    assert_eq!(sink.calls("/verified").len(), 1);
}

each_backend!(before_hooks_run_when_verification_and_recovery_flows_are_created);
/// `before` web hooks: an interrupting one that refuses stops the flow's creation with its
/// message; one that agrees lets it be created, and sees the new flow.
async fn before_hooks_run_when_verification_and_recovery_flows_are_created(backend: Backend) {
    use crate::hooks::hook;
    use tessera_testkit::webhook_sink::{Reply, WebhookSink};
    let (smtp, sink) = (SmtpSink::start(false).await, WebhookSink::start().await);
    sink.answer(
        "/verification",
        crate::hooks::refusal("Verification is paused."),
    );
    let body =
        "function(ctx) { flow: ctx.flow.id, type: ctx.flow.type, kind: ctx.flow.request_url }";
    let cfg = with_flow_hooks(
        smtp.port,
        json!({"before": {"hooks": [hook(&sink.url("/verification"), body, json!({"can_interrupt": true}))]}}),
        json!({"before": {"hooks": [hook(&sink.url("/recovery"), body, json!({}))]}}),
    );
    let s = TestServer::start(backend, cfg).await;
    let (status, refused) = json_of(
        TestServer::client()
            .get(format!("{}/self-service/verification/api", s.public))
            .send()
            .await
            .expect("init"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.to_string().contains("Verification is paused."),
        "{refused}"
    );
    assert!(refused["id"].is_null(), "no flow: {refused}");
    let flow = api_flow(&s.public, "recovery").await;
    assert_eq!(flow["state"], "choose_method", "{flow}");
    let seen = sink.wait_for("/recovery", 1).await[0].json();
    assert_eq!(seen["flow"], flow["id"]);
    assert_eq!(seen["type"], "api");
    // The hook changes its mind: the flow is created.
    sink.answer("/verification", Reply::json(200, json!({})));
    let flow = api_flow(&s.public, "verification").await;
    assert_eq!(flow["state"], "choose_method", "{flow}");
    assert_eq!(sink.calls("/verification").len(), 2);
}

each_backend!(failing_after_hooks_break_nothing_and_interrupting_ones_write_nothing);
/// A non-interrupting hook that answers 500 or whose target is down does not break a
/// verification (the 500 is retried in the background). An interrupting hook after recovery
/// that fails, then refuses, leaves everything as it was: no session, the address not
/// verified, the old sessions alive, and the code still good for when the hook agrees.
async fn failing_after_hooks_break_nothing_and_interrupting_ones_write_nothing(backend: Backend) {
    use crate::hooks::hook;
    use tessera_testkit::webhook_sink::{Reply, WebhookSink};
    let (smtp, sink) = (SmtpSink::start(false).await, WebhookSink::start().await);
    sink.answer("/broken", Reply::text(500, "oops"));
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/gone", l.local_addr().expect("addr"))
    };
    let cfg = with_flow_hooks(
        smtp.port,
        json!({"after": {"hooks": [
            hook(&sink.url("/broken"), WHOLE_CTX, json!({})),
            hook(&down, WHOLE_CTX, json!({})),
        ]}}),
        json!({"after": {"hooks": [
            {"hook": "revoke_active_sessions"},
            hook(&sink.url("/gate"), "function(ctx) { identity: ctx.identity.id }", json!({"can_interrupt": true})),
        ]}}),
    );
    let s = TestServer::start(backend, cfg).await;
    let ann = s
        .register("ann@example.org", "a long enough password")
        .await;
    let (action, code) = api_code(&s, &smtp, "verification", "ann@example.org", 2).await;
    let (status, done) = api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "passed_challenge");
    let ann = admin_identity(&s, ann["identity"]["id"].as_str().expect("id")).await;
    assert_eq!(ann["verifiable_addresses"][0]["verified"], true, "{ann}");
    sink.wait_for("/broken", 3).await;

    let bob = s
        .register("bob@example.org", "a long enough password")
        .await;
    let bob_id = bob["identity"]["id"].as_str().expect("id").to_string();
    let (status, old) = s.login("bob@example.org", "a long enough password").await;
    assert_eq!(status, 200, "{old}");
    let old = old["session_token"].as_str().expect("token").to_string();
    let (action, code) = api_code(&s, &smtp, "recovery", "bob@example.org", 2).await;
    sink.answer("/gate", Reply::text(500, "down for maintenance"));
    let (status, failed) = api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 503, "{failed}");
    assert!(session_token_of(&failed).is_none());
    unchanged(&s, &bob_id, &old).await;
    sink.answer("/gate", crate::hooks::refusal("This account is locked."));
    let (status, refused) = api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["state"], "sent_email", "{refused}");
    assert!(
        message_ids(&refused).iter().any(|(_, id)| *id == 4_777_001),
        "{refused}"
    );
    assert!(session_token_of(&refused).is_none());
    unchanged(&s, &bob_id, &old).await;
    // The hook agrees: the same code now recovers the account.
    sink.answer("/gate", Reply::json(200, json!({})));
    let (status, recovered) =
        api_post(&action, json!({"method": "code", "code": code}), None).await;
    assert_eq!(status, 200, "{recovered}");
    let token = session_token_of(&recovered).expect("a session token");
    assert_eq!(s.whoami(&token).await.0, 200);
    assert_eq!(s.whoami(&old).await.0, 401, "revoke_active_sessions ran");
    let bob = admin_identity(&s, &bob_id).await;
    assert_eq!(bob["verifiable_addresses"][0]["verified"], true, "{bob}");
    let calls = sink.calls("/gate");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].json()["identity"], bob_id.as_str());
}

/// A hosted page, as text.
async fn page_text(b: &Browser, url: &str) -> String {
    b.get(url, false).await.text().await.expect("page")
}

#[tokio::test]
async fn a_flows_page_speaks_the_language_the_flow_was_started_in() {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(Backend::Sqlite, config(sink.port, "")).await;
    let b = Browser::default();
    let ru = open(&b, &s, "recovery", "?ui_locales=ru").await;
    assert!(
        b.cookie("tessera_lang").is_none(),
        "only the flow remembers the language"
    );
    let ru_page = format!(
        "{}/ui/recovery?flow={}",
        s.public,
        ru["id"].as_str().expect("id")
    );
    let page = page_text(&b, &ru_page).await;
    assert!(page.contains("<html lang=\"ru\""), "{page}");
    assert!(page.contains("Восстановление доступа"), "{page}");
    // A flow started without a language: the browser's (here none: English).
    let plain = open(&b, &s, "recovery", "").await;
    let page = page_text(
        &b,
        &format!(
            "{}/ui/recovery?flow={}",
            s.public,
            plain["id"].as_str().expect("id")
        ),
    )
    .await;
    assert!(page.contains("<html lang=\"en\""), "{page}");
    // The switcher's choice wins over the flow's.
    let _ = b
        .get(
            &format!("{}/ui/lang?set=zh-CN&back=/ui/welcome", s.public),
            false,
        )
        .await;
    let page = page_text(&b, &ru_page).await;
    assert!(page.contains("<html lang=\"zh-CN\""), "{page}");
}
