//! Identity schemas from `file://` (relative to the config file) and `base64://`, with a
//! username identifier, and a schema that cannot be loaded refusing the start.

use base64::Engine;
use serde_json::{Value, json};
use tessera_testkit::{Backend, TestServer};

fn username_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"traits": {"type": "object", "properties": {
            "username": {"type": "string", "minLength": 3, "title": "Username",
                "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}},
            "phone": {"type": "string", "format": "tel"}
        }, "required": ["username"], "additionalProperties": false}}
    })
}

#[tokio::test]
async fn file_and_base64_schemas() {
    let dir = tessera_testkit::temp_dir();
    std::fs::write(dir.join("user.schema.json"), username_schema().to_string()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(tessera_core::schema::default_schema().to_string());
    let extra = format!(
        "identity:\n  default_schema_id: user\n  schemas:\n    - id: user\n      url: file://user.schema.json\n    - id: person\n      url: base64://{b64}\n"
    );
    let dsn = tessera_testkit::fresh_dsn(Backend::Sqlite, &dir).await;
    let s = TestServer::start_with(Backend::Sqlite, dir, &dsn, &extra).await;
    let c = TestServer::client();
    let ids: Vec<Value> = c
        .get(format!("{}/schemas", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);

    // Registration uses the default schema (username as identifier).
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["traits.username", "traits.phone", "password", "method"]
    );
    let r = c
        .post(format!("{}/self-service/registration?flow={}", s.public, flow["id"].as_str().unwrap()))
        .json(&json!({"method": "password", "traits": {"username": "Zed_Z"}, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.login("zed_z", "correct horse battery").await.0, 200);

    // The admin API can create identities of the other schema.
    let r = c
        .post(format!("{}/admin/identities", s.admin))
        .json(&json!({"schema_id": "person", "traits": {"email": "p@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["schema_url"], format!("{}/schemas/person", s.public));
}

#[tokio::test]
async fn unloadable_schema_refuses_start_with_its_key() {
    let dir = tessera_testkit::temp_dir();
    std::fs::write(dir.join("broken.json"), "{ not json").unwrap();
    let settings_yaml = format!(
        "dsn: memory\nsecrets:\n  default: [\"0123456789abcdef0123\"]\nidentity:\n  default_schema_id: a\n  schemas:\n    - id: a\n      url: file://{}/broken.json\n    - id: b\n      url: file:///nonexistent/x.json\n",
        dir.display()
    );
    let loaded = tessera_config::load_str("t.yml", &settings_yaml, &Default::default()).unwrap();
    let settings = tessera_config::resolve(&loaded, false, None).unwrap();
    let err = tessera_server::app::load_schemas(&settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("identity.schemas.0.url") && err.contains("not valid JSON"),
        "{err}"
    );
}
