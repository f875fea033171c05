//! Lost updates (issue 21): settings writes read a whole identity, change it and write it back,
//! so each write is checked against what it read (`Store::update_identity_if_unchanged`). The
//! reliability suite races the real requests; these tests pin the rule without timing.

use crate::engine::Outcome;
use crate::tests::{PASSWORD, engine, login, register};
use serde_json::json;
use tessera_core::flow::FlowType;

/// A settings submission through the engine, as the API flow makes it.
async fn settings(
    e: &crate::engine::Engine,
    session: &tessera_core::session::Session,
    body: serde_json::Value,
) -> Outcome {
    let flow = e
        .init_settings(FlowType::Api, "http://t/", None, session, "")
        .await
        .unwrap();
    e.submit_settings(&flow.id.to_string(), &body, None, session)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stale_whole_identity_write_cannot_undo_a_password_change() {
    let e = engine("").await;
    let made = register(&e, "ana@example.com").await;
    // A racing request read the identity here...
    let stale = e.store.get_identity(made.id).await.unwrap();
    // ...then the password changes...
    let (_, token) = e.issue_session(&made, "password").await.unwrap();
    let session = e.session_from_token(&token).await.unwrap().unwrap();
    let new_password = "an entirely new passphrase";
    assert!(matches!(
        settings(
            &e,
            &session,
            json!({"method": "password", "password": new_password})
        )
        .await,
        Outcome::Completed { .. }
    ));
    // ...and the racing request writes back what it read (with a new email): refused.
    let mut racing = e
        .rebuild_with_traits(&stale, json!({"email": "ana2@example.com"}))
        .unwrap();
    racing.updated_at = stale.updated_at;
    assert!(
        !e.store
            .update_identity_if_unchanged(&racing, stale.updated_at)
            .await
            .unwrap()
    );
    let now = e.store.get_identity(made.id).await.unwrap();
    assert_eq!(
        now.traits["email"], "ana@example.com",
        "nothing was written"
    );
    assert!(matches!(
        login(&e, "ana@example.com", new_password).await.unwrap(),
        Outcome::Completed { .. }
    ));
    assert!(!matches!(
        login(&e, "ana@example.com", PASSWORD).await.unwrap(),
        Outcome::Completed { .. }
    ));
}

#[tokio::test]
async fn a_checked_write_moves_updated_at_so_the_next_stale_one_is_refused() {
    let e = engine("").await;
    let made = register(&e, "bo@example.com").await;
    let read = e.store.get_identity(made.id).await.unwrap();
    // Two requests read the same state; the first writes without touching `updated_at`.
    let first = e
        .rebuild_with_traits(&read, json!({"email": "bo1@example.com"}))
        .unwrap();
    let mut first = first;
    first.updated_at = read.updated_at;
    assert!(
        e.store
            .update_identity_if_unchanged(&first, read.updated_at)
            .await
            .unwrap()
    );
    let second = e
        .rebuild_with_traits(&read, json!({"email": "bo2@example.com"}))
        .unwrap();
    assert!(
        !e.store
            .update_identity_if_unchanged(&second, read.updated_at)
            .await
            .unwrap(),
        "the second saw the first's state no more"
    );
    let now = e.store.get_identity(made.id).await.unwrap();
    assert_eq!(now.traits["email"], "bo1@example.com");
    assert!(now.updated_at > read.updated_at);
    assert_eq!(
        now.credential("password").unwrap().identifiers,
        vec!["bo1@example.com".to_string()]
    );
}

#[tokio::test]
async fn sequential_settings_submissions_are_all_saved() {
    let e = engine("").await;
    let made = register(&e, "cy@example.com").await;
    let (_, token) = e.issue_session(&made, "password").await.unwrap();
    let session = e.session_from_token(&token).await.unwrap().unwrap();
    // Sequential submissions each read the latest state: both are saved.
    assert!(matches!(
        settings(
            &e,
            &session,
            json!({"method": "profile", "traits": {"email": "cy1@example.com"}})
        )
        .await,
        Outcome::Completed { .. }
    ));
    assert!(matches!(
        settings(
            &e,
            &session,
            json!({"method": "password", "password": "another fine passphrase"})
        )
        .await,
        Outcome::Completed { .. }
    ));
    let now = e.store.get_identity(made.id).await.unwrap();
    assert_eq!(now.traits["email"], "cy1@example.com");
    assert!(matches!(
        login(&e, "cy1@example.com", "another fine passphrase")
            .await
            .unwrap(),
        Outcome::Completed { .. }
    ));
}
