//! Several instances on one PostgreSQL database: any instance continues any flow and honours any
//! session; a revocation on one instance reaches the others within `session.cache_ttl`.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer};

#[tokio::test]
async fn instances_share_flows_and_sessions() {
    let dir = tessera_testkit::temp_dir();
    let dsn = tessera_testkit::fresh_dsn(Backend::Postgres, &dir).await;
    let cfg = "session:\n  cache_ttl: 300ms\n";
    let a = TestServer::start_with(Backend::Postgres, tessera_testkit::temp_dir(), &dsn, cfg).await;
    let b = TestServer::start_with(Backend::Postgres, tessera_testkit::temp_dir(), &dsn, cfg).await;
    let c = TestServer::client();

    // A flow created on A is submitted on B.
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", a.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .post(format!("{}/self-service/registration?flow={}", b.public, flow["id"].as_str().unwrap()))
        .json(&json!({"method": "password", "traits": {"email": "multi@example.com"}, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, login) = a.login("multi@example.com", "correct horse battery").await;
    assert_eq!(st, 200);
    let token = login["session_token"].as_str().unwrap();
    assert_eq!(
        b.whoami(token).await.0,
        200,
        "B honours A's session (and caches it)"
    );

    // Revoked through A: A refuses at once; B within its cache TTL.
    let sid = login["session"]["id"].as_str().unwrap();
    assert_eq!(
        c.delete(format!("{}/admin/sessions/{sid}", a.admin))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(a.whoami(token).await.0, 401);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        b.whoami(token).await.0,
        401,
        "B stops honouring it after cache_ttl"
    );
}

#[tokio::test]
async fn without_cache_revocation_is_immediate_everywhere() {
    let dir = tessera_testkit::temp_dir();
    let dsn = tessera_testkit::fresh_dsn(Backend::Postgres, &dir).await;
    let cfg = "session:\n  cache_ttl: \"0\"\n";
    let a = TestServer::start_with(Backend::Postgres, tessera_testkit::temp_dir(), &dsn, cfg).await;
    let b = TestServer::start_with(Backend::Postgres, tessera_testkit::temp_dir(), &dsn, cfg).await;
    a.register("nocache@example.com", "correct horse battery")
        .await;
    let (_, login) = a
        .login("nocache@example.com", "correct horse battery")
        .await;
    let token = login["session_token"].as_str().unwrap();
    assert_eq!(b.whoami(token).await.0, 200);
    let r = TestServer::client()
        .delete(format!("{}/self-service/logout/api", a.public))
        .json(&json!({"session_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(b.whoami(token).await.0, 401);
}
