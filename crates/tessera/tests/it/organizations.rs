//! Organizations, groups and app access rules end to end (issue 16): an app open to an
//! organization admits members of its descendants and refuses others, removing a member ends
//! their refresh tokens, groups and app roles become `groups` and `roles`, Logto's scope names
//! give Logto's claims, DingTalk's `corpId` makes a member just in time, verified e-mail
//! domains do too (unverified ones never), and bad input is refused with nothing written.

use crate::op_common::*;
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::dingtalk::{CORP_ID, DingtalkEmulator, ZHANGWEI};
use tessera_testkit::journey::location;
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

const RP: &str = "https://rp.example.com/callback";

async fn admin(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let (status, v, _) = s.admin_request(method, path, body.as_ref()).await;
    (status, v)
}

async fn ok(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let (st, v) = admin(s, method, path, body).await;
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

/// acme → sales → east, and the `admin` role.
async fn tree(s: &TestServer) -> (String, String, String) {
    ok(
        s,
        "POST",
        "/admin/organization-roles",
        Some(json!({"name": "admin"})),
    )
    .await;
    let acme = ok(
        s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "acme", "name": "Acme Inc."})),
    )
    .await;
    let sales = ok(
        s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "sales", "name": "Sales", "parent_id": "acme"})),
    )
    .await;
    let east = ok(
        s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "east", "name": "Sales East", "parent_id": "acme/sales"})),
    )
    .await;
    assert_eq!(east["path"], "/acme/sales/east");
    assert_eq!(east["parent_id"], sales["id"]);
    (
        acme["id"].as_str().unwrap().to_string(),
        sales["id"].as_str().unwrap().to_string(),
        east["id"].as_str().unwrap().to_string(),
    )
}

