//! The mapper sandbox end to end: real worker processes (the built `tessera` binary in its hidden
//! worker mode) behind a `MapperPool`, fed hostile mappers.

use crate::GITHUB_MAPPER;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_mapper::{Mapper, MapperError, MapperPool, PoolConfig, worker_args};

/// Runs for minutes: a billion additions, in constant memory and at constant stack depth.
const ENDLESS: &str = "{ a: std.foldl(function(acc, x) acc + x, std.range(1, 1000000000), 0) }";

fn config() -> PoolConfig {
    PoolConfig::new(env!("CARGO_BIN_EXE_tessera").into(), worker_args())
}

/// For tests of what a mapper may do (output, memory, errors), not of how long it may take:
/// a debug-build worker on a loaded CI machine may need more than the production second.
fn pool() -> MapperPool {
    let mut cfg = config();
    cfg.timeout = Duration::from_secs(20);
    MapperPool::new(cfg)
}

/// The production time limit (1 s), for the tests of the time limit.
fn timed_pool() -> MapperPool {
    MapperPool::new(config())
}

fn mapper(source: &str) -> Mapper {
    match Mapper::compile("test mapper", source) {
        Ok(m) => m,
        Err(e) => panic!("expected the mapper to compile: {e}"),
    }
}

fn seed_claims() -> Value {
    json!({"sub": "some-identity-id-4hA8gk", "email": "foo@ory.sh", "email_verified": true, "username": "foo-user"})
}

fn seed_output() -> Value {
    json!({"identity": {"traits": {"email": "foo@ory.sh"}, "metadata_public": {"github_username": "foo-user"}}})
}

/// The pool still serves correct answers.
async fn assert_healthy(pool: &MapperPool) {
    let out = pool
        .evaluate(&mapper(GITHUB_MAPPER), &seed_claims())
        .await
        .expect("a healthy pool evaluates the seed mapper");
    assert_eq!(out, seed_output());
}

#[tokio::test]
async fn seed_github_mapper_gives_the_documented_output() {
    let pool = pool();
    let m = mapper(GITHUB_MAPPER);
    assert_eq!(
        pool.evaluate(&m, &seed_claims()).await.expect("evaluates"),
        seed_output()
    );
    // Unverified email: left out, as the seed's comment explains.
    let out = pool
        .evaluate(
            &m,
            &json!({"sub": "1", "email": "foo@ory.sh", "username": "u"}),
        )
        .await
        .expect("evaluates");
    assert_eq!(out["identity"]["traits"], json!({}));
}

