//! Admin API: identities and sessions with Kratos's paths, shapes and pagination.

use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer, each_backend};

fn c() -> reqwest::Client {
    TestServer::client()
}

async fn create(s: &TestServer, body: Value) -> (u16, Value) {
    let r = c()
        .post(format!("{}/admin/identities", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

each_backend!(create_import_hashes_and_sign_in_with_each);
async fn create_import_hashes_and_sign_in_with_each(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    let cases = [
        (
            "plain@example.com",
            json!({"password": "plain password 1"}),
            "plain password 1",
        ),
        // Openwall crypt_blowfish test vector: "U*U".
        (
            "bcrypt@example.com",
            json!({"hashed_password": "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"}),
            "U*U",
        ),
        // Computed with Python's hashlib.pbkdf2_hmac('sha256', ..., 1000, 32).
        (
            "pbkdf2@example.com",
            json!({"hashed_password": "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHRzYWx0MTIzNA$wdn/02H1351ST1PxHDUlEnz7TS5RKblu7wCQIc8MMH4"}),
            "imported password",
        ),
        // Argon2 reference vector (password "password", salt "somesalt").
        (
            "argon2@example.com",
            json!({"hashed_password": "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"}),
            "password",
        ),
    ];
    for (email, config, password) in &cases {
        let (st, body) = create(&s, json!({"schema_id": "default", "traits": {"email": email}, "credentials": {"password": {"config": config}}})).await;
        assert_eq!(st, 201, "{email}: {body}");
        assert_eq!(body["schema_url"], format!("{}/schemas/default", s.public));
        assert!(
            body.get("credentials").is_none()
                || body["credentials"]["password"].get("config").is_none(),
            "no secrets in create output"
        );
        let (st, login) = s.login(email, password).await;
        assert_eq!(st, 200, "{backend:?} {email}: {login}");
        assert_eq!(s.login(email, "wrong password!").await.0, 400);
    }
    // After the bcrypt login the stored hash was upgraded to argon2id, and still verifies.
    let list: Vec<Value> = c()
        .get(format!(
            "{}/admin/identities?credentials_identifier=BCRYPT@example.com",
            s.admin
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap();
    let full: Value = c()
        .get(format!(
            "{}/admin/identities/{id}?include_credential=password",
            s.admin
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        full["credentials"]["password"]["config"]["hashed_password"]
            .as_str()
            .unwrap()
            .starts_with("$argon2id$"),
        "{full}"
    );
    assert_eq!(
        full["credentials"]["password"]["identifiers"],
        json!(["bcrypt@example.com"])
    );
    assert_eq!(s.login("bcrypt@example.com", "U*U").await.0, 200);
    let plain: Value = c()
        .get(format!("{}/admin/identities/{id}", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        plain["credentials"]["password"].get("config").is_none(),
        "config only with include_credential: {plain}"
    );
    s.stop().await;
}

each_backend!(bad_identity_bodies_are_refused_precisely_and_write_nothing);
async fn bad_identity_bodies_are_refused_precisely_and_write_nothing(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    let (st, _) = create(&s, json!({"traits": {"email": "taken@example.com"}})).await;
    assert_eq!(st, 201);
    let cases = [
        (
            json!({"traits": {"email": "TAKEN@example.com"}}),
            409,
            "conflicts",
        ),
        (
            json!({"traits": {"email": "x@example.com"}, "credentials": {"password": {"config": {"hashed_password": "$md5$abc"}}}}),
            400,
            "hashed_password",
        ),
        (
            json!({"traits": {"email": "x@example.com"}, "credentials": {"password": {"config": {"hashed_password": "$2a$05$short"}}}}),
            400,
            "hashed_password",
        ),
        (json!({"traits": {}}), 400, "traits.email"),
        (
            json!({"traits": {"email": "x@example.com"}, "schema_id": "nope"}),
            400,
            "nope",
        ),
        (
            json!({"traits": {"email": "x@example.com"}, "state": "frozen"}),
            400,
            "state",
        ),
        (
            json!({"traits": {"email": "x@example.com"}, "trait": {}}),
            400,
            "trait",
        ),
        (json!({"traits": "x"}), 400, "traits"),
        (json!([1, 2]), 400, "object"),
        (
            json!({"traits": {"email": "x@example.com"}, "id": "not-a-uuid"}),
            400,
            "UUID",
        ),
    ];
    for (body, status, needle) in cases {
        let (st, out) = create(&s, body.clone()).await;
        assert_eq!(st, status, "{body} -> {out}");
        let reason = out["error"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(needle),
            "{body}: reason `{reason}` should mention `{needle}`"
        );
    }
    let list: Vec<Value> = c()
        .get(format!("{}/admin/identities", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "only the first identity exists");
    s.stop().await;
}

each_backend!(pagination_with_link_headers);
async fn pagination_with_link_headers(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    for i in 0..5 {
        assert_eq!(
            create(
                &s,
                json!({"traits": {"email": format!("p{i}@example.com")}})
            )
            .await
            .0,
            201
        );
    }
    let mut url = format!("{}/admin/identities?page_size=2", s.admin);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = c().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let link = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(link.contains("rel=\"first\""), "{link}");
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        pages += 1;
        let next = link
            .split(',')
            .find(|p| p.contains("rel=\"next\""))
            .map(|p| {
                p.split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .trim_matches(|c| c == '<' || c == '>')
                    .to_string()
            });
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "every identity once");

    for bad in [
        "page_token=garbage",
        "page_token=dGVzc2VyYS92MS9zZXNzaW9ucy94",
        "page_size=0",
        "page_size=501",
        "page_size=abc",
    ] {
        let r = c()
            .get(format!("{}/admin/identities?{bad}", s.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["reason"].as_str().unwrap().contains("page_"),
            "{e}"
        );
    }
    s.stop().await;
}

each_backend!(get_put_patch_delete);
async fn get_put_patch_delete(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    let (_, i) = create(
        &s,
        json!({"traits": {"email": "jo@example.com"}, "metadata_public": {"plan": "free"}}),
    )
    .await;
    let id = i["id"].as_str().unwrap();
    let url = format!("{}/admin/identities/{id}", s.admin);

    let r = c().put(&url).json(&json!({"schema_id": "default", "traits": {"email": "jo2@example.com"}, "state": "inactive", "metadata_admin": {"note": "x"}})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "inactive");
    assert_eq!(v["traits"]["email"], "jo2@example.com");
    assert_eq!(v["verifiable_addresses"][0]["value"], "jo2@example.com");

    let r = c().patch(&url).json(&json!([{"op": "replace", "path": "/state", "value": "active"}, {"op": "add", "path": "/traits/name", "value": {"first": "Jo"}}])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["traits"]["name"]["first"], "Jo");
    assert_eq!(v["metadata_admin"]["note"], "x");

    for (patch, needle) in [
        (
            json!([{"op": "replace", "path": "/id", "value": "x"}]),
            "/id",
        ),
        (
            json!([{"op": "remove", "path": "/traits/email"}]),
            "traits.email",
        ),
        (json!({"op": "replace"}), "JSON Patch"),
        (
            json!([{"op": "replace", "path": "/traits/missing/deep", "value": 1}]),
            "cannot be applied",
        ),
    ] {
        let r = c().patch(&url).json(&patch).send().await.unwrap();
        assert_eq!(r.status(), 400, "{patch}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["reason"].as_str().unwrap().contains(needle),
            "{e}"
        );
    }
    let still: Value = c().get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        still["traits"]["email"], "jo2@example.com",
        "refused patches change nothing"
    );

    assert_eq!(c().delete(&url).send().await.unwrap().status(), 204);
    let r = c().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(c().delete(&url).send().await.unwrap().status(), 404);
    let r = c()
        .get(format!("{}/admin/identities/not-a-uuid", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn batch_create_reports_each_entry() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let body = json!({"identities": [
        {"create": {"traits": {"email": "b1@example.com"}}, "patch_id": "00000000-0000-0000-0000-000000000001"},
        {"create": {"traits": {}}, "patch_id": "00000000-0000-0000-0000-000000000002"},
        {"create": {"traits": {"email": "b1@example.com"}}, "patch_id": "00000000-0000-0000-0000-000000000003"},
        {"create": {"traits": {"email": "b2@example.com"}}, "patch_id": "00000000-0000-0000-0000-000000000004"},
    ]});
    let r = c()
        .patch(format!("{}/admin/identities", s.admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let actions: Vec<&str> = out["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "error", "error", "create"]);
    assert_eq!(out["identities"][2]["error"]["code"], 409);
}

each_backend!(admin_sessions_list_get_extend_disable);
async fn admin_sessions_list_get_extend_disable(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    s.register("kim@example.com", "correct horse battery").await;
    let (_, l1) = s.login("kim@example.com", "correct horse battery").await;
    let (_, l2) = s.login("kim@example.com", "correct horse battery").await;
    let identity = l1["session"]["identity"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = l1["session"]["id"].as_str().unwrap().to_string();

    let list: Vec<Value> = c()
        .get(format!("{}/admin/identities/{identity}/sessions", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let all: Vec<Value> = c()
        .get(format!("{}/admin/sessions?expand=identity", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["identity"]["id"], identity.as_str());

    let before = l1["session"]["expires_at"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = c()
        .patch(format!("{}/admin/sessions/{sid}/extend", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ext: Value = r.json().await.unwrap();
    // Compare instants, not strings: RFC 3339 fractions vary in length (".5Z" vs ".52Z").
    let ms = |v: &str| tessera_core::timefmt::parse_rfc3339(v).expect("RFC 3339 time");
    assert!(
        ms(ext["expires_at"].as_str().unwrap()) > ms(&before),
        "{} should be later than {before}",
        ext["expires_at"]
    );

    assert_eq!(
        c().delete(format!("{}/admin/sessions/{sid}", s.admin))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(s.whoami(l1["session_token"].as_str().unwrap()).await.0, 401);
    assert_eq!(s.whoami(l2["session_token"].as_str().unwrap()).await.0, 200);
    let active: Vec<Value> = c()
        .get(format!("{}/admin/sessions?active=true", s.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active.len(), 1);

    assert_eq!(
        c().delete(format!("{}/admin/identities/{identity}/sessions", s.admin))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(s.whoami(l2["session_token"].as_str().unwrap()).await.0, 401);
    assert_eq!(
        c().get(format!("{}/admin/sessions/{}", s.admin, uuid_zero()))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    s.stop().await;
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

/// Security review M4: no web page can reach the admin API. A cross-site form post, a
/// `no-cors` fetch of JSON without a Content-Type, a DNS-rebound Host and any request carrying
/// `Origin` (so every CORS preflight too) are refused, and nothing is created.
#[tokio::test]
async fn the_admin_api_answers_no_browser_and_no_foreign_host() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let c = TestServer::client();
    let url = format!("{}/admin/identities", s.admin);
    let create = json!({"schema_id": "default", "traits": {"email": "evil@example.com"}, "metadata_admin": {"role": "admin"}});
    let expect = |status: u16, id: Option<&'static str>| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            let v: Value = r.json().await.unwrap();
            if let Some(id) = id {
                assert_eq!(v["error"]["id"], id, "{v}");
            }
            assert!(!v["error"]["reason"].as_str().unwrap().is_empty());
        }
    };
    // The form the attack page auto-submits.
    let r = c
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("traits.email=evil%40example.com&metadata_admin.role=admin")
        .send()
        .await
        .unwrap();
    expect(415, None)(r).await;
    // `fetch(url, {mode: 'no-cors', body: new Blob([json])})`: JSON with no Content-Type.
    let r = c.post(&url).body(create.to_string()).send().await.unwrap();
    expect(415, None)(r).await;
    // text/plain, the other "simple" type.
    let r = c
        .post(&url)
        .header("content-type", "text/plain")
        .body(create.to_string())
        .send()
        .await
        .unwrap();
    expect(415, None)(r).await;
    // DNS rebinding: the attacker's name, resolved to the admin listener.
    let r = c
        .get(&url)
        .header("host", "rebind.attacker.example")
        .send()
        .await
        .unwrap();
    expect(403, Some("security_host_mismatch"))(r).await;
    // Anything a page's script sends carries Origin; a preflight gets no CORS answer.
    let r = c
        .post(&url)
        .header("origin", "https://attacker.example")
        .json(&create)
        .send()
        .await
        .unwrap();
    expect(403, Some("security_cross_site_request"))(r).await;
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://attacker.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = c
        .get(&url)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    expect(403, Some("security_cross_site_request"))(r).await;
    let list: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(list, json!([]), "nothing was created");

    // What the CLI and servers send still works: JSON, JSON Patch, localhost by name, and
    // health probes by any host.
    let r = c.post(&url).json(&create).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .patch(format!("{url}/{id}"))
        .header("content-type", "application/json-patch+json")
        .body(json!([{"op": "replace", "path": "/metadata_admin", "value": {}}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let port = s.admin.rsplit(':').next().unwrap();
    let r = c
        .get(format!("http://localhost:{port}/admin/identities"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/health/ready", s.admin))
        .header("host", "10.1.2.3:4434")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

each_backend!(racing_admin_writes_lose_no_acknowledged_change);
/// Issue 21, "no lost update", on the admin API: a PATCH or PUT reads the identity, changes it
/// and writes it back whole. Racing ones used to write over each other (the last one undid
/// what the others had acknowledged). Now each writes only over what it read and retries from
/// a fresh read; one that keeps losing answers 409 and saves nothing. So every change answered
/// 200 is in the final identity, and none answered 409 is.
async fn racing_admin_writes_lose_no_acknowledged_change(backend: Backend) {
    let s = TestServer::start(backend, "").await;
    let (st, created) = create(
        &s,
        json!({"schema_id": "default", "traits": {"email": "race@example.com"}, "metadata_admin": {},
               "credentials": {"password": {"config": {"password": "the first password 1"}}}}),
    )
    .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/admin/identities/{id}");
    // Twelve patches, each adding its own key, and one PUT changing the password and adding
    // its own key, all at once.
    let mut racers = Vec::new();
    for i in 0..12 {
        let (s_admin, path) = (s.admin.clone(), path.clone());
        racers.push(tokio::spawn(async move {
            let r = c()
                .patch(format!("{s_admin}{path}"))
                .json(&json!([{"op": "add", "path": format!("/metadata_admin/k{i}"), "value": i}]))
                .send()
                .await
                .unwrap();
            (format!("k{i}"), r.status().as_u16())
        }));
    }
    // The PUT leaves metadata_admin out, which keeps it as it is.
    let put = {
        let (s_admin, path) = (s.admin.clone(), path.clone());
        tokio::spawn(async move {
            let r = c()
                .put(format!("{s_admin}{path}"))
                .json(&json!({"schema_id": "default", "traits": {"email": "race@example.com"},
                              "credentials": {"password": {"config": {"password": "the second password 2"}}}}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    let put_status = put.await.unwrap();
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.unwrap());
    }
    let after = s.admin_ok(reqwest::Method::GET, &path, None).await;
    let meta = &after["metadata_admin"];
    for (key, status) in &outcomes {
        match status {
            200 => assert!(
                meta.get(key).is_some(),
                "{key} was acknowledged but lost: {meta}"
            ),
            409 => assert!(meta.get(key).is_none(), "{key} answered 409 but was saved"),
            other => panic!("{key}: unexpected {other}"),
        }
    }
    // An acknowledged password change is the password now, whatever the patches did after
    // it: they must not have put the first password's hash back. A PUT that kept losing
    // (409) saved nothing.
    let (now, before) = match put_status {
        200 => ("the second password 2", "the first password 1"),
        409 => ("the first password 1", "the second password 2"),
        other => panic!("PUT: unexpected {other}"),
    };
    let (status, _) = s.login("race@example.com", now).await;
    assert_eq!(
        status, 200,
        "PUT answered {put_status}, yet {now:?} does not sign in"
    );
    let (status, _) = s.login("race@example.com", before).await;
    assert_eq!(status, 400);
    let acknowledged = outcomes.iter().filter(|(_, st)| *st == 200).count();
    assert!(acknowledged > 0, "{outcomes:?}");
    println!(
        "{acknowledged} of 12 racing patches acknowledged, the PUT {put_status}; {outcomes:?}"
    );
    s.stop().await;
}
