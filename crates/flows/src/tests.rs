//! Engine-level tests: the self-service rules on an in-memory SQLite store, with no HTTP.

use crate::engine::{Engine, Outcome, Schemas};
use crate::social::set_provider_entry;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::ErrorId;
use tessera_core::flow::{Flow, FlowKind, FlowType, LinkIntent, PendingSocial};
use tessera_core::password::Hasher;
use tessera_core::schema::{IdentitySchema, default_schema};
use tessera_core::{Error, identity::IdentityState};

/// An engine over a fresh in-memory database, with cheap password hashes. `extra` is YAML
/// appended to a minimal configuration.
pub(crate) async fn engine(extra: &str) -> Engine {
    let yaml = format!(
        "dsn: memory\nserve:\n  public:\n    base_url: http://127.0.0.1:4433/\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\nhashers:\n  argon2:\n    memory: 1MB\n    iterations: 1\n{extra}\n"
    );
    let loaded = tessera_config::load_str("t.yml", &yaml, &HashMap::new()).unwrap();
    let settings = tessera_config::resolve(&loaded, true, None).unwrap();
    let store = tessera_store::Store::connect(&settings.dsn).await.unwrap();
    store.migrate_up().await.unwrap();
    let schema =
        IdentitySchema::compile(&settings.identity.default_schema_id, default_schema()).unwrap();
    let schemas = Schemas {
        default_id: settings.identity.default_schema_id.clone(),
        by_id: HashMap::from([(settings.identity.default_schema_id.clone(), schema)]),
    };
    // No providers: nothing is ever sent to a mapper worker.
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

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) async fn register(e: &Engine, email: &str) -> tessera_core::identity::Identity {
    let flow = e
        .init_registration(FlowType::Api, "http://t/", None, None, "")
        .await
        .unwrap();
    let body = json!({"method": "password", "traits": {"email": email}, "password": PASSWORD});
    match e
        .submit_registration(&flow.id.to_string(), &body, None)
        .await
        .unwrap()
    {
        Outcome::Completed { identity, .. } => identity,
        other => panic!("registration not completed: {other:?}"),
    }
}

pub(crate) async fn login(e: &Engine, email: &str, password: &str) -> Result<Outcome, Error> {
    let flow = e
        .init_login(FlowType::Api, "http://t/", None, false, None, "")
        .await
        .unwrap();
    let body = json!({"method": "password", "identifier": email, "password": password});
    e.submit_login(&flow.id.to_string(), &body, None, None)
        .await
}

