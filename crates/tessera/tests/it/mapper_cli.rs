//! `tessera mapper test`: the real binary, its output, verdicts and exit statuses.

use crate::GITHUB_MAPPER;
use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// An identity schema that requires `email` and allows `name`.
const SCHEMA: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {"type": "string", "format": "email"},
        "name": {"type": "string"}
      },
      "required": ["email"]
    }
  }
}"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(BIN).args(args).output().expect("run tessera");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write file");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn valid_mapper_and_claims_print_the_output_and_exit_0() {
    let dir = tessera_testkit::temp_dir();
    let m = write(&dir, "github.jsonnet", GITHUB_MAPPER);
    let c = write(
        &dir,
        "claims.json",
        r#"{"sub": "some-identity-id-4hA8gk", "email": "foo@ory.sh", "email_verified": true, "username": "foo-user"}"#,
    );
    let r = run(&["mapper", "test", "--mapper", s(&m), "--claims", s(&c)]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).expect("stdout is the output JSON");
    assert_eq!(
        out,
        json!({"identity": {"traits": {"email": "foo@ory.sh"}, "metadata_public": {"github_username": "foo-user"}}})
    );
    assert!(
        r.stderr
            .contains("valid: identity.traits match identity schema `default`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("evaluated in "), "{}", r.stderr);
    assert!(r.stderr.contains(" ms"), "{}", r.stderr);
}

#[test]
fn claims_without_email_fail_a_schema_that_requires_it() {
    let dir = tessera_testkit::temp_dir();
    let m = write(&dir, "github.jsonnet", GITHUB_MAPPER);
    let c = write(
        &dir,
        "claims.json",
        r#"{"sub": "1", "username": "foo-user"}"#,
    );
    let schema = write(&dir, "person.schema.json", SCHEMA);
    let cfg = write(
        &dir,
        "tessera.yml",
        "identity:\n  default_schema_id: person\n  schemas:\n    - id: person\n      url: file://person.schema.json\n",
    );
    let r = run(&[
        "mapper",
        "test",
        "--mapper",
        s(&m),
        "--claims",
        s(&c),
        "--config",
        s(&cfg),
    ]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    // The output is still shown, so the user sees what the mapper produced.
    let out: Value = serde_json::from_str(&r.stdout).expect("stdout is the output JSON");
    assert_eq!(out["identity"]["traits"], json!({}));
    assert!(
        r.stderr
            .contains("invalid: identity.traits do not match identity schema `person` (1 problem)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("traits.email: Property email is missing. (message id 4000002)"),
        "{}",
        r.stderr
    );
    assert!(schema.exists());
}

#[test]
fn an_unknown_provider_id_lists_the_configured_ones() {
    let dir = tessera_testkit::temp_dir();
    let c = write(&dir, "claims.json", r#"{"sub": "1"}"#);
    let cfg = write(
        &dir,
        "tessera.yml",
        "selfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: github\n            provider: github\n            mapper_url: base64://e30=\n          - id: dingtalk\n            provider: dingtalk\n            mapper_url: base64://e30=\n",
    );
    let r = run(&[
        "mapper",
        "test",
        "--provider",
        "gitlab",
        "--config",
        s(&cfg),
        "--claims",
        s(&c),
    ]);
    assert_eq!(r.code, 2, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no provider `gitlab`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("configured ids: github, dingtalk"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn provider_mapper_is_read_from_a_base64_mapper_url() {
    let dir = tessera_testkit::temp_dir();
    let c = write(
        &dir,
        "claims.json",
        r#"{"sub": "42", "email": "octo@example.com", "email_verified": true, "username": "octocat", "name": "Octo Cat"}"#,
    );
    write(&dir, "person.schema.json", SCHEMA);
    let mapper = "local c = std.extVar('claims');\n{ identity: { traits: { email: c.email, name: c.name } } }\n";
    let url = format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(mapper)
    );
    let cfg = write(
        &dir,
        "tessera.yml",
        &format!(
            "identity:\n  default_schema_id: person\n  schemas:\n    - id: person\n      url: file://person.schema.json\nselfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: github\n            provider: github\n            client_id: abc\n            client_secret: def\n            mapper_url: {url}\n"
        ),
    );
    let r = run(&[
        "mapper",
        "test",
        "--provider",
        "github",
        "--config",
        s(&cfg),
        "--claims",
        s(&c),
    ]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).expect("stdout is the output JSON");
    assert_eq!(
        out,
        json!({"identity": {"traits": {"email": "octo@example.com", "name": "Octo Cat"}}})
    );
    assert!(r.stderr.contains("schema `person`"), "{}", r.stderr);
}

#[test]
fn a_syntax_error_fails_with_its_position() {
    let dir = tessera_testkit::temp_dir();
    let m = write(
        &dir,
        "broken.jsonnet",
        "{\n  identity: {\n    traits: { email: 'x' }\n  \n",
    );
    let c = write(&dir, "claims.json", "{}");
    let r = run(&["mapper", "test", "--mapper", s(&m), "--claims", s(&c)]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("broken.jsonnet"), "{}", r.stderr);
    // Right after the last token, where the missing `}` belongs.
    assert!(
        r.stderr
            .contains("line 3 column 27: expected '}', got end of file"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failing_mapper_exits_1_with_its_error() {
    let dir = tessera_testkit::temp_dir();
    let m = write(&dir, "boom.jsonnet", "{ identity: error 'boom' }");
    let c = write(&dir, "claims.json", "{}");
    let r = run(&["mapper", "test", "--mapper", s(&m), "--claims", s(&c)]);
    assert_eq!(r.code, 1, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("boom"), "{}", r.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tessera_testkit::temp_dir();
    let m = write(&dir, "github.jsonnet", GITHUB_MAPPER);
    let bad = write(&dir, "bad.json", "{\"sub\": ");
    let list = write(&dir, "list.json", "[1, 2]");
    let good = write(&dir, "claims.json", "{}");

    let r = run(&["mapper", "test", "--mapper", s(&m), "--claims", s(&bad)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);

    let r = run(&["mapper", "test", "--mapper", s(&m), "--claims", s(&list)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("must hold a JSON object"), "{}", r.stderr);

    let r = run(&[
        "mapper",
        "test",
        "--mapper",
        s(&m),
        "--claims",
        s(&good),
        "--schema",
        "other",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("no identity schema `other`"),
        "{}",
        r.stderr
    );

    // --provider needs a configuration to look in.
    let r = run(&[
        "mapper",
        "test",
        "--provider",
        "github",
        "--claims",
        s(&good),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = run(&["mapper", "test", "--claims", s(&good)]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
