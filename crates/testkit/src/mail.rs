//! Reading what the courier sent and the flows it belongs to, shared by the verification,
//! recovery, code sign-in and link suites: the mail to an address, the code or the link in it,
//! and the flow JSON a single-page app sees.

use crate::emulators::smtp_sink::{Mail, SmtpSink};
use crate::{Browser, TestServer};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits for the `n`-th mail to `to` (a liveness bound: a minute is far beyond need).
pub async fn mail_to(sink: &SmtpSink, to: &str, n: usize) -> Mail {
    let start = Instant::now();
    loop {
        let mails: Vec<Mail> = sink
            .mails()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.contains(to)))
            .collect();
        if mails.len() >= n {
            return mails[n - 1].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no mail #{n} to {to}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first six-digit number in `text` (a code in a mail or a text message).
pub fn six_digits(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_string()
}

/// The six-digit code in a mail's text.
pub fn code_in(mail: &Mail) -> String {
    six_digits(&mail.text())
}

/// The first URL in a mail's text that starts with `prefix`.
pub fn link_in(mail: &Mail, prefix: &str) -> String {
    let text = mail.text();
    text.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no link starting {prefix} in {text}"))
        .to_string()
}

/// An answer's status and JSON body (`Null` when it has none).
pub async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A browser flow as a single-page app opens it (`query` is e.g. `?ui_locales=zh-CN`), with
/// the browser's cookies; it must open.
pub async fn open(b: &Browser, s: &TestServer, kind: &str, query: &str) -> Value {
    let r = b
        .get(
            &format!("{}/self-service/{kind}/browser{query}", s.public),
            true,
        )
        .await;
    let (status, flow) = json_of(r).await;
    assert_eq!(status, 200, "{flow}");
    flow
}

/// A flow as JSON with the browser's cookies (an error object when refused).
pub async fn fetch(b: &Browser, s: &TestServer, kind: &str, id: &str) -> Value {
    let r = b
        .get(
            &format!("{}/self-service/{kind}/flows?id={id}", s.public),
            true,
        )
        .await;
    json_of(r).await.1
}

/// A flow with what differs between any two flows blanked (ids, times, the CSRF token and the
/// value typed into `typed`): two answers with the same shape tell an observer nothing, which
/// is how the suites check that an unknown address is answered like a known one.
pub fn flow_shape(v: &Value, typed: &str) -> Value {
    let mut v = v.clone();
    for k in [
        "id",
        "expires_at",
        "issued_at",
        "created_at",
        "updated_at",
        "request_url",
    ] {
        v[k] = Value::Null;
    }
    v["ui"]["action"] = Value::Null;
    if let Some(nodes) = v["ui"]["nodes"].as_array_mut() {
        for n in nodes {
            if n["attributes"]["name"] == "csrf_token" || n["attributes"]["name"] == typed {
                n["attributes"]["value"] = Value::Null;
            }
        }
    }
    v
}
