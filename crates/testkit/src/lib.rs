//! Test support: starts the real server (same assembly code as `tessera serve`) on loopback
//! ports, over a real SQLite file in a fresh directory or a fresh database on the PostgreSQL
//! server that `scripts/postgres.sh` runs.
//!
//! Architecture invariant: only tests depend on this crate; it never fakes a component that the
//! production binary uses.
//!
//! Upstream identity providers for social sign-in: [`peers`] runs real third-party ones
//! (the `oidc-provider` npm package), [`fake_oidc`] a Rust one that misbehaves on request.

pub mod browser;
pub mod config;
pub use tessera_emulators as emulators;
pub mod fake_oidc;
pub mod journey;
pub mod mail;
pub mod openapi;
pub mod peers;
pub mod webhook_sink;

pub use config::Config;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Both backends: every storage-touching test runs on each, as separate tests through
/// [`each_backend!`] rather than a loop over this list.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Runs `async fn name(backend: Backend)` on each backend as two tests of their own,
/// `name::sqlite` and `name::postgres`, instead of a loop inside one test: a SQLite failure no
/// longer hides the PostgreSQL result, and the two run in parallel.
///
/// ```ignore
/// each_backend!(sign_in_twice);
/// /// What the test checks.
/// async fn sign_in_twice(backend: Backend) { /* … */ }
/// ```
///
/// The invocation stands before the function's doc comment (a doc comment on a macro call
/// documents nothing). The caller needs `tokio` (with `macros`) among its dependencies.
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )+};
}

/// A fresh, empty database DSN for a backend. PostgreSQL needs `TESSERA_TEST_POSTGRES_DSN`
/// (set by `scripts/test.sh`); without it the test fails and says how to run it.
pub async fn fresh_dsn(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("tessera.db").display()),
        Backend::Postgres => {
            let admin = std::env::var("TESSERA_TEST_POSTGRES_DSN").expect(
                "TESSERA_TEST_POSTGRES_DSN is not set: run the suite with `bash scripts/test.sh`, which starts PostgreSQL and sets it",
            );
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL server");
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create a test database");
            let mut u = url::Url::parse(&admin).expect("valid TESSERA_TEST_POSTGRES_DSN");
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
    }
}

/// The `tessera` binary next to the running test (`target/<profile>/tessera`): the server in a
/// test process starts its mapper workers from it. Cargo builds it for the `tessera` crate's
/// integration tests, the only users of this crate that start servers.
pub fn tessera_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CARGO_BIN_EXE_tessera") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>/tessera
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executable lives in target/<profile>/deps");
    dir.join("tessera")
}

/// Drops a test database that [`fresh_dsn`] created (`t_<uuid>` on the test cluster), even
/// while connections to it are open (`WITH (FORCE)`). Best effort: a database that cannot be
/// dropped is left for `scripts/postgres.sh` to clean, never a reason to fail a test. Blocking
/// (it runs on a thread of its own, so it can be called from `Drop` inside a test's runtime).
pub fn drop_database(dsn: &str) {
    let Some(name) = test_database_name(dsn) else {
        return;
    };
    let Ok(admin) = std::env::var("TESSERA_TEST_POSTGRES_DSN") else {
        return;
    };
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = sqlx::Executor::execute(&mut conn, sql.as_str()).await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

/// The database name of a DSN made by [`fresh_dsn`] for PostgreSQL (`t_` and 32 hex digits),
/// and nothing else: no other database is ever dropped.
fn test_database_name(dsn: &str) -> Option<String> {
    let u = url::Url::parse(dsn).ok()?;
    if !u.scheme().starts_with("postgres") {
        return None;
    }
    let name = u.path().trim_start_matches('/');
    let hex = name.strip_prefix("t_")?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| name.to_string())
}

/// Whether a failed test's folder is kept anyway (`TESSERA_KEEP_TEST_DIRS=1` keeps every one).
fn keep_test_dirs() -> bool {
    std::thread::panicking() || std::env::var_os("TESSERA_KEEP_TEST_DIRS").is_some_and(|v| v == "1")
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub struct TestServer {
    pub public: String,
    pub admin: String,
    pub dir: PathBuf,
    pub backend: Backend,
    pub engine: tessera_server::app::EngineHandle,
    /// Answers that did not match Kratos's OpenAPI document (see [`openapi`]); `stop` and drop
    /// fail the test with them.
    pub openapi_violations: openapi::Violations,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// What this server created itself and removes when it is dropped: its PostgreSQL
    /// database (always, also after a panic) and its folder (kept when the test failed, or
    /// with `TESSERA_KEEP_TEST_DIRS=1`). A database or folder passed in belongs to the test.
    owned_dsn: Option<String>,
    owned_dir: Option<PathBuf>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(dsn) = self.owned_dsn.take() {
            drop_database(&dsn);
        }
        if let Some(dir) = self.owned_dir.take()
            && !keep_test_dirs()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        // A test that ends without `stop` still fails on answers that break Kratos's OpenAPI
        // document (unless it is already failing).
        if !std::thread::panicking() {
            self.assert_openapi_conformance();
        }
    }
}

