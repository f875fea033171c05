//! The courier end to end (issue 15, item 1): the worker inside the server delivers queued
//! messages to a real SMTP server (the emulators' mail catcher) and `/admin/courier/messages`
//! shows them in Kratos's shapes (checked against Kratos's OpenAPI document), with its filters,
//! `Link` pagination and precise errors; `tessera courier watch` killed with SIGKILL in the
//! middle of a send loses nothing: a second worker delivers the message once its claim lapses.

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tessera_courier::{Lang, TemplateType, queue_email};
use tessera_store::Store;
use tessera_testkit::emulators::smtp_sink::{Mode, SmtpSink};
use tessera_testkit::{Backend, TestServer, each_backend, fresh_dsn, temp_dir};

/// Waits for `done` (a liveness bound, not a speed assertion: a minute is far beyond need).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn courier_yaml(port: u16, lease: &str) -> String {
    format!(
        "courier:\n  smtp:\n    connection_uri: smtp://127.0.0.1:{port}/?disable_starttls=true\n    from_address: accounts@example.org\n  worker:\n    pull_wait: 100ms\n    lease: {lease}\n"
    )
}

async fn queue(store: &Store, to: &str, code: &str) -> String {
    let loaded = tessera_config::load_str("q.yml", "", &Default::default()).expect("loads");
    let mut p = Vec::new();
    let s = tessera_config::courier::resolve_courier(
        &loaded,
        &loaded.config.courier,
        &Default::default(),
        &mut p,
    );
    queue_email(
        store,
        &s,
        to,
        TemplateType::VerificationCodeValid,
        Lang::Zh,
        &json!({"VerificationCode": code, "ExpiresInMinutes": 60}),
    )
    .await
    .expect("queued")
}

