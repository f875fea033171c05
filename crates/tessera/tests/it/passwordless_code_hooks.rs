//! Hooks after a code sign-up or sign-in (`selfservice.flows.{registration,login}.after.code`)
//! run as a password's do (issue 15): a `web_hook` that refuses a code sign-up writes nothing,
//! one that rewrites a trait changes the stored identity (and the rewritten address is not
//! taken as verified), `revoke_active_sessions` ends the other sessions, and a refusing login
//! hook issues no session. Also: a sign-up code goes to every code address of the traits.

use crate::hooks::{hook, identity_count};
use crate::passwordless_code::{api_flow, api_post, config, ids, text_to};
use serde_json::{Value, json};
use tessera_testkit::emulators::sms_sink::SmsSink;
use tessera_testkit::emulators::smtp_sink::SmtpSink;
use tessera_testkit::mail::{mail_to, six_digits};
use tessera_testkit::webhook_sink::{Reply, WebhookSink};
use tessera_testkit::{Backend, Config, TestServer, each_backend};

const EMAIL_ONLY: &str = "function(ctx) { email: ctx.identity.traits.email }";

/// The code test server with `hooks` after a code sign-up (after `session`) and `login` after
/// a code sign-in.
fn with_hooks(smtp: u16, sms: &SmsSink, signup: Vec<Value>, login: Vec<Value>) -> Config {
    let mut after = vec![json!({"hook": "session"})];
    after.extend(signup);
    Config::from(config(smtp, sms, "")).with(json!({"selfservice": {"flows": {
        "registration": {"after": {"code": {"hooks": after}}},
        "login": {"after": {"code": {"hooks": login}}},
    }}}))
}

/// Signs up by emailed code as a native app: the code step's answer.
async fn code_sign_up(s: &TestServer, smtp: &SmtpSink, email: &str, n: usize) -> (u16, Value) {
    let reg = api_flow(s, "registration").await;
    let (_, sent) = api_post(&reg, json!({"method": "code", "traits": {"email": email}})).await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let code = six_digits(&mail_to(smtp, email, n).await.text());
    api_post(&sent, json!({"method": "code", "code": code})).await
}

/// Signs in by emailed code as a native app: the code step's answer.
async fn code_sign_in(s: &TestServer, smtp: &SmtpSink, email: &str, n: usize) -> (u16, Value) {
    let login = api_flow(s, "login").await;
    let (_, sent) = api_post(&login, json!({"method": "code", "identifier": email})).await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let code = six_digits(&mail_to(smtp, email, n).await.text());
    api_post(
        &sent,
        json!({"method": "code", "code": code, "identifier": email}),
    )
    .await
}

each_backend!(a_web_hook_refuses_a_code_sign_up_and_nothing_is_written);
/// `can_interrupt` after a code sign-up: the hook sees the identity to be, says no with
/// Kratos's messages, and nothing is written; the spent code does not work again.
async fn a_web_hook_refuses_a_code_sign_up_and_nothing_is_written(backend: Backend) {
    let (smtp, sms, sink) = (
        SmtpSink::start(false).await,
        SmsSink::start().await,
        WebhookSink::start().await,
    );
    sink.answer(
        "/refuse",
        Reply::json(
            400,
            json!({"messages": [{"instance_ptr": "#/traits/email", "messages": [
                {"id": 4_777_001, "text": "This domain may not sign up.", "type": "error", "context": {"domain": "blocked.example"}}
            ]}]}),
        ),
    );
    let cfg = with_hooks(
        smtp.port,
        &sms,
        vec![hook(
            &sink.url("/refuse"),
            EMAIL_ONLY,
            json!({"can_interrupt": true}),
        )],
        vec![],
    );
    let s = TestServer::start(backend, cfg).await;
    let reg = api_flow(&s, "registration").await;
    let (_, sent) = api_post(
        &reg,
        json!({"method": "code", "traits": {"email": "ann@blocked.example"}}),
    )
    .await;
    let code = six_digits(&mail_to(&smtp, "ann@blocked.example", 1).await.text());
    let (status, refused) = api_post(&sent, json!({"method": "code", "code": code})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(ids(&refused).contains(&4_777_001), "{refused}");
    assert_ne!(refused["id"], sent["id"], "a fresh flow");
    let email = refused["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .unwrap_or_else(|| panic!("no email node in {refused}"));
    assert_eq!(email["attributes"]["value"], "ann@blocked.example");
    let calls = sink.wait_for("/refuse", 1).await;
    assert_eq!(calls[0].json()["email"], "ann@blocked.example");
    assert_eq!(identity_count(&s).await, 0);
    // The code was spent by the refusal.
    let (status, again) = api_post(&sent, json!({"method": "code", "code": code})).await;
    assert_ne!(status, 200, "{again}");
    assert_eq!(identity_count(&s).await, 0);
}

each_backend!(a_web_hook_rewrites_a_trait_of_a_code_sign_up);
/// `response.parse` after a code sign-up: the stored identity has the hook's traits and
/// metadata; the rewritten address is the one to sign in with, and it is not marked verified
/// (the code never went there).
async fn a_web_hook_rewrites_a_trait_of_a_code_sign_up(backend: Backend) {
    let (smtp, sms, sink) = (
        SmtpSink::start(false).await,
        SmsSink::start().await,
        WebhookSink::start().await,
    );
    sink.answer(
        "/enrich",
        Reply::json(
            200,
            json!({"identity": {"traits": {"email": "crm.li@example.cn"}, "metadata_public": {"plan": "gold"}}}),
        ),
    );
    let cfg = with_hooks(
        smtp.port,
        &sms,
        vec![hook(
            &sink.url("/enrich"),
            EMAIL_ONLY,
            json!({"response": {"parse": true}}),
        )],
        vec![],
    );
    let s = TestServer::start(backend, cfg).await;
    let (status, done) = code_sign_up(&s, &smtp, "li@example.cn", 1).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["identity"]["traits"]["email"], "crm.li@example.cn");
    let id = done["identity"]["id"].as_str().expect("id");
    let stored: Value = TestServer::client()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(stored["traits"]["email"], "crm.li@example.cn");
    assert_eq!(stored["metadata_public"]["plan"], "gold");
    assert_eq!(
        stored["verifiable_addresses"][0]["value"],
        "crm.li@example.cn"
    );
    assert_eq!(
        stored["verifiable_addresses"][0]["verified"], false,
        "{stored}"
    );
    let (status, signed_in) = code_sign_in(&s, &smtp, "crm.li@example.cn", 1).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["session"]["identity"]["id"], json!(id));
}