fn app(scope: &str, access: &str) -> Value {
    let mut body = traditional(RP);
    body["access"] = json!(access);
    body["skip_consent"] = json!(true);
    body["scope"] = json!(scope);
    body["roles"] = json!(["editor", "viewer"]);
    body
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

each_backend!(an_app_open_to_sales_admits_sales_east_and_refuses_others);
async fn an_app_open_to_sales_admits_sales_east_and_refuses_others(backend: Backend) {
    let s = server(backend, "").await;
    let (_acme, _sales, east) = tree(&s).await;
    let alice = user(&s, "alice@example.com").await;
    user(&s, "bob@example.com").await;
    let m = ok(
        &s,
        "PUT",
        &format!("/admin/organizations/acme%2Fsales%2Feast/members/{alice}"),
        Some(json!({"roles": ["admin"]})),
    )
    .await;
    assert_eq!(
        (m["roles"].clone(), m["source"].clone()),
        (json!(["admin"]), json!("manual"))
    );
    let c = create_client(
        &s,
        app(
            "openid offline_access organizations organization_roles roles",
            "assigned",
        ),
    )
    .await;
    let cid = c["client_id"].as_str().unwrap();
    let rule = ok(&s, "POST", &format!("/admin/clients/{cid}/access-rules"), Some(json!({"subject": {"type": "organization", "id": "acme/sales"}, "app_roles": ["editor"]}))).await;
    assert_eq!(rule["subject"]["include_descendants"], true);

    let t = code_flow(
        &Browser::default(),
        &s,
        &c,
        "alice@example.com",
        "openid offline_access organizations organization_roles roles",
    )
    .await;
    let idt = verify(&s, t["id_token"].as_str().unwrap(), cid).await;
    assert_eq!(idt["organizations"], json!([east]));
    assert_eq!(idt["organization_roles"], json!([format!("{east}:admin")]));
    assert_eq!(idt["organization_data"][0]["path"], "/acme/sales/east");
    assert_eq!(idt["roles"], json!(["editor"]));

    // Bob is in no organization: the hosted page, and access_denied back to the app.
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
    let (st, _, page) = drive(&Browser::default(), &s, &start, "bob@example.com", None).await;
    assert_eq!(st, 403);
    assert!(
        page.contains("may not use the app") && page.contains("access_denied"),
        "{page}"
    );

    // A rule that does not include descendants does not admit Sales East.
    let rid = rule["id"].as_str().unwrap();
    ok(&s, "PUT", &format!("/admin/clients/{cid}/access-rules"), Some(json!([{"subject": {"type": "organization", "id": "acme/sales", "include_descendants": false}}]))).await;
    let (st, _, _) = drive(&Browser::default(), &s, &start, "alice@example.com", None).await;
    assert_eq!(st, 403, "the old rule {rid} was replaced");
    ok(
        &s,
        "PUT",
        &format!("/admin/clients/{cid}/access-rules"),
        Some(json!([{"subject": {"type": "organization", "id": "acme/sales"}}])),
    )
    .await;

    // Removing Alice from Sales East ends her access at the next refresh.
    let secret = c["client_secret"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let (s, secret) = (&s, &secret);
        async move {
            token(
                s,
                Some((cid, secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
        }
    };
    let (st, t2, _) = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(st, 200, "{t2}");
    ok(
        &s,
        "DELETE",
        &format!("/admin/organizations/{east}/members/{alice}"),
        None,
    )
    .await;
    let (st, e, _) = refresh(t2["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    s.stop().await;
}

each_backend!(a_group_rule_and_an_app_role_show_up_as_groups_and_roles);
async fn a_group_rule_and_an_app_role_show_up_as_groups_and_roles(backend: Backend) {
    let s = server(backend, "").await;
    let bob = user(&s, "bob@example.com").await;
    user(&s, "eve@example.com").await;
    let g = ok(&s, "POST", "/admin/groups", Some(json!({"name": "oncall"}))).await;
    ok(
        &s,
        "PUT",
        &format!("/admin/groups/oncall/members/{bob}"),
        None,
    )
    .await;
    let c = create_client(&s, app("openid groups roles", "assigned")).await;
    let cid = c["client_id"].as_str().unwrap();
    // An app role the app does not declare is refused, and nothing is written.
    let (st, e) = admin(
        &s,
        "POST",
        &format!("/admin/clients/{cid}/access-rules"),
        Some(json!({"subject": {"type": "group", "id": "oncall"}, "app_roles": ["owner"]})),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["reason"].as_str().unwrap().contains("owner"),
        "{e}"
    );
    assert_eq!(
        ok(
            &s,
            "GET",
            &format!("/admin/clients/{cid}/access-rules"),
            None
        )
        .await,
        json!([])
    );
    ok(
        &s,
        "POST",
        &format!("/admin/clients/{cid}/access-rules"),
        Some(json!({"subject": {"type": "group", "id": g["id"]}, "app_roles": ["viewer"]})),
    )
    .await;

    let t = code_flow(
        &Browser::default(),
        &s,
        &c,
        "bob@example.com",
        "openid groups roles",
    )
    .await;
    let idt = verify(&s, t["id_token"].as_str().unwrap(), cid).await;
    assert_eq!(
        (idt["groups"].clone(), idt["roles"].clone()),
        (json!(["oncall"]), json!(["viewer"]))
    );
    let ui: Value = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (ui["groups"].clone(), ui["roles"].clone()),
        (json!(["oncall"]), json!(["viewer"])),
        "{ui}"
    );
    let (st, intro, _) = post_form(
        &s,
        "token/introspection",
        Some((cid, c["client_secret"].as_str().unwrap())),
        &[("token", t["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        (intro["active"].clone(), intro["groups"].clone()),
        (json!(true), json!(["oncall"]))
    );
    // Eve is in no group.
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
    let (st, _, _) = drive(&Browser::default(), &s, &start, "eve@example.com", None).await;
    assert_eq!(st, 403);
    s.stop().await;
}

each_backend!(a_logto_sdk_app_gets_logto_shaped_claims);
async fn a_logto_sdk_app_gets_logto_shaped_claims(backend: Backend) {
    let s = server(backend, "").await;
    let (acme, _, _) = tree(&s).await;
    let alice = user(&s, "alice@example.com").await;
    ok(
        &s,
        "PUT",
        &format!("/admin/organizations/{acme}/members/{alice}"),
        Some(json!({"roles": ["admin"]})),
    )
    .await;
    let scope =
        "openid offline_access urn:logto:scope:organizations urn:logto:scope:organization_roles";
    let mut body = app(scope, "all");
    body["skip_consent"] = json!(false);
    let c = create_client(&s, body).await;
    let cid = c["client_id"].as_str().unwrap();
    // The consent page names what the app will see.
    let p = pkce();
    let url = auth_url(
        &s,
        &[
            ("client_id", cid),
            ("redirect_uri", RP),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "x"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let b = Browser::default();
    let (_, _, page) = drive(&b, &s, &url, "alice@example.com", None).await;
    assert!(
        page.contains("See the organizations you belong to"),
        "{page}"
    );
    let t = code_flow(&b, &s, &c, "alice@example.com", scope).await;
    let idt = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(idt["organizations"], json!([acme]));
    assert_eq!(idt["organization_roles"], json!([format!("{acme}:admin")]));
    assert_eq!(idt["organization_data"][0]["name"], "Acme Inc.");
    s.stop().await;
}

each_backend!(bad_input_is_refused_and_nothing_is_written);
async fn bad_input_is_refused_and_nothing_is_written(backend: Backend) {
    let s = server(backend, "").await;
    let (acme, sales, east) = tree(&s).await;
    // A cycle: acme under its own grandchild.
    let (st, e) = admin(
        &s,
        "PATCH",
        &format!("/admin/organizations/{acme}"),
        Some(json!([{"op": "replace", "path": "/parent_id", "value": east}])),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["reason"].as_str().unwrap().contains("cycle"),
        "{e}"
    );
    let (st, e) = admin(
        &s,
        "PUT",
        &format!("/admin/organizations/{sales}"),
        Some(json!({"alias": "sales", "parent_id": sales})),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        ok(&s, "GET", &format!("/admin/organizations/{acme}"), None).await["parent_id"],
        Value::Null
    );
    assert_eq!(
        ok(&s, "GET", "/admin/organizations/acme%2Fsales%2Feast", None).await["path"],
        "/acme/sales/east"
    );
    // A duplicate alias among siblings (but the same alias elsewhere is fine).
    let (st, e) = admin(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "sales", "parent_id": acme})),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("among siblings"),
        "{e}"
    );
    let kids = ok(
        &s,
        "GET",
        &format!("/admin/organizations?parent_id={acme}"),
        None,
    )
    .await;
    assert_eq!(kids.as_array().unwrap().len(), 1);
    ok(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "sales"})),
    )
    .await;
    let (st, _) = admin(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "Bad Alias"})),
    )
    .await;
    assert_eq!(st, 400);
    // A domain claimed by two organizations.
    ok(
        &s,
        "PUT",
        "/admin/organizations/acme/domains/Acme.com",
        Some(json!({"jit": true})),
    )
    .await;
    let (st, e) = admin(
        &s,
        "PUT",
        &format!("/admin/organizations/{east}/domains/acme.com"),
        Some(json!({"jit": true})),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("belongs to one organization"),
        "{e}"
    );
    assert_eq!(
        ok(
            &s,
            "GET",
            &format!("/admin/organizations/{east}/domains"),
            None
        )
        .await,
        json!([])
    );
    assert_eq!(
        ok(&s, "GET", "/admin/organizations/acme/domains", None).await[0]["domain"],
        "acme.com"
    );
    // Rules over traits, and rules naming unknown roles.
    let (st, e) = admin(
        &s,
        "POST",
        "/admin/organization-rules",
        Some(json!({"expression": "traits.company", "organization_by": "alias_path"})),
    )
    .await;
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"]["reason"].as_str().unwrap().contains("traits"),
        "{e}"
    );
    let (st, _) = admin(&s, "POST", "/admin/organization-rules", Some(json!({"expression": "metadata_admin.corp", "organization_by": "external_id", "roles": ["nope"]}))).await;
    assert_eq!(st, 400);
    assert_eq!(
        ok(&s, "GET", "/admin/organization-rules", None).await,
        json!([])
    );
    // A parent with children cannot be deleted; a role an access rule needs cannot either.
    let (st, _) = admin(&s, "DELETE", &format!("/admin/organizations/{sales}"), None).await;
    assert_eq!(st, 409);
    let c = create_client(&s, app("openid", "assigned")).await;
    let cid = c["client_id"].as_str().unwrap();
    ok(&s, "POST", &format!("/admin/clients/{cid}/access-rules"), Some(json!({"subject": {"type": "organization", "id": acme, "organization_roles": ["admin"]}}))).await;
    let (st, e) = admin(&s, "DELETE", "/admin/organization-roles/admin", None).await;
    assert_eq!(st, 409, "{e}");
    s.stop().await;
}

