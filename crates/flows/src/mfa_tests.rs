//! Engine-level tests of the `totp` method and the assurance levels (issue 20), with the
//! attacker's cases next to each happy path.

use crate::engine::{Engine, Outcome};
use crate::mfa::{AAL1, AAL2};
use crate::tests::{PASSWORD, engine, login, message_ids, register};
use serde_json::{Value, json};
use std::sync::Arc;
use tessera_config::{RequiredAal, mfa::TotpSettings};
use tessera_core::ErrorId;
use tessera_core::flow::{Flow, FlowType};
use tessera_core::identity::CREDENTIAL_TOTP;
use tessera_core::session::Session;
use tessera_core::text::MessageId;
use totp_rs::{Algorithm, Secret, TOTP};

/// An engine with `totp` on (the configuration refuses it at start until the hosted pages
/// exist, so tests switch it on in the resolved settings).
async fn mfa_engine(extra: &str) -> Engine {
    let mut e = engine(extra).await;
    let settings = Arc::get_mut(&mut e.settings).expect("settings not shared yet");
    settings.mfa.totp = Some(TotpSettings {
        issuer: "Tessera Test".into(),
    });
    e
}

/// Signs in with the password: the aal1 session and its token.
async fn signed_in(e: &Engine, email: &str) -> (Session, String) {
    match login(e, email, PASSWORD).await.expect("login") {
        Outcome::Completed {
            session: Some(s), ..
        } => s,
        other => panic!("not signed in: {other:?}"),
    }
}

/// What a person's app does: reads the secret shown on the page and computes the code now.
fn app_code(flow: &Flow) -> String {
    let node = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "totp_secret_key")
        .expect("the secret is shown");
    let secret = node
        .attributes
        .text
        .as_ref()
        .and_then(|t| t.context.get("secret"))
        .and_then(Value::as_str)
        .expect("secret in the text's context")
        .to_string();
    // A step ago: still accepted, and not the code the tests step up with right after (the
    // code that confirms a key is spent).
    code_at(&secret, unix_now() - 30)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn code_at(secret_base32: &str, unix: u64) -> String {
    let bytes = Secret::Encoded(secret_base32.into())
        .to_bytes()
        .expect("base32");
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into())
        .expect("totp")
        .generate(unix)
}

fn code_for(secret_base32: &str) -> String {
    code_at(secret_base32, unix_now())
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

/// Enrols TOTP through settings; returns the secret (base32) the page showed.
async fn enrol(e: &Engine, session: &Session) -> String {
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, session, "")
        .await
        .expect("settings flow");
    let secret = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "totp_secret_key")
        .and_then(|n| n.attributes.text.as_ref())
        .and_then(|t| t.context["secret"].as_str())
        .expect("secret")
        .to_string();
    let body = json!({"method": "totp", "totp_code": app_code(&flow)});
    match e
        .submit_settings(&flow.id.to_string(), &body, None, session)
        .await
        .expect("enrol")
    {
        Outcome::Completed { .. } => secret,
        other => panic!("not enrolled: {other:?}"),
    }
}

