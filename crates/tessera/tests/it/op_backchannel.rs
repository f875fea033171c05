//! OIDC Back-Channel Logout 1.0: an app that registered a `backchannel_logout_uri` receives a
//! signed `logout_token` when a session that signed in to it ends — by RP-initiated logout, by
//! an admin, or because the identity was deactivated — once, retried while the app is down.
//! Attacks: a logout token does not pass for an `id_token_hint`; apps without the URI hear
//! nothing; URIs a server should not call are refused at registration.

use crate::op_common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tessera_testkit::webhook_sink::{Call, Reply, WebhookSink};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "http://127.0.0.1:9/callback";

async fn app_with_backchannel(s: &TestServer, sink: &WebhookSink) -> Value {
    let mut app = traditional(RP);
    app["backchannel_logout_uri"] = json!(sink.url("/bcl"));
    let c = create_client(s, app).await;
    assert_eq!(c["backchannel_logout_uri"], json!(sink.url("/bcl")));
    c
}

fn logout_token_of(call: &Call) -> String {
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    url::form_urlencoded::parse(&call.body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("a logout_token field")
}

/// Waits (bounded) until the app's notice list shows `state`; returns the list.
async fn notices_until(s: &TestServer, cid: &str, state: &str) -> Value {
    for _ in 0..300 {
        let v = admin_ok(
            s,
            Method::GET,
            &format!("/admin/clients/{cid}/logout-notices"),
            Value::Null,
        )
        .await;
        if v[0]["state"] == state {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the notice of {cid} never became {state}");
}

each_backend!(signing_out_sends_the_app_a_logout_token_once);
async fn signing_out_sends_the_app_a_logout_token_once(backend: Backend) {
    let s = server(backend, "").await;
    let sink = WebhookSink::start().await;
    let c = app_with_backchannel(&s, &sink).await;
    let cid = c["client_id"].as_str().expect("client_id").to_string();
    // A second app without the URI, signed in to by the same session, hears nothing.
    let quiet = create_client(&s, traditional(RP)).await;
    let alice = user(&s, "alice@example.com").await;
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "alice@example.com", "openid").await;
    code_flow(&b, &s, &quiet, "alice@example.com", "openid").await;
    let id_token = t["id_token"].as_str().expect("id_token").to_string();
    let idt = verify(&s, &id_token, &cid).await;
    // RP-initiated logout with the app's id_token ends the session.
    let r = b
        .get(
            &format!("{}/oidc/session/end?id_token_hint={id_token}", s.public),
            false,
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let calls = sink.wait_for("/bcl", 1).await;
    let token = logout_token_of(&calls[0]);
    let header = jsonwebtoken::decode_header(&token).expect("a JWT");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    // Signed with the provider's keys, for this app, about this session.
    let claims = verify(&s, &token, &cid).await;
    assert_eq!(claims["sub"], idt["sub"]);
    assert_eq!(claims["sub"], json!(alice));
    assert_eq!(claims["sid"], idt["sid"]);
    assert!(
        claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some(),
        "{claims}"
    );
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    let notices = notices_until(&s, &cid, "delivered").await;
    assert_eq!(notices.as_array().map(Vec::len), Some(1), "{notices}");
    assert_eq!(notices[0]["attempts"], 1);
    assert_eq!(sink.calls("/bcl").len(), 1, "delivered once");
    let quiet_id = quiet["client_id"].as_str().expect("client_id");
    let none = admin_ok(
        &s,
        Method::GET,
        &format!("/admin/clients/{quiet_id}/logout-notices"),
        Value::Null,
    )
    .await;
    assert_eq!(none, json!([]));
    // Attack: the logout token, which reached the app's back end, does not pass for an
    // id_token_hint (it would otherwise end a session without asking).
    let (st, _, body) = {
        let r = Browser::default()
            .get(
                &format!("{}/oidc/session/end?id_token_hint={token}", s.public),
                false,
            )
            .await;
        let st = r.status().as_u16();
        (st, (), r.text().await.unwrap_or_default())
    };
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("id_token_hint"), "{body}");
    s.stop().await;
}

each_backend!(an_app_that_is_down_gets_the_notice_when_it_is_back);
async fn an_app_that_is_down_gets_the_notice_when_it_is_back(backend: Backend) {
    let s = server(backend, "").await;
    let sink = WebhookSink::start().await;
    sink.answer("/bcl", Reply::text(503, "maintenance"));
    let c = app_with_backchannel(&s, &sink).await;
    let cid = c["client_id"].as_str().expect("client_id").to_string();
    let alice = user(&s, "bob@example.com").await;
    code_flow(&Browser::default(), &s, &c, "bob@example.com", "openid").await;
    // An admin ends every session of the identity.
    let r = TestServer::client()
        .delete(format!("{}/admin/identities/{alice}/sessions", s.admin))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    sink.wait_for("/bcl", 1).await;
    let failed = notices_until(&s, &cid, "pending").await;
    // The state is recorded after the answer; wait for the attempt to be counted.
    let mut failed = failed;
    for _ in 0..100 {
        if failed[0]["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        failed = admin_ok(
            &s,
            Method::GET,
            &format!("/admin/clients/{cid}/logout-notices"),
            Value::Null,
        )
        .await;
    }
    assert_eq!(failed[0]["attempts"], 1, "{failed}");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("503"),
        "{failed}"
    );
    // The app is back: the retry arrives, and it is the last.
    sink.answer("/bcl", Reply::text(200, "ok"));
    let calls = sink.wait_for("/bcl", 2).await;
    let second = verify(&s, &logout_token_of(&calls[1]), &cid).await;
    assert_eq!(second["sub"], json!(alice));
    let done = notices_until(&s, &cid, "delivered").await;
    assert_eq!(done[0]["attempts"], 2, "{done}");
    assert_eq!(done[0]["last_error"], Value::Null);
    s.stop().await;
}

each_backend!(deactivating_an_identity_tells_its_apps);
async fn deactivating_an_identity_tells_its_apps(backend: Backend) {
    let s = server(backend, "").await;
    let sink = WebhookSink::start().await;
    let c = app_with_backchannel(&s, &sink).await;
    let id = user(&s, "cy@example.com").await;
    code_flow(&Browser::default(), &s, &c, "cy@example.com", "openid").await;
    admin_ok(
        &s,
        Method::PATCH,
        &format!("/admin/identities/{id}"),
        json!([{"op": "replace", "path": "/state", "value": "inactive"}]),
    )
    .await;
    let calls = sink.wait_for("/bcl", 1).await;
    let cid = c["client_id"].as_str().expect("client_id");
    assert_eq!(
        verify(&s, &logout_token_of(&calls[0]), cid).await["sub"],
        json!(id)
    );
    s.stop().await;
}

#[tokio::test]
async fn uris_a_server_should_not_call_are_refused_and_discovery_says_it_is_supported() {
    let s = server(Backend::Sqlite, "").await;
    for (uri, app_type, needle) in [
        ("http://apps.example.com/bcl", "traditional", "plain http"),
        ("javascript:alert(1)", "traditional", "javascript"),
        ("https://apps.example.com/bcl#x", "traditional", "fragment"),
        ("https://apps.example.com/bcl", "machine", "machine app"),
    ] {
        let mut app = traditional(RP);
        app["app_type"] = json!(app_type);
        if app_type == "machine" {
            app = json!({"client_name": "svc", "app_type": "machine"});
        }
        app["backchannel_logout_uri"] = json!(uri);
        let r = TestServer::client()
            .post(format!("{}/admin/clients", s.admin))
            .json(&app)
            .send()
            .await
            .expect("create");
        let st = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(st, 400, "{uri}: {body}");
        assert!(
            body.contains("backchannel_logout_uri") && body.contains(needle),
            "{uri}: {body}"
        );
    }
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(d["backchannel_logout_supported"], true);
    assert_eq!(d["backchannel_logout_session_supported"], true);
    s.stop().await;
}