each_backend!(moving_a_subtree_keeps_access_and_identities_filter_by_organization);
async fn moving_a_subtree_keeps_access_and_identities_filter_by_organization(backend: Backend) {
    let s = server(backend, "").await;
    let (_acme, _sales, east) = tree(&s).await;
    let alice = user(&s, "alice@example.com").await;
    user(&s, "bob@example.com").await;
    ok(
        &s,
        "PUT",
        &format!("/admin/organizations/{east}/members/{alice}"),
        None,
    )
    .await;
    let other = ok(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "globex"})),
    )
    .await;
    // Move sales (with east) under globex in one request.
    let moved = ok(
        &s,
        "PATCH",
        "/admin/organizations/acme%2Fsales",
        Some(json!([{"op": "replace", "path": "/parent_id", "value": other["id"]}])),
    )
    .await;
    assert_eq!(moved["path"], "/globex/sales");
    assert_eq!(
        ok(&s, "GET", &format!("/admin/organizations/{east}"), None).await["path"],
        "/globex/sales/east"
    );
    let c = create_client(&s, app("openid", "assigned")).await;
    let cid = c["client_id"].as_str().unwrap();
    ok(
        &s,
        "POST",
        &format!("/admin/clients/{cid}/access-rules"),
        Some(json!({"subject": {"type": "organization", "id": "globex"}})),
    )
    .await;
    code_flow(&Browser::default(), &s, &c, "alice@example.com", "openid").await;
    let listed = ok(
        &s,
        "GET",
        &format!("/admin/identities?organization_id={east}"),
        None,
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], alice.as_str());
    let members = ok(
        &s,
        "GET",
        "/admin/organizations/globex/members?include_descendants=true",
        None,
    )
    .await;
    assert_eq!(members[0]["identity_id"], alice.as_str());
    assert_eq!(
        ok(&s, "GET", "/admin/organizations/globex/members", None).await,
        json!([])
    );
    s.stop().await;
}

