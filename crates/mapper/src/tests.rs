//! The in-process parts: parsing and its messages, the import ban, `claims` semantics, output
//! conversion, and what the worker's lockdown forbids (in a child process). The worker and pool
//! are tested end to end with the real binary in `crates/tessera/tests/mapper_sandbox.rs`, and
//! the lockdown of pool-spawned workers in `tests/worker_lockdown.rs`.

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

#[test]
fn a_worker_retires_once_its_cpu_budget_is_spent() {
    use crate::lockdown::CpuBudget;
    use std::time::Duration;
    let production = Duration::from_secs(crate::lockdown::CPU_RETIRE_SECS);
    assert!(!CpuBudget::retiring_after(production).spent());
    let mut spent = CpuBudget::retiring_after(Duration::ZERO);
    assert!(spent.spent());
    // Not asked again within the second.
    assert!(!spent.spent());
}

/// Set in the child process of [`the_lockdown_forbids_files_sockets_processes_and_signals`].
#[cfg(target_os = "linux")]
const LOCKDOWN_PROBE: &str = "TESSERA_LOCKDOWN_PROBE";

#[cfg(target_os = "linux")]
fn outcome(rc: libc::c_long) -> String {
    if rc >= 0 {
        return "ok".into();
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EMFILE) => "EMFILE".into(),
        Some(libc::EAGAIN) => "EAGAIN".into(),
        other => format!("errno {other:?}"),
    }
}

/// The child: locks itself down as a worker does, then tries what a compromised worker would.
#[cfg(target_os = "linux")]
fn lockdown_probe() {
    let parent = std::os::unix::process::parent_id() as libc::pid_t;
    let locked = crate::lockdown::apply(0).expect("the lockdown applies");
    let file = std::ffi::CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("a C string");
    let environ = std::ffi::CString::new(format!("/proc/{parent}/environ")).expect("a C string");
    let open = |path: &std::ffi::CString| {
        // SAFETY: a valid C string; the descriptor, if any, is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let result = outcome(fd.into());
        if fd >= 0 {
            // SAFETY: the descriptor just opened.
            unsafe { libc::close(fd) };
        }
        result
    };
    let mut report = vec![
        format!("landlock={:?}", locked.landlock),
        format!("seccomp={}", locked.seccomp),
        format!("open_with_no_free_fd={}", open(&file)),
    ];
    // An attacker would free a descriptor first.
    drop(locked.output);
    report.push(format!("open_file={}", open(&file)));
    report.push(format!("open_parent_environ={}", open(&environ)));
    // SAFETY: plain integers; a descriptor, if any, is closed at once.
    let sock = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    report.push(format!("socket={}", outcome(sock.into())));
    if sock >= 0 {
        // SAFETY: the descriptor just opened.
        unsafe { libc::close(sock) };
    }
    // SAFETY: a forked child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the forked child at once.
        unsafe { libc::_exit(0) };
    }
    report.push(format!("fork={}", outcome(pid.into())));
    let thread = std::thread::Builder::new().spawn(|| ());
    report.push(format!(
        "thread={}",
        if thread.is_ok() { "ok" } else { "refused" }
    ));
    // SAFETY: valid C strings and a null-terminated argument list; on success the process is
    // replaced and prints no report, which fails the test.
    let exec = unsafe {
        libc::execl(
            c"/bin/true".as_ptr(),
            c"true".as_ptr(),
            std::ptr::null::<libc::c_char>(),
        )
    };
    report.push(format!("exec={}", outcome(exec.into())));
    // SAFETY: signal 0 only checks permission.
    let kill = unsafe { libc::kill(parent, 0) };
    report.push(format!("signal_parent={}", outcome(kill.into())));
    // After libtest's "test … … " on the same line.
    println!("LOCKDOWN {}", report.join(" "));
    std::process::exit(0);
}

/// The worker's lockdown seen from inside: this test starts its own binary again as a child
/// that runs only this test with [`LOCKDOWN_PROBE`] set, which makes it the probe: it locks
/// itself down exactly as a worker does ([`crate::lockdown::apply`]), tries what code that took
/// over a worker would try, and reports what happened on stdout.
#[cfg(target_os = "linux")]
#[test]
fn the_lockdown_forbids_files_sockets_processes_and_signals() {
    if std::env::var_os(LOCKDOWN_PROBE).is_some() {
        return lockdown_probe();
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args([
            "tests::the_lockdown_forbids_files_sockets_processes_and_signals",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCKDOWN_PROBE, "1")
        .output()
        .expect("the probe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let line = stdout
        .lines()
        .find_map(|l| Some(l.split_once("LOCKDOWN ")?.1))
        .unwrap_or_else(|| panic!("no report from the probe:\n{stdout}\n{stderr}"));
    let report: std::collections::HashMap<&str, &str> = line
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let seen = |key: &str| report.get(key).copied().unwrap_or("missing");

    // RLIMIT_NOFILE: the worker's descriptors are all taken.
    assert_eq!(seen("open_with_no_free_fd"), "EMFILE", "{line}");

    match crate::lockdown::landlock_abi() {
        Some(abi) => {
            assert_eq!(seen("landlock"), format!("Some({abi})"), "{line}");
            assert_eq!(seen("open_file"), "EACCES", "{line}");
            assert_eq!(seen("open_parent_environ"), "EACCES", "{line}");
            if abi >= 6 {
                assert_eq!(seen("signal_parent"), "EPERM", "{line}");
            }
        }
        None => {
            eprintln!("this kernel has no Landlock: its part of the lockdown is not tested");
            assert_eq!(seen("landlock"), "None", "{line}");
        }
    }

    if cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) && std::fs::read_to_string("/proc/self/status").is_ok_and(|s| s.contains("Seccomp:"))
    {
        assert_eq!(seen("seccomp"), "true", "{line}");
        assert_eq!(seen("socket"), "EPERM", "{line}");
        assert_eq!(seen("fork"), "EPERM", "{line}");
        assert_eq!(seen("exec"), "EPERM", "{line}");
        assert_eq!(seen("thread"), "refused", "{line}");
    } else {
        eprintln!("no seccomp filter on this platform: its part of the lockdown is not tested");
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        // RLIMIT_NPROC 0 (EAGAIN), which the kernel does not apply to root, if seccomp did not
        // refuse first (EPERM).
        assert!(matches!(seen("fork"), "EAGAIN" | "EPERM"), "{line}");
        assert_eq!(seen("thread"), "refused", "{line}");
    }
}
