//! SMS over the courier's HTTP channel (issue 15, `courier.channels`): a phone number whose
//! schema says `verification.via: sms` gets its code by text through the emulators' SMS sink,
//! in Russian, and is verified with it. Then the faults and attacks: a gateway answering 500
//! (retried, delivered once it recovers; abandoned after `message_retries`, nothing lost), the
//! gateway's key never in a recorded error, a number nobody holds (same answer, no text sent),
//! and channel configurations that are refused at start.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_testkit::config::base64_url;
use tessera_testkit::emulators::sms_sink::{Received, SmsSink};
use tessera_testkit::journey::{flow_id_of, location, submit};
use tessera_testkit::{Backend, Browser, TestServer, each_backend, message_ids};

const SCHEMA: &str = r#"{
  "$id": "https://example.org/phone.schema.json",
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "phone": {
          "type": "string",
          "format": "tel",
          "title": "Phone",
          "ory.sh/kratos": {
            "credentials": { "password": { "identifier": true } },
            "verification": { "via": "sms" },
            "recovery": { "via": "sms" }
          }
        }
      },
      "required": ["phone"],
      "additionalProperties": false
    }
  }
}"#;

/// The body the test gateway gets: SMS.ru's form fields plus the code alone and the template
/// type, so the test sees both the rendered text and `template_data`.
const BODY: &str = "function(ctx) { to: std.lstripChars(ctx.recipient, '+'), msg: ctx.body, code: ctx.template_data.verification_code, type: ctx.template_type, kind: ctx.message_type }";

const KEY: &str = "sms-gateway-key-9f8e7d";

fn config(sink: &SmsSink, retries: u32) -> String {
    format!(
        "identity:\n  default_schema_id: phone\n  schemas:\n    - id: phone\n      url: {schema}\ncourier:\n  message_retries: {retries}\n  worker:\n    pull_wait: 100ms\n  channels:\n    - id: sms\n      type: http\n      request_config:\n        url: {url}/sms/send\n        method: POST\n        headers:\n          Content-Type: application/x-www-form-urlencoded\n        body: {body}\n        auth:\n          type: api_key\n          config:\n            name: api_id\n            value: {KEY}\n            in: query\nselfservice:\n  flows:\n    verification:\n      enabled: true\n      use: code\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n            - hook: show_verification_ui\n",
        schema = base64_url(SCHEMA),
        url = sink.base_url(),
        body = base64_url(BODY),
    )
}