each_backend!(verified_email_domains_make_members_and_unverified_ones_never);
async fn verified_email_domains_make_members_and_unverified_ones_never(backend: Backend) {
    let s = server(backend, "").await;
    let (acme, _, _) = tree(&s).await;
    ok(
        &s,
        "PUT",
        "/admin/organizations/acme/domains/acme.com",
        Some(json!({"jit": true, "roles": ["admin"]})),
    )
    .await;
    // An attacker registers with an acme.com address they cannot verify.
    let mallory = user(&s, "mallory@acme.com").await;
    let (st, _) = s.login("mallory@acme.com", "correct-horse-battery").await;
    assert_eq!(st, 200);
    assert_eq!(
        ok(
            &s,
            "GET",
            &format!("/admin/identities/{mallory}/organizations"),
            None
        )
        .await,
        json!([])
    );
    // An imported identity whose address is verified joins at its next sign-in.
    let imported = ok(&s, "POST", "/admin/identities", Some(json!({
        "schema_id": "default",
        "traits": {"email": "ann@acme.com"},
        "verifiable_addresses": [{"value": "ann@acme.com", "via": "email", "verified": true, "status": "completed"}],
        "credentials": {"password": {"config": {"password": "correct-horse-battery"}}},
    }))).await;
    let (st, _) = s.login("ann@acme.com", "correct-horse-battery").await;
    assert_eq!(st, 200);
    let orgs = ok(
        &s,
        "GET",
        &format!(
            "/admin/identities/{}/organizations",
            imported["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(orgs[0]["organization"]["id"], acme.as_str());
    assert_eq!(
        (orgs[0]["roles"].clone(), orgs[0]["source"].clone()),
        (json!(["admin"]), json!("domain"))
    );
    s.stop().await;
}

/// The DingTalk mapper stores the corp the person picked in admin metadata.
const DINGTALK_MAPPER: &str = r#"local c = std.extVar('claims');
{ identity: {
    traits: { [if 'email' in c then 'email' else null]: c.email },
    metadata_admin: { dingtalk: { corp_id: std.get(c.raw_claims, 'corpId', null) } } } }
"#;

each_backend!(a_dingtalk_sign_in_with_corpid_joins_the_corps_organization);
async fn a_dingtalk_sign_in_with_corpid_joins_the_corps_organization(backend: Backend) {
    let dt = DingtalkEmulator::start().await;
    let yaml = format!(
        "oidc_provider:\n  signing_alg: ES256\nselfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: dingtalk\n            provider: dingtalk\n            client_id: {}\n            client_secret: {}\n            mapper_url: base64://{}\n            auth_url: {}\n            api_base_url: {}\n            scope: [openid, corpid]\n  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n",
        dt.client_id(),
        dt.client_secret(),
        base64::engine::general_purpose::STANDARD.encode(DINGTALK_MAPPER),
        dt.auth_url(),
        dt.base_url(),
    );
    let s = TestServer::start(backend, yaml.as_str()).await;
    dt.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/dingtalk",
        s.public
    ));
    let acme = ok(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "acme", "external_id": CORP_ID})),
    )
    .await;
    ok(
        &s,
        "POST",
        "/admin/organizations",
        Some(json!({"alias": "other", "external_id": "ding-other-corp"})),
    )
    .await;
    ok(&s, "POST", "/admin/organization-rules", Some(json!({"expression": "metadata_admin.dingtalk.corp_id", "organization_by": "external_id", "prune": true}))).await;
    let c = create_client(&s, app("openid organizations", "assigned")).await;
    let cid = c["client_id"].as_str().unwrap();
    ok(
        &s,
        "POST",
        &format!("/admin/clients/{cid}/access-rules"),
        Some(json!({"subject": {"type": "organization", "id": "acme"}})),
    )
    .await;

    let b = Browser::default();
    let authorize = tessera_testkit::journey::press_provider(
        &b,
        &s,
        "login",
        "dingtalk",
        "https://app.example.com/after",
    )
    .await;
    let r = b
        .get(&format!("{authorize}&user={}", ZHANGWEI.key), false)
        .await;
    let r = b.get(&location(&r), false).await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let t = code_flow(&b, &s, &c, "unused@example.com", "openid organizations").await;
    let idt = verify(&s, t["id_token"].as_str().unwrap(), cid).await;
    assert_eq!(idt["organizations"], json!([acme["id"]]));
    let members = ok(&s, "GET", "/admin/organizations/acme/members", None).await;
    assert_eq!(members[0]["source"], "rule");
    assert_eq!(
        ok(&s, "GET", "/admin/organizations/other/members", None).await,
        json!([])
    );
    s.stop().await;
}

