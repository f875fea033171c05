//! Ory's own Python SDK (`ory-kratos-client` 25.4.0 from PyPI, peers/ory_sdk.py) against
//! Tessera, on both backends (issue 13).
//!
//! The SDK is generated from Kratos's OpenAPI document and parses every answer into strict
//! pydantic models: a missing required field, a wrong type or an enum value outside Kratos's
//! (as the `"autocomplete": "username"` that once broke every native sign-in) raises there. The
//! script drives native registration and login, whoami, the session list, revoking a session,
//! native logout, the admin identity calls (create with an imported hash, list, get with
//! credentials, JSON Patch, sessions, delete) and the schema list, and prints what each call
//! returned as JSON lines; this test checks those values, so each call must both parse and say
//! the right thing.

use serde_json::{Map, Value, json};
use tessera_testkit::peers::peers_dir;
use tessera_testkit::{Backend, TestServer, each_backend};

/// The Argon2 reference vector (password "password", salt "somesalt").
const ARGON2_HASH: &str =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

const HINT: &str = "the Python peers are missing: run `bash scripts/test-deps.sh` (it installs peers/requirements.txt into peers/.venv)";

/// Runs peers/ory_sdk.py against `s`; returns each step's line by step name, failing with the
/// step the SDK refused and why.
async fn run_sdk(s: &TestServer, cfg: Value) -> Map<String, Value> {
    let dir = peers_dir();
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "{HINT}");
    let out = tokio::process::Command::new(&python)
        .arg(dir.join("ory_sdk.py"))
        .arg(cfg.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HINT}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut steps = Map::new();
    let mut done = false;
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\nstderr: {stderr}"));
        if v["done"] == true {
            done = true;
            continue;
        }
        if let Some(err) = v.get("error") {
            panic!(
                "Ory's SDK refused Tessera's answer at step `{}` ({:?}): {}\nstderr: {stderr}",
                v["step"], s.backend, err
            );
        }
        let step = v["step"].as_str().unwrap_or_default().to_owned();
        steps.insert(step, v);
    }
    assert!(
        out.status.success() && done,
        "ory_sdk.py did not finish ({}):\n{stdout}\nstderr: {stderr}",
        out.status
    );
    steps
}

each_backend!(ory_python_sdk_drives_every_listed_call);
async fn ory_python_sdk_drives_every_listed_call(backend: Backend) {
    // The registration signs in (Kratos's `session` hook), so it answers a session too.
    let s = TestServer::start(
        backend,
        json!({"selfservice": {"flows": {"registration": {"after": {"password": {"hooks": [{"hook": "session"}]}}}}}}),
    )
    .await;
    let email = "sdk-user@example.com";
    let imported = "imported@example.com";
    let steps = run_sdk(
        &s,
        json!({
            "public": s.public,
            "admin": s.admin,
            "email": email,
            "password": "a long and unguessable password 7",
            "imported": {
                "email": imported,
                "new_email": "renamed@example.com",
                "hashed_password": ARGON2_HASH,
                "password": "password",
            },
        }),
    )
    .await;
    let step = |name: &str| {
        steps
            .get(name)
            .unwrap_or_else(|| panic!("no step {name}: {steps:?}"))
            .clone()
    };

    let reg = step("register");
    assert_eq!(reg["flow_type"], "api");
    assert_eq!(reg["email"], email);
    assert_eq!(reg["has_token"], true, "{reg}");
    let user = reg["identity_id"].as_str().expect("identity id").to_owned();
    let first_session = reg["session_id"].as_str().expect("session id").to_owned();

    let login = step("login");
    assert_eq!(login["identifier_autocomplete"], Value::Null);
    assert_eq!(login["password_autocomplete"], "current-password");
    assert_eq!(login["identity_id"], user.as_str());
    assert_eq!(login["has_token"], true);
    let current = login["session_id"].as_str().expect("session id").to_owned();
    assert_ne!(current, first_session);

    let who = step("whoami");
    assert_eq!(who["session_id"], current.as_str());
    assert_eq!(who["identity_id"], user.as_str());
    assert_eq!(who["active"], true);
    assert_eq!(who["aal"], "aal1");
    assert_eq!(who["methods"], json!(["password"]));

    // As Kratos: "my sessions" are the caller's other sessions, the current one excluded.
    let mine = step("list_my_sessions");
    assert_eq!(mine["session_ids"], json!([first_session]), "{mine}");

    let revoked = step("disable_my_session");
    assert_eq!(revoked["revoked_whoami_status"], 401);
    assert_eq!(revoked["current_whoami_status"], 200);

    assert_eq!(step("native_logout")["whoami_status"], 401);

    let created = step("admin_create_with_hash");
    let id = created["identity_id"].as_str().expect("id").to_owned();
    assert_eq!(created["state"], "active");
    assert_eq!(created["schema_id"], "default");
    assert_eq!(step("login_with_imported_hash")["identity_id"], id.as_str());

    let listed = step("admin_list");
    let ids = listed["identity_ids"].as_array().expect("ids");
    assert!(
        ids.contains(&json!(user)) && ids.contains(&json!(id)),
        "{listed}"
    );
    assert_eq!(ids.len(), 2, "{listed}");
    assert_eq!(listed["by_identifier"], json!([id]));

    let got = step("admin_get_with_credentials");
    assert_eq!(got["identity_id"], id.as_str());
    assert_eq!(got["email"], imported);
    assert_eq!(got["credential_type"], "password");
    assert_eq!(got["password_identifiers"], json!([imported]));

    let patched = step("admin_patch");
    assert_eq!(patched["email"], "renamed@example.com");
    assert_eq!(patched["metadata_public"], json!({"plan": "sdk"}));

    let sessions = step("admin_identity_sessions");
    let login_session = step("login_with_imported_hash")["session_id"].clone();
    assert_eq!(
        sessions["session_ids"],
        json!([login_session]),
        "{sessions}"
    );
    assert_eq!(sessions["identity_ids"], json!([id]));

    assert_eq!(step("admin_delete")["get_status"], 404);

    let schemas = step("schemas");
    assert_eq!(schemas["ids"], json!(["default"]));
    assert_eq!(schemas["default_type"], "object");
    assert_eq!(schemas["default_has_email"], true);
    s.stop().await;
}