pub(crate) fn message_ids(flow: &Flow) -> Vec<tessera_core::text::MessageId> {
    flow.ui.messages.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn password_registration_then_login_issues_a_session() {
    let e = engine("").await;
    let identity = register(&e, "Ann@Example.com").await;
    assert_eq!(identity.traits["email"], json!("Ann@Example.com"));
    match login(&e, "ann@example.com", PASSWORD).await.unwrap() {
        Outcome::Completed {
            identity: signed_in,
            session: Some((session, token)),
            ..
        } => {
            assert_eq!(signed_in.id, identity.id);
            assert_eq!(session.identity_id, identity.id);
            let back = e.session_from_token(&token).await.unwrap().unwrap();
            assert_eq!(back.id, session.id);
        }
        other => panic!("login not completed: {other:?}"),
    }
}

#[tokio::test]
async fn failed_logins_are_counted_until_the_limit_refuses() {
    let e = engine(
        "limits:\n  failed_logins:\n    per_identifier_and_address: 2\n    per_identifier: 2\n",
    )
    .await;
    register(&e, "bob@example.com").await;
    for _ in 0..2 {
        match login(&e, "bob@example.com", "wrong password!")
            .await
            .unwrap()
        {
            Outcome::Invalid(flow) => assert_eq!(
                message_ids(&flow),
                vec![tessera_core::text::MessageId::INVALID_CREDENTIALS]
            ),
            other => panic!("expected a refusal: {other:?}"),
        }
    }
    let err = login(&e, "bob@example.com", PASSWORD).await.unwrap_err();
    assert_eq!(err.id, Some(ErrorId::SelfServiceRateLimited));
}

#[tokio::test]
async fn a_completed_flow_cannot_be_submitted_again() {
    let e = engine("").await;
    register(&e, "cy@example.com").await;
    let flow = e
        .init_login(FlowType::Api, "http://t/", None, false, None, "")
        .await
        .unwrap();
    let body = json!({"method": "password", "identifier": "cy@example.com", "password": PASSWORD});
    let id = flow.id.to_string();
    assert!(matches!(
        e.submit_login(&id, &body, None, None).await.unwrap(),
        Outcome::Completed { .. }
    ));
    let again = e.submit_login(&id, &body, None, None).await.unwrap_err();
    assert_eq!(again.id, Some(ErrorId::SelfServiceFlowCompleted));
}

#[tokio::test]
async fn a_browser_flow_refuses_a_submission_without_its_csrf_token() {
    let e = engine("").await;
    let flow = e
        .init_login(
            FlowType::Browser,
            "http://t/",
            None,
            false,
            None,
            "cookie-secret",
        )
        .await
        .unwrap();
    let body = json!({"method": "password", "identifier": "x@example.com", "password": "x"});
    let err = e
        .submit_login(&flow.id.to_string(), &body, Some("another-browser"), None)
        .await
        .unwrap_err();
    assert_eq!(err.id, Some(ErrorId::SecurityCsrfViolation));
    // Through the engine's single entry point, a browser's form post goes to the error page.
    let submitted = e
        .submit(
            FlowKind::Login,
            &flow.id.to_string(),
            &body,
            Some("another-browser"),
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let crate::submit::Submitted::ErrorPage(stored) = submitted else {
        panic!("expected the error page, got {submitted:?}");
    };
    let (row, _) = e.store.get_error(stored).await.unwrap().unwrap();
    assert_eq!(row["id"], json!("security_csrf_violation"));
    assert_eq!(row["kind"], json!("forbidden"));
    // A JSON caller gets the error itself.
    let err = e
        .submit(
            FlowKind::Login,
            &flow.id.to_string(),
            &body,
            Some("another-browser"),
            None,
            None,
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(err.id, Some(ErrorId::SecurityCsrfViolation));
}

#[tokio::test]
async fn token_exchange_is_for_api_flows_and_survives_pending_social_data() {
    let e = engine("").await;
    let mut browser = e
        .init_login(FlowType::Browser, "http://t/", None, false, None, "c")
        .await
        .unwrap();
    assert!(e.enable_token_exchange(&mut browser).await.is_err());
    let mut api = e
        .init_registration(FlowType::Api, "http://t/", None, None, "")
        .await
        .unwrap();
    e.enable_token_exchange(&mut api).await.unwrap();
    assert!(api.session_token_exchange_code.is_some());
    // The fill-the-gaps step writes pending data; the exchange must stay (it used to be
    // overwritten with the whole slot).
    let (mut stored, _) = e.store.get_flow(api.id).await.unwrap();
    assert!(stored.internal.token_exchange);
    stored.internal.pending = Some(pending("acme", "sub-1", "dee@example.com"));
    e.store.update_flow(&stored).await.unwrap();
    let (back, _) = e.store.get_flow(api.id).await.unwrap();
    assert!(back.internal.token_exchange);
    assert_eq!(back.internal.pending.unwrap().subject, "sub-1");
}

fn pending(provider: &str, subject: &str, email: &str) -> PendingSocial {
    serde_json::from_value(json!({
        "provider": provider, "subject": subject, "traits": {"email": email},
        "verified_addresses": [{"value": email, "via": "email"}],
    }))
    .unwrap()
}

#[tokio::test]
async fn a_pending_link_is_offered_on_browser_flows_for_its_identity_only() {
    let e = engine("").await;
    let owner = register(&e, "eve@example.com").await;
    let other = register(&e, "fay@example.com").await;
    let link = LinkIntent {
        pending: pending("acme", "sub-2", "eve@example.com"),
        identity_id: owner.id,
        identifier: "eve@example.com".into(),
    };
    let mut browser = e.new_flow(FlowKind::Login, FlowType::Browser, "http://t/", None, "c");
    browser.internal.link = Some(link.clone());
    assert!(Engine::pending_link_for(&browser, &owner).is_some());
    assert!(Engine::pending_link_for(&browser, &other).is_none());
    let mut api = e.new_flow(FlowKind::Login, FlowType::Api, "http://t/", None, "");
    api.internal.link = Some(link);
    assert!(Engine::pending_link_for(&api, &owner).is_none());
    // Only an address the upstream vouched for may lead to "sign in to link".
    let p = pending("acme", "sub-2", "eve@example.com");
    assert!(crate::social::upstream_verified(&p, "EVE@example.com"));
    assert!(!crate::social::upstream_verified(&p, "fay@example.com"));
}

#[tokio::test]
async fn the_link_confirmation_links_and_signs_in_once() {
    let e = engine("").await;
    let owner = register(&e, "gil@example.com").await;
    let mut flow = e.new_flow(FlowKind::Login, FlowType::Browser, "http://t/", None, "c");
    flow.internal.link = Some(LinkIntent {
        pending: pending("acme", "sub-3", "gil@example.com"),
        identity_id: owner.id,
        identifier: "gil@example.com".into(),
    });
    e.store.insert_flow(&flow).await.unwrap();
    let owner_full = e.store.get_identity(owner.id).await.unwrap();
    let asked = e
        .ask_to_confirm_link(flow, &owner_full, "password")
        .await
        .unwrap();
    let (stored, _) = e.store.get_flow(asked.id).await.unwrap();
    assert_eq!(
        stored.internal.link_proof.as_ref().unwrap().method,
        "password"
    );
    let outcome = e
        .submit_link_decision(stored.clone(), "confirm")
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Completed {
            session: Some(_),
            ..
        }
    ));
    let linked = e.store.get_identity(owner.id).await.unwrap();
    assert_eq!(
        crate::social::linked_providers(&linked),
        vec![("acme".to_string(), "sub-3".to_string())]
    );
    let again = e.submit_link_decision(stored, "confirm").await.unwrap_err();
    assert_eq!(again.id, Some(ErrorId::SelfServiceFlowCompleted));
}

#[tokio::test]
async fn unlink_never_removes_the_last_way_to_sign_in() {
    let e = engine("").await;
    let with_password = register(&e, "hal@example.com").await;
    let mut identity = e.store.get_identity(with_password.id).await.unwrap();
    set_provider_entry(&mut identity, "acme", "sub-4", None);
    // A password remains: unlinking the only provider is fine.
    e.unlink_provider(&mut identity, "acme").unwrap();
    assert!(crate::social::linked_providers(&identity).is_empty());
    // Social only, one provider: refused; with two, one may go.
    let mut social_only = e
        .build_identity(
            "default",
            json!({"email": "ida@example.com"}),
            IdentityState::Active,
            Value::Null,
            Value::Null,
            None,
            None,
        )
        .unwrap();
    set_provider_entry(&mut social_only, "acme", "sub-5", None);
    assert!(e.unlink_provider(&mut social_only, "acme").is_err());
    set_provider_entry(&mut social_only, "other", "sub-6", None);
    e.unlink_provider(&mut social_only, "acme").unwrap();
    assert_eq!(
        crate::social::linked_providers(&social_only),
        vec![("other".to_string(), "sub-6".to_string())]
    );
    let config = social_only.credential("oidc").unwrap().oidc_config();
    assert_eq!(config.providers.len(), 1);
    assert!(e.unlink_provider(&mut social_only, "nope").is_err());
}

/// The autocomplete hints are Kratos's: none on the sign-in identifier (Ory's SDKs refuse
/// `username`, issue 13), the format's hint on traits, and the password kinds on passwords.
#[tokio::test]
async fn autocomplete_hints_are_the_ones_kratos_sets() {
    use tessera_core::ui::Autocomplete;
    let e = engine("").await;
    let hint = |flow: &Flow, name: &str| {
        flow.ui
            .nodes
            .iter()
            .find(|n| n.attributes.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .attributes
            .autocomplete
    };
    let login = e
        .init_login(FlowType::Api, "http://t/", None, false, None, "")
        .await
        .unwrap();
    assert_eq!(hint(&login, "identifier"), None);
    assert_eq!(
        hint(&login, "password"),
        Some(Autocomplete::CurrentPassword)
    );
    let wire = serde_json::to_value(&login).unwrap();
    assert!(!wire.to_string().contains("\"username\""), "{wire}");
    let registration = e
        .init_registration(FlowType::Api, "http://t/", None, None, "")
        .await
        .unwrap();
    assert_eq!(
        hint(&registration, "traits.email"),
        Some(Autocomplete::Email)
    );
    assert_eq!(
        hint(&registration, "password"),
        Some(Autocomplete::NewPassword)
    );
}

/// An identity as social sign-up makes it: traits from the upstream, an `oidc` credential, no
/// password.
async fn social_only(e: &Engine, email: &str, subject: &str) -> tessera_core::identity::Identity {
    let mut identity = e
        .build_identity(
            "default",
            json!({ "email": email }),
            IdentityState::Active,
            Value::Null,
            Value::Null,
            None,
            None,
        )
        .unwrap();
    set_provider_entry(&mut identity, "acme", subject, None);
    e.store.insert_identity(&identity).await.unwrap();
    identity
}

#[tokio::test]
async fn an_identity_without_a_password_keeps_its_password_identifiers() {
    let e = engine("").await;
    let made = social_only(&e, "Jo@Example.com", "sub-7").await;
    let stored = e.store.get_identity(made.id).await.unwrap();
    let password = stored.credential("password").expect("password credential");
    assert_eq!(password.identifiers, vec!["jo@example.com".to_string()]);
    // Kratos shows such a credential's config as `{}`; there is no hash to use.
    assert_eq!(password.config, json!({}));
    assert!(password.password_config().is_none());
    let found = e
        .store
        .find_identity_by_identifier("password", "jo@example.com")
        .await
        .unwrap()
        .expect("found by email");
    assert_eq!(found.id, made.id);
    let listed = e
        .store
        .list_identities(10, None, Some("jo@example.com"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // Changing the email moves the identifier; removing every identifier drops the empty
    // credential rather than keeping one that can never be used.
    let moved = e
        .rebuild_with_traits(&stored, json!({"email": "jo2@example.com"}))
        .unwrap();
    assert_eq!(
        moved.credential("password").unwrap().identifiers,
        vec!["jo2@example.com".to_string()]
    );
    let gone = e.rebuild_with_traits(&stored, json!({})).unwrap();
    assert!(gone.credential("password").is_none());
    assert!(gone.credential("oidc").is_some());
}

#[tokio::test]
async fn a_password_login_against_a_social_only_identity_fails_like_an_unknown_one() {
    let e = engine("").await;
    social_only(&e, "kai@example.com", "sub-8").await;
    let mut refusals = Vec::new();
    for who in ["kai@example.com", "nobody@example.com"] {
        match login(&e, who, PASSWORD).await.unwrap() {
            Outcome::Invalid(flow) => refusals.push(flow.ui.messages.clone()),
            other => panic!("{who}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(refusals[0], refusals[1]);
    assert_eq!(
        refusals[0].iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![tessera_core::text::MessageId::INVALID_CREDENTIALS]
    );
}

#[tokio::test]
async fn settings_sets_a_first_password_for_a_social_only_identity() {
    let e = engine("").await;
    let identity = social_only(&e, "lia@example.com", "sub-9").await;
    let (_, token) = e.issue_session(&identity, "oidc").await.unwrap();
    let session = e.session_from_token(&token).await.unwrap().unwrap();
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, &session, "")
        .await
        .unwrap();
    let body = json!({"method": "password", "password": PASSWORD});
    match e
        .submit_settings(&flow.id.to_string(), &body, None, &session)
        .await
        .unwrap()
    {
        Outcome::Completed { .. } => {}
        other => panic!("settings not saved: {other:?}"),
    }
    let stored = e.store.get_identity(identity.id).await.unwrap();
    let password = stored.credential("password").unwrap();
    assert_eq!(password.identifiers, vec!["lia@example.com".to_string()]);
    assert!(password.password_config().is_some());
    assert!(stored.credential("oidc").is_some(), "the link stays");
    assert!(matches!(
        login(&e, "lia@example.com", PASSWORD).await.unwrap(),
        Outcome::Completed { .. }
    ));
}

#[tokio::test]
async fn a_social_only_email_is_taken_for_every_other_route() {
    let e = engine("").await;
    social_only(&e, "max@example.com", "sub-10").await;
    // Admin create: Kratos's 409.
    let err = e
        .create_identity(&json!({"traits": {"email": "MAX@example.com"}}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, tessera_core::ErrorKind::Conflict);
    assert_eq!(err.id, Some(ErrorId::IdentityConflict));
    // Password registration: the flow again, with 4000007.
    let flow = e
        .init_registration(FlowType::Api, "http://t/", None, None, "")
        .await
        .unwrap();
    let body =
        json!({"method": "password", "traits": {"email": "max@example.com"}, "password": PASSWORD});
    match e
        .submit_registration(&flow.id.to_string(), &body, None)
        .await
        .unwrap()
    {
        Outcome::Invalid(flow) => assert_eq!(
            message_ids(&flow),
            vec![tessera_core::text::MessageId::DUPLICATE_CREDENTIALS]
        ),
        other => panic!("expected the duplicate message: {other:?}"),
    }
    assert_eq!(e.store.count_identities().await.unwrap(), 1);
}

#[tokio::test]
async fn the_backfill_gives_old_identities_their_identifiers_once() {
    let e = engine("").await;
    // Written the old way: no password credential at all.
    let mut old = Vec::new();
    for (email, subject) in [
        ("ned@example.com", "s-1"),
        ("NED@example.com", "s-2"),
        ("oz@example.com", "s-3"),
    ] {
        let mut i = e
            .build_identity(
                "default",
                json!({"email": email}),
                IdentityState::Active,
                Value::Null,
                Value::Null,
                None,
                None,
            )
            .unwrap();
        set_provider_entry(&mut i, "acme", subject, None);
        i.credentials.as_mut().unwrap().remove("password");
        // Two identities could share an email only where it was not also an address.
        i.verifiable_addresses.clear();
        i.recovery_addresses.clear();
        e.store.insert_identity(&i).await.unwrap();
        old.push(i.id);
    }
    let with_password = register(&e, "pia@example.com").await;
    assert!(
        e.store
            .find_identity_by_identifier("password", "oz@example.com")
            .await
            .unwrap()
            .is_none()
    );
    let done = e
        .run_backfills()
        .await
        .unwrap()
        .expect("pending after the migration");
    // Two old identities share an email: the first (by id) gets it, the other is skipped
    // and logged, and the back-fill still finishes.
    assert_eq!(done.identities, 2);
    assert_eq!(done.skipped, 1);
    let oz = e
        .store
        .find_identity_by_identifier("password", "oz@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(oz.id, old[2]);
    assert_eq!(oz.credential("password").unwrap().config, json!({}));
    let ned = e
        .store
        .find_identity_by_identifier("password", "ned@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(old[..2].contains(&ned.id));
    let pia = e.store.get_identity(with_password.id).await.unwrap();
    assert!(
        pia.credential("password")
            .unwrap()
            .password_config()
            .is_some()
    );
    // Recorded: it never runs again.
    assert_eq!(e.run_backfills().await.unwrap(), None);
}

#[tokio::test]
async fn external_ids_are_unique_bounded_and_patchable() {
    let e = engine("").await;
    let a = e
        .create_identity(&json!({"traits": {"email": "qa@example.com"}, "external_id": "crm/42 ü"}))
        .await
        .unwrap();
    assert_eq!(a.external_id.as_deref(), Some("crm/42 ü"));
    let found = e.present_by_external_id("crm/42 ü", &[]).await.unwrap();
    assert_eq!(found.id, a.id);
    assert!(
        found.credentials.as_ref().unwrap()["password"]
            .config
            .is_null()
    );
    let with = e
        .present_by_external_id("crm/42 ü", &["password".into()])
        .await
        .unwrap();
    assert_eq!(with.credentials.unwrap()["password"].config, json!({}));
    // Another identity may not take it.
    let dup = e
        .create_identity(&json!({"traits": {"email": "qb@example.com"}, "external_id": "crm/42 ü"}))
        .await
        .unwrap_err();
    assert_eq!(dup.kind, tessera_core::ErrorKind::Conflict);
    assert_eq!(dup.id, Some(ErrorId::IdentityConflict));
    assert!(dup.reason.contains("external_id"), "{}", dup.reason);
    // Bad values are the caller's mistake, said precisely.
    for (bad, needle) in [
        (json!("x".repeat(65)), "at most 64"),
        (json!("a\u{0}b"), "control character"),
        (json!(42), "must be a string"),
    ] {
        let err = e
            .create_identity(&json!({"traits": {"email": "qc@example.com"}, "external_id": bad}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, tessera_core::ErrorKind::BadRequest, "{bad}");
        assert!(err.reason.contains(needle), "{}", err.reason);
    }
    let long = e
        .present_by_external_id(&"y".repeat(500), &[])
        .await
        .unwrap_err();
    assert_eq!(long.kind, tessera_core::ErrorKind::BadRequest);
    let unknown = e.present_by_external_id("nope", &[]).await.unwrap_err();
    assert_eq!(unknown.kind, tessera_core::ErrorKind::NotFound);
    // Patchable, and "" clears it (Kratos).
    let b = e
        .create_identity(&json!({"traits": {"email": "qd@example.com"}}))
        .await
        .unwrap();
    assert!(b.external_id.is_none());
    let taken = e
        .patch_identity(
            b.id,
            &json!([{"op": "replace", "path": "/external_id", "value": "crm/42 ü"}]),
        )
        .await
        .unwrap_err();
    assert_eq!(taken.kind, tessera_core::ErrorKind::Conflict);
    let set = e
        .patch_identity(
            b.id,
            &json!([{"op": "add", "path": "/external_id", "value": "crm/43"}]),
        )
        .await
        .unwrap();
    assert_eq!(set.external_id.as_deref(), Some("crm/43"));
    let cleared = e
        .patch_identity(
            b.id,
            &json!([{"op": "replace", "path": "/external_id", "value": ""}]),
        )
        .await
        .unwrap();
    assert!(cleared.external_id.is_none());
    assert!(e.present_by_external_id("crm/43", &[]).await.is_err());
    // PUT takes the whole identity: without `external_id` it has none (Kratos).
    let put = e
        .replace_identity(a.id, &json!({"traits": {"email": "qa@example.com"}}))
        .await
        .unwrap();
    assert!(put.external_id.is_none());
}
