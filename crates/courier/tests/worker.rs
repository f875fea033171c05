//! The worker against a real SMTP server (the emulators' mail catcher) over a SQLite store:
//! delivery in the flow's language, retries with backoff while the server is down, giving up
//! after `message_retries`, and a worker that hangs mid-send losing nothing to another worker.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tessera_config::courier::CourierSettings;
use tessera_courier::{Lang, TemplateType, queue_email, smtp::SmtpSender, worker};
use tessera_emulators::smtp_sink::{Mode, SmtpSink};
use tessera_store::Store;

async fn store() -> Store {
    let dir = std::env::temp_dir().join(format!("tessera-courier-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.join("c.db").display()))
        .await
        .expect("store");
    store.migrate_up().await.expect("migrate");
    store
}

fn settings(uri: &str, retries: u32, lease: Duration) -> CourierSettings {
    let yaml = format!(
        "courier:\n  message_retries: {retries}\n  worker:\n    lease: {}ms\n  smtp:\n    connection_uri: \"{uri}\"\n    from_address: tessera@example.org\n    from_name: Tessera\n    headers:\n      X-Tessera-Test: yes\n",
        lease.as_millis()
    );
    let loaded = tessera_config::load_str("t.yml", &yaml, &Default::default()).expect("loads");
    let mut p = Vec::new();
    let s = tessera_config::courier::resolve_courier(
        &loaded,
        &loaded.config.courier,
        &Default::default(),
        &mut p,
    );
    assert!(p.is_empty(), "{p:?}");
    s
}

fn sender(s: &CourierSettings) -> SmtpSender {
    SmtpSender::new(s.smtp.as_ref().expect("smtp"), Duration::from_secs(5)).expect("sender")
}

#[tokio::test]
async fn a_queued_email_is_delivered_over_implicit_tls_in_the_flows_language() {
    let sink = SmtpSink::start(true).await;
    let store = store().await;
    // Kratos's quickstart URI shape: smtps with a self-signed certificate.
    let s = settings(
        &format!(
            "smtps://test:test@127.0.0.1:{}/?skip_ssl_verify=true",
            sink.port
        ),
        5,
        Duration::from_secs(60),
    );
    let id = queue_email(
        &store,
        &s,
        "ivan@example.org",
        TemplateType::VerificationCodeValid,
        Lang::Ru,
        &json!({"VerificationCode": "493817", "ExpiresInMinutes": 60, "To": "ivan@example.org"}),
    )
    .await
    .expect("queued");
    assert_eq!(
        worker::round(&store, &s, Some(&sender(&s)))
            .await
            .expect("round"),
        1
    );
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["ivan@example.org".to_string()]);
    assert_eq!(mails[0].subject(), "Подтвердите адрес электронной почты");
    assert!(mails[0].text().contains("493817"), "{}", mails[0].text());
    assert!(
        mails[0].data.contains("X-Tessera-Test: yes"),
        "{}",
        mails[0].data
    );
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!((m.status.as_str(), m.send_count), ("sent", 1));
    // Nothing is due any more: a second round sends nothing twice.
    assert_eq!(
        worker::round(&store, &s, Some(&sender(&s)))
            .await
            .expect("round"),
        0
    );
    assert_eq!(sink.mails().len(), 1);
}

#[tokio::test]
async fn while_the_server_is_down_a_message_waits_and_is_retried_then_abandoned_after_the_maximum()
{
    let sink = SmtpSink::start(false).await;
    sink.set_mode(Mode::Down);
    let store = store().await;
    let s = settings(
        &format!("smtp://127.0.0.1:{}/?disable_starttls=true", sink.port),
        3,
        Duration::from_secs(60),
    );
    let id = queue_email(
        &store,
        &s,
        "a@example.org",
        TemplateType::RecoveryCodeValid,
        Lang::En,
        &json!({"RecoveryCode": "111222"}),
    )
    .await
    .expect("queued");
    let tx = sender(&s);
    assert_eq!(
        worker::round(&store, &s, Some(&tx)).await.expect("round"),
        1
    );
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!((m.status.as_str(), m.send_count), ("queued", 1));
    assert!(
        m.next_attempt_at >= m.updated_at + 1000,
        "backed off: due {} after {}",
        m.next_attempt_at,
        m.updated_at
    );
    // Not due yet: the next round leaves it alone.
    assert_eq!(
        worker::round(&store, &s, Some(&tx)).await.expect("round"),
        0
    );
    let d = store.courier_dispatches(&id).await.expect("dispatches");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].status, "failed");
    assert!(d[0].error.as_deref().unwrap_or_default().contains("421") || d[0].error.is_some());

    // Back up: the retry delivers it.
    sink.set_mode(Mode::Accept);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        worker::round(&store, &s, Some(&tx)).await.expect("round"),
        1
    );
    assert_eq!(sink.mails().len(), 1);
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!((m.status.as_str(), m.send_count), ("sent", 2));

    // A message that never gets through is abandoned after message_retries attempts.
    sink.set_mode(Mode::Down);
    let id = queue_email(
        &store,
        &s,
        "b@example.org",
        TemplateType::RecoveryCodeValid,
        Lang::En,
        &json!({}),
    )
    .await
    .expect("queued");
    for wait in [0u64, 1100, 2100] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        assert_eq!(
            worker::round(&store, &s, Some(&tx)).await.expect("round"),
            1
        );
    }
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!((m.status.as_str(), m.send_count), ("abandoned", 3));
    assert_eq!(store.courier_dispatches(&id).await.expect("d").len(), 3);
}

