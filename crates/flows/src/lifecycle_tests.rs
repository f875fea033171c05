//! Engine-level tests of verification and recovery by code (`lifecycle.rs`): in-memory
//! SQLite, the codes read back from the courier's queue.

use crate::engine::{Engine, Outcome};
use crate::tests::{PASSWORD, engine, login, message_ids, register};
use serde_json::json;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::text::MessageId;

const ON: &str = "selfservice:\n  flows:\n    verification:\n      enabled: true\n    recovery:\n      enabled: true\n      after:\n        hooks:\n          - hook: revoke_active_sessions\n    login:\n      after:\n        password:\n          hooks:\n            - hook: require_verified_address\n";

/// The code in the newest message queued for `to`.
async fn last_code(e: &Engine, to: &str) -> String {
    let page = e
        .store
        .courier_list(None, Some(to), 10, None)
        .await
        .expect("list");
    let m = page.items.first().expect("a message was queued");
    m.body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a code in the message")
        .to_string()
}

async fn queued(e: &Engine, to: &str) -> usize {
    e.store
        .courier_list(None, Some(to), 100, None)
        .await
        .expect("list")
        .items
        .len()
}

async fn start(e: &Engine, kind: FlowKind) -> Flow {
    e.init_lifecycle(kind, FlowType::Api, "http://t/", None, None, "")
        .await
        .expect("flow")
}

async fn post(e: &Engine, flow: &Flow, body: serde_json::Value) -> Outcome {
    e.submit_lifecycle(flow.kind, &flow.id.to_string(), &body, None, None)
        .await
        .expect("submitted")
}

fn shown(o: Outcome) -> Flow {
    match o {
        Outcome::Shown(f) => f,
        other => panic!("expected the flow shown, got {other:?}"),
    }
}

#[tokio::test]
async fn a_registration_code_verifies_the_address_and_unlocks_login() {
    let e = engine(ON).await;
    let who = register(&e, "ann@example.org").await;
    assert!(!who.verifiable_addresses[0].verified);
    match login(&e, "ann@example.org", PASSWORD).await.expect("login") {
        Outcome::Invalid(f) => assert_eq!(message_ids(&f), [MessageId::ADDRESS_NOT_VERIFIED]),
        other => panic!("an unverified address signed in: {other:?}"),
    }
    let code = last_code(&e, "ann@example.org").await;
    let flow = start(&e, FlowKind::Verification).await;
    // The registration's code belongs to the registration's verification flow, not this one.
    let f = shown(post(&e, &flow, json!({"method": "code", "code": code})).await);
    assert_eq!(message_ids(&f), [MessageId::VERIFICATION_CODE_INVALID]);
    let f = shown(
        post(
            &e,
            &flow,
            json!({"method": "code", "email": "ANN@example.org"}),
        )
        .await,
    );
    assert_eq!(f.state, FlowState::SentEmail);
    let stored = e.store.get_flow(f.id).await.expect("flow").0;
    let pending = stored.internal.code.expect("a code is pending");
    let code = last_code(&e, "ann@example.org").await;
    assert!(!pending.hash.contains(&code), "only a hash is stored");
    let done = shown(post(&e, &flow, json!({"code": code})).await);
    assert_eq!(done.state, FlowState::PassedChallenge);
    assert_eq!(message_ids(&done), [MessageId::VERIFICATION_SUCCESSFUL]);
    let who = e.store.get_identity(who.id).await.expect("identity");
    assert!(who.verifiable_addresses[0].verified);
    assert_eq!(who.verifiable_addresses[0].status, "completed");
    assert!(matches!(
        login(&e, "ann@example.org", PASSWORD).await.expect("login"),
        Outcome::Completed { .. }
    ));
}

