//! Engine-level tests of code sign-in and sign-up (`code_auth.rs`): in-memory SQLite, a schema
//! with an email and a phone as code identifiers, the codes read back from the courier's queue.

use crate::engine::{Engine, Outcome, Schemas};
use crate::tests::message_ids;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::flow::{Flow, FlowState, FlowType};
use tessera_core::password::Hasher;
use tessera_core::schema::IdentitySchema;
use tessera_core::text::MessageId;

const ON: &str = "selfservice:\n  methods:\n    code:\n      passwordless_enabled: true\n      config:\n        max_submissions: 3\n  flows:\n    registration:\n      after:\n        code:\n          hooks:\n            - hook: session\n";

fn schema() -> Value {
    json!({"type": "object", "properties": {"traits": {"type": "object", "properties": {
        "email": {"type": "string", "format": "email", "ory.sh/kratos": {
            "credentials": {"password": {"identifier": true}, "code": {"identifier": true, "via": "email"}},
            "verification": {"via": "email"}}},
        "phone": {"type": "string", "format": "tel", "ory.sh/kratos": {
            "credentials": {"code": {"identifier": true, "via": "sms"}},
            "verification": {"via": "sms"}}}
    }}}})
}

async fn engine(extra: &str) -> Engine {
    let yaml = format!(
        "dsn: memory\nserve:\n  public:\n    base_url: http://127.0.0.1:4433/\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\nhashers:\n  argon2:\n    memory: 1MB\n    iterations: 1\ncourier:\n  channels:\n    - id: sms\n      type: http\n      request_config:\n        url: http://127.0.0.1:9/sms\n        method: POST\n        body: base64://ZnVuY3Rpb24oY3R4KSB7fQ==\n{extra}\n"
    );
    let loaded = tessera_config::load_str("t.yml", &yaml, &HashMap::new()).expect("loads");
    let settings = tessera_config::resolve(&loaded, true, None).expect("resolves");
    let store = tessera_store::Store::connect(&settings.dsn)
        .await
        .expect("store");
    store.migrate_up().await.expect("migrated");
    let id = settings.identity.default_schema_id.clone();
    let schemas = Schemas {
        default_id: id.clone(),
        by_id: HashMap::from([(
            id.clone(),
            IdentitySchema::compile(&id, schema()).expect("schema"),
        )]),
    };
    let pool = tessera_mapper::MapperPool::new(tessera_mapper::PoolConfig::new(
        "/nonexistent".into(),
        vec![],
    ));
    Engine {
        cipher: Arc::new(tessera_core::crypto::Cipher::new(&settings.secrets.cipher)),
        hasher: Arc::new(Hasher::new(settings.password.argon2.clone())),
        limits: Arc::new(crate::limits::Limits::new(&settings.limits)),
        social: Arc::new(tessera_social::Social::empty(pool)),
        schemas: Arc::new(schemas),
        store,
        settings: Arc::new(settings),
        whoami_answers: Default::default(),
    }
}

async fn queued(e: &Engine, to: &str) -> Vec<String> {
    e.store
        .courier_list(None, Some(to), 100, None)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|m| m.body)
        .collect()
}

async fn last_code(e: &Engine, to: &str) -> String {
    let bodies = queued(e, to).await;
    let body = bodies.first().expect("a message was queued");
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a code in the message")
        .to_string()
}

fn invalid(o: Outcome) -> Flow {
    match o {
        Outcome::Invalid(f) => f,
        other => panic!("expected the flow back, got {other:?}"),
    }
}

async fn login_flow(e: &Engine) -> Flow {
    e.init_login(FlowType::Api, "http://t/", None, false, None, "")
        .await
        .expect("flow")
}

async fn registration_flow(e: &Engine) -> Flow {
    e.init_registration(FlowType::Api, "http://t/", None, None, "")
        .await
        .expect("flow")
}

async fn post_login(e: &Engine, f: &Flow, body: Value) -> Outcome {
    e.submit_login(&f.id.to_string(), &body, None, None)
        .await
        .expect("submitted")
}

async fn post_registration(e: &Engine, f: &Flow, body: Value) -> Outcome {
    e.submit_registration(&f.id.to_string(), &body, None)
        .await
        .expect("submitted")
}

/// Signs up `traits` by a code sent to `to`; returns the new identity's id.
async fn sign_up(e: &Engine, traits: Value, to: &str) -> uuid::Uuid {
    let f = registration_flow(e).await;
    let sent = invalid(post_registration(e, &f, json!({"method": "code", "traits": traits})).await);
    assert_eq!(sent.state, FlowState::SentEmail);
    let code = last_code(e, to).await;
    match post_registration(e, &f, json!({"method": "code", "code": code})).await {
        Outcome::Completed {
            identity,
            session: Some((s, _)),
            ..
        } => {
            assert_eq!(s.authentication_methods[0].method, "code");
            identity.id
        }
        other => panic!("sign-up by code failed: {other:?}"),
    }
}

