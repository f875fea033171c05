//! The HTTP edge, over real listeners: request ids, CORS (Kratos's keys and the OpenID
//! Provider's per-app origins), metrics, the error shape of answers made by layers, security
//! headers, timeouts and TLS.

use serde_json::{Value, json};
use std::time::Duration;
use tessera_testkit::{Backend, TestServer};

fn c() -> reqwest::Client {
    TestServer::client()
}

/// A server whose public API allows `https://app.example.com` and `https://*.apps.example.com`.
async fn cors_server() -> TestServer {
    TestServer::start_with_serve_in(
        Backend::Sqlite,
        tessera_testkit::temp_dir(),
        "    cors:\n      enabled: true\n      allowed_origins:\n        - https://app.example.com\n        - https://*.apps.example.com\n      max_age: 60\n",
        "",
    )
    .await
}

async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    c().request(reqwest::Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn request_ids_are_generated_kept_and_replaced_when_unusable() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let r = c()
        .get(format!("{}/health/alive", s.public))
        .send()
        .await
        .unwrap();
    let id = header(&r, "x-request-id").expect("a generated request id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let r = c()
        .get(format!("{}/sessions/whoami", s.public))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-request-id").as_deref(), Some("trace-abc-123"));

    let long = "x".repeat(500);
    let r = c()
        .get(format!("{}/health/alive", s.admin))
        .header("X-Request-Id", &long)
        .send()
        .await
        .unwrap();
    let id = header(&r, "x-request-id").expect("replaced");
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    s.stop().await;
}

#[tokio::test]
async fn kratos_cors_answers_allowed_origins_and_refuses_others() {
    let s = cors_server().await;
    let url = format!("{}/sessions/whoami", s.public);
    for origin in ["https://app.example.com", "https://team.apps.example.com"] {
        let r = preflight(&url, origin, "GET", "x-session-token").await;
        assert!(r.status().is_success(), "{}", r.status());
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
        assert_eq!(
            header(&r, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let allowed = header(&r, "access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(allowed.contains("x-session-token"), "{allowed}");
        assert_eq!(header(&r, "access-control-max-age").as_deref(), Some("60"));
    }
    for origin in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://apps.example.com",
    ] {
        let r = preflight(&url, origin, "GET", "x-session-token").await;
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            None,
            "{origin} allowed"
        );
    }
    // The actual request carries the headers too, and exposes what Kratos exposes.
    let r = c()
        .get(&url)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let exposed = header(&r, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("content-type"), "{exposed}");
    s.stop().await;
}

#[tokio::test]
async fn without_cors_config_no_origin_is_allowed() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let r = preflight(
        &format!("{}/sessions/whoami", s.public),
        "https://app.example.com",
        "GET",
        "x-session-token",
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    s.stop().await;
}

#[tokio::test]
async fn the_op_answers_cors_for_browser_apps_redirect_origins_only() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let created = c()
        .post(format!("{}/admin/clients", s.admin))
        .json(&json!({
            "client_name": "SPA",
            "app_type": "spa",
            "redirect_uris": ["https://spa.example.com/callback"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let web = c()
        .post(format!("{}/admin/clients", s.admin))
        .json(&json!({
            "client_name": "Server app",
            "app_type": "traditional",
            "redirect_uris": ["https://server.example.com/callback"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(web.status(), 201);
    for path in [
        "/oidc/token",
        "/oidc/me",
        "/oidc/jwks",
        "/oidc/.well-known/openid-configuration",
        "/oidc/token/revocation",
    ] {
        let url = format!("{}{path}", s.public);
        let r = preflight(&url, "https://spa.example.com", "POST", "content-type").await;
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("https://spa.example.com"),
            "{path}"
        );
        assert_eq!(
            header(&r, "access-control-allow-credentials"),
            None,
            "no cookies cross-origin"
        );
        for origin in ["https://server.example.com", "https://evil.example"] {
            let r = preflight(&url, origin, "POST", "content-type").await;
            assert_eq!(
                header(&r, "access-control-allow-origin"),
                None,
                "{path} allowed {origin}"
            );
        }
    }
    // Introspection is for confidential apps' backends: never cross-origin.
    let r = preflight(
        &format!("{}/oidc/token/introspection", s.public),
        "https://spa.example.com",
        "POST",
        "content-type",
    )
    .await;
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    // A real token request from the SPA's origin carries the header (the app is unknown).
    let r = c()
        .post(format!("{}/oidc/token", s.public))
        .header("Origin", "https://spa.example.com")
        .form(&[("grant_type", "authorization_code"), ("code", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://spa.example.com")
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_scraped_from_the_admin_listener() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    for _ in 0..3 {
        c().get(format!("{}/health/alive", s.public))
            .send()
            .await
            .unwrap();
    }
    c().get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    s.register("metrics@example.com", "a long enough password 123")
        .await;
    let (status, _) = s
        .login("metrics@example.com", "a long enough password 123")
        .await;
    assert_eq!(status, 200);
    let r = c()
        .get(format!("{}/metrics/prometheus", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        header(&r, "content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for needle in [
        "# TYPE tessera_http_requests_total counter",
        "# TYPE tessera_http_request_duration_seconds histogram",
        "route=\"/health/alive\"",
        "route=\"/sessions/whoami\"",
        "status=\"401\"",
        "tessera_sessions_active",
        "tessera_build_info",
        "tessera_registrations_total{method=\"password\"",
        "tessera_signins_total{method=\"password\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    // Raw paths never become labels (bounded cardinality).
    c().get(format!("{}/no/such/path/12345", s.public))
        .send()
        .await
        .unwrap();
    let text = c()
        .get(format!("{}/metrics/prometheus", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("12345"), "a raw path became a label");
    assert!(text.contains("route=\"unmatched\""));
    // The dashboard shipped in docs/ reads only metrics Tessera records.
    let dashboard = include_str!("../../../../docs/grafana-dashboard.json");
    let used: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tessera_"))
        .map(|w| {
            w.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
        })
        .collect();
    assert!(used.len() >= 8, "{used:?}");
    for m in &used {
        assert!(
            tessera_server::edge::metrics::NAMES.contains(m),
            "the dashboard uses {m}, which Tessera does not record"
        );
    }
    // Not on the public listener.
    let r = c()
        .get(format!("{}/metrics/prometheus", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn answers_made_by_layers_keep_the_surface_error_shape() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = c()
        .post(format!("{}/self-service/login?flow=x", s.public))
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 413, "{v}");
    assert!(v["error"]["reason"].as_str().unwrap().contains("larger"));

    let r = c()
        .post(format!("{}/oidc/token", s.public))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "{v}");

    let r = c()
        .delete(format!("{}/schemas", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(header(&r, "allow").is_some(), "Allow kept");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 405, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let r = c()
        .get(format!("{}/sessions/whoami", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(header(&r, "x-frame-options").as_deref(), Some("DENY"));
    assert!(
        header(&r, "content-security-policy")
            .unwrap_or_default()
            .starts_with("default-src 'none'")
    );
    let r = c()
        .get(format!("{}/ui/error?id=nope", s.public))
        .send()
        .await
        .unwrap();
    assert!(
        header(&r, "content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let csp = header(&r, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    s.stop().await;
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_answered_503() {
    // Password hashing that takes far longer than the timeout.
    let s = TestServer::start(
        Backend::Sqlite,
        "hashers:\n  argon2:\n    memory: 128MB\n    iterations: 12\nlimits:\n  request_timeout: 1s\n",
    )
    .await;
    let flow: Value = c()
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c()
        .post(format!(
            "{}/self-service/registration?flow={}",
            s.public,
            flow["id"].as_str().unwrap()
        ))
        .json(&json!({
            "method": "password",
            "password": "a long enough password 123",
            "traits": {"email": "slow@example.com"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("limits.request_timeout"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start(Backend::Sqlite, "limits:\n  header_read_timeout: 300ms\n").await;
    let addr = s.public.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /health/alive HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the connection stayed open past the header timeout"
    );
    s.stop().await;
}

/// A slow reader (issue 21, scenario 5): it pipelines requests for the stylesheet and reads
/// nothing, so the server's writes stall. Before `limits.write_stall_timeout` the connection
/// was held for as long as the client liked; now the server gives up on it.
#[tokio::test]
async fn a_client_that_reads_nothing_is_let_go_after_the_write_stall_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start(Backend::Sqlite, "limits:\n  write_stall_timeout: 300ms\n").await;
    let addr = s.public.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let one = "GET /ui/static/tessera.css HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(one.repeat(1500).as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection stayed open with its writes stalled ({} bytes read)",
        got.len()
    );
    // It was closed part way: not every answer was written.
    let css = c()
        .get(format!("{}/ui/static/tessera.css", s.public))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    assert!(got.len() < 1500 * css, "{} bytes", got.len());
    s.stop().await;
}

/// Issue 21, scenario 5: a listener keeps at most `limits.max_connections` connections; the
/// next ones are closed as soon as they are accepted, and a place freed is taken again.
#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start(Backend::Sqlite, "limits:\n  max_connections: 3\n").await;
    let addr = s.public.trim_start_matches("http://").to_string();
    // Idle connections, one at a time: each either stays open (held) or is closed at once.
    let (mut held, mut closed) = (Vec::new(), 0);
    for _ in 0..6 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(300), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            _ => held.push(conn),
        }
    }
    assert!(held.len() <= 3, "{} connections held", held.len());
    assert!(closed >= 3, "{closed} closed");
    // Once they are gone, requests are served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = fresh
        .get(format!("{}/health/alive", s.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// Opens `n` idle connections to `addr` from `from`, one at a time, and keeps those the server
/// holds; the others it closed at once.
async fn hold_connections(
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
    n: usize,
) -> (Vec<tokio::net::TcpStream>, usize) {
    use tokio::io::AsyncReadExt;
    let (mut held, mut closed) = (Vec::new(), 0);
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let mut conn = socket.connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(300), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            _ => held.push(conn),
        }
    }
    (held, closed)
}

/// A request on a new connection from `from`.
async fn health_from(addr: std::net::SocketAddr, from: std::net::IpAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((from, 0).into()).ok()?;
    let mut conn = socket.connect(addr).await.ok()?;
    conn.write_all(b"GET /health/alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got))
        .await
        .ok()?
        .ok()?;
    String::from_utf8(got).ok()
}

/// Issue 21, scenario 5 (soak): one address holding every connection place locked newcomers
/// out. Now one address holds at most `limits.max_connections_per_address`, and another
/// address is still served while it does; behind a proxy (`trusted_proxy_hops` > 0) the limit
/// is not applied, since every peer is then the proxy.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let flood: std::net::IpAddr = [127, 0, 0, 2].into();
    let newcomer: std::net::IpAddr = [127, 0, 0, 3].into();
    let s = TestServer::start(
        Backend::Sqlite,
        "limits:\n  max_connections: 8\n  max_connections_per_address: 3\n",
    )
    .await;
    let addr: std::net::SocketAddr = s.public.trim_start_matches("http://").parse().unwrap();
    let (held, closed) = hold_connections(addr, flood, 8).await;
    assert_eq!(held.len(), 3, "the flooding address holds {}", held.len());
    assert_eq!(closed, 5);
    let answer = health_from(addr, newcomer).await.unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "newcomer got {answer:?}"
    );
    // The flood's places come back when its connections end.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (again, _) = hold_connections(addr, flood, 3).await;
    assert_eq!(again.len(), 3, "places were not given back");
    let metrics = c()
        .get(format!("{}/metrics/prometheus", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("tessera_connections_refused_total{limit=\"max_connections_per_address\"}"),
        "{metrics}"
    );
    s.stop().await;

    let proxied = TestServer::start(
        Backend::Sqlite,
        "limits:\n  max_connections: 8\n  max_connections_per_address: 3\n  trusted_proxy_hops: 1\n",
    )
    .await;
    let addr: std::net::SocketAddr = proxied
        .public
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (held, _) = hold_connections(addr, flood, 6).await;
    assert_eq!(
        held.len(),
        6,
        "a proxy's connections were limited per address"
    );
    proxied.stop().await;
}

/// Issue 21, scenario 5: the listeners' accept queue holds a burst of connections. With
/// tokio's default backlog (1,024) the connections past it stayed half-open in the kernel for
/// seconds, out of reach of the header read timeout; `Listeners::bind` asks for 4,096 (the
/// kernel caps it at `net.core.somaxconn`).
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_accept_queue() {
    let listeners = tessera_server::Listeners::bind(("127.0.0.1", 0), ("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listeners.public.local_addr().unwrap();
    let burst = 1500usize;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    // Nothing accepts while the burst arrives.
    let mut clients = Vec::new();
    for _ in 0..burst {
        clients.push(tokio::spawn(tokio::net::TcpStream::connect(addr)));
    }
    let mut held = Vec::new();
    for c in clients {
        if let Ok(Ok(s)) = c.await {
            held.push(s);
        }
    }
    let mut accepted = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(200), listeners.public.accept()).await
    {
        accepted += 1;
    }
    assert!(
        accepted >= burst.min(somaxconn),
        "{accepted} of {burst} connections were waiting to be accepted (somaxconn {somaxconn})"
    );
}

/// A self-signed certificate for 127.0.0.1 and localhost.
fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

#[tokio::test]
async fn tls_listeners_serve_https_with_the_configured_certificate() {
    use base64::Engine;
    let (cert, key) = self_signed();
    let dir = tessera_testkit::temp_dir();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    let tls = format!(
        "    tls:\n      cert:\n        path: cert.pem\n      key:\n        base64: {key_b64}\n"
    );
    let s = TestServer::start_with_serve_in(Backend::Sqlite, dir, &tls, "").await;
    let https = s.public.replace("http://", "https://");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("{https}/health/alive"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to the TLS port gets no answer.
    assert!(
        c().get(format!("{}/health/alive", s.public))
            .send()
            .await
            .is_err()
    );
    // A client that does not trust the certificate refuses it.
    assert!(
        reqwest::Client::new()
            .get(format!("{https}/health/alive"))
            .send()
            .await
            .is_err()
    );
    s.stop().await;
}

#[test]
fn a_bad_certificate_stops_the_binary_with_its_key_and_line() {
    let dir = tessera_testkit::temp_dir();
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    let path = dir.join("tessera.yml");
    std::fs::write(
        &path,
        "dsn: sqlite://db.sqlite?mode=rwc\nserve:\n  public:\n    port: 0\n    tls:\n      cert:\n        path: cert.pem\n      key:\n        path: missing.pem\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(&dir)
        .output()
        .expect("run tessera");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "serve.public.tls.cert",
        "serve.public.tls.key.path",
        "missing.pem",
        "tessera.yml:",
    ] {
        assert!(err.contains(needle), "missing {needle} in:\n{err}");
    }
}
