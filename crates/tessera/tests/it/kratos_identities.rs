//! Issue 13 items 3, 4 and 7, end to end: social-only identities keep the schema's password
//! identifiers (found by email, unique, a password login refused like an unknown account, a
//! first password set in settings), the back-fill of identities written before that, provider
//! names on buttons, flows, settings and errors, Kratos's `external_id`, and FedCM's answer.

use crate::GITHUB_MAPPER;
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::github::{GithubEmulator, OCTOCAT};
use tessera_testkit::journey::{flow_id_of, flow_json, location, press_provider, whoami};
use tessera_testkit::{Backend, Browser, TestServer, csrf_of, each_backend};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// GitHub (no `label`: the button must still say "GitHub"), with a given client secret.
fn github_yaml(gh: &GithubEmulator, secret: &str) -> String {
    format!(
        "          - id: github\n            provider: github\n            client_id: {}\n            client_secret: {secret}\n            mapper_url: base64://{}\n            scope: [user:email]\n            auth_url: {}\n            token_url: {}\n            api_base_url: {}\n",
        gh.client_id(),
        b64(GITHUB_MAPPER),
        gh.auth_url(),
        gh.token_url(),
        gh.base_url(),
    )
}

/// VK and DingTalk without labels; nothing here calls them, only their buttons are drawn.
fn vk_dingtalk_yaml() -> String {
    let mapper = b64("{identity: {traits: {email: std.extVar('claims').email}}}");
    format!(
        "          - id: vk\n            provider: vk\n            client_id: \"1\"\n            client_secret: s\n            mapper_url: base64://{mapper}\n            scope: [email]\n          - id: dingtalk\n            provider: dingtalk\n            client_id: d\n            client_secret: s\n            mapper_url: base64://{mapper}\n"
    )
}

fn config(providers: &str) -> String {
    format!(
        "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n"
    )
}

async fn github_server(backend: Backend, gh: &GithubEmulator, secret: &str) -> TestServer {
    let s = TestServer::start(backend, &config(&github_yaml(gh, secret))).await;
    gh.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/github",
        s.public
    ));
    s
}

/// Signs up (or in) with GitHub as `user` in `b`; returns the callback's final response.
async fn github_sign_in(b: &Browser, s: &TestServer, kind: &str, user: &str) -> reqwest::Response {
    let authorize = press_provider(b, s, kind, "github", "https://app.example.com/after").await;
    let r = b.get(&format!("{authorize}&user={user}"), false).await;
    assert_eq!(r.status(), 302, "the emulator answered {}", r.status());
    b.get(&location(&r), false).await
}

async fn admin_get(s: &TestServer, path: &str) -> (u16, Value) {
    let (status, v, _) = s.admin_request(reqwest::Method::GET, path, None).await;
    (status, v)
}

async fn admin_send(s: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let (status, v, _) = s.admin_request(method, path, Some(&body)).await;
    (status, v)
}

/// Kratos's error shape: `{"error": {"code", "status", "message", "reason"}}` with `code` the
/// HTTP status.
fn assert_kratos_error(body: &Value, status: u16) {
    let e = &body["error"];
    assert_eq!(e["code"], status, "{body}");
    assert!(
        e["status"].is_string() && e["message"].is_string(),
        "{body}"
    );
    assert!(e["reason"].is_string(), "{body}");
}