/// Waits until the sink has delivered `n` texts (a liveness bound far beyond need).
async fn delivered(sink: &SmsSink, n: usize) -> Vec<Received> {
    let start = Instant::now();
    loop {
        let got = sink.delivered();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {} of {n} texts delivered: {:?}",
            got.len(),
            sink.received()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

/// Waits until the courier's admin API shows the one message to `to` with `status`.
async fn message_with_status(s: &TestServer, to: &str, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let list = get_json(&format!(
            "{}/admin/courier/messages?recipient={}",
            s.admin,
            to.replace('+', "%2B")
        ))
        .await;
        if let Some(m) = list.as_array().and_then(|l| l.first())
            && m["status"] == status
        {
            return get_json(&format!(
                "{}/admin/courier/messages/{}",
                s.admin,
                m["id"].as_str().unwrap_or_default()
            ))
            .await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {status} message to {to}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn register(b: &Browser, s: &TestServer, phone: &str) -> String {
    let r = b
        .get(
            &format!(
                "{}/self-service/registration/browser?ui_locales=ru",
                s.public
            ),
            true,
        )
        .await;
    let reg: Value = r.json().await.expect("flow");
    let r = submit(
        b,
        &reg,
        &[
            ("method", "password"),
            ("traits.phone", phone),
            ("password", "correct horse battery staple"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.contains("/ui/verification?flow="), "{to}");
    flow_id_of(&to)
}

async fn verification_flow(b: &Browser, s: &TestServer, id: &str) -> Value {
    b.get(
        &format!("{}/self-service/verification/flows?id={id}", s.public),
        true,
    )
    .await
    .json()
    .await
    .expect("flow")
}

each_backend!(a_phone_is_verified_by_a_russian_text);
/// Register with a phone number in a Russian browser → the verification code goes out as a
/// Russian text through the HTTP channel (form body, key in the query, Kratos's ctx) → the
/// code from the text verifies the number.
async fn a_phone_is_verified_by_a_russian_text(backend: Backend) {
    let sink = SmsSink::start().await;
    let s = TestServer::start(backend, config(&sink, 5)).await;
    let b = Browser::default();
    let id = register(&b, &s, "+79123456789").await;
    let text = delivered(&sink, 1).await.remove(0);
    assert_eq!(
        (text.method.as_str(), text.path.as_str()),
        ("POST", "/sms/send")
    );
    assert_eq!(
        text.form("api_id").as_deref(),
        Some(KEY),
        "the key rides in the query"
    );
    assert!(!text.body.contains(KEY), "{}", text.body);
    assert_eq!(
        text.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(text.form("to").as_deref(), Some("79123456789"));
    assert_eq!(
        text.form("type").as_deref(),
        Some("verification_code_valid")
    );
    assert_eq!(text.form("kind").as_deref(), Some("sms"));
    let code = text
        .form("code")
        .expect("the code alone, from template_data");
    assert_eq!(code.len(), 6);
    assert_eq!(
        text.form("msg"),
        Some(format!("Код подтверждения: {code}. Действует 15 мин."))
    );
    let flow = verification_flow(&b, &s, &id).await;
    let r = submit(
        &b,
        &flow,
        &[("method", "code"), ("code", code.as_str())],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let done = verification_flow(&b, &s, &id).await;
    assert_eq!(done["state"], "passed_challenge", "{done}");
    assert!(
        message_ids(&done).iter().any(|(_, id)| *id == 1080002),
        "{done}"
    );
    let me = tessera_testkit::journey::whoami(&b, &s).await;
    let address = &me["identity"]["verifiable_addresses"][0];
    assert_eq!(address["via"], "sms", "{me}");
    assert_eq!(address["value"], "+79123456789");
    assert_eq!(address["verified"], true, "{me}");
    // The admin API shows the text as Kratos does: type phone, channel sms, sent once.
    let m = message_with_status(&s, "+79123456789", "sent").await;
    assert_eq!(
        (m["type"].as_str(), m["channel"].as_str()),
        (Some("phone"), Some("sms")),
        "{m}"
    );
    assert_eq!(m["send_count"], 1, "{m}");
}

each_backend!(a_gateway_answering_500_is_retried_then_abandoned_and_never_sees_a_stranger);
/// The gateway fails twice, then recovers: the text arrives once, after two recorded failures
/// that never show the key. Then it fails for good: the next text is tried `message_retries`
/// times and abandoned. A number nobody holds gets the same answer and no text at all.
async fn a_gateway_answering_500_is_retried_then_abandoned_and_never_sees_a_stranger(
    backend: Backend,
) {
    let sink = SmsSink::start().await;
    let s = TestServer::start(backend, config(&sink, 3)).await;
    sink.fail_next(2, 500);
    let b = Browser::default();
    register(&b, &s, "+8613800138000").await;
    let m = message_with_status(&s, "+8613800138000", "sent").await;
    assert_eq!(delivered(&sink, 1).await.len(), 1);
    assert_eq!(sink.received().len(), 3, "two failures, then the delivery");
    let dispatches = m["dispatches"].as_array().expect("dispatches");
    let failed: Vec<&Value> = dispatches
        .iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 2, "{m}");
    for d in &failed {
        let e = d["error"]["message"].as_str().unwrap_or_default();
        assert!(e.contains("500"), "{e}");
        assert!(!e.contains(KEY), "the gateway's key leaked into {e}");
    }
    // Now the gateway is down for good.
    sink.set_status(500);
    let b2 = Browser::default();
    register(&b2, &s, "+79001234567").await;
    let m = message_with_status(&s, "+79001234567", "abandoned").await;
    assert_eq!(m["send_count"], 3, "{m}");
    let to_it = sink
        .received()
        .iter()
        .filter(|r| r.form("to").as_deref() == Some("79001234567"))
        .count();
    assert_eq!(to_it, 3, "message_retries attempts, no more");
    // A number nobody holds: the same "code sent" answer, and nothing reaches the gateway.
    sink.set_status(200);
    let before = sink.received().len();
    let flow: Value = b2
        .get(
            &format!("{}/self-service/verification/browser", s.public),
            true,
        )
        .await
        .json()
        .await
        .expect("flow");
    let known_flow: Value = b2
        .get(
            &format!("{}/self-service/verification/browser", s.public),
            true,
        )
        .await
        .json()
        .await
        .expect("flow");
    let r = submit(
        &b2,
        &flow,
        &[("method", "code"), ("email", "+7 999 000-00-00")],
        true,
    )
    .await;
    let unknown: Value = r.json().await.expect("json");
    let r = submit(
        &b2,
        &known_flow,
        &[("method", "code"), ("email", "+7 900 123-45-67")],
        true,
    )
    .await;
    let known: Value = r.json().await.expect("json");
    assert_eq!(unknown["state"], "sent_email", "{unknown}");
    assert_eq!(unknown["state"], known["state"]);
    assert_eq!(message_ids(&unknown), message_ids(&known));
    delivered(&sink, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<Received> = sink.received().into_iter().skip(before).collect();
    assert!(
        after
            .iter()
            .all(|r| r.form("to").as_deref() == Some("79001234567")),
        "a stranger's number reached the gateway: {after:?}"
    );
}

#[tokio::test]
async fn bad_channels_are_refused_at_start_naming_the_key() {
    for (channel, expected, key) in [
        (
            json!({"id": "sms", "type": "http", "request_config": {"url": "https://sms.example/x", "body": base64_url("function(ctx) {")}}),
            "body",
            "courier.channels.0.request_config.body",
        ),
        (
            json!({"id": "pager", "type": "http", "request_config": {"url": "https://sms.example/x"}}),
            "`pager`",
            "courier.channels.0.id",
        ),
        (
            json!({"id": "sms", "type": "http", "request_config": {"url": "https://u:s3cret@sms.example/x"}}),
            "credentials",
            "courier.channels.0.request_config.url",
        ),
        (
            json!({"id": "sms", "type": "http", "request_config": {"url": "https://sms.example/x", "auth": {"type": "api_key", "config": {"name": "k", "value": "s3cret", "in": "body"}}}}),
            "auth",
            "courier.channels.0.request_config.auth",
        ),
    ] {
        let doc = json!({
            "dsn": "memory",
            "secrets": {"default": ["test-secret-0123456789abcdef"]},
            "courier": {"channels": [channel]},
        });
        let text = refusal_of(&doc).await;
        assert!(
            text.contains(expected) && text.contains(key),
            "{channel}: {text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}

async fn refusal_of(doc: &Value) -> String {
    let loaded =
        match tessera_config::load_str("tessera.yml", &doc.to_string(), &Default::default()) {
            Ok(l) => l,
            Err(e) => return e.to_string(),
        };
    let settings = match tessera_config::resolve(&loaded, false, None) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let pool = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        tessera_testkit::tessera_bin(),
        tessera_mapper::worker_args(),
    ));
    match tessera_social::Social::build(&settings, pool).await {
        Ok(_) => panic!("accepted: {doc}"),
        Err(e) => e.to_string(),
    }
}