#[tokio::test]
async fn recovery_issues_a_session_a_settings_flow_and_revokes_the_rest() {
    let e = engine(ON).await;
    let who = register(&e, "bo@example.org").await;
    let (old, _) = e.issue_session(&who, "password").await.expect("session");
    let flow = start(&e, FlowKind::Recovery).await;
    shown(
        post(
            &e,
            &flow,
            json!({"method": "code", "email": "bo@example.org"}),
        )
        .await,
    );
    let code = last_code(&e, "bo@example.org").await;
    match post(&e, &flow, json!({"method": "code", "code": code})).await {
        Outcome::Completed {
            flow: done,
            session: Some((s, _)),
            return_to,
            ..
        } => {
            assert_eq!(s.authentication_methods[0].method, "code_recovery");
            assert!(return_to.contains("/ui/settings?flow="), "{return_to}");
            let actions: Vec<&str> = done
                .continue_with
                .iter()
                .filter_map(|c| c["action"].as_str())
                .collect();
            assert_eq!(actions, ["set_ory_session_token", "show_settings_ui"]);
        }
        other => panic!("not recovered: {other:?}"),
    }
    assert!(!e.store.get_session(old.id).await.expect("old").active);
    // Recovery proved the address.
    let who = e.store.get_identity(who.id).await.expect("identity");
    assert!(who.verifiable_addresses[0].verified);
}

#[tokio::test]
async fn unknown_addresses_get_the_same_flow_and_no_mail() {
    let e = engine(ON).await;
    register(&e, "cy@example.org").await;
    let a = start(&e, FlowKind::Recovery).await;
    let b = start(&e, FlowKind::Recovery).await;
    let known = shown(post(&e, &a, json!({"method": "code", "email": "cy@example.org"})).await);
    let unknown = shown(
        post(
            &e,
            &b,
            json!({"method": "code", "email": "nobody@example.org"}),
        )
        .await,
    );
    assert_eq!(known.state, unknown.state);
    assert_eq!(known.ui.messages, unknown.ui.messages);
    let names = |f: &Flow| -> Vec<String> {
        f.ui.nodes
            .iter()
            .map(|n| n.attributes.name.clone())
            .collect()
    };
    assert_eq!(names(&known), names(&unknown));
    assert_eq!(queued(&e, "nobody@example.org").await, 0);
}

#[tokio::test]
async fn wrong_codes_spend_the_flow_and_sends_are_limited() {
    let e = engine(&format!(
        "{ON}limits:\n  code_sends:\n    per_address_per_hour: 2\n"
    ))
    .await;
    register(&e, "di@example.org").await;
    let flow = start(&e, FlowKind::Recovery).await;
    shown(
        post(
            &e,
            &flow,
            json!({"method": "code", "email": "di@example.org"}),
        )
        .await,
    );
    let code = last_code(&e, "di@example.org").await;
    for _ in 0..5 {
        let f = shown(post(&e, &flow, json!({"method": "code", "code": "123456"})).await);
        assert_eq!(message_ids(&f), [MessageId::RECOVERY_CODE_INVALID]);
    }
    match post(&e, &flow, json!({"method": "code", "code": code})).await {
        Outcome::Invalid(fresh) => {
            assert_ne!(fresh.id, flow.id);
            assert_eq!(message_ids(&fresh), [MessageId::CODE_SUBMITTED_TOO_OFTEN]);
        }
        other => panic!("the sixth try was taken: {other:?}"),
    }
    // Two sends an hour per address: the second goes out, the third does not.
    let again = start(&e, FlowKind::Recovery).await;
    shown(
        post(
            &e,
            &again,
            json!({"method": "code", "email": "di@example.org"}),
        )
        .await,
    );
    let third = start(&e, FlowKind::Recovery).await;
    match post(
        &e,
        &third,
        json!({"method": "code", "email": "di@example.org"}),
    )
    .await
    {
        Outcome::Invalid(f) => assert_eq!(message_ids(&f), [MessageId::CODE_SENDS_LIMITED]),
        other => panic!("the limit did not hold: {other:?}"),
    }
    // Registration's verification mail plus the two recovery codes.
    assert_eq!(queued(&e, "di@example.org").await, 3);
}