#[tokio::test]
async fn a_worker_that_hangs_mid_send_loses_nothing_and_two_workers_never_share_a_message() {
    let sink = SmtpSink::start(false).await;
    sink.set_mode(Mode::Stall);
    let store = store().await;
    let s = Arc::new(settings(
        &format!("smtp://127.0.0.1:{}/?disable_starttls=true", sink.port),
        5,
        Duration::from_secs(2),
    ));
    let id = queue_email(
        &store,
        &s,
        "c@example.org",
        TemplateType::VerificationCodeValid,
        Lang::Zh,
        &json!({"VerificationCode": "765432"}),
    )
    .await
    .expect("queued");
    // The first worker claims the message and hangs in DATA (as a process would that is killed
    // there: it never records anything).
    let hung = {
        let (store, s) = (store.clone(), s.clone());
        tokio::spawn(async move {
            let tx = SmtpSender::new(s.smtp.as_ref().expect("smtp"), Duration::from_secs(600))
                .expect("sender");
            worker::round(&store, &s, Some(&tx)).await
        })
    };
    while sink.stalled() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!(m.status, "processing");
    // While the claim holds, a second worker finds nothing to do.
    sink.set_mode(Mode::Accept);
    assert_eq!(
        worker::round(&store, &s, Some(&sender(&s)))
            .await
            .expect("round"),
        0
    );
    hung.abort();
    // Once the lease has run out, the second worker takes the message and delivers it once.
    let mut rounds = 0;
    while sink.mails().is_empty() {
        rounds += worker::round(&store, &s, Some(&sender(&s)))
            .await
            .expect("round");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rounds, 1);
    assert_eq!(sink.mails().len(), 1);
    assert!(sink.mails()[0].text().contains("765432"));
    assert_eq!(sink.mails()[0].subject(), "请验证您的邮箱地址");
    let m = store.courier_get(&id).await.expect("get").expect("row");
    assert_eq!(m.status, "sent");
}

/// Messages queued faster than the clock ticks (many share one millisecond) still list in
/// exactly the reverse order of queueing, across pages: the id breaks `created_at` ties.
#[tokio::test]
async fn messages_queued_in_the_same_millisecond_list_newest_first_across_pages() {
    let store = store().await;
    let s = settings("smtp://127.0.0.1:9/", 5, Duration::from_secs(60));
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(
            queue_email(
                &store,
                &s,
                "burst@example.org",
                TemplateType::VerificationCodeValid,
                Lang::En,
                &json!({"VerificationCode": format!("{n:06}"), "ExpiresInMinutes": 60}),
            )
            .await
            .expect("queued"),
        );
    }
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .courier_list(None, None, 7, token.as_deref())
            .await
            .expect("page");
        listed.extend(page.items.iter().map(|m| m.id.clone()));
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(listed, ids);
}
