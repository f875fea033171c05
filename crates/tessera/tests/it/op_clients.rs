//! Apps of the OpenID Provider: the admin API (`/admin/clients`) and its validation, secret
//! rotation, the `tessera clients` and `tessera keys rotate` commands (the built binary), who may
//! use an app (`access: assigned`), per-app subjects and claims mappers.

use crate::op_common::*;
use serde_json::{Value, json};
use tessera_testkit::journey::location;
use tessera_testkit::{Backend, Browser, TestServer};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const RP: &str = "https://rp.example.com/callback";

/// Runs the binary without blocking the runtime the in-process server answers on.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .await
        .expect("run tessera");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line_value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn one_cli_command_creates_an_app_and_a_client_signs_in_with_code_and_pkce() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "cli@example.com").await;
    let (ok, out, err) = cli(&[
        "clients",
        "create",
        "--endpoint",
        &s.admin,
        "--name",
        "Bookstore",
        "--redirect-uri",
        RP,
        "--skip-consent",
    ])
    .await;
    assert!(ok, "{err}");
    let client_id = line_value(&out, "client_id");
    let secret = line_value(&out, "client_secret");
    assert!(!client_id.is_empty() && secret.len() >= 32, "{out}");
    let c = json!({"client_id": client_id, "client_secret": secret, "redirect_uris": [RP]});
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "cli@example.com", "openid email").await;
    let claims = verify(&s, t["id_token"].as_str().unwrap(), &client_id).await;
    assert_eq!(claims["sub"], json!(id));
    // list, get and delete through the CLI.
    let (ok, out, _) = cli(&["clients", "list", "--endpoint", &s.admin]).await;
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["client_id"], json!(client_id));
    assert!(
        list[0].get("secrets").is_none() && !out.contains(&secret),
        "no secret or hash listed"
    );
    let (ok, out, _) = cli(&["clients", "get", "--endpoint", &s.admin, &client_id]).await;
    assert!(ok && out.contains("Bookstore"));
    let (ok, _, _) = cli(&["clients", "delete", "--endpoint", &s.admin, &client_id]).await;
    assert!(ok);
    let (ok, _, err) = cli(&["clients", "get", "--endpoint", &s.admin, &client_id]).await;
    assert!(!ok && err.contains("404"), "{err}");
    // Tokens of a deleted app are gone with it.
    let r = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.stop().await;
}

async fn admin(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, v, _) = s.admin_request(method, path, body.as_ref()).await;
    (status, v)
}

