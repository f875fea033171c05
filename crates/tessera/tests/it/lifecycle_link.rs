//! Verification and recovery by link end to end (issue 15, Kratos's `link` method): the links
//! travel through the real courier to the emulators' SMTP sink and are opened from the mail in
//! another browser (a phone's mail app), in Russian and Chinese. Then the attacks: a used
//! link, another flow's token, a forged or empty token, an expired link (the token's own
//! lifespan, and an administrator's `expires_in`), an unknown address answered exactly like a
//! known one, a foreign `return_to`, and a token submitted as a code.

use serde_json::{Value, json};
use tessera_testkit::emulators::smtp_sink::SmtpSink;
use tessera_testkit::journey::{location, param, submit, whoami};
use tessera_testkit::mail::{fetch, flow_shape, json_of, link_in, mail_to, open};
use tessera_testkit::{Backend, Browser, TestServer, each_backend, message_ids};

fn config(port: u16, extra: &str) -> String {
    format!(
        "courier:\n  smtp:\n    connection_uri: smtp://127.0.0.1:{port}/?disable_starttls=true\n    from_address: accounts@example.org\n  worker:\n    pull_wait: 100ms\nselfservice:\n  allowed_return_urls:\n    - https://app.example.com/\n  flows:\n    verification:\n      enabled: true\n      use: link\n    recovery:\n      enabled: true\n      use: link\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n{extra}"
    )
}

fn ids(flow: &Value) -> Vec<u64> {
    message_ids(flow).into_iter().map(|(_, id)| id).collect()
}

/// Opens `link` in `b`; the redirect's target (every link answers 303).
async fn open_link(b: &Browser, link: &str) -> String {
    let r = b.get(link, false).await;
    assert_eq!(r.status(), 303, "{link}");
    location(&r)
}

/// The flow a redirect to a hosted page shows, as `b` fetches it.
async fn landed(b: &Browser, s: &TestServer, kind: &str, to: &str) -> Value {
    assert!(
        to.starts_with(&format!("{}/ui/{kind}?flow=", s.public)),
        "{to}"
    );
    let id = param(to, "flow").expect("flow id");
    fetch(b, s, kind, &id).await
}