each_backend!(a_social_only_identity_is_found_by_email_and_can_set_a_password);
/// Social sign-up → the admin finds the identity by email; its password credential has the
/// identifier and no hash; a password login fails exactly like an unknown account; another
/// route to the same email is refused; settings sets a first password, which then works.
async fn a_social_only_identity_is_found_by_email_and_can_set_a_password(backend: Backend) {
    let gh = GithubEmulator::start().await;
    let s = github_server(backend, &gh, gh.client_secret()).await;
    let b = Browser::default();
    let r = github_sign_in(&b, &s, "registration", OCTOCAT.key).await;
    assert_eq!(location(&r), "https://app.example.com/after", "{backend:?}");
    let me = whoami(&b, &s).await;
    let id = me["identity"]["id"]
        .as_str()
        .expect("signed in")
        .to_string();
    assert_eq!(me["identity"]["traits"]["email"], "octocat@example.com");

    // Found by email, whatever its case.
    let (status, found) = admin_get(
        &s,
        "/admin/identities?credentials_identifier=OctoCat%40Example.org",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found, json!([]), "another email finds nothing");
    let (_, found) = admin_get(
        &s,
        "/admin/identities?credentials_identifier=OctoCat%40example.com",
    )
    .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], id.as_str());
    // As Kratos shows it: identifiers, and `{}` for the config when asked for.
    let (_, full) = admin_get(
        &s,
        &format!("/admin/identities/{id}?include_credential=password"),
    )
    .await;
    let password = &full["credentials"]["password"];
    assert_eq!(password["type"], "password");
    assert_eq!(password["identifiers"], json!(["octocat@example.com"]));
    assert_eq!(password["config"], json!({}), "{full}");
    let (_, plain) = admin_get(&s, &format!("/admin/identities/{id}")).await;
    assert!(
        plain["credentials"]["password"].get("config").is_none(),
        "{plain}"
    );

    // A password login: the same refusal as for nobody at all.
    let (known_status, known) = s.login("octocat@example.com", "any password at all").await;
    let (unknown_status, unknown) = s.login("nobody@example.com", "any password at all").await;
    assert_eq!(known_status, 400, "{known}");
    assert_eq!(known_status, unknown_status);
    assert_eq!(known["ui"]["messages"], unknown["ui"]["messages"]);
    assert_eq!(known["ui"]["messages"][0]["id"], 4000006, "{known}");
    let keys = |v: &Value| {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(&known), keys(&unknown));

    // The email is taken for every other route: admin create (409, Kratos's shape) and
    // password registration (4000007).
    let (status, body) = admin_send(
        &s,
        "POST",
        "/admin/identities",
        json!({"schema_id": "default", "traits": {"email": "OCTOCAT@example.com"}}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_kratos_error(&body, 409);
    let c = TestServer::client();
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .expect("flow")
        .json()
        .await
        .expect("json");
    let r = c
        .post(format!(
            "{}/self-service/registration?flow={}",
            s.public,
            flow["id"].as_str().expect("id")
        ))
        .json(&json!({"method": "password", "traits": {"email": "octocat@example.com"}, "password": "a long enough passphrase"}))
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["ui"]["messages"][0]["id"], 4000007, "{body}");
    let (_, all) = admin_get(&s, "/admin/identities").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));

    // Settings: set a first password; then it signs in.
    let r = b
        .get(
            &format!("{}/self-service/settings/browser", s.public),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let flow = flow_json(&b, &s, "settings", &flow_id_of(&location(&r))).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[
                ("csrf_token", &csrf_of(&flow)),
                ("method", "password"),
                ("password", "a long enough passphrase"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let (status, body) = s
        .login("octocat@example.com", "a long enough passphrase")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["identity"]["id"], id.as_str());
    let (_, full) = admin_get(
        &s,
        &format!("/admin/identities/{id}?include_credential=password&include_credential=oidc"),
    )
    .await;
    assert!(
        full["credentials"]["password"]["config"]["hashed_password"]
            .as_str()
            .is_some_and(|h| h.starts_with("$argon2id$")),
        "{full}"
    );
    assert_eq!(
        full["credentials"]["oidc"]["identifiers"],
        json!(["github:583231"])
    );
}

each_backend!(identities_written_before_the_migration_are_back_filled_at_start);
/// Identities written the old way (no password credential) get their identifiers when the
/// server starts after the migration; two old identities sharing an email do not stop it.
async fn identities_written_before_the_migration_are_back_filled_at_start(backend: Backend) {
    let dir = tessera_testkit::temp_dir();
    let dsn = tessera_testkit::fresh_dsn(backend, &dir).await;
    let store = tessera_store::Store::connect(&dsn).await.expect("connect");
    store.migrate_up().await.expect("migrate");
    // Back to the schema before 20261204000001, then rows as the old code wrote them.
    let newer = store
        .migration_status()
        .await
        .expect("status")
        .iter()
        .filter(|m| m.applied && m.version >= 20261204000001)
        .count();
    store.migrate_down(newer).await.expect("down");
    drop(store);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&dsn).await.expect("pool");
    let ids = [
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    ];
    for (id, email) in ids
        .iter()
        .zip(["old@example.com", "twin@example.com", "TWIN@example.com"])
    {
        sqlx::query("INSERT INTO identities (id, schema_id, state, state_changed_at, traits, metadata_public, metadata_admin, created_at, updated_at) VALUES ($1, 'default', 'active', 0, $2, NULL, NULL, 0, 0)")
            .bind(id.to_string())
            .bind(json!({"email": email}).to_string())
            .execute(&pool)
            .await
            .expect("old identity");
    }
    pool.close().await;

    let s = TestServer::start_with(backend, dir, &dsn, "").await;
    let (_, found) = admin_get(
        &s,
        "/admin/identities?credentials_identifier=old%40example.com",
    )
    .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["id"], ids[0].to_string());
    let (_, twin) = admin_get(
        &s,
        "/admin/identities?credentials_identifier=twin%40example.com",
    )
    .await;
    assert_eq!(
        twin.as_array().map(Vec::len),
        Some(1),
        "one of the twins: {twin}"
    );
    let (_, full) = admin_get(
        &s,
        &format!("/admin/identities/{}?include_credential=password", ids[0]),
    )
    .await;
    assert_eq!(
        full["credentials"]["password"]["config"],
        json!({}),
        "{full}"
    );
    // A new identity with that email is refused now.
    let (status, _) = admin_send(
        &s,
        "POST",
        "/admin/identities",
        json!({"traits": {"email": "old@example.com"}}),
    )
    .await;
    assert_eq!(status, 409);
}