impl TestServer {
    /// Starts a server. `extra` (a [`Config`], `json!`, or YAML text) is deep-merged over a base
    /// configuration (dsn, ports, a secret, cheap password hashes) and may set or override any
    /// key.
    pub async fn start(backend: Backend, extra: impl Into<Config>) -> TestServer {
        let dir = temp_dir();
        let dsn = fresh_dsn(backend, &dir).await;
        let mut s = Self::start_with(backend, dir.clone(), &dsn, extra).await;
        s.owned_dsn = Some(dsn);
        s.owned_dir = Some(dir);
        s
    }

    pub async fn start_with(
        backend: Backend,
        dir: PathBuf,
        dsn: &str,
        extra: impl Into<Config>,
    ) -> TestServer {
        Self::start_config(backend, dir, dsn, extra.into()).await
    }

    /// [`TestServer::start`] in `dir` with `public_serve_yaml` added under `serve.public`
    /// (indented by four spaces: TLS, CORS, the request log).
    pub async fn start_with_serve_in(
        backend: Backend,
        dir: PathBuf,
        public_serve_yaml: &str,
        extra: impl Into<Config>,
    ) -> TestServer {
        let dsn = fresh_dsn(backend, &dir).await;
        let serve = if public_serve_yaml.trim().is_empty() {
            Config::new()
        } else {
            Config::from(format!("serve:\n  public:\n{public_serve_yaml}"))
        };
        let extra = serve.with(extra.into().value().clone());
        let mut s = Self::start_config(backend, dir, &dsn, extra).await;
        s.owned_dsn = Some(dsn);
        s
    }

    async fn start_config(backend: Backend, dir: PathBuf, dsn: &str, extra: Config) -> TestServer {
        let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (pp, ap) = (
            public.local_addr().expect("addr").port(),
            admin.local_addr().expect("addr").port(),
        );
        let mut document = serde_json::json!({
            "dsn": dsn,
            "serve": {
                "public": {"base_url": format!("http://127.0.0.1:{pp}/"), "port": pp},
                "admin": {"base_url": format!("http://127.0.0.1:{ap}/"), "port": ap},
            },
            "secrets": {"default": ["test-secret-0123456789abcdef"]},
            // Cheap hashes keep the suite fast, unless a test sets its own.
            "hashers": {"argon2": {"memory": "1MB", "iterations": 1}},
        });
        config::merge(&mut document, extra.value().clone());
        // JSON is YAML: the loader reads it as it reads any tessera.yml.
        let yaml = serde_json::to_string_pretty(&document).expect("a JSON value serialises");
        let path = dir.join("tessera.yml");
        std::fs::write(&path, &yaml).expect("write config");
        let loaded = tessera_config::load(&[path], &HashMap::new())
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{yaml}"));
        let settings = tessera_config::resolve(&loaded, true, None)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let engine = tessera_server::app::build_engine_with(settings, true, Some(tessera_bin()))
            .await
            .unwrap_or_else(|e| panic!("engine: {e}"));
        let handle = tessera_server::app::EngineHandle(engine.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let listeners = tessera_server::Listeners { public, admin };
        let violations = openapi::Violations::default();
        let found = violations.clone();
        let task = tokio::spawn(async move {
            let _ = tessera_server::serve_wrapped(
                engine,
                listeners,
                async move {
                    let _ = rx.await;
                },
                move |router| openapi::wrap(router, found.clone()),
            )
            .await;
        });
        TestServer {
            public: format!("http://127.0.0.1:{pp}"),
            admin: format!("http://127.0.0.1:{ap}"),
            dir,
            backend,
            engine: handle,
            openapi_violations: violations,
            shutdown: Some(tx),
            task: Some(task),
            owned_dsn: None,
            owned_dir: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.assert_openapi_conformance();
    }

    /// Stops the server and hands its folder to the test (which removes it), for a test that
    /// goes on to run the `tessera` binary on what the server left behind.
    pub async fn stop_keeping_dir(mut self) -> PathBuf {
        self.owned_dir = None;
        let dir = self.dir.clone();
        self.stop().await;
        dir
    }

    /// Fails the test with every answer so far that did not match Kratos's OpenAPI document.
    pub fn assert_openapi_conformance(&self) {
        let found = self.openapi_violations.take();
        assert!(
            found.is_empty(),
            "{} answer(s) do not match Kratos's OpenAPI document (crates/testkit/fixtures/kratos-openapi):\n{}",
            found.len(),
            found.join("\n")
        );
    }

    /// An HTTP client that follows no redirects and keeps no cookies (a [`Browser`] keeps its
    /// own jar), so one client can serve every request of a test and reuse its connections.
    /// One per thread: a client's pooled connections belong to the tokio runtime they were
    /// opened on, each test has its own runtime, and a test thread serves one test (a
    /// process-wide client would hand a later test a connection of a runtime already gone).
    pub fn client() -> reqwest::Client {
        thread_local! {
            static CLIENT: reqwest::Client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client");
        }
        CLIENT.with(reqwest::Client::clone)
    }

    /// One admin API request (`path` from `/admin…`), with a JSON body when given: the status,
    /// the answer's JSON (`Null` when it has none) and its headers (Link, Location).
    pub async fn admin_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = Self::client().request(method.clone(), format!("{}{path}", self.admin));
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    /// [`Self::admin_request`] that must succeed (2xx); its JSON.
    pub async fn admin_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, v, _) = self.admin_request(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    /// Registers through the API flow and returns the response JSON (status must be 200).
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let c = Self::client();
        let flow: Value = c
            .get(format!("{}/self-service/registration/api", self.public))
            .send()
            .await
            .expect("init")
            .json()
            .await
            .expect("json");
        let id = flow["id"].as_str().expect("flow id");
        let resp = c
            .post(format!("{}/self-service/registration?flow={id}", self.public))
            .json(&serde_json::json!({"method": "password", "traits": {"email": email}, "password": password}))
            .send()
            .await
            .expect("submit");
        let status = resp.status();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "registration failed: {body}");
        body
    }