#[tokio::test]
async fn settings_offers_a_key_as_qr_and_text_and_enrols_it_with_a_code() {
    let e = mfa_engine("").await;
    let identity = register(&e, "t@example.com").await;
    let (session, _) = signed_in(&e, "t@example.com").await;
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .unwrap();
    let wire = serde_json::to_value(&flow).unwrap();
    let totp: Vec<&Value> = wire["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["group"] == "totp")
        .collect();
    assert_eq!(totp[0]["attributes"]["id"], "totp_qr");
    assert_eq!(totp[0]["attributes"]["node_type"], "img");
    assert!(
        totp[0]["attributes"]["src"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    assert_eq!(totp[0]["meta"]["label"]["id"], 1050005);
    assert_eq!(totp[1]["attributes"]["id"], "totp_secret_key");
    assert_eq!(totp[1]["attributes"]["text"]["id"], 1050006);
    assert_eq!(totp[2]["attributes"]["name"], "totp_code");
    assert_eq!(totp[3]["attributes"]["value"], "totp");

    // A wrong code enrols nothing.
    let body = json!({"method": "totp", "totp_code": wrong(&app_code(&flow))});
    let Outcome::Invalid(refused) = e
        .submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .unwrap()
    else {
        panic!("a wrong code was accepted");
    };
    let node = refused
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "totp_code")
        .unwrap();
    assert_eq!(node.messages[0].id, MessageId::TOTP_VERIFIER_WRONG);
    let stored = e.store.get_identity(identity.id).await.unwrap();
    assert!(stored.credential(CREDENTIAL_TOTP).is_none());

    let body = json!({"method": "totp", "totp_code": app_code(&flow)});
    let outcome = e
        .submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let stored = e.store.get_identity(identity.id).await.unwrap();
    let cred = stored.credential(CREDENTIAL_TOTP).expect("enrolled");
    let sealed = cred.config["totp_url"].as_str().unwrap();
    assert!(
        !sealed.contains("otpauth"),
        "the key is sealed at rest: {sealed}"
    );
    assert!(
        e.cipher
            .decrypt(sealed)
            .unwrap()
            .starts_with("otpauth://totp/Tessera%20Test:")
    );
}

#[tokio::test]
async fn an_aal1_session_of_someone_with_totp_is_refused_by_whoami_and_settings() {
    let e = mfa_engine("").await;
    register(&e, "w@example.com").await;
    let (session, token) = signed_in(&e, "w@example.com").await;
    assert!(
        e.whoami(&token).await.unwrap().is_some(),
        "no factor yet: aal1 is the highest"
    );
    // A settings flow opened before the factor existed.
    let early = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .unwrap();
    enrol(&e, &session).await;

    let err = e.whoami(&token).await.expect_err("aal1 is not enough now");
    assert_eq!(err.id, Some(ErrorId::SessionAal2Required));
    assert!(
        err.details["redirect_browser_to"]
            .as_str()
            .unwrap()
            .contains("self-service/login/browser?aal=aal2")
    );
    let err = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .expect_err("settings on one factor's strength");
    assert_eq!(err.id, Some(ErrorId::SessionAal2Required));
    let body = json!({"method": "totp", "totp_unlink": true});
    let err = e
        .submit_settings(&early.id.to_string(), &body, None, &session)
        .await
        .expect_err("removing the factor on one factor's strength");
    assert_eq!(err.id, Some(ErrorId::SessionAal2Required));

    // `aal1` asks no more than one factor.
    let mut relaxed = mfa_engine("session:\n  whoami:\n    required_aal: aal1\n").await;
    relaxed.store = e.store.clone();
    assert_eq!(relaxed.settings.mfa.whoami_required_aal, RequiredAal::Aal1);
    assert!(relaxed.whoami(&token).await.unwrap().is_some());
}

#[tokio::test]
async fn step_up_with_a_code_gives_an_aal2_session_and_replaces_the_aal1_one() {
    let e = mfa_engine("").await;
    register(&e, "s@example.com").await;
    let (session, token) = signed_in(&e, "s@example.com").await;
    let secret = enrol(&e, &session).await;

    let flow = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&session), "")
        .await
        .unwrap();
    assert_eq!(flow.requested_aal.as_deref(), Some(AAL2));
    assert_eq!(message_ids(&flow), vec![MessageId::LOGIN_MFA]);
    assert!(
        flow.ui
            .nodes
            .iter()
            .any(|n| n.attributes.name == "totp_code")
    );
    assert!(
        !flow
            .ui
            .nodes
            .iter()
            .any(|n| n.attributes.name == "password")
    );

    let body = json!({"method": "totp", "totp_code": code_for(&secret)});
    let Outcome::Completed {
        session: Some((lifted, new_token)),
        ..
    } = e
        .submit_login_as(&flow.id.to_string(), &body, None, None, Some(&session))
        .await
        .unwrap()
    else {
        panic!("not stepped up");
    };
    assert_eq!(lifted.authenticator_assurance_level, AAL2);
    let methods: Vec<(&str, &str)> = lifted
        .authentication_methods
        .iter()
        .map(|m| (m.method.as_str(), m.aal.as_str()))
        .collect();
    assert_eq!(methods, vec![("password", AAL1), ("totp", AAL2)]);
    assert_eq!(lifted.expires_at, session.expires_at);
    let me = e.whoami(&new_token).await.unwrap().expect("aal2 session");
    let me: Value = serde_json::from_slice(&me.json).unwrap();
    assert_eq!(me["authenticator_assurance_level"], "aal2");
    assert!(
        e.whoami(&token).await.unwrap().is_none(),
        "the aal1 token stops working"
    );
    let again = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&lifted), "")
        .await
        .expect_err("already aal2");
    assert_eq!(again.id, Some(ErrorId::SessionAlreadyAvailable));
}