#[tokio::test]
async fn code_nodes_are_kratos_shapes_and_off_without_passwordless() {
    let e = engine(ON).await;
    let f = login_flow(&e).await;
    let method =
        f.ui.nodes
            .iter()
            .find(|n| n.group == "code" && n.attributes.name == "method")
            .expect("the code submit");
    assert_eq!(method.attributes.value, json!("code"));
    assert_eq!(
        method.meta.label.as_ref().map(|l| l.id),
        Some(MessageId::LOGIN_CODE)
    );
    let r = registration_flow(&e).await;
    assert!(
        r.ui.nodes
            .iter()
            .any(|n| n.group == "code" && n.attributes.name == "traits.phone")
    );
    let off = engine("").await;
    let f = login_flow(&off).await;
    assert!(f.ui.nodes.iter().all(|n| n.group != "code"));
    let f = invalid(post_login(&off, &f, json!({"method": "code", "identifier": "a@b.cn"})).await);
    assert_eq!(message_ids(&f), [MessageId::LOGIN_NO_STRATEGY]);
}

#[tokio::test]
async fn sign_up_then_sign_in_by_email_code_verifies_the_address() {
    let e = engine(ON).await;
    let id = sign_up(
        &e,
        json!({"email": "Li.Wei@example.cn"}),
        "li.wei@example.cn",
    )
    .await;
    let who = e.store.get_identity(id).await.expect("identity");
    assert!(who.verifiable_addresses[0].verified, "{who:?}");
    let code_cred = who.credential("code").expect("a code credential");
    assert_eq!(code_cred.identifiers, ["li.wei@example.cn"]);

    let f = login_flow(&e).await;
    let sent = invalid(
        post_login(
            &e,
            &f,
            json!({"method": "code", "identifier": "LI.WEI@example.cn"}),
        )
        .await,
    );
    assert_eq!(sent.state, FlowState::SentEmail);
    assert_eq!(message_ids(&sent), [MessageId::LOGIN_CODE_SENT]);
    let names: Vec<&str> = sent
        .ui
        .nodes
        .iter()
        .map(|n| n.attributes.name.as_str())
        .collect();
    assert_eq!(names, ["identifier", "method", "code", "method", "resend"]);
    let code = last_code(&e, "li.wei@example.cn").await;
    match post_login(&e, &f, json!({"method": "code", "code": code})).await {
        Outcome::Completed {
            session: Some((s, _)),
            identity,
            ..
        } => {
            assert_eq!(identity.id, id);
            assert_eq!(s.authenticator_assurance_level, "aal1");
            assert_eq!(s.authentication_methods[0].method, "code");
        }
        other => panic!("sign-in by code failed: {other:?}"),
    }
    // Single use: the completed flow takes nothing more, not even the right code again.
    let again = e
        .submit_login(
            &f.id.to_string(),
            &json!({"method": "code", "code": code}),
            None,
            None,
        )
        .await;
    assert!(again.is_err(), "{again:?}");
}

#[tokio::test]
async fn phone_numbers_sign_up_and_in_by_text_in_e164() {
    let e = engine(ON).await;
    let id = sign_up(
        &e,
        json!({"email": "ivan@example.ru", "phone": "+7 (912) 345-67-89"}),
        "ivan@example.ru",
    )
    .await;
    let f = login_flow(&e).await;
    invalid(
        post_login(
            &e,
            &f,
            json!({"method": "code", "identifier": "+7 912 345 67 89"}),
        )
        .await,
    );
    let texts = queued(&e, "+79123456789").await;
    // The sign-up code went to both code addresses, the sign-in code to the number alone.
    assert_eq!(texts.len(), 2, "texts to the E.164 number");
    let code = last_code(&e, "+79123456789").await;
    match post_login(&e, &f, json!({"method": "code", "code": code})).await {
        Outcome::Completed { identity, .. } => assert_eq!(identity.id, id),
        other => panic!("{other:?}"),
    }
    let who = e.store.get_identity(id).await.expect("identity");
    assert!(
        who.verifiable_addresses
            .iter()
            .any(|a| a.via == "sms" && a.value == "+79123456789" && a.verified),
        "{who:?}"
    );
}