each_backend!(external_ids_as_kratos_has_them);
/// `external_id`: set on create (and import), unique (409 in Kratos's shape), found through
/// `/admin/identities/by/external/{externalID}` with `include_credential`, patchable, cleared by
/// a PUT without it; bad and unknown ids get 400 and 404, never 500.
async fn external_ids_as_kratos_has_them(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    let weird = "crm:42/ü ?#%";
    let (status, made) = admin_send(
        &s,
        "POST",
        "/admin/identities",
        json!({"traits": {"email": "ext@example.com"}, "external_id": weird, "credentials": {"password": {"config": {"password": "a long enough passphrase"}}}}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["external_id"], weird);
    let id = made["id"].as_str().expect("id").to_string();
    let encoded: String = url::form_urlencoded::byte_serialize(weird.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let (status, got) = admin_get(&s, &format!("/admin/identities/by/external/{encoded}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["id"], id.as_str());
    assert!(got["credentials"]["password"].get("config").is_none());
    let (_, got) = admin_get(
        &s,
        &format!("/admin/identities/by/external/{encoded}?include_credential=password"),
    )
    .await;
    assert!(
        got["credentials"]["password"]["config"]["hashed_password"].is_string(),
        "{got}"
    );
    let (_, listed) = admin_get(&s, "/admin/identities").await;
    assert_eq!(listed[0]["external_id"], weird);
    // The CLI, with the same weird id as one argument.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "identities",
            "get",
            "--external",
            weird,
            "--endpoint",
            &s.admin,
        ])
        .output()
        .await
        .expect("run tessera");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed["id"], id.as_str());

    // Attacks and mistakes.
    let (status, body) = admin_send(
        &s,
        "POST",
        "/admin/identities",
        json!({"traits": {"email": "ext2@example.com"}, "external_id": weird}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_kratos_error(&body, 409);
    for bad in [
        json!("x".repeat(65)),
        json!("x".repeat(100_000)),
        json!("a\u{7}b"),
        json!(["a"]),
    ] {
        let (status, body) = admin_send(
            &s,
            "POST",
            "/admin/identities",
            json!({"traits": {"email": "ext3@example.com"}, "external_id": bad}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_kratos_error(&body, 400);
    }
    let (status, body) = admin_get(&s, "/admin/identities/by/external/nobody-has-this").await;
    assert_eq!(status, 404, "{body}");
    assert_kratos_error(&body, 404);
    let long = "y".repeat(5000);
    let (status, body) = admin_get(&s, &format!("/admin/identities/by/external/{long}")).await;
    assert_eq!(status, 400, "{body}");
    for path in ["%00", "%FF%FE"] {
        let (status, body) = admin_get(&s, &format!("/admin/identities/by/external/{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_kratos_error(&body, 400);
    }
    let (status, body) = admin_get(&s, "/admin/identities/by/external/").await;
    assert_eq!(status, 400, "{body}");
    assert_kratos_error(&body, 400);

    // Patchable; "" clears it; PUT without it clears it too (Kratos).
    let (status, body) = admin_send(
        &s,
        "PATCH",
        &format!("/admin/identities/{id}"),
        json!([{"op": "replace", "path": "/external_id", "value": "crm:43"}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["external_id"], "crm:43");
    let (status, _) = admin_get(&s, "/admin/identities/by/external/crm:43").await;
    assert_eq!(status, 200);
    let (status, _) = admin_get(&s, &format!("/admin/identities/by/external/{encoded}")).await;
    assert_eq!(status, 404);
    let (status, body) = admin_send(
        &s,
        "PUT",
        &format!("/admin/identities/{id}"),
        json!({"schema_id": "default", "state": "active", "traits": {"email": "ext@example.com"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("external_id").is_none(), "{body}");
    let (status, _) = admin_get(&s, "/admin/identities/by/external/crm:43").await;
    assert_eq!(status, 404);
}

/// Buttons name the provider type when no `label` is set, in every UI language and in the
/// API flow's node label (Kratos's 1010002/1040002 with `provider` and `provider_id`).
#[tokio::test]
async fn provider_buttons_say_the_type_name() {
    let gh = GithubEmulator::start().await;
    let providers = format!(
        "{}{}",
        github_yaml(&gh, gh.client_secret()),
        vk_dingtalk_yaml()
    );
    let s = TestServer::start(Backend::Sqlite, &config(&providers)).await;
    let c = TestServer::client();
    for (kind, id, text) in [
        ("login", 1010002, "Sign in with"),
        ("registration", 1040002, "Sign up with"),
    ] {
        let flow: Value = c
            .get(format!("{}/self-service/{kind}/api", s.public))
            .send()
            .await
            .expect("flow")
            .json()
            .await
            .expect("json");
        let label = |provider: &str| {
            flow["ui"]["nodes"]
                .as_array()
                .and_then(|n| {
                    n.iter()
                        .find(|n| n["group"] == "oidc" && n["attributes"]["value"] == provider)
                })
                .map(|n| n["meta"]["label"].clone())
                .unwrap_or(Value::Null)
        };
        for (provider, name) in [("github", "GitHub"), ("vk", "VK"), ("dingtalk", "DingTalk")] {
            let l = label(provider);
            assert_eq!(l["id"], id, "{l}");
            assert_eq!(l["text"], format!("{text} {name}"), "{l}");
            assert_eq!(
                l["context"],
                json!({"provider": name, "provider_id": provider})
            );
        }
    }
    let b = Browser::default();
    let r = b
        .get(&format!("{}/self-service/login/browser", s.public), false)
        .await;
    let page = location(&r);
    for (lang, expected) in [
        (
            "en",
            [
                "Continue with GitHub",
                "Continue with VK",
                "Continue with DingTalk",
            ],
        ),
        (
            "zh-CN",
            ["通过 GitHub 继续", "通过 VK 继续", "通过钉钉继续"],
        ),
        (
            "ru",
            [
                "Продолжить через GitHub",
                "Продолжить через VK",
                "Продолжить через DingTalk",
            ],
        ),
    ] {
        let html = b
            .get(&format!("{page}&ui_locales={lang}"), false)
            .await
            .text()
            .await
            .expect("page");
        for e in expected {
            assert!(html.contains(e), "{lang}: `{e}` missing");
        }
        for raw in [
            "with github",
            "with vk",
            "через vk",
            "через github",
            "通过 vk",
            "通过 github",
        ] {
            assert!(!html.contains(raw), "{lang}: the raw id in `{raw}`");
        }
    }
}

/// Linked accounts in settings and an upstream error both name the type, not its id.
#[tokio::test]
async fn settings_and_errors_say_the_type_name() {
    let gh = GithubEmulator::start().await;
    let s = github_server(Backend::Sqlite, &gh, gh.client_secret()).await;
    let b = Browser::default();
    github_sign_in(&b, &s, "registration", OCTOCAT.key).await;
    let r = b
        .get(
            &format!("{}/self-service/settings/browser", s.public),
            false,
        )
        .await;
    let page = location(&r);
    let flow = flow_json(&b, &s, "settings", &flow_id_of(&page)).await;
    let unlink = flow["ui"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["attributes"]["name"] == "unlink"))
        .map(|n| n["meta"]["label"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(unlink["text"], "Unlink GitHub", "{flow}");
    for (lang, e) in [
        ("en", "Unlink GitHub"),
        ("ru", "Отвязать GitHub"),
        ("zh-CN", "解除关联 GitHub"),
    ] {
        let html = b
            .get(&format!("{page}&ui_locales={lang}"), false)
            .await
            .text()
            .await
            .expect("page");
        assert!(html.contains(e), "{lang}: `{e}` missing");
    }

    // A wrong client secret: GitHub refuses, and the message names GitHub.
    let gh2 = GithubEmulator::start().await;
    let s2 = github_server(Backend::Sqlite, &gh2, "not-the-secret").await;
    let b2 = Browser::default();
    let r = github_sign_in(&b2, &s2, "login", OCTOCAT.key).await;
    let flow = flow_json(&b2, &s2, "login", &flow_id_of(&location(&r))).await;
    let text = flow["ui"]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("GitHub refused the sign-in"), "{flow}");
}

/// FedCM is Ory Network-only in Kratos; Tessera answers its paths with Kratos's error shape
/// and a reason, not a bare "no route".
#[tokio::test]
async fn fedcm_paths_say_why_they_are_not_there() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let c = TestServer::client();
    for r in [
        c.get(format!("{}/self-service/fed-cm/parameters", s.public)),
        c.post(format!("{}/self-service/fed-cm/token", s.public))
            .header("content-type", "application/json")
            .body("{}"),
    ] {
        let r = r.send().await.expect("fedcm");
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.expect("json");
        assert_kratos_error(&body, 404);
        assert!(
            body["error"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("FedCM")),
            "{body}"
        );
    }
}

/// docs/migrating-from-kratos.md keeps a row for every operation of Kratos's OpenAPI document
/// (the testkit fixture): a Kratos update that adds a path fails here until the table says what
/// Tessera does with it.
#[test]
fn the_migration_guide_lists_every_kratos_endpoint() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/crates/testkit/fixtures/kratos-openapi/api.json"
        ))
        .expect("the spec fixture"),
    )
    .expect("JSON");
    let guide = std::fs::read_to_string(format!("{root}/docs/migrating-from-kratos.md"))
        .expect("the migration guide");
    let mut operations = 0;
    let mut missing = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if ops.get(method).is_none() {
                continue;
            }
            operations += 1;
            let row = format!("| `{}` | `{path}` |", method.to_uppercase());
            if !guide.contains(&row) {
                missing.push(row);
            }
        }
    }
    assert!(operations >= 60, "only {operations} operations read");
    assert!(
        missing.is_empty(),
        "add these Kratos operations to the table in docs/migrating-from-kratos.md: {missing:#?}"
    );
}