#[tokio::test]
async fn a_code_is_good_once_in_its_step() {
    let e = mfa_engine("").await;
    register(&e, "r@example.com").await;
    let (session, _) = signed_in(&e, "r@example.com").await;
    let secret = enrol(&e, &session).await;
    let code = code_for(&secret);
    let first = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&session), "")
        .await
        .unwrap();
    let body = json!({"method": "totp", "totp_code": code});
    let outcome = e
        .submit_login_as(&first.id.to_string(), &body, None, None, Some(&session))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Completed { .. }));

    // An attacker who saw the code signs in with the password and replays it.
    let (other, _) = signed_in(&e, "r@example.com").await;
    let second = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&other), "")
        .await
        .unwrap();
    let Outcome::Invalid(refused) = e
        .submit_login_as(&second.id.to_string(), &body, None, None, Some(&other))
        .await
        .unwrap()
    else {
        panic!("a replayed code was accepted");
    };
    let node = refused
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "totp_code")
        .unwrap();
    assert_eq!(node.messages[0].id, MessageId::TOTP_VERIFIER_WRONG);
}

#[tokio::test]
async fn wrong_codes_are_rate_limited() {
    let e = mfa_engine("limits:\n  failed_logins:\n    per_identifier: 3\n").await;
    register(&e, "l@example.com").await;
    let (session, _) = signed_in(&e, "l@example.com").await;
    let secret = enrol(&e, &session).await;
    let flow = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&session), "")
        .await
        .unwrap();
    let bad = json!({"method": "totp", "totp_code": wrong(&code_for(&secret))});
    for _ in 0..3 {
        let outcome = e
            .submit_login_as(&flow.id.to_string(), &bad, None, None, Some(&session))
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Invalid(_)));
    }
    let good = json!({"method": "totp", "totp_code": code_for(&secret)});
    let err = e
        .submit_login_as(&flow.id.to_string(), &good, None, None, Some(&session))
        .await
        .expect_err("limited, even with the right code");
    assert_eq!(err.id, Some(ErrorId::SelfServiceRateLimited));
}

#[tokio::test]
async fn the_second_step_cannot_be_skipped_or_taken_by_someone_else() {
    let e = mfa_engine("").await;
    register(&e, "a@example.com").await;
    register(&e, "b@example.com").await;
    let (alice, _) = signed_in(&e, "a@example.com").await;
    let (bob, _) = signed_in(&e, "b@example.com").await;
    let secret = enrol(&e, &alice).await;

    // A code posted to a first-factor flow does not sign anyone in.
    let aal1 = e
        .init_login(FlowType::Api, "http://t/", None, false, None, "")
        .await
        .unwrap();
    let body = json!({"method": "totp", "totp_code": code_for(&secret)});
    let outcome = e
        .submit_login_as(&aal1.id.to_string(), &body, None, None, None)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Invalid(_)), "{outcome:?}");

    // A password posted to the second step does not lift the session.
    let flow = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&alice), "")
        .await
        .unwrap();
    let pw = json!({"method": "password", "identifier": "a@example.com", "password": PASSWORD});
    let outcome = e
        .submit_login_as(&flow.id.to_string(), &pw, None, None, Some(&alice))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Invalid(_)), "{outcome:?}");

    // Bob cannot complete Alice's step with his session, nor start one without a factor.
    let err = e
        .submit_login_as(&flow.id.to_string(), &body, None, None, Some(&bob))
        .await
        .expect_err("another identity's flow");
    assert_eq!(err.id, Some(ErrorId::SecurityIdentityMismatch));
    let err = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&bob), "")
        .await
        .expect_err("no second factor");
    assert_eq!(err.kind, tessera_core::ErrorKind::BadRequest);
    let err = e
        .init_login_aal2(FlowType::Api, "http://t/", None, None, "")
        .await
        .expect_err("no session");
    assert_eq!(err.id, Some(ErrorId::SessionInactive));

    // Bob's settings cannot remove Alice's factor: settings act on the session's identity.
    let bobs = e
        .init_settings(FlowType::Api, "http://t/", None, &bob, "")
        .await
        .unwrap();
    let unlink = json!({"method": "totp", "totp_unlink": true});
    let outcome = e
        .submit_settings(&bobs.id.to_string(), &unlink, None, &bob)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Invalid(_)), "{outcome:?}");
    let alice_now = e.store.get_identity(alice.identity_id).await.unwrap();
    assert!(alice_now.credential(CREDENTIAL_TOTP).is_some());
}

