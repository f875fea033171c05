//! Dynamic client registration (RFC 7591) and its management (RFC 7592), issue 22: off by
//! default (404, and not in discovery), refused at start when enabled without a long initial
//! access token, and when on: openid-client registers itself and signs a user in; the app
//! reads, updates and deletes its registration with its registration access token, which works
//! for its own registration only; operator-only metadata cannot be registered.

use crate::op_common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use tessera_testkit::peers::peers_dir;
use tessera_testkit::{Backend, Browser, TestServer, each_backend};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const RP: &str = "http://127.0.0.1:9/callback";
const TOKEN: &str = "reg-0123456789abcdef0123456789abcdef";

fn config() -> String {
    format!(
        "oidc_provider:\n  signing_alg: ES256\n  registration:\n    enabled: true\n    initial_access_token: {TOKEN}\n"
    )
}

async fn call(
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = TestServer::client().request(method, url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn off_by_default_and_never_open() {
    let s = server(Backend::Sqlite, "").await;
    let (st, v) = call(
        reqwest::Method::POST,
        &format!("{}/oidc/reg", s.public),
        Some(TOKEN),
        Some(json!({"redirect_uris": [RP]})),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    assert_eq!(v["error"], "not_found");
    let d: Value = TestServer::client()
        .get(format!(
            "{}/oidc/.well-known/openid-configuration",
            s.public
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(d.get("registration_endpoint").is_none(), "{d}");
    s.stop().await;
    // Enabled with a short token (or none): `serve` refuses the file, naming the key and line.
    let dir = tessera_testkit::temp_dir();
    let cfg = dir.join("tessera.yml");
    std::fs::write(
        &cfg,
        "dsn: memory\nsecrets:\n  default:\n    - a-long-enough-secret-123\noidc_provider:\n  registration:\n    enabled: true\n    initial_access_token: short\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .await
        .expect("tessera serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("oidc_provider.registration.initial_access_token"),
        "{err}"
    );
    assert!(
        err.contains("tessera.yml:8") && err.contains("at least 32 characters"),
        "{err}"
    );
}

each_backend!(registration_management_and_its_limits);
async fn registration_management_and_its_limits(backend: Backend) {
    let s = server(backend, &config()).await;
    let reg = format!("{}/oidc/reg", s.public);
    let d: Value = TestServer::client()
        .get(format!(
            "{}/oidc/.well-known/openid-configuration",
            s.public
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["registration_endpoint"], json!(reg));
    let meta = json!({"client_name": "Partner", "redirect_uris": [RP], "logo_uri": "https://partner.example/logo.png"});
    // Without, or with a wrong, initial access token.
    for bearer in [None, Some("reg-0123456789abcdef0123456789abcdeX")] {
        let (st, v) = call(reqwest::Method::POST, &reg, bearer, Some(meta.clone())).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (401, Some("invalid_token")),
            "{v}"
        );
    }
    // Operator-only metadata, and metadata that is not valid.
    for (patch, words) in [
        (
            json!({"skip_consent": true}),
            "`skip_consent` cannot be set",
        ),
        (
            json!({"claims_mapper": "{}"}),
            "`claims_mapper` cannot be set",
        ),
        (
            json!({"subject": "metadata_admin.employee_id"}),
            "only be `id` or `pairwise`",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (json!({"made_up": 1}), "made_up"),
    ] {
        let mut m = meta.clone();
        for (k, v) in patch.as_object().unwrap() {
            m[k] = v.clone();
        }
        let (st, v) = call(reqwest::Method::POST, &reg, Some(TOKEN), Some(m)).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{patch}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains(words),
            "{words}: {v}"
        );
    }
    let apps: Value = TestServer::client()
        .get(format!("{}/admin/clients", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        apps.as_array().map(Vec::len),
        Some(0),
        "refusals wrote nothing: {apps}"
    );

    // Registered: a secret, a registration access token, a URI to manage it at.
    let (st, a) = call(reqwest::Method::POST, &reg, Some(TOKEN), Some(meta.clone())).await;
    assert_eq!(st, 201, "{a}");
    let id = a["client_id"].as_str().unwrap().to_string();
    let rat = a["registration_access_token"].as_str().unwrap().to_string();
    let uri = a["registration_client_uri"].as_str().unwrap().to_string();
    assert_eq!(uri, format!("{reg}/{id}"));
    assert_eq!(a["app_type"], "traditional");
    assert_eq!(a["skip_consent"], false);
    assert!(
        a["client_secret"].is_string() && a.get("registration_token_hash").is_none(),
        "{a}"
    );
    // Another app's token, the initial token, no token: 401. Its own: the registration.
    let (_, b) = call(reqwest::Method::POST, &reg, Some(TOKEN), Some(meta.clone())).await;
    let other_rat = b["registration_access_token"].as_str().unwrap();
    for bearer in [Some(other_rat), Some(TOKEN), None] {
        let (st, _) = call(reqwest::Method::GET, &uri, bearer, None).await;
        assert_eq!(st, 401);
        let (st, _) = call(reqwest::Method::DELETE, &uri, bearer, None).await;
        assert_eq!(st, 401);
    }
    let (st, v) = call(reqwest::Method::GET, &uri, Some(&rat), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["client_name"], "Partner");
    assert!(
        v.get("client_secret").is_none(),
        "the secret is shown once: {v}"
    );
    // Update (the whole metadata), then the secret still works.
    let (st, v) = call(
        reqwest::Method::PUT,
        &uri,
        Some(&rat),
        Some(json!({"client_id": id, "client_name": "Partner Books", "redirect_uris": [RP]})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["client_name"], "Partner Books");
    let (st, v) = call(
        reqwest::Method::PUT,
        &uri,
        Some(&rat),
        Some(json!({"client_id": id, "redirect_uris": [RP], "skip_consent": true})),
    )
    .await;
    assert_eq!(st, 400, "an update cannot make it first-party: {v}");
    // Delete: gone, and its token with it.
    let (st, _) = call(reqwest::Method::DELETE, &uri, Some(&rat), None).await;
    assert_eq!(st, 204);
    let (st, _) = call(reqwest::Method::GET, &uri, Some(&rat), None).await;
    assert_eq!(st, 401);
    let r = TestServer::client()
        .get(format!("{}/admin/clients/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

/// openid-client registers itself (`dynamicClientRegistration`), then signs a user in with the
/// client_id and secret it was given (consent shown: a registered app is third-party).
#[tokio::test]
async fn openid_client_npm_registers_itself_and_signs_in() {
    let s = server(Backend::Sqlite, &config()).await;
    let id = user(&s, "partner@example.com").await;
    let dir = peers_dir();
    let cfg = json!({"issuer": format!("{}/oidc", s.public), "redirect_uri": RP, "post_logout_redirect_uri": RP,
                     "auth": "client_secret_post", "initial_access_token": TOKEN,
                     "register": {"client_name": "Partner", "redirect_uris": [RP], "post_logout_redirect_uris": [RP],
                                  "token_endpoint_auth_method": "client_secret_post"}});
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("op-client.mjs"))
        .arg(cfg.to_string())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node op-client.mjs; run `bash scripts/test-deps.sh`");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut read = async || -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the peer answered")
            .unwrap()
            .expect("a line");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "the peer failed: {v}");
        v
    };
    let authorize = read().await["authorize"].as_str().unwrap().to_string();
    let b = Browser::default();
    let (st, callback, body) =
        drive(&b, &s, &authorize, "partner@example.com", Some("accept")).await;
    assert_eq!(st, 303, "{callback} {body}");
    stdin
        .write_all(format!("{}\n", json!({"callback": callback})).as_bytes())
        .await
        .unwrap();
    let r = read().await["result"].clone();
    assert_eq!(r["sub"], json!(id), "{r}");
    assert_eq!(r["introspected"]["active"], true, "{r}");
    // The app it registered is listed for the operator, and its registration readable by it.
    let (st, v) = call(
        reqwest::Method::GET,
        r["registration_client_uri"].as_str().unwrap(),
        r["registration_access_token"].as_str(),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["client_id"], r["client_id"]);
    let _ = child.wait().await;
    s.stop().await;
}