each_backend!(register_and_verify_by_link_in_russian);
/// Register in a Russian browser → `show_verification_ui` → the Russian mail's link opened in
/// another browser verifies the address; the first browser's flow says so too; the link then
/// no longer works.
async fn register_and_verify_by_link_in_russian(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    let b = Browser::default();
    let reg = open(&b, &s, "registration", "?ui_locales=ru").await;
    let r = submit(
        &b,
        &reg,
        &[
            ("method", "password"),
            ("traits.email", "ivan@example.ru"),
            ("password", "correct horse battery staple"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let flow = landed(&b, &s, "verification", &location(&r)).await;
    assert_eq!(flow["state"], "sent_email", "{flow}");
    assert_eq!(flow["active"], "link");
    assert!(ids(&flow).contains(&1080001), "{flow}");
    assert!(
        flow["ui"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["group"] == "link" && n["attributes"]["value"] == "link"),
        "{flow}"
    );

    let mail = mail_to(&sink, "ivan@example.ru", 1).await;
    assert_eq!(mail.subject(), "Подтвердите адрес электронной почты");
    let link = link_in(&mail, &format!("{}/self-service/verification?", s.public));
    assert_eq!(param(&link, "flow").as_deref(), flow["id"].as_str());
    assert!(
        param(&link, "token").is_some_and(|t| t.len() >= 43),
        "{link}"
    );
    assert!(
        mail.text().contains("Ссылка одноразовая"),
        "{}",
        mail.text()
    );

    let phone = Browser::default();
    let done = landed(&phone, &s, "verification", &open_link(&phone, &link).await).await;
    assert_eq!(done["state"], "passed_challenge", "{done}");
    assert!(ids(&done).contains(&1080002), "{done}");
    let page = phone
        .get(
            &format!(
                "{}/ui/verification?flow={}&ui_locales=ru",
                s.public,
                done["id"].as_str().expect("id")
            ),
            false,
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("Адрес электронной почты подтверждён"),
        "{page}"
    );
    let me = whoami(&b, &s).await;
    let address = &me["identity"]["verifiable_addresses"][0];
    assert_eq!(address["verified"], true, "{me}");
    assert_eq!(address["status"], "completed");
    let original = fetch(&b, &s, "verification", flow["id"].as_str().expect("id")).await;
    assert_eq!(original["state"], "passed_challenge", "{original}");

    // Used: a fresh flow in the browser that opened it says the link is spent.
    let again = landed(&phone, &s, "verification", &open_link(&phone, &link).await).await;
    assert_ne!(again["id"], done["id"]);
    assert_eq!(again["state"], "choose_method", "{again}");
    assert!(ids(&again).contains(&4070001), "{again}");
}

each_backend!(recover_by_link_in_chinese_revokes_old_sessions);
/// Forgot password in a Chinese browser → the link → a privileged session and the settings
/// page (Kratos's 1060001), the old sessions revoked, the new password set.
async fn recover_by_link_in_chinese_revokes_old_sessions(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    let old = Browser::default();
    let reg = open(&old, &s, "registration", "").await;
    let r = submit(
        &old,
        &reg,
        &[
            ("method", "password"),
            ("traits.email", "wang.fang@example.cn"),
            ("password", "an old long password"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(whoami(&old, &s).await["identity"].is_object());

    let b = Browser::default();
    let flow = open(&b, &s, "recovery", "?ui_locales=zh-CN").await;
    assert_eq!(flow["active"], "link", "{flow}");
    let (status, sent) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "link"), ("email", "wang.fang@example.cn")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["state"], "sent_email");
    assert!(ids(&sent).contains(&1060002), "{sent}");
    // The address is kept in the form: submitting it again sends another link.
    assert!(
        sent["ui"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["attributes"]["name"] == "email"
                && n["attributes"]["value"] == "wang.fang@example.cn"),
        "{sent}"
    );
    let page = b
        .get(
            &format!(
                "{}/ui/recovery?flow={}&ui_locales=zh-CN",
                s.public,
                sent["id"].as_str().expect("id")
            ),
            false,
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("请打开我们发送到你邮箱的链接"), "{page}");

    // The registration's verification mail came first; the recovery mail is the second.
    let mail = mail_to(&sink, "wang.fang@example.cn", 2).await;
    assert_eq!(mail.subject(), "找回您的账户");
    let link = link_in(&mail, &format!("{}/self-service/recovery?", s.public));
    assert!(mail.text().contains("<a href=\""), "{}", mail.text());

    let to = open_link(&b, &link).await;
    let settings = landed(&b, &s, "settings", &to).await;
    assert!(ids(&settings).contains(&1060001), "{settings}");
    let me = whoami(&b, &s).await;
    assert_eq!(
        me["authentication_methods"][0]["method"], "link_recovery",
        "{me}"
    );
    assert_eq!(
        me["identity"]["recovery_addresses"][0]["value"],
        "wang.fang@example.cn"
    );
    assert_eq!(
        whoami(&old, &s).await["error"]["code"],
        401,
        "revoke_active_sessions"
    );
    let r = submit(
        &b,
        &settings,
        &[
            ("method", "password"),
            ("password", "a brand new long password"),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.login("wang.fang@example.cn", "a brand new long password")
            .await
            .0,
        200
    );
    assert_eq!(
        s.login("wang.fang@example.cn", "an old long password")
            .await
            .0,
        400
    );

    // The link is spent: a fresh browser gets no session and the message.
    let later = Browser::default();
    let again = landed(&later, &s, "recovery", &open_link(&later, &link).await).await;
    assert!(ids(&again).contains(&4060004), "{again}");
    assert_eq!(whoami(&later, &s).await["error"]["code"], 401);
}

each_backend!(links_resist_other_flows_forgery_enumeration_and_redirects);
/// A token only works with its own flow; forged, empty and code-shaped tokens are refused; an
/// unknown address gets the known one's answer and no mail; a foreign `return_to` is refused
/// before any mail, and an allowed one is where a verified browser goes on to.
async fn links_resist_other_flows_forgery_enumeration_and_redirects(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    s.register("known@example.org", "a long enough password")
        .await;
    let _ = mail_to(&sink, "known@example.org", 1).await;
    let b = Browser::default();

    // Unknown address: the same status and flow as a known one; no mail goes out.
    let known = open(&b, &s, "recovery", "").await;
    let (ks, known_sent) = json_of(
        submit(
            &b,
            &known,
            &[("method", "link"), ("email", "known@example.org")],
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
            &[("method", "link"), ("email", "nobody@example.org")],
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
    let link = link_in(
        &mail_to(&sink, "known@example.org", 2).await,
        &format!("{}/self-service/recovery?", s.public),
    );
    assert!(
        sink.mails()
            .iter()
            .all(|m| !m.to.iter().any(|t| t.contains("nobody"))),
        "no mail to an unknown address"
    );
    let token = param(&link, "token").expect("token");

    // Another flow's id with this token, a forged token, an empty one: refused, no session.
    let other_id = unknown_sent["id"].as_str().expect("id");
    let attacker = Browser::default();
    for bad in [
        format!(
            "{}/self-service/recovery?flow={other_id}&token={token}",
            s.public
        ),
        format!(
            "{}/self-service/recovery?flow={}&token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            s.public,
            known_sent["id"].as_str().expect("id")
        ),
        format!(
            "{}/self-service/recovery?flow={}&token=",
            s.public,
            known_sent["id"].as_str().expect("id")
        ),
    ] {
        let refused = landed(&attacker, &s, "recovery", &open_link(&attacker, &bad).await).await;
        assert!(ids(&refused).contains(&4060004), "{bad}: {refused}");
        assert_eq!(whoami(&attacker, &s).await["error"]["code"], 401, "{bad}");
    }
    // The token is no code, and `code` is not this flow's method.
    let (status, as_code) = json_of(
        submit(
            &b,
            &known_sent,
            &[("method", "code"), ("code", token.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{as_code}");
    assert_eq!(whoami(&b, &s).await["error"]["code"], 401);
    // A phone number is no address for a link.
    let phone = open(&b, &s, "recovery", "").await;
    let (status, refused) = json_of(
        submit(
            &b,
            &phone,
            &[("method", "link"), ("email", "+7 912 345-67-89")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(ids(&refused).contains(&4000004), "{refused}");
    // The real link still works after all that (refusals did not spend it).
    let to = open_link(&b, &link).await;
    assert!(
        to.starts_with(&format!("{}/ui/settings?flow=", s.public)),
        "{to}"
    );

    // `return_to`: a foreign one is refused at the start; an allowed one is where the
    // verified page goes on to.
    let r = b
        .get(
            &format!(
                "{}/self-service/verification/browser?return_to=https://evil.example/",
                s.public
            ),
            true,
        )
        .await;
    assert_eq!(r.status(), 400);
    let v = open(
        &b,
        &s,
        "verification",
        "?return_to=https://app.example.com/welcome",
    )
    .await;
    s.register("second@example.org", "a long enough password")
        .await;
    let _ = mail_to(&sink, "second@example.org", 1).await;
    let (_, sent) = json_of(
        submit(
            &b,
            &v,
            &[("method", "link"), ("email", "second@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let link = link_in(
        &mail_to(&sink, "second@example.org", 2).await,
        &format!("{}/self-service/verification?", s.public),
    );
    let done = landed(&b, &s, "verification", &open_link(&b, &link).await).await;
    let next = done["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["id"] == "continue")
        .unwrap_or_else(|| panic!("no continue in {done}"));
    assert_eq!(
        next["attributes"]["href"],
        "https://app.example.com/welcome"
    );
}

each_backend!(expired_links_are_refused);
/// A link past `selfservice.methods.link.config.lifespan` (its flow still open) and an
/// administrator's link past its `expires_in` (its flow expired too) are refused.
async fn expired_links_are_refused(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let extra = "  methods:\n    link:\n      config:\n        lifespan: 1s\n";
    let s = TestServer::start(backend, config(sink.port, extra)).await;
    s.register("slow@example.org", "a long enough password")
        .await;
    let link = link_in(
        &mail_to(&sink, "slow@example.org", 1).await,
        &format!("{}/self-service/verification?", s.public),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let b = Browser::default();
    let refused = landed(&b, &s, "verification", &open_link(&b, &link).await).await;
    assert!(ids(&refused).contains(&4070001), "{refused}");
    let (status, me) = s.login("slow@example.org", "a long enough password").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me["session"]["identity"]["verifiable_addresses"][0]["verified"], false,
        "{me}"
    );

    let id = me["session"]["identity"]["id"].as_str().expect("id");
    let r = TestServer::client()
        .post(format!("{}/admin/recovery/link", s.admin))
        .json(&json!({"identity_id": id, "expires_in": "1s"}))
        .send()
        .await
        .expect("admin");
    let (status, made) = json_of(r).await;
    assert_eq!(status, 200, "{made}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let link = made["recovery_link"].as_str().expect("link");
    let refused = landed(&b, &s, "recovery", &open_link(&b, link).await).await;
    assert!(ids(&refused).contains(&4060005), "{refused}");
    assert_eq!(whoami(&b, &s).await["error"]["code"], 401);
}

each_backend!(an_administrators_recovery_link_signs_in_once);
/// `POST /admin/recovery/link` (Kratos's shapes): the link signs the person in once and leads
/// to the settings page without marking any address verified; bad requests say what is wrong.
async fn an_administrators_recovery_link_signs_in_once(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let s = TestServer::start(backend, config(sink.port, "")).await;
    let who = s
        .register("eve@example.org", "a long enough password")
        .await;
    let id = who["identity"]["id"].as_str().expect("id");
    let c = TestServer::client();
    let r = c
        .post(format!("{}/admin/recovery/link", s.admin))
        .json(&json!({"identity_id": id, "expires_in": "1h"}))
        .send()
        .await
        .expect("admin");
    let (status, made) = json_of(r).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(
        made.as_object().map(|o| o.len()),
        Some(2),
        "recovery_link and expires_at: {made}"
    );
    assert!(made["expires_at"].is_string());
    let link = made["recovery_link"].as_str().expect("link");
    assert!(
        link.starts_with(&format!("{}/self-service/recovery?flow=", s.public)),
        "{link}"
    );
    let b = Browser::default();
    let settings = landed(&b, &s, "settings", &open_link(&b, link).await).await;
    assert!(ids(&settings).contains(&1060001), "{settings}");
    let me = whoami(&b, &s).await;
    assert_eq!(me["identity"]["id"], json!(id));
    assert_eq!(me["identity"]["verifiable_addresses"][0]["verified"], false);
    let other = Browser::default();
    let again = landed(&other, &s, "recovery", &open_link(&other, link).await).await;
    assert!(ids(&again).contains(&4060004), "{again}");
    assert_eq!(whoami(&other, &s).await["error"]["code"], 401);

    for (body, status) in [
        (json!({}), 400),
        (json!({"identity_id": id, "expires_in": "never"}), 400),
        (
            json!({"identity_id": "00000000-0000-0000-0000-000000000000"}),
            404,
        ),
    ] {
        let r = c
            .post(format!("{}/admin/recovery/link", s.admin))
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert_eq!(r.status().as_u16(), status, "{body}");
    }
}

each_backend!(a_recovery_links_hooks_refuse_without_writing_then_run_once);
/// `after` hooks of a recovery by link: an interrupting one that says no leaves the browser
/// signed out with the hook's message and the link still good; once it agrees, the same link
/// signs the browser in and the other hook runs once with the identity.
async fn a_recovery_links_hooks_refuse_without_writing_then_run_once(backend: Backend) {
    use crate::hooks::hook;
    use tessera_testkit::webhook_sink::{Reply, WebhookSink};
    let (sink, hooks) = (SmtpSink::start(false).await, WebhookSink::start().await);
    hooks.answer(
        "/gate",
        crate::hooks::refusal("Recovery needs a call to support."),
    );
    let body = "function(ctx) { identity: ctx.identity.id, flow: ctx.flow.id }";
    let cfg = tessera_testkit::Config::from(config(sink.port, "")).with(
        json!({"selfservice": {"flows": {"recovery": {"after": {"hooks": [
            {"hook": "revoke_active_sessions"},
            hook(&hooks.url("/gate"), body, json!({"can_interrupt": true})),
            hook(&hooks.url("/after"), body, json!({})),
        ]}}}}}),
    );
    let s = TestServer::start(backend, cfg).await;
    let reg = s
        .register("ann@example.org", "a long enough password")
        .await;
    let id = reg["identity"]["id"].as_str().expect("id").to_string();
    let b = Browser::default();
    let flow = open(&b, &s, "recovery", "").await;
    let (status, _) = json_of(
        submit(
            &b,
            &flow,
            &[("method", "link"), ("email", "ann@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let mail = mail_to(&sink, "ann@example.org", 2).await;
    let link = link_in(&mail, &format!("{}/self-service/recovery?", s.public));
    let refused = landed(&b, &s, "recovery", &open_link(&b, &link).await).await;
    assert!(ids(&refused).contains(&4_777_001), "{refused}");
    assert_eq!(whoami(&b, &s).await["error"]["code"], 401);
    assert_eq!(hooks.calls("/gate")[0].json()["identity"], id.as_str());
    assert!(hooks.calls("/after").is_empty());

    hooks.answer("/gate", Reply::json(200, json!({})));
    let to = open_link(&b, &link).await;
    let settings = landed(&b, &s, "settings", &to).await;
    assert!(ids(&settings).contains(&1060001), "{settings}");
    assert_eq!(whoami(&b, &s).await["identity"]["id"], id.as_str());
    let after = hooks.wait_for("/after", 1).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].json()["identity"], id.as_str());
    assert_eq!(hooks.calls("/gate").len(), 2);
}