#[tokio::test]
async fn an_aal2_session_unlinks_the_app() {
    let e = mfa_engine("").await;
    register(&e, "u@example.com").await;
    let (session, _) = signed_in(&e, "u@example.com").await;
    let secret = enrol(&e, &session).await;
    let flow = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&session), "")
        .await
        .unwrap();
    let body = json!({"method": "totp", "totp_code": code_for(&secret)});
    let Outcome::Completed {
        session: Some((lifted, _)),
        ..
    } = e
        .submit_login_as(&flow.id.to_string(), &body, None, None, Some(&session))
        .await
        .unwrap()
    else {
        panic!("not stepped up");
    };
    let settings = e
        .init_settings(FlowType::Api, "http://t/", None, &lifted, "")
        .await
        .unwrap();
    assert!(
        settings
            .ui
            .nodes
            .iter()
            .any(|n| n.attributes.name == "totp_unlink"),
        "enrolled: the unlink button instead of a new key"
    );
    let unlink = json!({"method": "totp", "totp_unlink": "true"});
    let outcome = e
        .submit_settings(&settings.id.to_string(), &unlink, None, &lifted)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let now = e.store.get_identity(lifted.identity_id).await.unwrap();
    assert!(now.credential(CREDENTIAL_TOTP).is_none());
}

#[tokio::test]
async fn a_password_sign_in_of_someone_with_totp_continues_to_the_second_step() {
    let e = mfa_engine("").await;
    register(&e, "c@example.com").await;
    let (session, _) = signed_in(&e, "c@example.com").await;
    enrol(&e, &session).await;
    let Outcome::Completed {
        return_to, session, ..
    } = login(&e, "c@example.com", PASSWORD).await.unwrap()
    else {
        panic!("not signed in");
    };
    assert_eq!(
        session.map(|(s, _)| s.authenticator_assurance_level),
        Some(AAL1.to_string())
    );
    assert!(
        return_to
            .starts_with("http://127.0.0.1:4433/self-service/login/browser?aal=aal2&return_to="),
        "{return_to}"
    );
}

/// Steps `session` up with the current code; the aal2 session and its token.
async fn stepped_up(e: &Engine, session: &Session, secret: &str) -> (Session, String) {
    let flow = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(session), "")
        .await
        .unwrap();
    let body = json!({"method": "totp", "totp_code": code_for(secret)});
    match e
        .submit_login_as(&flow.id.to_string(), &body, None, None, Some(session))
        .await
        .unwrap()
    {
        Outcome::Completed {
            session: Some(s), ..
        } => s,
        other => panic!("not stepped up: {other:?}"),
    }
}

/// A refresh login (`refresh=true`, or an app's `max_age`) with the password, sent with the
/// session it refreshes.
async fn refresh_login(e: &Engine, email: &str, current: &Session) -> Outcome {
    let flow = e
        .init_login(FlowType::Api, "http://t/", None, true, Some(current), "")
        .await
        .unwrap();
    let body = json!({"method": "password", "identifier": email, "password": PASSWORD});
    e.submit_login_as(&flow.id.to_string(), &body, None, None, Some(current))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_code_that_confirms_the_key_cannot_be_used_again_to_step_up() {
    let e = mfa_engine("").await;
    register(&e, "k@example.com").await;
    let (session, _) = signed_in(&e, "k@example.com").await;
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .unwrap();
    let code = app_code(&flow);
    let body = json!({"method": "totp", "totp_code": code});
    let outcome = e
        .submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");

    // Someone who watched the enrolment tries the same code at the second step.
    let step = e
        .init_login_aal2(FlowType::Api, "http://t/", None, Some(&session), "")
        .await
        .unwrap();
    let body = json!({"method": "totp", "totp_code": code});
    let Outcome::Invalid(refused) = e
        .submit_login_as(&step.id.to_string(), &body, None, None, Some(&session))
        .await
        .unwrap()
    else {
        panic!("the enrolment code stepped the session up");
    };
    assert!(
        message_ids(&refused).is_empty(),
        "the message sits on the code field"
    );
    let field = refused
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "totp_code")
        .expect("code field");
    assert_eq!(field.messages[0].id, MessageId::TOTP_VERIFIER_WRONG);
}