each_backend!(the_server_sends_queued_mail_and_the_admin_api_lists_it_as_kratos_does);
/// Three messages queued in the database are sent by the server's own worker; the admin API
/// lists them newest first with Kratos's filters and pagination, and refuses bad input.
async fn the_server_sends_queued_mail_and_the_admin_api_lists_it_as_kratos_does(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    let dir = temp_dir();
    let dsn = fresh_dsn(backend, &dir).await;
    let s = TestServer::start_with(backend, dir, &dsn, courier_yaml(sink.port, "1m")).await;
    let store = Store::connect(&dsn).await.expect("store");
    let a = queue(&store, "li.wei@example.org", "111111").await;
    let _b = queue(&store, "li.wei@example.org", "222222").await;
    let c = queue(&store, "other@example.org", "333333").await;
    eventually("three mails delivered", || sink.mails().len() == 3).await;
    let texts: Vec<String> = sink.mails().iter().map(|m| m.text()).collect();
    for code in ["111111", "222222", "333333"] {
        assert_eq!(
            texts.iter().filter(|t| t.contains(code)).count(),
            1,
            "{code} once"
        );
    }
    assert!(
        sink.mails()
            .iter()
            .all(|m| m.subject() == "请验证您的邮箱地址")
    );
    let http = TestServer::client();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", s.admin);
        async move {
            let r = http.get(url).send().await.expect("admin");
            let status = r.status().as_u16();
            let link = r
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            (status, link, r.json::<Value>().await.expect("json"))
        }
    };
    // The worker records the outcome just after the server accepted the mail.
    let mut all = Value::Null;
    for _ in 0..200 {
        let (st, _, body) = get("/admin/courier/messages?status=sent".into()).await;
        assert_eq!(st, 200);
        if body.as_array().map(Vec::len) == Some(3) {
            all = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = all.as_array().expect("three sent messages").clone();
    assert_eq!(all[0]["id"], c, "newest first");
    assert_eq!(all[0]["type"], "email");
    assert_eq!(all[0]["template_type"], "verification_code_valid");
    assert_eq!(all[0]["send_count"], 1);
    assert!(
        all[0]["body"]
            .as_str()
            .unwrap_or_default()
            .contains("333333")
    );
    let (_, _, queued) = get("/admin/courier/messages?status=queued".into()).await;
    assert_eq!(queued, json!([]));
    let (_, _, mine) = get("/admin/courier/messages?recipient=li.wei@example.org".into()).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(2));
    let (_, link, page1) = get("/admin/courier/messages?page_size=2".into()).await;
    assert_eq!(page1.as_array().map(Vec::len), Some(2));
    let link = link.expect("a Link header to the next page");
    let next = link
        .split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| l.split('<').nth(1))
        .and_then(|l| l.split('>').next())
        .expect("next link")
        .to_string();
    let path = next
        .split_once("/admin/")
        .map(|(_, p)| format!("/admin/{p}"))
        .expect("path");
    let (_, _, page2) = get(path).await;
    assert_eq!(page2.as_array().map(Vec::len), Some(1));
    assert_eq!(page2[0]["id"], a, "the oldest is last");

    let (st, _, one) = get(format!("/admin/courier/messages/{a}")).await;
    assert_eq!(st, 200);
    assert_eq!(one["status"], "sent");
    assert_eq!(one["dispatches"][0]["status"], "success");
    assert_eq!(one["dispatches"][0]["message_id"], a);

    // Bad input: precise 400s and a 404, never a 500.
    let (st, _, e) = get("/admin/courier/messages?status=lost".into()).await;
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("queued, processing, sent or abandoned")
    );
    let (st, _, _) = get("/admin/courier/messages?page_token=bm9wZQ".into()).await;
    assert_eq!(st, 400);
    let (st, _, _) = get("/admin/courier/messages/not-a-uuid".into()).await;
    assert_eq!(st, 400);
    let (st, _, _) = get(format!("/admin/courier/messages/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(st, 404);
    s.assert_openapi_conformance();
    store.close().await;
    s.stop().await;
    if backend == Backend::Postgres {
        tessera_testkit::drop_database(&dsn);
    }
}

each_backend!(a_courier_worker_killed_mid_send_loses_nothing);
/// `tessera courier watch` hangs in the SMTP DATA phase and is killed with SIGKILL; the message
/// stays claimed (`processing`) until its lease runs out, then a second worker delivers it,
/// exactly once.
async fn a_courier_worker_killed_mid_send_loses_nothing(backend: Backend) {
    let sink = SmtpSink::start(false).await;
    sink.set_mode(Mode::Stall);
    let dir = temp_dir();
    let dsn = fresh_dsn(backend, &dir).await;
    let store = Store::connect(&dsn).await.expect("store");
    store.migrate_up().await.expect("migrate");
    let id = queue(&store, "anna@example.org", "864209").await;
    let cfg = dir.join("courier.yml");
    std::fs::write(
        &cfg,
        format!(
            "dsn: \"{dsn}\"\nsecrets:\n  cookie:\n    - a-cookie-secret-of-some-length\n  cipher:\n    - 32-LONG-SECRET-NOT-SECURE-AT-AL\n{}",
            courier_yaml(sink.port, "2s")
        ),
    )
    .expect("write config");
    let watch = || {
        Command::new(tessera_testkit::tessera_bin())
            .args(["courier", "watch", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start courier watch")
    };
    let mut first = watch();
    eventually("the first worker is mid-send", || sink.stalled() == 1).await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!(m.status, "processing", "claimed, not lost, not sent");
    assert!(sink.mails().is_empty());

    sink.set_mode(Mode::Accept);
    let mut second = watch();
    eventually("the second worker delivered it", || {
        !sink.mails().is_empty()
    })
    .await;
    let start = Instant::now();
    let mut m = store.courier_get(&id).await.expect("get").expect("row");
    while m.status != "sent" && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = store.courier_get(&id).await.expect("get").expect("row");
    }
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(m.status, "sent");
    assert_eq!(sink.mails().len(), 1, "delivered once");
    assert!(sink.mails()[0].text().contains("864209"));
    let d = store.courier_dispatches(&id).await.expect("dispatches");
    assert_eq!(
        d.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(),
        vec!["success"],
        "the killed attempt recorded nothing"
    );
    store.close().await;
    if backend == Backend::Postgres {
        tessera_testkit::drop_database(&dsn);
    }
}