#[tokio::test]
async fn admin_api_validates_metadata_and_rotates_secrets() {
    let s = server(Backend::Sqlite, "").await;
    use reqwest::Method;
    for (body, needle) in [
        (
            json!({"app_type": "spa", "redirect_uris": [RP], "token_endpoint_auth_method": "client_secret_basic"}),
            "public",
        ),
        (json!({"app_type": "traditional"}), "redirect_uris"),
        (
            json!({"redirect_uris": ["https://rp.example.com/cb#frag"]}),
            "fragment",
        ),
        (json!({"redirect_uris": ["not a url"]}), "absolute URL"),
        // Security review L5: where codes and tokens must never go.
        (
            json!({"redirect_uris": ["http://rp.example.com/cb"]}),
            "plain http",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(document.cookie)//"]}),
            "javascript",
        ),
        (
            json!({"redirect_uris": ["data:text/html,<script>x</script>"]}),
            "data",
        ),
        (
            json!({"redirect_uris": ["com.example.app:/cb"]}),
            "native apps",
        ),
        (
            json!({"redirect_uris": [RP], "post_logout_redirect_uris": ["javascript:x"]}),
            "javascript",
        ),
        (
            json!({"redirect_uris": [RP], "post_logout_redirect_uris": ["http://rp.example.com/bye"]}),
            "plain http",
        ),
        (
            json!({"redirect_uris": [RP], "subject": "traits."}),
            "subject",
        ),
        (
            json!({"redirect_uris": [RP], "subject": "credentials.oidc."}),
            "subject",
        ),
        (json!({"redirect_uris": [RP], "access": "some"}), "access"),
        (
            json!({"redirect_uris": [RP], "grant_types": ["client_credentials"]}),
            "machine",
        ),
        (
            json!({"redirect_uris": [RP], "response_types": ["id_token"]}),
            "implicit",
        ),
        (
            json!({"redirect_uris": [RP], "claims_mapper": "{ a: "}),
            "claims_mapper",
        ),
        (json!({"redirect_uris": [RP], "colour": "red"}), "colour"),
    ] {
        let (st, e) = admin(&s, Method::POST, "/admin/clients", Some(body.clone())).await;
        assert_eq!(st, 400, "{body} → {e}");
        assert!(
            e["error"]["reason"].as_str().unwrap().contains(needle),
            "{body} → {e}"
        );
    }
    let c = create_client(&s, json!({"client_id": "wp-site", "client_name": "WordPress", "redirect_uris": [RP], "skip_consent": true})).await;
    assert_eq!(c["client_id"], "wp-site");
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        c["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let (st, e) = admin(
        &s,
        Method::POST,
        "/admin/clients",
        Some(json!({"client_id": "wp-site", "redirect_uris": [RP]})),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    let old = c["client_secret"].as_str().unwrap().to_string();
    // Rotation: a second secret; both work until the old one is deleted.
    let (st, added) = admin(&s, Method::POST, "/admin/clients/wp-site/secrets", None).await;
    assert_eq!(st, 201);
    let new = added["client_secret"].as_str().unwrap().to_string();
    let cc = |secret: String| {
        let s = &s;
        async move {
            token(
                s,
                Some(("wp-site", &secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            )
            .await
            .1["error"]
                .clone()
        }
    };
    assert_eq!(
        cc(old.clone()).await,
        "invalid_grant",
        "old secret authenticates"
    );
    assert_eq!(
        cc(new.clone()).await,
        "invalid_grant",
        "new secret authenticates"
    );
    let (_, got) = admin(&s, Method::GET, "/admin/clients/wp-site", None).await;
    let old_id = got["client_secrets"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = admin(
        &s,
        Method::DELETE,
        &format!("/admin/clients/wp-site/secrets/{old_id}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(cc(old).await, "invalid_client");
    assert_eq!(cc(new).await, "invalid_grant");
    let new_id = added["id"].as_str().unwrap();
    let (st, e) = admin(
        &s,
        Method::DELETE,
        &format!("/admin/clients/wp-site/secrets/{new_id}"),
        None,
    )
    .await;
    assert_eq!(st, 400, "the last secret stays: {e}");
    // PUT replaces metadata, keeps id and secrets.
    let (st, up) = admin(&s, Method::PUT, "/admin/clients/wp-site", Some(json!({"client_name": "Blog", "redirect_uris": [RP, "https://rp.example.com/cb2"], "subject": "pairwise"}))).await;
    assert_eq!(st, 200, "{up}");
    assert_eq!(up["client_name"], "Blog");
    assert_eq!(up["client_secrets"].as_array().unwrap().len(), 1);
    let (st, _) = admin(&s, Method::GET, "/admin/clients/nope", None).await;
    assert_eq!(st, 404);
    let (st, _) = admin(&s, Method::DELETE, "/admin/clients/wp-site", None).await;
    assert_eq!(st, 204);
    let (st, _) = admin(&s, Method::DELETE, "/admin/clients/wp-site", None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn access_assigned_lets_only_assigned_identities_in() {
    let s = server(Backend::Sqlite, "").await;
    let alice = user(&s, "alice@example.com").await;
    user(&s, "bob@example.com").await;
    let mut body = traditional(RP);
    body["access"] = json!("assigned");
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let (ok, _, err) = cli(&["clients", "assign", "--endpoint", &s.admin, cid, &alice]).await;
    assert!(ok, "{err}");
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "alice@example.com", "openid offline_access").await;
    assert!(t["id_token"].is_string());
    // Bob is not assigned: a page that says so, with a way back carrying access_denied.
    let bob = Browser::default();
    let start = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
        ],
    );
    let (st, _, page) = drive(&bob, &s, &start, "bob@example.com", None).await;
    assert_eq!(st, 403);
    assert!(
        page.contains("Bookstore") && page.contains("access_denied"),
        "{page}"
    );
    // "Back to the app" is the page's primary button (the language links come after it).
    let back = between(&page, "class=\"btn btn-primary\" href=\"", "\"");
    assert!(back.starts_with(RP), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("s"));
    // prompt=none answers the app directly.
    let r = bob.get(&format!("{start}&prompt=none"), false).await;
    assert_eq!(
        param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
    // Unassigning Alice ends her refresh tokens too.
    let (ok, _, err) = cli(&["clients", "unassign", "--endpoint", &s.admin, cid, &alice]).await;
    assert!(ok, "{err}");
    let (st, e, _) = token(
        &s,
        Some((cid, c["client_secret"].as_str().unwrap())),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (ok, _, err) = cli(&[
        "clients",
        "assign",
        "--endpoint",
        &s.admin,
        cid,
        "7b1d3f2e-0000-4000-8000-000000000000",
    ])
    .await;
    assert!(!ok && err.contains("404"), "{err}");
    s.stop().await;
}

/// An identity schema with a trait only the site sets (`employee_id`) and one users edit.
fn staff_schema() -> String {
    let schema = json!({
        "$id": "https://example.com/staff.schema.json",
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"traits": {"type": "object", "properties": {
            "email": {"type": "string", "format": "email",
                      "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}},
            "employee_id": {"type": "string", "tessera": {"read_only": true}},
            "nickname": {"type": "string"},
        }, "required": ["email"]}},
    });
    use base64::Engine as _;
    format!(
        "identity:\n  default_schema_id: staff\n  schemas:\n    - id: staff\n      url: base64://{}\n",
        base64::engine::general_purpose::STANDARD.encode(schema.to_string())
    )
}

fn app(subject: &str, redirect: &str) -> Value {
    let mut b = traditional(redirect);
    b["subject"] = json!(subject);
    b["skip_consent"] = json!(true);
    b["client_name"] = json!(format!("App {subject}"));
    b
}

async fn sub_of(s: &TestServer, t: &Value, client: &Value) -> Value {
    let jwt = t["id_token"].as_str().unwrap();
    verify(s, jwt, client["client_id"].as_str().unwrap()).await["sub"].clone()
}

#[tokio::test]
async fn per_app_subjects_and_a_missing_value_is_an_error_page_not_an_empty_sub() {
    let s = server(Backend::Sqlite, &staff_schema()).await;
    let id = user(&s, "emp@example.com").await;
    let by_emp = create_client(&s, app("metadata_admin.employee.id", RP)).await;
    let pw1 = create_client(&s, app("pairwise", "https://one.example.com/cb")).await;
    let pw2 = create_client(&s, app("pairwise", "https://two.example.com/cb")).await;
    let b = Browser::default();
    let sub = |t: Value| t["id_token"].as_str().unwrap().to_string();
    // No metadata_admin.employee.id yet: an error page naming the app and the expression.
    let start = auth_url(
        &s,
        &[
            ("client_id", by_emp["client_id"].as_str().unwrap()),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
        ],
    );
    let (st, _, page) = drive(&b, &s, &start, "emp@example.com", None).await;
    assert_eq!(st, 403);
    assert!(
        page.contains("App metadata_admin.employee.id")
            && page.contains("has no value for `metadata_admin.employee.id`"),
        "{page}"
    );
    // The admin sets it: now it is the sub.
    let r = TestServer::client().patch(format!("{}/admin/identities/{id}", s.admin)).json(&json!([{"op": "add", "path": "/metadata_admin", "value": {"employee": {"id": "E-1001"}}}])).send().await.unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let t = code_flow(&b, &s, &by_emp, "x", "openid").await;
    assert_eq!(
        verify(&s, &sub(t), by_emp["client_id"].as_str().unwrap()).await["sub"],
        "E-1001"
    );
    // Pairwise: stable per sector, different across sectors, never the identity id.
    let mut got = vec![];
    for c in [&pw1, &pw1, &pw2] {
        let t = code_flow(&b, &s, c, "x", "openid").await;
        got.push(verify(&s, &sub(t), c["client_id"].as_str().unwrap()).await["sub"].clone());
    }
    assert_eq!(got[0], got[1]);
    assert_ne!(got[0], got[2]);
    assert_ne!(got[0], json!(id));
    s.stop().await;
}

/// Security review H3: subjects users can change are refused, read-only traits cannot be
/// chosen or changed in self-service, and the first `sub` an identity gets at an app is kept
/// and never issued to another identity — not after the value changes, not after the first
/// identity is deleted — until an administrator releases it.
async fn subjects_are_never_reassigned(backend: Backend) {
    let s = server(backend, &staff_schema()).await;
    for (subject, needle) in [
        ("traits.email", "mark `email` read-only"),
        ("traits.nickname", "mark `nickname` read-only"),
        ("metadata_public.employee_id", "metadata_admin"),
    ] {
        let r = TestServer::client()
            .post(format!("{}/admin/clients", s.admin))
            .json(&app(subject, RP))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{subject}: {v}");
        assert!(v.to_string().contains(needle), "{subject}: {v}");
    }
    let by_trait = create_client(&s, app("traits.employee_id", RP)).await;
    let c = TestServer::client();

    // Nobody picks their own employee id at sign-up…
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "password", "password": "correct-horse-battery", "traits": {"email": "m@example.com", "employee_id": "E4242"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v.to_string().contains("4000901"), "{v}");

    // …the admin sets it.
    let alice = user(&s, "alice@example.com").await;
    let mallory = user(&s, "mallory@example.com").await;
    let (st, mallory_login) = s
        .login("mallory@example.com", "correct-horse-battery")
        .await;
    assert_eq!(st, 200, "{mallory_login}");
    let set = |id: String, emp: &'static str| {
        let c = c.clone();
        let admin = s.admin.clone();
        async move {
            let r = c
                .patch(format!("{admin}/admin/identities/{id}"))
                .json(&json!([{"op": "add", "path": "/traits/employee_id", "value": emp}]))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
        }
    };
    set(alice.clone(), "E4242").await;
    set(mallory.clone(), "E0666").await;

    // Mallory cannot change hers in settings.
    let token = mallory_login["session_token"].as_str().unwrap();
    let flow: Value = c
        .get(format!("{}/self-service/settings/api", s.public))
        .header("X-Session-Token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .post(flow["ui"]["action"].as_str().unwrap())
        .header("X-Session-Token", token)
        .json(&json!({"method": "profile", "traits": {"email": "mallory@example.com", "employee_id": "E4242"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("4000901"));
    let m: Value = c
        .get(format!("{}/admin/identities/{mallory}", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["traits"]["employee_id"], "E0666");

    // Alice's first sub at the app is E4242, and stays hers after her value changes.
    let alice_b = Browser::default();
    let t = code_flow(&alice_b, &s, &by_trait, "alice@example.com", "openid").await;
    assert_eq!(sub_of(&s, &t, &by_trait).await, "E4242");
    set(alice.clone(), "E9999").await;
    let t = code_flow(&alice_b, &s, &by_trait, "x", "openid").await;
    assert_eq!(sub_of(&s, &t, &by_trait).await, "E4242", "kept");

    // The admin gives Mallory E4242 (a mistake, or a recycled number): refused at the app,
    // also after Alice's account is deleted.
    set(mallory.clone(), "E4242").await;
    let start = auth_url(
        &s,
        &[
            ("client_id", by_trait["client_id"].as_str().unwrap()),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", "openid"),
        ],
    );
    let mallory_b = Browser::default();
    let (st, _, page) = drive(&mallory_b, &s, &start, "mallory@example.com", None).await;
    assert_eq!(st, 403, "{page}");
    assert!(
        page.contains("already belongs to another account"),
        "{page}"
    );
    let r = c
        .delete(format!("{}/admin/identities/{alice}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (st, _, _) = drive(&mallory_b, &s, &start, "mallory@example.com", None).await;
    assert_eq!(st, 403);

    // Only an administrator's release frees it.
    let release = format!(
        "{}/admin/clients/{}/subjects/E4242",
        s.admin,
        by_trait["client_id"].as_str().unwrap()
    );
    assert_eq!(c.delete(&release).send().await.unwrap().status(), 204);
    assert_eq!(c.delete(&release).send().await.unwrap().status(), 404);
    let t = code_flow(&mallory_b, &s, &by_trait, "mallory@example.com", "openid").await;
    assert_eq!(sub_of(&s, &t, &by_trait).await, "E4242");
    s.stop().await;
}

#[tokio::test]
async fn subjects_are_never_reassigned_sqlite() {
    subjects_are_never_reassigned(Backend::Sqlite).await;
}

#[tokio::test]
async fn subjects_are_never_reassigned_postgres() {
    subjects_are_never_reassigned(Backend::Postgres).await;
}

/// Apps stored before subjects were restricted: a server with one does not start, and says
/// which app and how to fix it.
#[tokio::test]
async fn a_server_with_a_mutable_app_subject_refuses_to_start() {
    let s = server(Backend::Sqlite, "").await;
    let mut body = app("id", RP);
    body["client_id"] = json!("legacy-wiki");
    create_client(&s, body).await;
    // As an older version stored it, before such subjects were refused.
    let store = &s.engine.0.store;
    let mut row = store
        .op_get_client("legacy-wiki")
        .await
        .expect("stored")
        .expect("the app");
    row.metadata["subject"] = json!("traits.email");
    assert!(store.op_update_client(&row).await.expect("updated"));
    let dir = s.stop_keeping_dir().await;
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--config"])
        .arg(dir.join("tessera.yml"))
        .output()
        .await
        .expect("run tessera serve");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("legacy-wiki") && err.contains("traits.email") && err.contains("read_only"),
        "{err}"
    );
}

#[tokio::test]
async fn a_claims_mapper_adds_id_token_claims_but_cannot_change_protected_ones() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "mapped@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    body["claims_mapper"] = json!(
        "local c = std.extVar('claims'); { claims: { tenant: 'acme', mail_upper: std.asciiUpper(c.identity.traits.email), sub: 'forged', aud: 'x' } }"
    );
    let c = create_client(&s, body).await;
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "mapped@example.com", "openid").await;
    let claims = verify(
        &s,
        t["id_token"].as_str().unwrap(),
        c["client_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["mail_upper"], "MAPPED@EXAMPLE.COM");
    assert_eq!(claims["sub"], json!(id));
    s.stop().await;
}

#[tokio::test]
async fn keys_rotate_publishes_a_new_key_and_keeps_the_old_one_for_the_overlap() {
    let s = server(Backend::Sqlite, "").await;
    user(&s, "keys@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    let b = Browser::default();
    let before = code_flow(&b, &s, &c, "keys@example.com", "openid").await;
    let old_kid = jsonwebtoken::decode_header(before["id_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    let config = s.dir.join("tessera.yml");
    let (ok, out, err) = cli(&["keys", "rotate", "--config", config.to_str().unwrap()]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("new signing key"), "{out}");
    // Servers reload their key set within seconds.
    let mut kids = vec![];
    for _ in 0..100 {
        let jwks: Value = reqwest::get(format!("{}/oidc/jwks", s.public))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        kids = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        if kids.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(
        kids[1], old_kid,
        "the old key is still published, after the new one"
    );
    let after = code_flow(&b, &s, &c, "keys@example.com", "openid").await;
    let new_kid = jsonwebtoken::decode_header(after["id_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(new_kid, kids[0]);
    verify(&s, before["id_token"].as_str().unwrap(), cid).await;
    verify(&s, after["id_token"].as_str().unwrap(), cid).await;
    s.stop().await;
}

#[tokio::test]
async fn deleting_an_identity_ends_its_tokens() {
    let s = server(Backend::Sqlite, "").await;
    let id = user(&s, "gone@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let (cid, secret) = (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    );
    let b = Browser::default();
    let t = code_flow(&b, &s, &c, "gone@example.com", "openid offline_access").await;
    let at = t["access_token"].as_str().unwrap();
    let (_, i, _) = post_form(
        &s,
        "token/introspection",
        Some((cid, secret)),
        &[("token", at)],
    )
    .await;
    assert_eq!(i["active"], true);
    let r = TestServer::client()
        .delete(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, i, _) = post_form(
        &s,
        "token/introspection",
        Some((cid, secret)),
        &[("token", at)],
    )
    .await;
    assert_eq!(i, json!({"active": false}));
    let (st, e, _) = token(
        &s,
        Some((cid, secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    s.stop().await;
}

/// `tessera serve` (the real binary) creates the first signing key at its first start, seals its
/// private half with `secrets.cipher`, and keeps it across a restart.
#[tokio::test]
async fn the_binary_creates_a_sealed_signing_key_on_first_start_and_keeps_it() {
    let dir = tessera_testkit::temp_dir();
    let db = dir.join("t.db");
    let dsn = format!("sqlite://{}?mode=rwc", db.display());
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (pp, ap) = (free(), free());
    let config = dir.join("tessera.yml");
    std::fs::write(&config, format!("dsn: \"{dsn}\"\nserve:\n  public:\n    port: {pp}\n    base_url: http://127.0.0.1:{pp}/\n  admin:\n    port: {ap}\nsecrets:\n  default: [\"first-start-secret-0123456789\"]\n")).unwrap();
    let (ok, _, err) = cli(&[
        "migrate",
        "sql",
        "up",
        "--yes",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{err}");
    let public = format!("http://127.0.0.1:{pp}");
    let mut kids = vec![];
    for _ in 0..2 {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Poll until the key made at start is published (RSA generation takes a moment).
        let mut jwks = Value::Null;
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("{public}/oidc/jwks")).await
                && r.status() == 200
            {
                jwks = r.json().await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let keys = jwks["keys"].as_array().expect("a JWKS");
        assert_eq!(keys.len(), 1, "{jwks}");
        assert_eq!(keys[0]["alg"], "RS256", "RS256 by default");
        kids.push(keys[0]["kid"].as_str().unwrap().to_string());
        child.kill().await.unwrap();
    }
    assert_eq!(kids[0], kids[1], "the key survives a restart");
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&dsn).await.unwrap();
    let (sealed, public_jwk): (String, String) =
        sqlx::query_as("SELECT private_sealed, public_jwk FROM op_keys")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(sealed.starts_with("v1."), "sealed with secrets.cipher");
    assert!(
        !public_jwk.contains("\"d\""),
        "no private part in the public JWK"
    );
}

/// What the redirect-URI rules still allow (RFC 8252): a native app's private-use scheme and
/// loopback http, and https for everyone.
#[tokio::test]
async fn native_apps_keep_private_use_schemes_and_loopback() {
    let s = server(Backend::Sqlite, "").await;
    let c = create_client(
        &s,
        json!({"client_name": "Phone", "app_type": "native",
               "redirect_uris": ["com.example.app:/oauth2redirect", "http://127.0.0.1:8400/cb", "http://[::1]/cb"]}),
    )
    .await;
    assert_eq!(c["redirect_uris"][0], "com.example.app:/oauth2redirect");
    create_client(
        &s,
        json!({"client_name": "Local dev", "app_type": "traditional",
               "redirect_uris": ["http://localhost:3000/callback", "https://shop.example.com/cb"]}),
    )
    .await;
}