#[tokio::test]
async fn a_refresh_login_keeps_the_second_factor_of_the_session_it_renews() {
    let e = mfa_engine("").await;
    register(&e, "f@example.com").await;
    let (session, _) = signed_in(&e, "f@example.com").await;
    let secret = enrol(&e, &session).await;
    let (lifted, lifted_token) = stepped_up(&e, &session, &secret).await;

    let Outcome::Completed {
        session: Some((renewed, token)),
        return_to,
        ..
    } = refresh_login(&e, "f@example.com", &lifted).await
    else {
        panic!("the refresh login failed");
    };
    assert_eq!(renewed.authenticator_assurance_level, AAL2);
    let methods: Vec<(&str, &str)> = renewed
        .authentication_methods
        .iter()
        .map(|m| (m.method.as_str(), m.aal.as_str()))
        .collect();
    assert_eq!(
        methods,
        vec![("password", AAL1), ("totp", AAL2), ("password", AAL1)]
    );
    assert!(renewed.authenticated_at >= lifted.authenticated_at);
    assert!(
        !return_to.contains("aal=aal2"),
        "no second step again: {return_to}"
    );
    let me = e.whoami(&token).await.unwrap().expect("renewed session");
    let me: Value = serde_json::from_slice(&me.json).unwrap();
    assert_eq!(me["authenticator_assurance_level"], "aal2");
    assert!(
        e.whoami(&lifted_token).await.unwrap().is_none(),
        "the renewed session's old token stops working"
    );
}

#[tokio::test]
async fn a_refresh_login_as_someone_else_inherits_nothing() {
    let e = mfa_engine("").await;
    register(&e, "owner@example.com").await;
    register(&e, "other@example.com").await;
    let (session, _) = signed_in(&e, "owner@example.com").await;
    let secret = enrol(&e, &session).await;
    let (lifted, lifted_token) = stepped_up(&e, &session, &secret).await;

    let Outcome::Completed {
        session: Some((other, _)),
        ..
    } = refresh_login(&e, "other@example.com", &lifted).await
    else {
        panic!("the other person's login failed");
    };
    assert_eq!(other.authenticator_assurance_level, AAL1);
    assert_ne!(other.identity_id, lifted.identity_id);
    assert_eq!(other.authentication_methods.len(), 1);
    assert!(
        e.whoami(&lifted_token).await.unwrap().is_some(),
        "the owner's session is left alone"
    );
}

#[tokio::test]
async fn a_refresh_flow_completed_without_its_session_renews_nothing() {
    let e = mfa_engine("").await;
    register(&e, "leak@example.com").await;
    let (session, _) = signed_in(&e, "leak@example.com").await;
    let secret = enrol(&e, &session).await;
    let (lifted, lifted_token) = stepped_up(&e, &session, &secret).await;
    let flow = e
        .init_login(FlowType::Api, "http://t/", None, true, Some(&lifted), "")
        .await
        .unwrap();

    // Someone who learnt the flow's id and the password, but holds no session of the owner's,
    // completes it: the second factor is not theirs to inherit.
    let body =
        json!({"method": "password", "identifier": "leak@example.com", "password": PASSWORD});
    let Outcome::Completed {
        session: Some((theirs, _)),
        ..
    } = e
        .submit_login_as(&flow.id.to_string(), &body, None, None, None)
        .await
        .unwrap()
    else {
        panic!("the password sign-in failed");
    };
    assert_eq!(theirs.authenticator_assurance_level, AAL1);
    assert_eq!(theirs.authentication_methods.len(), 1);
    assert!(
        e.whoami(&lifted_token).await.unwrap().is_some(),
        "the owner's aal2 session is left alone"
    );
}