    /// Logs in through the API flow; returns (status, body).
    pub async fn login(&self, identifier: &str, password: &str) -> (u16, Value) {
        let c = Self::client();
        let flow: Value = c
            .get(format!("{}/self-service/login/api", self.public))
            .send()
            .await
            .expect("init")
            .json()
            .await
            .expect("json");
        let id = flow["id"].as_str().expect("flow id");
        let resp = c
            .post(format!("{}/self-service/login?flow={id}", self.public))
            .json(&serde_json::json!({"method": "password", "identifier": identifier, "password": password}))
            .send()
            .await
            .expect("submit");
        (resp.status().as_u16(), resp.json().await.expect("json"))
    }

    pub async fn whoami(&self, token: &str) -> (u16, Value) {
        let resp = Self::client()
            .get(format!("{}/sessions/whoami", self.public))
            .header("X-Session-Token", token)
            .send()
            .await
            .expect("whoami");
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }
}

/// A browser: keeps cookies between requests and never follows redirects (tests inspect them).
pub struct Browser {
    pub client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            client: TestServer::client(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Browser {
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().expect("lock").get(name).cloned()
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.header()
    }

    fn header(&self) -> String {
        self.cookies
            .lock()
            .expect("lock")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&self, resp: &reqwest::Response) {
        let mut jar = self.cookies.lock().expect("lock");
        for v in resp.headers().get_all("set-cookie") {
            let Ok(s) = v.to_str() else { continue };
            let first = s.split(';').next().unwrap_or_default();
            if let Some((k, val)) = first.split_once('=') {
                if val.is_empty() || s.contains("Max-Age=0") {
                    jar.remove(k);
                } else {
                    jar.insert(k.to_string(), val.to_string());
                }
            }
        }
    }

    pub async fn get(&self, url: &str, json: bool) -> reqwest::Response {
        let mut req = self.client.get(url).header("cookie", self.header());
        if json {
            req = req.header("accept", "application/json");
        }
        let resp = req.send().await.expect("GET");
        self.absorb(&resp);
        resp
    }

    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        json: bool,
    ) -> reqwest::Response {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .client
            .post(url)
            .header("cookie", self.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if json {
            req = req.header("accept", "application/json");
        }
        let resp = req.send().await.expect("POST");
        self.absorb(&resp);
        resp
    }
}

/// Value of the `csrf_token` node of a browser flow.
pub fn csrf_of(flow: &Value) -> String {
    flow["ui"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["attributes"]["name"] == "csrf_token"))
        .and_then(|n| n["attributes"]["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// All message ids in a flow (form-level and per node).
pub fn message_ids(flow: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for m in flow["ui"]["messages"].as_array().into_iter().flatten() {
        out.push((String::new(), m["id"].as_u64().unwrap_or(0)));
    }
    for n in flow["ui"]["nodes"].as_array().into_iter().flatten() {
        for m in n["messages"].as_array().into_iter().flatten() {
            out.push((
                n["attributes"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["id"].as_u64().unwrap_or(0),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_databases_made_by_fresh_dsn_are_ever_dropped() {
        let made =
            "postgres://u:p@127.0.0.1:54329/t_0123456789abcdef0123456789abcdef?sslmode=disable";
        assert_eq!(
            test_database_name(made).as_deref(),
            Some("t_0123456789abcdef0123456789abcdef")
        );
        for other in [
            "postgres://u:p@127.0.0.1:54329/postgres",
            "postgres://u:p@127.0.0.1:54329/t_short",
            "postgres://u:p@127.0.0.1:54329/t_0123456789abcdef0123456789abcdeg",
            "postgres://u:p@h/t_0123456789abcdef0123456789abcdef;DROP",
            "sqlite:///tmp/t_0123456789abcdef0123456789abcdef",
            "memory",
        ] {
            assert_eq!(test_database_name(other), None, "{other}");
        }
    }
}
