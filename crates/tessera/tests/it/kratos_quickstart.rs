//! Kratos's own quickstart (contrib/quickstart/kratos/email-password, kept verbatim in
//! crates/config/tests/fixtures/kratos-quickstart) starts the real `tessera` binary unchanged:
//! only what the quickstart's docker-compose sets by environment too (the DSN, the ports, the
//! schema's path inside the container) comes from environment variables, and the database is
//! migrated first as its `kratos-migrate` service does (issue 13).
//!
//! It lists an Expo app's `exp://localhost:8081/--/Callback` among its return URLs: a browser
//! flow asked to return there does, and script schemes or unlisted app URLs are refused.

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera_testkit::journey::{flow_id_of, location};
use tessera_testkit::{Browser, TestServer, csrf_of};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const EXPO: &str = "exp://localhost:8081/--/Callback";

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/kratos-quickstart/email-password")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Running {
    child: Child,
    public: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tessera serve --config kratos.yml` with the file untouched; retried on other ports when a
/// port found free was taken before the server bound it.
async fn start_quickstart() -> Running {
    let dir = tessera_testkit::temp_dir();
    let schema = format!(
        "file://{}",
        quickstart().join("identity.schema.json").display()
    );
    let dsn = format!("sqlite://{}?mode=rwc", dir.join("kratos.db").display());
    // The quickstart's `kratos-migrate` service: `migrate sql -e --yes` with the DSN variable.
    let out = Command::new(BIN)
        .args(["migrate", "sql", "up", "-e", "--yes"])
        .env("DSN", &dsn)
        .output()
        .expect("run tessera migrate");
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..3 {
        let (pp, ap) = (free_port(), free_port());
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(quickstart().join("kratos.yml"))
            .current_dir(&dir)
            .env(
                "DSN",
                format!("sqlite://{}?mode=rwc", dir.join("kratos.db").display()),
            )
            .env("SERVE_PUBLIC_PORT", pp.to_string())
            .env("SERVE_PUBLIC_BASE_URL", format!("http://127.0.0.1:{pp}/"))
            .env("SERVE_ADMIN_PORT", ap.to_string())
            .env(
                "IDENTITY_SCHEMAS",
                json!([{"id": "default", "url": schema}]).to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tessera");
        let public = format!("http://127.0.0.1:{pp}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{public}/health/ready")).await
                && r.status() == 200
            {
                return Running { child, public };
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        eprintln!(
            "tessera did not become ready with the quickstart config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("tessera did not start with Kratos's email-password quickstart kratos.yml");
}

#[tokio::test]
async fn email_password_quickstart_serves_flows_and_returns_to_the_expo_app() {
    let s = start_quickstart().await;
    let c = TestServer::client();

    // A native app's login flow, as the quickstart's Expo app creates it.
    let r = c
        .get(format!("{}/self-service/login/api", s.public))
        .send()
        .await
        .expect("login flow");
    assert_eq!(r.status(), 200);
    let flow: Value = r.json().await.expect("json");
    let names: Vec<&str> = flow["ui"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["attributes"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"identifier") && names.contains(&"password"),
        "{flow}"
    );

    // A browser flow goes to the quickstart's UI (ui_url from the file).
    let b = Browser::default();
    let r = b
        .get(
            &format!(
                "{}/self-service/registration/browser?return_to={EXPO}",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with("http://127.0.0.1:4455/registration?flow="),
        "{loc}"
    );
    let id = flow_id_of(&loc);
    let reg = flow_json_at(&b, &s.public, "registration", &id).await;
    assert_eq!(reg["return_to"], EXPO);
    // The hosted page's CSP lets its form end at the app's scheme (browsers apply
    // `form-action` to the redirect after the POST too), and at no other non-web scheme.
    let page = b
        .get(&format!("{}/ui/registration?flow={id}", s.public), false)
        .await;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let form_action = csp
        .split(';')
        .find(|d| d.trim_start().starts_with("form-action"))
        .unwrap_or_default();
    assert!(form_action.split_whitespace().any(|t| t == "exp:"), "{csp}");
    assert!(
        !form_action.contains("javascript:") && !form_action.contains("data:"),
        "{csp}"
    );
    let r = b
        .post_form(
            reg["ui"]["action"].as_str().expect("action"),
            &[
                ("csrf_token", &csrf_of(&reg)),
                ("method", "password"),
                ("traits.email", "expo@example.com"),
                ("password", "a long and unguessable password 7"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    // The registration's session hook signs in; the quickstart's `show_verification_ui`
    // sends the browser on to its verification page (as Kratos does), and the verification
    // flow keeps the way back to the app for when the address is verified.
    let loc = location(&r);
    assert!(
        loc.starts_with("http://127.0.0.1:4455/verification?flow="),
        "{loc}"
    );
    let verification = flow_json_at(&b, &s.public, "verification", &flow_id_of(&loc)).await;
    assert_eq!(verification["return_to"], EXPO, "{verification}");
    assert_eq!(verification["state"], "sent_email");

    // Login with a return_to below the listed app path works too; others are refused.
    let r = c
        .get(format!(
            "{}/self-service/login/api?return_to={EXPO}/deeper",
            s.public
        ))
        .send()
        .await
        .expect("login flow");
    assert_eq!(r.status(), 200);
    for refused in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "exp://localhost:8081/--/Other",
        "exp://evil.example:8081/--/Callback",
        "myapp://localhost:8081/--/Callback",
    ] {
        let url = format!(
            "{}/self-service/login/api?return_to={}",
            s.public,
            url_escape(refused)
        );
        let r = c.get(url).send().await.expect("login flow");
        assert_eq!(r.status(), 400, "{refused}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            body["error"]["id"], "self_service_flow_return_to_forbidden",
            "{refused}: {body}"
        );
    }
}

/// `journey::flow_json` for a server that is not a [`TestServer`].
async fn flow_json_at(b: &Browser, public: &str, kind: &str, id: &str) -> Value {
    b.get(&format!("{public}/self-service/{kind}/flows?id={id}"), true)
        .await
        .json()
        .await
        .expect("flow json")
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
