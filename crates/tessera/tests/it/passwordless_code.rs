//! One-time-code sign-in and sign-up end to end (issue 15, item 4): Kratos's `code` method with
//! `passwordless_enabled`. Codes travel through the real courier to the emulators' SMTP sink
//! (email) and SMS sink (text) and are read back from there. Journeys: sign up and later sign
//! in by an emailed code from a Chinese browser; sign up and in by a texted code as a native
//! app, with a Russian number written the way people write it. Then the attacks: wrong codes
//! until the flow locks, a reused code, a code from another flow, an expired code, an unknown
//! address (answered exactly like a known one, nothing sent), and a browser form without its
//! CSRF token.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_testkit::config::base64_url;
use tessera_testkit::emulators::sms_sink::{Received, SmsSink};
use tessera_testkit::emulators::smtp_sink::SmtpSink;
use tessera_testkit::journey::{location, submit, whoami};
use tessera_testkit::mail::{fetch, flow_shape, json_of, mail_to, open, six_digits};
use tessera_testkit::{Backend, Browser, TestServer, each_backend, message_ids};

const SCHEMA: &str = r#"{
  "$id": "https://example.org/code.schema.json",
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string",
          "format": "email",
          "title": "E-Mail",
          "ory.sh/kratos": {
            "credentials": { "code": { "identifier": true, "via": "email" } },
            "verification": { "via": "email" }
          }
        },
        "phone": {
          "type": "string",
          "format": "tel",
          "title": "Phone",
          "ory.sh/kratos": {
            "credentials": { "code": { "identifier": true, "via": "sms" } },
            "verification": { "via": "sms" }
          }
        }
      },
      "additionalProperties": false
    }
  }
}"#;

const SMS_BODY: &str = "function(ctx) { to: ctx.recipient, msg: ctx.body }";

pub(crate) fn config(smtp: u16, sms: &SmsSink, extra: &str) -> String {
    format!(
        "identity:\n  default_schema_id: code\n  schemas:\n    - id: code\n      url: {schema}\ncourier:\n  smtp:\n    connection_uri: smtp://127.0.0.1:{smtp}/?disable_starttls=true\n    from_address: accounts@example.org\n  worker:\n    pull_wait: 100ms\n  channels:\n    - id: sms\n      type: http\n      request_config:\n        url: {url}/sms\n        method: POST\n        body: {body}\nselfservice:\n  methods:\n    password:\n      enabled: false\n    code:\n      passwordless_enabled: true\n{extra}  flows:\n    registration:\n      after:\n        code:\n          hooks:\n            - hook: session\n",
        schema = base64_url(SCHEMA),
        url = sms.base_url(),
        body = base64_url(SMS_BODY),
    )
}