/// Runs the built binary without blocking the runtime the in-process server answers on.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
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

#[tokio::test]
async fn the_cli_builds_a_tree_and_allows_an_organization() {
    let s = server(Backend::Sqlite, "").await;
    let alice = user(&s, "alice@example.com").await;
    let e = s.admin.as_str();
    for args in [
        vec!["orgs", "create", "acme", "--endpoint", e],
        vec![
            "orgs",
            "create",
            "sales",
            "--parent",
            "acme",
            "--endpoint",
            e,
        ],
        vec!["orgs", "roles", "create", "admin", "--endpoint", e],
        vec!["groups", "create", "oncall", "--endpoint", e],
    ] {
        let (ok, _, err) = cli(&args).await;
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, _, err) = cli(&[
        "orgs",
        "add-member",
        "acme/sales",
        &alice,
        "--role",
        "admin",
        "--endpoint",
        e,
    ])
    .await;
    assert!(ok, "{err}");
    let c = create_client(&s, app("openid roles", "assigned")).await;
    let cid = c["client_id"].as_str().unwrap();
    // An app role the app does not declare: one clear line, nothing written.
    let (ok, _, err) = cli(&[
        "clients",
        "allow",
        cid,
        "--organization",
        "acme/sales",
        "--app-role",
        "owner",
        "--endpoint",
        e,
    ])
    .await;
    assert!(
        !ok && err.contains("HTTP 400") && err.contains("owner"),
        "{err}"
    );
    let (ok, out, err) = cli(&[
        "clients",
        "allow",
        cid,
        "--organization",
        "acme/sales",
        "--role",
        "admin",
        "--app-role",
        "editor",
        "--endpoint",
        e,
    ])
    .await;
    assert!(ok, "{err}");
    let rules = ok_rules(&s, cid).await;
    assert_eq!(rules.as_array().map(Vec::len), Some(1));
    assert_eq!(rules[0]["id"], out.trim());
    assert_eq!(rules[0]["subject"]["organization_roles"], json!(["admin"]));
    let t = code_flow(
        &Browser::default(),
        &s,
        &c,
        "alice@example.com",
        "openid roles",
    )
    .await;
    assert_eq!(
        verify(&s, t["id_token"].as_str().unwrap(), cid).await["roles"],
        json!(["editor"])
    );
    let (ok, out, err) = cli(&["orgs", "move", "acme/sales", "--root", "--endpoint", e]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "/sales");
    s.stop().await;
}