#[tokio::test]
async fn wrong_codes_lock_the_flow_and_other_flows_codes_do_not_fit() {
    let e = engine(ON).await;
    sign_up(&e, json!({"email": "ann@example.cn"}), "ann@example.cn").await;
    let a = login_flow(&e).await;
    let b = login_flow(&e).await;
    invalid(
        post_login(
            &e,
            &a,
            json!({"method": "code", "identifier": "ann@example.cn"}),
        )
        .await,
    );
    let code_a = last_code(&e, "ann@example.cn").await;
    invalid(
        post_login(
            &e,
            &b,
            json!({"method": "code", "identifier": "ann@example.cn"}),
        )
        .await,
    );
    let code_b = last_code(&e, "ann@example.cn").await;
    if code_a != code_b {
        let f = invalid(post_login(&e, &b, json!({"method": "code", "code": code_a})).await);
        assert_eq!(message_ids(&f), [MessageId::LOGIN_CODE_INVALID]);
    }
    // max_submissions is 3: three wrong tries, then even the right code gets a fresh flow.
    let wrong = if code_a == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..3 {
        let f = invalid(post_login(&e, &a, json!({"method": "code", "code": wrong})).await);
        assert_eq!(f.id, a.id);
        assert_eq!(message_ids(&f), [MessageId::LOGIN_CODE_INVALID]);
    }
    let fresh = invalid(post_login(&e, &a, json!({"method": "code", "code": code_a})).await);
    assert_ne!(fresh.id, a.id);
    assert_eq!(message_ids(&fresh), [MessageId::CODE_SUBMITTED_TOO_OFTEN]);
    let stored = e.store.get_flow(a.id).await.expect("flow").0;
    assert!(
        stored.internal.code.is_none(),
        "the locked flow's code is gone"
    );
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let e = engine(ON).await;
    sign_up(&e, json!({"email": "old@example.cn"}), "old@example.cn").await;
    let f = login_flow(&e).await;
    invalid(
        post_login(
            &e,
            &f,
            json!({"method": "code", "identifier": "old@example.cn"}),
        )
        .await,
    );
    let code = last_code(&e, "old@example.cn").await;
    let (mut stored, _) = e.store.get_flow(f.id).await.expect("flow");
    if let Some(p) = stored.internal.code.as_mut() {
        p.expires_at = tessera_core::timefmt::now_ms() - 1;
    }
    e.store.update_flow(&stored).await.expect("stored");
    let f = invalid(post_login(&e, &f, json!({"method": "code", "code": code})).await);
    assert_eq!(message_ids(&f), [MessageId::LOGIN_CODE_INVALID]);
}

#[tokio::test]
async fn unknown_addresses_get_the_same_answer_and_nothing_is_sent() {
    let e = engine(ON).await;
    sign_up(&e, json!({"email": "known@example.cn"}), "known@example.cn").await;
    let known = login_flow(&e).await;
    let k = invalid(
        post_login(
            &e,
            &known,
            json!({"method": "code", "identifier": "known@example.cn"}),
        )
        .await,
    );
    let unknown = login_flow(&e).await;
    let u = invalid(
        post_login(
            &e,
            &unknown,
            json!({"method": "code", "identifier": "nobody@example.cn"}),
        )
        .await,
    );
    assert_eq!(k.state, u.state);
    assert_eq!(message_ids(&k), message_ids(&u));
    let shape = |f: &Flow| {
        f.ui.nodes
            .iter()
            .map(|n| {
                (
                    n.group.clone(),
                    n.attributes.name.clone(),
                    n.attributes.input_type.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&k), shape(&u));
    assert!(queued(&e, "nobody@example.cn").await.is_empty());
    let f = invalid(post_login(&e, &unknown, json!({"method": "code", "code": "123456"})).await);
    assert_eq!(message_ids(&f), [MessageId::LOGIN_CODE_INVALID]);
}

#[tokio::test]
async fn a_code_is_for_the_traits_it_was_sent_for_and_taken_addresses_are_refused_at_the_end() {
    let e = engine(ON).await;
    let f = registration_flow(&e).await;
    invalid(
        post_registration(
            &e,
            &f,
            json!({"method": "code", "traits": {"email": "me@example.cn"}}),
        )
        .await,
    );
    let code = last_code(&e, "me@example.cn").await;
    // Someone swapping the traits at the code step gets nothing made.
    let swapped = invalid(
        post_registration(
            &e,
            &f,
            json!({"method": "code", "code": code, "traits": {"email": "them@example.cn"}}),
        )
        .await,
    );
    assert_eq!(message_ids(&swapped), [MessageId::TRAITS_MISMATCH]);
    sign_up(&e, json!({"email": "taken@example.cn"}), "taken@example.cn").await;
    let g = registration_flow(&e).await;
    let sent = invalid(
        post_registration(
            &e,
            &g,
            json!({"method": "code", "traits": {"email": "taken@example.cn"}}),
        )
        .await,
    );
    assert_eq!(message_ids(&sent), [MessageId::REGISTRATION_CODE_SENT]);
    let code = last_code(&e, "taken@example.cn").await;
    let refused = invalid(post_registration(&e, &g, json!({"method": "code", "code": code})).await);
    assert_eq!(message_ids(&refused), [MessageId::DUPLICATE_CREDENTIALS]);
}

#[tokio::test]
async fn an_imported_code_credential_is_derived_again_from_the_traits() {
    let e = engine(ON).await;
    let who = e
        .identity_from_body(&json!({
            "traits": {"email": "imported@example.cn", "phone": "+86 138 0013 8000"},
            "credentials": {"code": {"config": {"addresses": [
                {"channel": "email", "address": "someone-else@example.cn"}
            ]}}}
        }))
        .expect("a Kratos export's code credential is accepted");
    let code = who.credential("code").expect("a code credential");
    assert_eq!(code.identifiers, ["imported@example.cn", "+8613800138000"]);
    assert_eq!(
        code.config,
        json!({"addresses": [
            {"channel": "email", "address": "imported@example.cn"},
            {"channel": "sms", "address": "+8613800138000"}
        ]})
    );
    let refused = e.identity_from_body(&json!({
        "traits": {"email": "x@example.cn"},
        "credentials": {"webauthn": {}}
    }));
    assert!(refused.is_err());
}