each_backend!(login_hooks_after_a_code_sign_in_refuse_or_revoke);
/// After a code sign-in: `revoke_active_sessions` ends the earlier session, and an
/// interrupting web hook that says no issues no session.
async fn login_hooks_after_a_code_sign_in_refuse_or_revoke(backend: Backend) {
    let (smtp, sms, sink) = (
        SmtpSink::start(false).await,
        SmsSink::start().await,
        WebhookSink::start().await,
    );
    let cfg = with_hooks(
        smtp.port,
        &sms,
        vec![],
        vec![
            json!({"hook": "revoke_active_sessions"}),
            hook(
                &sink.url("/login"),
                EMAIL_ONLY,
                json!({"can_interrupt": true}),
            ),
        ],
    );
    let s = TestServer::start(backend, cfg).await;
    let (status, first) = code_sign_up(&s, &smtp, "olga@example.ru", 1).await;
    assert_eq!(status, 200, "{first}");
    let first_token = first["session_token"].as_str().expect("token").to_string();
    let (status, second) = code_sign_in(&s, &smtp, "olga@example.ru", 2).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(s.whoami(&first_token).await.0, 401, "revoked");
    let token = second["session_token"].as_str().expect("token");
    assert_eq!(s.whoami(token).await.0, 200);
    assert_eq!(
        sink.wait_for("/login", 1).await[0].json()["email"],
        "olga@example.ru"
    );

    sink.answer(
        "/login",
        Reply::json(
            403,
            json!({"messages": [{"instance_ptr": "#/", "messages": [
                {"id": 4_777_002, "text": "Signing in is paused.", "type": "error"}
            ]}]}),
        ),
    );
    let (status, refused) = code_sign_in(&s, &smtp, "olga@example.ru", 3).await;
    assert_eq!(status, 400, "{refused}");
    assert!(ids(&refused).contains(&4_777_002), "{refused}");
    assert!(refused.get("session_token").is_none(), "{refused}");
    assert_eq!(
        s.whoami(token).await.0,
        200,
        "nothing revoked by a refused sign-in"
    );
}

each_backend!(a_sign_up_code_goes_to_every_code_address);
/// Traits with an email and a phone number, both code identifiers: the one code goes by mail
/// and by text; neither address is marked verified by it (nobody knows which one was read),
/// and both sign in afterwards.
async fn a_sign_up_code_goes_to_every_code_address(backend: Backend) {
    let (smtp, sms) = (SmtpSink::start(false).await, SmsSink::start().await);
    let s = TestServer::start(backend, config(smtp.port, &sms, "")).await;
    let reg = api_flow(&s, "registration").await;
    let (_, sent) = api_post(
        &reg,
        json!({"method": "code", "traits": {"email": "zhang@example.cn", "phone": "+86 138 0013 8000"}}),
    )
    .await;
    assert_eq!(sent["state"], "sent_email", "{sent}");
    let by_mail = six_digits(&mail_to(&smtp, "zhang@example.cn", 1).await.text());
    let by_text = six_digits(&text_to(&sms, "+8613800138000", 1).await.text());
    assert_eq!(by_mail, by_text);
    let (status, done) = api_post(&sent, json!({"method": "code", "code": by_text})).await;
    assert_eq!(status, 200, "{done}");
    let addresses = done["identity"]["verifiable_addresses"]
        .as_array()
        .expect("addresses");
    assert_eq!(addresses.len(), 2, "{done}");
    assert!(addresses.iter().all(|a| a["verified"] == false), "{done}");
    let id = &done["identity"]["id"];
    let (status, by_email) = code_sign_in(&s, &smtp, "zhang@example.cn", 2).await;
    assert_eq!(status, 200, "{by_email}");
    assert_eq!(&by_email["session"]["identity"]["id"], id);
    let login = api_flow(&s, "login").await;
    let (_, sent) = api_post(
        &login,
        json!({"method": "code", "identifier": "+8613800138000"}),
    )
    .await;
    let code = six_digits(&text_to(&sms, "+8613800138000", 2).await.text());
    let (status, by_phone) = api_post(
        &sent,
        json!({"method": "code", "code": code, "identifier": "+8613800138000"}),
    )
    .await;
    assert_eq!(status, 200, "{by_phone}");
    assert_eq!(&by_phone["session"]["identity"]["id"], id);
    // A number without its country code stops the sign-up before anything is sent.
    let reg = api_flow(&s, "registration").await;
    let (status, refused) = api_post(
        &reg,
        json!({"method": "code", "traits": {"email": "wu@example.cn", "phone": "138 0013 8001"}}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_ne!(refused["state"], "sent_email", "{refused}");
    assert!(
        smtp.mails()
            .iter()
            .all(|m| !m.to.iter().any(|t| t.contains("wu@"))),
        "nothing sent"
    );
}
