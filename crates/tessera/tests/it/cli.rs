//! The real `tessera` binary: zero-config `serve --dev`, restart persistence, graceful shutdown,
//! migrations, identity import, and configuration errors.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    public: String,
    admin: String,
}

fn spawn_dev(dir: &Path, ports: (u16, u16)) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--dev"])
        .current_dir(dir)
        .env("SERVE_PUBLIC_PORT", ports.0.to_string())
        .env("SERVE_ADMIN_PORT", ports.1.to_string())
        .env("HASHERS_ARGON2_MEMORY", "1MB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tessera");
    Server {
        child,
        public: format!("http://127.0.0.1:{}", ports.0),
        admin: format!("http://127.0.0.1:{}", ports.1),
    }
}

/// Starts `tessera serve --dev` in `dir` on two free ports and waits until it is ready. A port
/// found free can be taken by another test before the server binds it; then the server exits
/// and this tries again with new ports.
async fn start_dev(dir: &Path) -> Server {
    for _ in 0..3 {
        let mut s = spawn_dev(dir, (free_port(), free_port()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(format!("{}/health/ready", s.public)).await
                && r.status() == 200
            {
                return s;
            }
            if s.child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = s.child.kill();
        let out = s.child.wait_with_output().unwrap();
        eprintln!(
            "tessera serve --dev did not become ready; retrying with other ports:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("tessera serve --dev did not become ready in three tries");
}

fn terminate(mut s: Server) -> std::process::Output {
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if s.child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = s.child.kill();
    s.child.wait_with_output().unwrap()
}

#[tokio::test]
async fn dev_server_from_zero_config_keeps_sessions_across_restarts() {
    let dir = tessera_testkit::temp_dir();
    let s = start_dev(&dir).await;
    let reg = {
        let c = reqwest::Client::new();
        let flow: Value = c
            .get(format!("{}/self-service/registration/api", s.public))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        c.post(format!("{}/self-service/registration?flow={}", s.public, flow["id"].as_str().unwrap()))
            .json(&json!({"method": "password", "traits": {"email": "cli@example.com"}, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let token = reg["session_token"]
        .as_str()
        .expect("zero-config --dev issues a session after sign-up")
        .to_string();
    let out = terminate(s);
    assert!(
        out.status.success(),
        "graceful exit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("public API: http://127.0.0.1:") && stdout.contains("admin API:"),
        "{stdout}"
    );

    assert!(dir.join("tessera.db").exists());
    let secret = std::fs::read_to_string(dir.join("tessera.secret")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.join("tessera.secret"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    let s = start_dev(&dir).await;
    let r = reqwest::Client::new()
        .get(format!("{}/sessions/whoami", s.public))
        .header("X-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<Value> = reqwest::get(format!("{}/admin/identities", s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["traits"]["email"], "cli@example.com");
    terminate(s);
    assert_eq!(
        std::fs::read_to_string(dir.join("tessera.secret")).unwrap(),
        secret,
        "secret generated once"
    );
}

#[tokio::test]
async fn identities_import_reports_each_failure_and_keeps_going() {
    let dir = tessera_testkit::temp_dir();
    let s = start_dev(&dir).await;
    let good = dir.join("many.json");
    std::fs::write(
        &good,
        json!([
            {"schema_id": "default", "traits": {"email": "i1@example.com"}, "credentials": {"password": {"config": {"hashed_password": "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"}}}},
            {"schema_id": "default", "traits": {"email": "i2@example.com"}},
            {"schema_id": "default", "traits": {"email": "i3@example.com"}, "credentials": {"password": {"config": {"hashed_password": "not-a-hash"}}}}
        ])
        .to_string(),
    )
    .unwrap();
    let single = dir.join("one.json");
    std::fs::write(
        &single,
        json!({"traits": {"email": "i4@example.com"}}).to_string(),
    )
    .unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\"traits\": ").unwrap();

    let out = Command::new(BIN)
        .args(["identities", "import", "--endpoint", &s.admin])
        .arg(&good)
        .arg(&broken)
        .arg(&single)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stdout.contains("3 imported, 2 failed"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("many.json[2]") && stderr.contains("hashed_password"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.json: not valid JSON"), "{stderr}");

    let out = Command::new(BIN)
        .args(["identities", "list", "--endpoint", &s.admin])
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 3);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["identities", "get", &id, "--endpoint", &s.admin])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["identities", "delete", &id, "--endpoint", &s.admin])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["identities", "get", &id, "--endpoint", &s.admin])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    terminate(s);
}

#[test]
fn migrate_sql_up_status_down() {
    let dir = tessera_testkit::temp_dir();
    let dsn = format!("sqlite://{}?mode=rwc", dir.join("m.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("DSN", &dsn)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = run(&["migrate", "sql", "status", "-e"]);
    assert!(
        ok && out.contains("Pending") && !out.contains("Applied"),
        "{out}"
    );
    let (ok, out) = run(&["migrate", "sql", "up", "-e"]);
    assert!(
        !ok && out.contains("--yes"),
        "refuses without a terminal: {out}"
    );
    // Every embedded migration: one `.up.sql` per version in the store's sqlite folder.
    let n = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/sqlite"
    ))
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".up.sql"))
    })
    .count();
    let (ok, out) = run(&["migrate", "sql", "up", "-e", "--yes"]);
    assert!(
        ok && out.contains(&format!("Applied {n} migration(s)")),
        "{out}"
    );
    let (_, out) = run(&["migrate", "sql", "status", "-e"]);
    assert!(out.contains("Applied") && !out.contains("Pending"), "{out}");
    let steps = n.to_string();
    let (ok, out) = run(&["migrate", "sql", "down", "-e", "--yes", "--steps", &steps]);
    assert!(ok && out.contains(&format!("Reverted {n}")), "{out}");
    let (_, out) = run(&["migrate", "sql", "status", "-e"]);
    assert!(out.contains("Pending") && !out.contains("Applied"), "{out}");
    // Kratos's form: `migrate sql <DSN> --yes`.
    let (ok, out) = run(&["migrate", "sql", &dsn, "--yes"]);
    assert!(
        ok && out.contains(&format!("Applied {n} migration(s)")),
        "{out}"
    );
    let (ok, out) = run(&["migrate", "sql", "sideways"]);
    assert!(!ok && out.contains("use up, down or status"), "{out}");
}

#[test]
fn serve_refuses_a_bad_config_naming_key_and_line() {
    let dir = tessera_testkit::temp_dir();
    let cfg = dir.join("tessera.yml");
    std::fs::write(
        &cfg,
        "dsn: memory\nsecrets:\n  default:\n    - short\nserve:\n  public:\n    port: 99999\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`serve.public.port`") && err.contains("tessera.yml:7"),
        "{err}"
    );

    std::fs::write(&cfg, "dsn: memory\nsecrets:\n  default:\n    - short\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`secrets.default.0`") && err.contains("tessera.yml:4") && err.contains("16"),
        "{err}"
    );

    // An unmigrated database outside --dev is refused with the command that fixes it.
    std::fs::write(&cfg, format!("dsn: sqlite://{}/x.db?_fk=true\nsecrets:\n  default:\n    - a-long-enough-secret-123\n", dir.display())).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("tessera migrate sql up"),
        "{err}"
    );
}