/// Waits for the `n`-th text to `to`.
pub(crate) async fn text_to(sink: &SmsSink, to: &str, n: usize) -> Received {
    let start = Instant::now();
    loop {
        let texts: Vec<Received> = sink
            .delivered()
            .into_iter()
            .filter(|t| t.to() == to)
            .collect();
        if texts.len() >= n {
            return texts[n - 1].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no text #{n} to {to}: {:?}",
            sink.received()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An API flow (a native app: no cookies, no CSRF).
pub(crate) async fn api_flow(s: &TestServer, kind: &str) -> Value {
    let r = reqwest::get(format!("{}/self-service/{kind}/api", s.public))
        .await
        .expect("get");
    let (status, flow) = json_of(r).await;
    assert_eq!(status, 200, "{flow}");
    flow
}

pub(crate) async fn api_post(flow: &Value, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(flow["ui"]["action"].as_str().expect("action"))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .expect("post");
    json_of(r).await
}

pub(crate) fn ids(flow: &Value) -> Vec<u64> {
    message_ids(flow).into_iter().map(|(_, id)| id).collect()
}

each_backend!(sign_up_and_later_sign_in_by_email_code_in_chinese);
/// A Chinese browser signs up with only an email address: the code comes by (Chinese) mail,
/// the account is made with the address verified and a session whose method is `code`. Later,
/// another browser signs in with the address and a new mailed code.
async fn sign_up_and_later_sign_in_by_email_code_in_chinese(backend: Backend) {
    let smtp = SmtpSink::start(false).await;
    let sms = SmsSink::start().await;
    let s = TestServer::start(backend, config(smtp.port, &sms, "")).await;
    let b = Browser::default();
    let reg = open(&b, &s, "registration", "?ui_locales=zh-CN").await;
    assert!(
        reg["ui"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["group"] == "code" && n["attributes"]["value"] == "code"),
        "{reg}"
    );
    let r = submit(
        &b,
        &reg,
        &[("method", "code"), ("traits.email", "li.wei@example.cn")],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        location(&r).contains("/ui/registration?flow="),
        "{}",
        location(&r)
    );
    let id = reg["id"].as_str().expect("id");
    let sent = fetch(&b, &s, "registration", id).await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    assert_eq!(ids(&sent), [1040005]);
    let mail = mail_to(&smtp, "li.wei@example.cn", 1).await;
    assert_eq!(mail.subject(), "完成注册");
    let code = six_digits(&mail.text());
    let r = submit(
        &b,
        &sent,
        &[
            ("method", "code"),
            ("code", code.as_str()),
            ("traits.email", "li.wei@example.cn"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let me = whoami(&b, &s).await;
    assert_eq!(me["active"], true, "{me}");
    assert_eq!(me["authenticator_assurance_level"], "aal1");
    assert_eq!(me["authentication_methods"][0]["method"], "code", "{me}");
    assert_eq!(me["identity"]["verifiable_addresses"][0]["verified"], true);

    let later = Browser::default();
    let login = open(&later, &s, "login", "?ui_locales=zh-CN").await;
    let r = submit(
        &later,
        &login,
        &[("method", "code"), ("identifier", "Li.Wei@Example.cn")],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let lid = login["id"].as_str().expect("id");
    let sent = fetch(&later, &s, "login", lid).await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    assert_eq!(ids(&sent), [1010014]);
    let mail = mail_to(&smtp, "li.wei@example.cn", 2).await;
    assert_eq!(mail.subject(), "您的登录验证码");
    let code = six_digits(&mail.text());
    let r = submit(
        &later,
        &sent,
        &[
            ("method", "code"),
            ("code", code.as_str()),
            ("identifier", "Li.Wei@Example.cn"),
        ],
        false,
    )
    .await;
    assert_eq!(r.status(), 303);
    let me2 = whoami(&later, &s).await;
    assert_eq!(me2["identity"]["id"], me["identity"]["id"], "{me2}");
    assert_eq!(me2["authentication_methods"][0]["method"], "code");
    // The hosted login page offers the code in the page language.
    let fresh = Browser::default();
    let r = fresh
        .get(
            &format!("{}/self-service/login/browser?ui_locales=zh-CN", s.public),
            false,
        )
        .await;
    let to = location(&r);
    let html = fresh.get(&to, false).await.text().await.expect("page");
    // The schema texts and mails codes: the page asks for either, in the page language.
    assert!(html.contains("通过邮件或短信发送验证码"), "{html}");
    assert!(html.contains("邮箱或手机号"), "{html}");
}

each_backend!(sign_up_and_in_by_sms_code_as_a_native_app);
/// A native app signs up with a Russian number written with spaces and brackets: the code
/// comes by text (in Russian, to the E.164 number), the answer carries a session token; later
/// a sign-in by another texted code.
async fn sign_up_and_in_by_sms_code_as_a_native_app(backend: Backend) {
    let smtp = SmtpSink::start(false).await;
    let sms = SmsSink::start().await;
    let s = TestServer::start(backend, config(smtp.port, &sms, "")).await;
    let reg = api_flow(&s, "registration").await;
    let (status, sent) = api_post(
        &reg,
        json!({"method": "code", "traits": {"phone": "+7 (912) 345-67-89"}}),
    )
    .await;
    assert_eq!(status, 400, "{sent}");
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let text = text_to(&sms, "+79123456789", 1).await;
    let code = six_digits(&text.text());
    let (status, done) = api_post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200, "{done}");
    assert!(
        done["session_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(
        done["session"]["authentication_methods"][0]["method"],
        "code"
    );
    let address = &done["identity"]["verifiable_addresses"][0];
    assert_eq!(
        (address["value"].as_str(), address["verified"].as_bool()),
        (Some("+79123456789"), Some(true)),
        "{done}"
    );

    let login = api_flow(&s, "login").await;
    let (status, sent) = api_post(
        &login,
        json!({"method": "code", "identifier": "+7 912 345 67 89"}),
    )
    .await;
    assert_eq!(status, 400, "{sent}");
    assert_eq!(sent["state"], "sent_email");
    let text = text_to(&sms, "+79123456789", 2).await;
    let code = six_digits(&text.text());
    let (status, signed_in) = api_post(
        &sent,
        json!({"method": "code", "code": code, "identifier": "+7 912 345 67 89"}),
    )
    .await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(
        signed_in["session"]["identity"]["id"],
        done["identity"]["id"]
    );
    assert!(smtp.mails().is_empty(), "a phone sign-up sends no mail");
}

each_backend!(codes_resist_guessing_reuse_other_flows_and_enumeration);
/// The attacks: an unknown address answered like a known one with nothing sent; a code from
/// another flow; five wrong codes, after which even the right one gets a fresh flow; a used
/// code; a browser form without its CSRF token.
async fn codes_resist_guessing_reuse_other_flows_and_enumeration(backend: Backend) {
    let smtp = SmtpSink::start(false).await;
    let sms = SmsSink::start().await;
    let s = TestServer::start(backend, config(smtp.port, &sms, "")).await;
    let reg = api_flow(&s, "registration").await;
    let (_, sent) = api_post(
        &reg,
        json!({"method": "code", "traits": {"email": "ann@example.org"}}),
    )
    .await;
    let code = six_digits(&mail_to(&smtp, "ann@example.org", 1).await.text());
    let (status, _) = api_post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 200);

    // Unknown and known addresses: the same answer, and mail only for the known one.
    let b = Browser::default();
    let known = open(&b, &s, "login", "").await;
    let (status, known_sent) = json_of(
        submit(
            &b,
            &known,
            &[("method", "code"), ("identifier", "ann@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{known_sent}");
    let unknown = open(&b, &s, "login", "").await;
    let (status, unknown_sent) = json_of(
        submit(
            &b,
            &unknown,
            &[("method", "code"), ("identifier", "nobody@example.org")],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{unknown_sent}");
    assert_eq!(
        flow_shape(&known_sent, "identifier"),
        flow_shape(&unknown_sent, "identifier")
    );
    let known_code = six_digits(&mail_to(&smtp, "ann@example.org", 2).await.text());
    // The known address's mail has arrived; the courier sends in order, and nothing went to
    // the unknown one.
    let queued = reqwest::get(format!(
        "{}/admin/courier/messages?recipient=nobody@example.org",
        s.admin
    ))
    .await
    .expect("list")
    .json::<Value>()
    .await
    .expect("json");
    assert_eq!(
        queued,
        json!([]),
        "nothing is queued for an unknown address"
    );
    assert!(
        smtp.mails()
            .iter()
            .all(|m| m.to.iter().all(|t| !t.contains("nobody@"))),
        "no mail to an unknown address"
    );
    let (status, refused) = json_of(
        submit(
            &b,
            &unknown_sent,
            &[("method", "code"), ("code", known_code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(ids(&refused), [4010008], "another flow's code does not fit");

    // A browser form without its CSRF token is refused.
    let r = b
        .post_form(
            known_sent["ui"]["action"].as_str().expect("action"),
            &[("method", "code"), ("code", known_code.as_str())],
            true,
        )
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["id"], "security_csrf_violation");

    // Five wrong codes are answered "wrong"; the sixth try locks the flow: even the right code
    // gets a fresh flow that says why.
    let wrong = if known_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let (status, w) = json_of(
            submit(
                &b,
                &known_sent,
                &[("method", "code"), ("code", wrong)],
                true,
            )
            .await,
        )
        .await;
        assert_eq!(status, 400, "{w}");
        assert_eq!(ids(&w), [4010008]);
        assert_eq!(w["id"], known_sent["id"]);
    }
    let (status, fresh) = json_of(
        submit(
            &b,
            &known_sent,
            &[("method", "code"), ("code", known_code.as_str())],
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{fresh}");
    assert_ne!(fresh["id"], known_sent["id"], "{fresh}");
    assert_eq!(ids(&fresh), [4000902]);
    assert_eq!(whoami(&b, &s).await["error"]["id"], "session_inactive");

    // A right code works once; the flow it completed takes nothing more.
    let login = open(&b, &s, "login", "").await;
    let (_, sent) = json_of(
        submit(
            &b,
            &login,
            &[("method", "code"), ("identifier", "ann@example.org")],
            true,
        )
        .await,
    )
    .await;
    let code = six_digits(&mail_to(&smtp, "ann@example.org", 3).await.text());
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
    assert_eq!(
        again["error"]["id"], "self_service_flow_completed",
        "{again}"
    );
}

each_backend!(an_expired_code_is_refused);
/// A code past `methods.code.config.lifespan` no longer signs anyone in.
async fn an_expired_code_is_refused(backend: Backend) {
    let smtp = SmtpSink::start(false).await;
    let sms = SmsSink::start().await;
    let s = TestServer::start(
        backend,
        config(smtp.port, &sms, "      config:\n        lifespan: 1s\n"),
    )
    .await;
    let reg = api_flow(&s, "registration").await;
    let (status, sent) = api_post(
        &reg,
        json!({"method": "code", "traits": {"email": "late@example.org"}}),
    )
    .await;
    assert_eq!(status, 400, "{sent}");
    let code = six_digits(&mail_to(&smtp, "late@example.org", 1).await.text());
    // Wait until the code's lifespan has surely passed (not a timing assertion).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, refused) = api_post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(ids(&refused), [4040003]);
    let found = reqwest::get(format!(
        "{}/admin/identities?credentials_identifier=late@example.org",
        s.admin
    ))
    .await
    .expect("list")
    .json::<Value>()
    .await
    .expect("json");
    assert_eq!(found, json!([]), "no identity was made");
}
