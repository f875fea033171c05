//! The in-process parts: parsing and its messages, the import ban, `claims` semantics, output
//! conversion. The worker and pool are tested end to end with the real binary in
//! `crates/tessera/tests/mapper_sandbox.rs`.

use crate::{Mapper, MapperError, evaluate_in_process};
use serde_json::json;

/// Seed 004's GitHub example, as written there.
const GITHUB: &str = r#"local claims = {
  email_verified: false,
} + std.extVar('claims');
{
  identity: {
    traits: {
      // Allowing unverified email addresses enables account
      // enumeration attacks, especially if the value is used for
      // e.g. verification or as a password login identifier.
      //
      // Therefore we only return the email if it (a) exists and (b) is marked verified
      // by GitHub.
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
    },
    metadata_public: {
      github_username: claims.username,
    }
  },
}
"#;

fn compile(source: &str) -> Mapper {
    match Mapper::compile("test mapper", source) {
        Ok(m) => m,
        Err(e) => panic!("expected {source:?} to compile, got: {e}"),
    }
}

fn eval(source: &str, claims: serde_json::Value) -> Result<serde_json::Value, MapperError> {
    evaluate_in_process(&compile(source), &claims)
}

fn syntax(source: &str) -> (usize, usize, String) {
    match Mapper::compile("provider `github` mapper", source) {
        Err(MapperError::Syntax {
            name,
            line,
            column,
            message,
        }) => {
            assert_eq!(name, "provider `github` mapper");
            (line, column, message)
        }
        other => panic!("expected a syntax error for {source:?}, got {other:?}"),
    }
}

#[test]
fn seed_github_mapper_maps_verified_email_and_username() {
    let out = eval(
        GITHUB,
        json!({"sub": "some-identity-id-4hA8gk", "email": "foo@ory.sh", "email_verified": true, "username": "foo-user"}),
    )
    .expect("evaluates");
    assert_eq!(
        out,
        json!({"identity": {"traits": {"email": "foo@ory.sh"}, "metadata_public": {"github_username": "foo-user"}}})
    );
}

#[test]
fn seed_github_mapper_drops_unverified_email() {
    let out = eval(
        GITHUB,
        json!({"sub": "1", "email": "foo@ory.sh", "username": "foo-user"}),
    )
    .expect("evaluates");
    assert_eq!(out["identity"]["traits"], json!({}));
}

#[test]
fn id_is_the_sha256_of_the_source() {
    let m = compile("{}");
    assert_eq!(
        m.id(),
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(m.source(), "{}");
    assert_eq!(m.name(), "test mapper");
}

#[test]
fn syntax_error_names_line_and_column() {
    // Line 3: `a: 1 b: 2`: a ',' is missing before `b`, at column 8.
    let (line, column, message) = syntax("local x = 1;\n{\n  a: 1 b: 2,\n}\n");
    assert_eq!((line, column), (3, 8), "{message}");
    assert!(message.contains("expected"), "{message}");
}

#[test]
fn syntax_error_message_reads_well() {
    let err =
        Mapper::compile("provider `github` mapper", "{\n  a: 1,\n  b: ,\n}").expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.starts_with("provider `github` mapper, line 3 column 6: "),
        "{text}"
    );
}

#[test]
fn unterminated_string_is_a_syntax_error() {
    let (line, _, message) = syntax("{\n  a: 'abc\n}");
    assert_eq!(line, 2, "{message}");
}

#[test]
fn undefined_variable_is_found_at_compile_time() {
    let (line, column, message) =
        syntax("local claims = std.extVar('claims');\n{ a: claim.email }");
    assert_eq!((line, column), (2, 6), "{message}");
    assert!(message.contains("claim"), "{message}");
}

#[test]
fn empty_source_is_a_syntax_error() {
    let (line, column, _) = syntax("");
    assert_eq!((line, column), (1, 1));
}

#[test]
fn non_utf8_like_sources_and_garbage_never_panic() {
    for src in [
        "\u{0}",
        "}{",
        "local",
        "[",
        "'\\u12'",
        "|||\nx",
        "\u{feff}{}",
        "0x",
        "1e999",
    ] {
        let _ = Mapper::compile("m", src);
    }
}

#[test]
fn too_many_tokens_is_refused_with_position() {
    let src = format!("[{}]", "1,".repeat(crate::mapper::MAX_TOKENS));
    let (line, _, message) = syntax(&src);
    assert_eq!(line, 1);
    assert!(message.contains("tokens"), "{message}");
}

#[test]
fn deepest_accepted_mappers_compile() {
    let n = crate::mapper::MAX_TOKENS;
    // One token per tree level: the deepest shape the token cap allows.
    compile(&format!("{}1", "-".repeat(n - 2)));
    // Two tokens per level, each level a bracket.
    compile(&format!(
        "{}1{}",
        "[".repeat(n / 2 - 1),
        "]".repeat(n / 2 - 1)
    ));
    // A left-deep chain.
    compile(&format!("1{}", "+1".repeat(n / 2 - 1)));
}