async fn ok_rules(s: &TestServer, cid: &str) -> Value {
    ok(
        s,
        "GET",
        &format!("/admin/clients/{cid}/access-rules"),
        None,
    )
    .await
}

each_backend!(an_identity_created_in_an_organization_keeps_organization_id_and_is_a_member);
/// Kratos's `organization_id` on create and import: kept, shown, filtered on, a membership from
/// the first transaction; a missing or malformed one is refused with nothing written, it cannot
/// be changed afterwards, and deleting the organization clears it without losing the identity.
async fn an_identity_created_in_an_organization_keeps_organization_id_and_is_a_member(
    backend: Backend,
) {
    let s = server(backend, "").await;
    let (_, _, east) = tree(&s).await;
    let body = |email: &str, org: Value| json!({"schema_id": "default", "traits": {"email": email}, "organization_id": org});
    let created = ok(
        &s,
        "POST",
        "/admin/identities",
        Some(body("bo@example.com", json!(east))),
    )
    .await;
    let bo = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["organization_id"], json!(east));
    assert_eq!(
        ok(&s, "GET", &format!("/admin/identities/{bo}"), None).await["organization_id"],
        json!(east)
    );
    let orgs = ok(
        &s,
        "GET",
        &format!("/admin/identities/{bo}/organizations"),
        None,
    )
    .await;
    assert!(orgs.to_string().contains(&east), "{orgs}");
    // The import path (Kratos's batch endpoint) keeps it too.
    let batch = ok(
        &s,
        "PATCH",
        "/admin/identities",
        Some(json!({"identities": [{"create": body("cy@example.com", json!(east))}]})),
    )
    .await;
    let cy = batch["identities"][0]["identity"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = ok(
        &s,
        "GET",
        &format!("/admin/identities?organization_id={east}"),
        None,
    )
    .await;
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    ids.sort();
    let mut want = vec![bo.as_str(), cy.as_str()];
    want.sort();
    assert_eq!(ids, want);
    // Refused with nothing written: an unknown organization, and a value that is no UUID.
    let ghost = uuid::Uuid::new_v4().to_string();
    for (org, needle) in [
        (json!(ghost), "no organization has the id"),
        (json!("acme/sales"), "is not a UUID"),
    ] {
        let (st, v) = admin(
            &s,
            "POST",
            "/admin/identities",
            Some(body("dee@example.com", org)),
        )
        .await;
        assert_eq!(st, 400, "{v}");
        let reason = v["error"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("organization_id") && reason.contains(needle),
            "{v}"
        );
    }
    let found = ok(
        &s,
        "GET",
        "/admin/identities?credentials_identifier=dee@example.com",
        None,
    )
    .await;
    assert_eq!(found, json!([]));
    // Fixed at creation: sending it back unchanged is fine, another value is refused.
    let put = |org: Value| json!({"schema_id": "default", "state": "active", "traits": {"email": "bo@example.com"}, "organization_id": org});
    ok(
        &s,
        "PUT",
        &format!("/admin/identities/{bo}"),
        Some(put(json!(east))),
    )
    .await;
    let (st, v) = admin(
        &s,
        "PUT",
        &format!("/admin/identities/{bo}"),
        Some(put(json!(ghost))),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("cannot be changed"), "{v}");
    // Deleting the organization keeps the identity and clears the field.
    let (st, _) = admin(&s, "DELETE", &format!("/admin/organizations/{east}"), None).await;
    assert_eq!(st, 204);
    let after = ok(&s, "GET", &format!("/admin/identities/{bo}"), None).await;
    assert_eq!(after["organization_id"], Value::Null);
    s.stop().await;
}