#[tokio::test]
async fn disabled_flows_and_link_are_refused() {
    let e = engine("").await;
    let err = e
        .init_lifecycle(
            FlowKind::Recovery,
            FlowType::Api,
            "http://t/",
            None,
            None,
            "",
        )
        .await
        .expect_err("recovery is off by default");
    assert_eq!(
        err.id,
        Some(tessera_core::error::ErrorId::SelfServiceFlowDisabled)
    );
    let e = engine(ON).await;
    let flow = start(&e, FlowKind::Verification).await;
    match post(
        &e,
        &flow,
        json!({"method": "link", "email": "x@example.org"}),
    )
    .await
    {
        Outcome::Invalid(f) => assert_eq!(message_ids(&f), [MessageId::VALIDATION_GENERIC]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_changed_address_in_settings_starts_unverified_and_gets_a_code() {
    let e = engine(ON).await;
    let who = register(&e, "fay@example.org").await;
    let (session, _) = e.issue_session(&who, "password").await.expect("session");
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .expect("settings");
    let body = json!({"method": "profile", "traits": {"email": "fay.new@example.org"}});
    match e
        .submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .expect("saved")
    {
        Outcome::Completed { flow, identity, .. } => {
            let a = &identity.verifiable_addresses[0];
            assert_eq!(
                (a.value.as_str(), a.verified),
                ("fay.new@example.org", false)
            );
            assert!(
                flow.continue_with
                    .iter()
                    .any(|c| c["action"] == "show_verification_ui"),
                "{:?}",
                flow.continue_with
            );
        }
        other => panic!("not saved: {other:?}"),
    }
    assert_eq!(queued(&e, "fay.new@example.org").await, 1);
    // Saving again without a change sends nothing more.
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .expect("settings");
    e.submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .expect("saved");
    assert_eq!(queued(&e, "fay.new@example.org").await, 1);
}

const LINK: &str = "selfservice:\n  flows:\n    verification:\n      enabled: true\n      use: link\n    recovery:\n      enabled: true\n      use: link\n";

/// The token in the newest link queued for `to`.
async fn last_token(e: &Engine, to: &str) -> String {
    let page = e
        .store
        .courier_list(None, Some(to), 10, None)
        .await
        .expect("list");
    let m = page.items.first().expect("a message was queued");
    let at = m.body.find("token=").expect("a link in the message") + "token=".len();
    m.body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn a_link_token_is_kept_hashed_works_once_and_is_never_a_code() {
    let e = engine(LINK).await;
    register(&e, "ann@example.org").await;
    let flow = start(&e, FlowKind::Recovery).await;
    assert_eq!(flow.active.as_deref(), Some("link"));
    let f = shown(
        post(
            &e,
            &flow,
            json!({"method": "link", "email": "ann@example.org"}),
        )
        .await,
    );
    assert_eq!(message_ids(&f), [MessageId::RECOVERY_LINK_SENT]);
    let token = last_token(&e, "ann@example.org").await;
    assert!(token.len() >= 43, "{token}");
    let stored = e.store.get_flow(f.id).await.expect("flow").0;
    let pending = stored.internal.code.expect("a token is pending");
    assert!(pending.link);
    assert_ne!(pending.hash, token, "hashed at rest");
    // The token's HMAC is in its own domain: it never matches as a code of the same flow.
    assert_ne!(pending.hash, e.code_mac(f.id, &token));
    let fid = f.id.to_string();
    match e
        .use_link(FlowKind::Recovery, &fid, &token, "browser-secret")
        .await
        .expect("used")
    {
        Outcome::Completed { session, .. } => assert!(session.is_some()),
        other => panic!("not recovered: {other:?}"),
    }
    match e
        .use_link(FlowKind::Recovery, &fid, &token, "browser-secret")
        .await
        .expect("answered")
    {
        Outcome::Invalid(fresh) => {
            assert_ne!(fresh.id, f.id);
            assert_eq!(message_ids(&fresh), [MessageId::RECOVERY_TOKEN_INVALID]);
        }
        other => panic!("a used link worked again: {other:?}"),
    }
}