#[test]
fn imports_are_refused_even_when_the_file_exists() {
    let dir = std::env::temp_dir().join(format!("tessera-mapper-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let lib = dir.join("lib.libsonnet");
    // A value that cannot appear in a path or a position by chance (the directory name holds
    // the process id, which once contained "42").
    std::fs::write(&lib, "{ secret: 'file-content-must-not-leak' }").expect("write");
    for (kind, src) in [
        ("import", format!("import '{}'", lib.display())),
        (
            "importstr",
            format!("{{ a: importstr '{}' }}", lib.display()),
        ),
        (
            "importbin",
            format!("{{ a: importbin '{}' }}", lib.display()),
        ),
        ("relative import", "import 'lib.libsonnet'".to_owned()),
    ] {
        match eval(&src, json!({})) {
            Err(MapperError::Runtime { message, .. }) => {
                assert!(
                    message.contains("imports are not allowed in mappers"),
                    "{kind}: {message}"
                );
                assert!(
                    !message.contains("file-content-must-not-leak"),
                    "{kind}: {message}"
                );
                assert!(message.contains("line 1 column"), "{kind}: {message}");
            }
            other => panic!("{kind}: expected a refusal, got {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_the_claims_ext_var_exists() {
    match eval("{ a: std.extVar('secrets') }", json!({})) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("secrets"), "{message}")
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn no_native_functions_are_registered() {
    let out = eval("{ n: std.native('anything') == null }", json!({})).expect("evaluates");
    assert_eq!(out, json!({"n": true}));
}

#[test]
fn claims_are_a_value_with_field_tests_and_raw_claims() {
    let src = r#"local claims = std.extVar('claims');
{
  identity: {
    traits: {
      has_email: 'email' in claims,
      has_phone: 'phone_number' in claims,
      [if 'groups' in claims.raw_claims then 'groups' else null]: claims.raw_claims.groups,
      big: claims.raw_claims.big,
      nested: claims.raw_claims.n.deep,
      text: claims.name,
    },
  },
}"#;
    let out = eval(
        src,
        json!({
            "email": "a@b.c",
            // Jsonnet syntax inside a claim is just text.
            "name": "std.extVar('x') + \"quote",
            "raw_claims": {"groups": ["admins", "devs"], "big": 12345678901_i64, "n": {"deep": [1.5, null, true]}},
        }),
    )
    .expect("evaluates");
    assert_eq!(
        out["identity"]["traits"],
        json!({
            "big": 12345678901_i64,
            "groups": ["admins", "devs"],
            "has_email": true,
            "has_phone": false,
            "nested": [1.5, null, true],
            "text": "std.extVar('x') + \"quote",
        })
    );
}

#[test]
fn the_same_mapper_sees_each_calls_claims() {
    let m = compile("{ e: std.extVar('claims').email }");
    for email in ["a@x", "b@x", "c@x"] {
        let out = evaluate_in_process(&m, &json!({ "email": email })).expect("evaluates");
        assert_eq!(out, json!({ "e": email }));
    }
}

#[test]
fn error_expression_is_a_runtime_error_with_its_message_and_line() {
    match eval("{\n  a: error 'boom',\n}", json!({})) {
        Err(MapperError::Runtime { name, message }) => {
            assert_eq!(name, "test mapper");
            assert!(message.starts_with("boom"), "{message}");
            assert!(message.contains("line 2"), "{message}");
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn missing_field_names_the_field() {
    match eval("{ a: std.extVar('claims').email }", json!({})) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.starts_with("no such field: email"), "{message}");
            assert!(message.contains("line 1 column 26"), "{message}");
            assert!(message.contains("'email' in claims"), "{message}");
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn output_must_be_an_object() {
    for (src, found) in [
        ("[1]", "an array"),
        ("'x'", "a string"),
        ("1", "a number"),
        ("null", "null"),
        ("true", "a boolean"),
        ("function(x) x", "a function"),
    ] {
        match eval(src, json!({})) {
            Err(MapperError::NotAnObject { found: f, .. }) => assert_eq!(f, found, "{src}"),
            other => panic!("{src}: expected NotAnObject, got {other:?}"),
        }
    }
}

#[test]
fn functions_inside_the_output_are_named() {
    match eval("{ identity: { traits: { f: function(x) x } } }", json!({})) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("identity.traits.f"), "{message}")
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn hidden_fields_and_assertions_follow_jsonnet() {
    let out = eval("{ a: 1, b:: 2, c: self.b + 1 }", json!({})).expect("evaluates");
    assert_eq!(out, json!({"a": 1, "c": 3}));
    match eval("{ assert false : 'traits incomplete', a: 1 }", json!({})) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("traits incomplete"), "{message}")
        }
        other => panic!("expected an assertion failure, got {other:?}"),
    }
}

#[test]
fn deep_output_is_refused_not_crashed() {
    let src = "{ a: std.foldl(function(acc, x) [acc], std.range(1, 1000), []) }";
    match eval(src, json!({})) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("nested more than"), "{message}")
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[test]
fn deep_recursion_hits_the_jsonnet_stack_limit() {
    match eval(
        "local f(x) = if x == 0 then 0 else 1 + f(x - 1); { a: f(100000) }",
        json!({}),
    ) {
        Err(MapperError::Runtime { message, .. }) => {
            assert!(message.contains("stack overflow"), "{message}")
        }
        other => panic!("expected a stack overflow error, got {other:?}"),
    }
}

#[test]
fn std_trace_passes_its_value_through() {
    let out = eval("{ a: std.trace('debugging', 41) + 1 }", json!({})).expect("evaluates");
    assert_eq!(out, json!({"a": 42}));
}