#[tokio::test]
async fn endless_loop_times_out_and_the_next_evaluation_succeeds() {
    let pool = timed_pool();
    // Warm up so that the measured time is the evaluation, not a worker start.
    assert_healthy(&pool).await;
    let started = Instant::now();
    let err = pool
        .evaluate(&mapper(ENDLESS), &json!({}))
        .await
        .expect_err("must not finish");
    let elapsed = started.elapsed();
    match err {
        MapperError::Timeout { name, limit } => {
            assert_eq!(name, "test mapper");
            assert_eq!(limit, Duration::from_secs(1));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        // Generous upper bound: CI runs tests in parallel on 2 cores. What matters is that the
        // 1 s limit stopped it, not the endless loop.
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4),
        "timed out after {elapsed:?}"
    );
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn unbounded_allocation_kills_only_its_worker() {
    let pool = timed_pool();
    assert_healthy(&pool).await;
    // Concatenates 1 MB strings without end: the string outgrows the address-space limit long
    // before the time limit.
    let hog = mapper(
        "local mb = std.repeat('x', 1000000);\n{ n: std.length(std.join('', std.makeArray(1000000, function(i) mb))) }",
    );
    let started = Instant::now();
    // Usually the address-space limit kills the worker first (SIGABRT). On a loaded machine
    // (CI runs tests in parallel on 2 cores) the 1 s time limit can win the race; both stop
    // the mapper and replace the worker, which is what matters.
    match pool.evaluate(&hog, &json!({})).await {
        Err(MapperError::ResourceLimit { name, detail }) => {
            assert_eq!(name, "test mapper");
            assert!(detail.contains("SIGABRT"), "{detail}");
            assert!(detail.contains("memory limit 256 MiB"), "{detail}");
        }
        Err(MapperError::Timeout { name, .. }) => assert_eq!(name, "test mapper"),
        other => panic!("expected ResourceLimit (or Timeout under load), got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn the_default_memory_limit_leaves_room_for_real_work() {
    let pool = pool();
    // A 50 MB string, and a mapper parsed on the worker's large parse stack.
    let m = mapper(
        "local s = std.join('', std.makeArray(1000, function(i) std.repeat('x', 50000)));\n{ n: std.length(s) }",
    );
    let out = pool
        .evaluate(&m, &json!({}))
        .await
        .expect("fits in 256 MiB");
    assert_eq!(out, json!({"n": 50_000_000}));
}

#[tokio::test]
async fn the_deepest_accepted_mapper_evaluates() {
    let pool = pool();
    // 19,000 nested negations: within the parser's token cap, and evaluated by a recursion that
    // jrsonnet does not grow the stack for; the worker gives such mappers a large stack.
    let deep = mapper(&format!("{{ a: {}1 }}", "-".repeat(19_000)));
    let out = pool.evaluate(&deep, &json!({})).await.expect("evaluates");
    assert_eq!(out, json!({"a": 1}));
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn imports_are_refused_even_when_the_file_exists() {
    let dir = std::env::temp_dir().join(format!("tessera-sandbox-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let lib = dir.join("secret.libsonnet");
    std::fs::write(&lib, "{ secret: 'hunter2' }").expect("write");
    let pool = pool();
    for src in [
        format!("import '{}'", lib.display()),
        format!("{{ s: importstr '{}' }}", lib.display()),
        format!("{{ s: importbin '{}' }}", lib.display()),
    ] {
        match pool.evaluate(&mapper(&src), &json!({})).await {
            Err(MapperError::Runtime { message, .. }) => {
                assert!(
                    message.contains("imports are not allowed in mappers"),
                    "{message}"
                );
                assert!(!message.contains("hunter2"), "{message}");
            }
            other => panic!("{src}: expected a refusal, got {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ten_mebibytes_of_output_are_refused() {
    let pool = pool();
    let m = mapper("{ identity: { traits: { blob: std.repeat('x', 10 * 1024 * 1024) } } }");
    match pool.evaluate(&m, &json!({})).await {
        Err(MapperError::OutputTooLarge { bytes, cap, .. }) => {
            assert_eq!(cap, 256 * 1024);
            assert!(bytes > 10 * 1024 * 1024, "{bytes}");
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
    // Many small strings reach the cap too.
    let m = mapper("{ a: std.makeArray(100000, function(i) 'xxxxxxxxxx') }");
    assert!(
        matches!(
            pool.evaluate(&m, &json!({})).await,
            Err(MapperError::OutputTooLarge { .. })
        ),
        "an array of 1.2 MB of JSON must be refused"
    );
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn output_just_under_the_cap_is_returned() {
    let mut cfg = config();
    cfg.output_cap = 1000;
    let pool = MapperPool::new(cfg);
    // {"a":"xxx…"}: 8 bytes of JSON around the string.
    let fits = mapper("{ a: std.repeat('x', 992) }");
    let out = pool
        .evaluate(&fits, &json!({}))
        .await
        .expect("exactly 1000 bytes");
    assert_eq!(serde_json::to_vec(&out).expect("json").len(), 1000);
    let over = mapper("{ a: std.repeat('x', 993) }");
    match pool.evaluate(&over, &json!({})).await {
        Err(MapperError::OutputTooLarge { bytes, cap, .. }) => {
            assert_eq!((bytes, cap), (1001, 1000))
        }
        other => panic!("expected OutputTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn output_must_be_an_object() {
    let pool = pool();
    for (src, found) in [("[1]", "an array"), ("'x'", "a string"), ("null", "null")] {
        match pool.evaluate(&mapper(src), &json!({})).await {
            Err(MapperError::NotAnObject { found: f, .. }) => assert_eq!(f, found, "{src}"),
            other => panic!("{src}: expected NotAnObject, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn error_expression_is_a_runtime_error() {
    let pool = pool();
    match pool
        .evaluate(&mapper("{\n  identity: error 'boom',\n}"), &json!({}))
        .await
    {
        Err(e @ MapperError::Runtime { .. }) => {
            let text = e.to_string();
            assert!(text.contains("boom"), "{text}");
            assert!(text.contains("line 2 column 13"), "{text}");
        }
        other => panic!("expected Runtime, got {other:?}"),
    }
    assert_healthy(&pool).await;
}

#[test]
fn syntax_errors_name_the_line() {
    let src = "local claims = std.extVar('claims');\n{\n  identity: {\n    traits: { email: claims.email\n  },\n}\n";
    match Mapper::compile("provider `github` mapper", src) {
        Err(e @ MapperError::Syntax { line, .. }) => {
            assert_eq!(line, 6, "{e}");
            assert!(
                e.to_string()
                    .starts_with("provider `github` mapper, line 6 column "),
                "{e}"
            );
        }
        other => panic!("expected Syntax, got {other:?}"),
    }
}

#[tokio::test]
async fn fifty_concurrent_evaluations_are_correct_while_one_times_out() {
    let pool = timed_pool();
    let m = mapper(
        "local c = std.extVar('claims'); { identity: { traits: { email: c.email, n: c.n * 2 } } }",
    );
    let hostile = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.evaluate(&mapper(ENDLESS), &json!({})).await })
    };
    let started = Instant::now();
    let mut calls = Vec::new();
    for n in 0..50 {
        let pool = pool.clone();
        let m = m.clone();
        calls.push(tokio::spawn(async move {
            let claims = json!({"email": format!("user{n}@example.com"), "n": n});
            (n, pool.evaluate(&m, &claims).await)
        }));
    }
    for call in calls {
        let (n, out) = call.await.expect("task");
        let out = out.unwrap_or_else(|e| panic!("evaluation {n} failed: {e}"));
        assert_eq!(
            out,
            json!({"identity": {"traits": {"email": format!("user{n}@example.com"), "n": n * 2}}})
        );
    }
    // The other worker kept serving while one was stuck.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match hostile.await.expect("task") {
        Err(MapperError::Timeout { .. }) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn sources_are_resent_to_replaced_workers() {
    // One worker: it learns two mappers, is replaced after a timeout, and must be taught again.
    let mut cfg = config();
    cfg.workers = 1;
    let pool = MapperPool::new(cfg);
    let a = mapper("{ which: 'a', e: std.extVar('claims').e }");
    let b = mapper("{ which: 'b', e: std.extVar('claims').e }");
    for round in 0..2 {
        for (m, which) in [(&a, "a"), (&b, "b"), (&a, "a")] {
            let out = pool
                .evaluate(m, &json!({"e": round}))
                .await
                .unwrap_or_else(|e| panic!("round {round}, mapper {which}: {e}"));
            assert_eq!(out, json!({"which": which, "e": round}));
        }
        if round == 0 {
            assert!(matches!(
                pool.evaluate(&mapper(ENDLESS), &json!({})).await,
                Err(MapperError::Timeout { .. })
            ));
        }
    }
}

#[tokio::test]
async fn a_cancelled_evaluation_does_not_leak_its_answer_to_the_next_caller() {
    let mut cfg = config();
    cfg.workers = 1;
    let pool = MapperPool::new(cfg);
    assert_healthy(&pool).await;
    // Give up on a slow evaluation halfway: its worker must not be reused with the answer
    // still to come.
    let slow = mapper("{ n: std.foldl(function(acc, x) acc + x, std.range(1, 3000000), 0) }");
    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), pool.evaluate(&slow, &json!({}))).await;
    assert!(gave_up.is_err(), "the slow mapper finished within 100 ms");
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn callers_wait_a_bounded_time_for_a_worker() {
    let mut cfg = config();
    cfg.workers = 1;
    // Long enough that the four endless requests still hold the worker when the fifth comes,
    // however slowly a loaded machine dispatches them.
    cfg.timeout = Duration::from_millis(2000);
    cfg.queue_timeout = Duration::from_millis(200);
    let pool = MapperPool::new(cfg);
    assert_healthy(&pool).await;
    // One worker holds four requests at most (the one it evaluates and three queued): occupy
    // them all.
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.evaluate(&mapper(ENDLESS), &json!({})).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    match pool.evaluate(&mapper(GITHUB_MAPPER), &seed_claims()).await {
        Err(MapperError::Unavailable(msg)) => assert!(msg.contains("busy"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    // The first times out; those queued behind it are moved until their own queue time is up.
    for b in busy {
        match b.await.expect("task") {
            Err(MapperError::Timeout { .. } | MapperError::Unavailable(_)) => {}
            other => panic!("expected Timeout or Unavailable, got {other:?}"),
        }
    }
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn a_request_queued_behind_a_hostile_one_is_moved_and_succeeds() {
    let mut cfg = config();
    cfg.workers = 1;
    let pool = MapperPool::new(cfg);
    assert_healthy(&pool).await;
    let hostile = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.evaluate(&mapper(ENDLESS), &json!({})).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Waits behind the endless mapper on the only worker, which is then killed: it had not
    // started, so it is evaluated on the replacement.
    let out = pool
        .evaluate(&mapper(GITHUB_MAPPER), &seed_claims())
        .await
        .expect("moved to a fresh worker");
    assert_eq!(out, seed_output());
    assert!(matches!(
        hostile.await.expect("task"),
        Err(MapperError::Timeout { .. })
    ));
}

#[tokio::test]
async fn a_missing_worker_program_is_unavailable() {
    let pool = MapperPool::new(PoolConfig::new(
        "/nonexistent/tessera".into(),
        worker_args(),
    ));
    match pool.evaluate(&mapper(GITHUB_MAPPER), &seed_claims()).await {
        Err(MapperError::Unavailable(msg)) => {
            assert!(msg.contains("/nonexistent/tessera"), "{msg}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
