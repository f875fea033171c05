//! Configuration loading: every problem names the key and where it was set.

use std::collections::HashMap;
use tessera_config::{Location, load, load_str, resolve};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const GOOD: &str = "dsn: memory\nsecrets:\n  default:\n    - 0123456789abcdef0123\n";

#[test]
fn unknown_key_names_key_file_and_line_with_suggestion() {
    let text = "dsn: memory\nserve:\n  public:\n    prot: 4433\n";
    let err = load_str("tessera.yml", text, &HashMap::new()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`serve.public.prot` (tessera.yml:4)"), "{msg}");
    assert!(msg.contains("Did you mean `serve.public.port`?"), "{msg}");
}

#[test]
fn all_unknown_keys_are_reported_at_once() {
    let err = load_str("c.yml", "dsnn: x\nlogg: {}\n", &HashMap::new()).unwrap_err();
    assert_eq!(err.problems.len(), 2);
    assert_eq!(
        err.problems[1].location,
        Location::File {
            path: "c.yml".into(),
            line: 2
        }
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let err = load_str(
        "t.yml",
        "dsn: memory\nserve:\n  admin:\n    port: lots\n",
        &HashMap::new(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`serve.admin.port` (t.yml:4)") && msg.contains("port number"),
        "{msg}"
    );
}

#[test]
fn short_secret_is_refused_with_its_line() {
    let loaded = load_str(
        "t.yml",
        "dsn: memory\nsecrets:\n  cookie:\n    - tooshort\n",
        &HashMap::new(),
    )
    .unwrap();
    let err = resolve(&loaded, false, None).unwrap_err().to_string();
    assert!(
        err.contains("`secrets.cookie.0` (t.yml:4)") && err.contains("at least 16"),
        "{err}"
    );
}

#[test]
fn missing_dsn_and_secret_without_dev() {
    let loaded = load_str("t.yml", "log:\n  level: info\n", &HashMap::new()).unwrap();
    let err = resolve(&loaded, false, None).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&"dsn") && keys.contains(&"secrets.default"),
        "{keys:?}"
    );
    // --dev fills both in.
    assert!(resolve(&loaded, true, Some("generated-secret-0123456789")).is_ok());
}

#[test]
fn syntax_error_names_the_line() {
    let err = load_str("bad.yml", "dsn: memory\nserve: [\n", &HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bad.yml:"), "{err}");
}

#[test]
fn environment_overrides_like_kratos() {
    let e = env(&[
        ("DSN", "sqlite://x.db"),
        ("SERVE_PUBLIC_PORT", "5555"),
        ("SECRETS_COOKIE", "cookie-secret-0123456789"),
        ("IDENTITY_SCHEMAS", r#"[{"id":"p","url":"file://p.json"}]"#),
        ("IDENTITY_DEFAULT_SCHEMA_ID", "p"),
        (
            "SELFSERVICE_FLOWS_REGISTRATION_AFTER_PASSWORD_HOOKS",
            r#"[{"hook":"session"}]"#,
        ),
    ]);
    let loaded = load_str("t.yml", GOOD, &e).unwrap();
    let s = resolve(&loaded, false, None).unwrap();
    assert_eq!(s.dsn, "sqlite://x.db");
    assert_eq!(s.serve.public_bind.1, 5555);
    assert_eq!(s.secrets.cookie, vec!["cookie-secret-0123456789"]);
    assert_eq!(s.identity.schemas[0].id, "p");
    assert!(s.flows.registration.session_after_password);
    let bad = load_str("t.yml", GOOD, &env(&[("SERVE_PUBLIC_PORT", "http")]))
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("environment variable SERVE_PUBLIC_PORT"),
        "{bad}"
    );
}

#[test]
fn later_files_win() {
    let dir = std::env::temp_dir().join(format!("tessera-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.yml");
    let b = dir.join("b.json");
    std::fs::write(&a, "dsn: memory\nlog:\n  level: debug\n  format: text\n").unwrap();
    std::fs::write(&b, "{\n  \"log\": {\"format\": \"json\"}\n}\n").unwrap();
    let loaded = load(&[a, b.clone()], &HashMap::new()).unwrap();
    assert_eq!(loaded.config.log.level, "debug");
    assert_eq!(loaded.config.log.format, "json");
    assert_eq!(
        loaded.location("log.format"),
        Location::File { path: b, line: 2 }
    );
}

/// Kratos's quickstart folder, copied verbatim (see `fixtures/kratos-quickstart/NOTICE.md`).
fn quickstart(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kratos-quickstart")
        .join(name)
}

/// Every quickstart `kratos.yml` of Kratos (fetched fresh, kept byte for byte) loads and
/// resolves unchanged: keys Tessera does not implement are warnings, not errors, and its
/// identity schema compiles.
#[test]
fn every_kratos_quickstart_config_loads_unchanged() {
    for name in [
        "email-password",
        "all-strategies",
        "cloud",
        "passkey",
        "phone-password",
        "webauthn",
    ] {
        let path = quickstart(name).join("kratos.yml");
        // The passkey quickstart has no `dsn`: its docker-compose file sets the DSN variable,
        // which Kratos requires as Tessera does.
        let vars = if name == "passkey" {
            env(&[("DSN", "memory")])
        } else {
            HashMap::new()
        };
        let loaded =
            load(std::slice::from_ref(&path), &vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = resolve(&loaded, false, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            s.secrets.cookie,
            vec!["PLEASE-CHANGE-ME-I-AM-VERY-INSECURE"],
            "{name}"
        );
        assert_eq!(s.flows.login.ui_url.port(), Some(4455), "{name}");
        let raw: serde_json::Value = serde_json::from_slice(
            &std::fs::read(quickstart(name).join("identity.schema.json")).unwrap(),
        )
        .unwrap();
        tessera_core::schema::IdentitySchema::compile("default", raw)
            .unwrap_or_else(|e| panic!("{name}: identity.schema.json: {e}"));
    }
}

/// The email-password quickstart in detail: its Expo return URL is honoured, what Tessera does
/// not implement is named in warnings with file and line, and what it does is read.
#[test]
fn kratos_email_password_quickstart_config_loads() {
    let path = quickstart("email-password").join("kratos.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("exp://localhost:8081/--/Callback"),
        "fixture changed"
    );
    let loaded = load(std::slice::from_ref(&path), &HashMap::new()).unwrap();
    let warned = |needle: &str| loaded.warnings.iter().any(|w| w.contains(needle));
    // The courier is real now: read, not warned about.
    assert!(!warned("`courier"), "{:?}", loaded.warnings);
    // It offers `totp` (with its issuer) and `lookup_secret`: both run, unwarned.
    assert!(
        !warned("`selfservice.methods.totp") && !warned("`selfservice.methods.lookup_secret"),
        "{:?}",
        loaded.warnings
    );
    assert!(loaded.config.selfservice.methods.totp.enabled);
    assert_eq!(
        loaded.config.selfservice.methods.totp.config.issuer,
        "Kratos"
    );
    assert!(loaded.config.selfservice.methods.lookup_secret.enabled);
    // Verification, recovery and their hooks are real too.
    assert!(!warned("show_verification_ui"), "{:?}", loaded.warnings);
    assert!(
        !warned("selfservice.flows.recovery"),
        "{:?}",
        loaded.warnings
    );
    assert!(warned("kratos.yml:"), "{:?}", loaded.warnings);
    assert!(warned("hashers.bcrypt"), "{:?}", loaded.warnings);
    assert!(
        warned("`hashers.algorithm: bcrypt` ("),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(loaded.config.selfservice.flows.login.lifespan, "10m");
    assert!(
        loaded
            .config
            .selfservice
            .flows
            .registration
            .after
            .password
            .has("session")
    );
    let s = resolve(&loaded, false, None).unwrap();
    assert_eq!(s.flows.login.ui_url.as_str(), "http://127.0.0.1:4455/login");
    let smtp = s
        .courier
        .smtp
        .as_ref()
        .expect("the quickstart's SMTP server");
    assert_eq!((smtp.host.as_str(), smtp.port), ("mailslurper", 1025));
    let allowed: Vec<&str> = s
        .flows
        .allowed_return_urls
        .iter()
        .map(|u| u.as_str())
        .collect();
    assert_eq!(
        allowed,
        [
            "http://127.0.0.1:4455/",
            "http://localhost:19006/Callback",
            "exp://localhost:8081/--/Callback"
        ]
    );
    assert!(
        s.is_allowed_return("exp://localhost:8081/--/Callback?x=1")
            .is_some()
    );
    assert!(
        s.is_allowed_return("exp://localhost:8081/--/Other")
            .is_none()
    );
    assert!(
        s.is_allowed_return("exp://evil.example:8081/--/Callback")
            .is_none()
    );
}

/// Return URLs: any absolute URL with a scheme may be listed (a native app's), never one a
/// browser runs or reads locally; a `return_to` needs a listed scheme, host, port and path.
#[test]
fn return_urls_accept_app_schemes_and_refuse_script_schemes() {
    for bad in [
        "javascript:alert(1)",
        "JavaScript://localhost/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
    ] {
        let text = format!("{GOOD}selfservice:\n  allowed_return_urls:\n    - \"{bad}\"\n");
        let loaded = load_str("r.yml", &text, &HashMap::new()).unwrap();
        let err = resolve(&loaded, true, None).unwrap_err().to_string();
        assert!(
            err.contains("`selfservice.allowed_return_urls.0` (r.yml:7)")
                && err.contains("which a browser runs or reads locally"),
            "{bad}: {err}"
        );
    }
    let loaded = load_str(
        "r.yml",
        &format!("{GOOD}selfservice:\n  allowed_return_urls:\n    - not a url\n"),
        &HashMap::new(),
    )
    .unwrap();
    let err = resolve(&loaded, true, None).unwrap_err().to_string();
    assert!(err.contains("is not an absolute URL"), "{err}");

    let text = format!(
        "{GOOD}selfservice:\n  allowed_return_urls:\n    - myapp://callback/done\n    - com.example.app:/oauth\n    - https://app.example.com/app\n"
    );
    let s = resolve(
        &load_str("r.yml", &text, &HashMap::new()).unwrap(),
        true,
        None,
    )
    .unwrap();
    for ok in [
        "myapp://callback/done",
        "myapp://CALLBACK/done/x?code=1",
        "com.example.app:/oauth/cb",
        "https://app.example.com/app/x",
    ] {
        assert!(s.is_allowed_return(ok).is_some(), "{ok} should be allowed");
    }
    for refused in [
        "otherapp://callback/done",
        "myapp://evil/done",
        "myapp://callback/donex",
        "com.example.app:/oauthx",
        "com.evil.app:/oauth",
        "javascript:alert(1)",
        "data:text/html,hi",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://app.example.com.evil.org/app",
        "https://app.example.com/application",
        "//evil.example/app",
    ] {
        assert!(
            s.is_allowed_return(refused).is_none(),
            "{refused} should be refused"
        );
    }
}

#[test]
fn experience_section_is_checked_with_key_and_line() {
    let text = format!(
        "{GOOD}experience:\n  methods: [password, sms]\n  provider_order: [github]\n  brand:\n    primary_color: \"#f9ab00\"\n    logo_url: not a url\n  social_only: true\n"
    );
    let loaded = load_str("x.yml", &text, &HashMap::new()).unwrap();
    let err = resolve(&loaded, true, None).unwrap_err().to_string();
    for expected in [
        "`experience.methods.1` (x.yml:6)",
        "unknown method `sms`",
        "`experience.provider_order.0` (x.yml:7)",
        "`github` is not a configured provider id",
        "`experience.brand.primary_color` (x.yml:9)",
        "4.5:1",
        "`experience.brand.logo_url` (x.yml:10)",
        "`experience.social_only` (x.yml:11)",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // A typo in the section is an unknown key, like everywhere else.
    let err = load_str(
        "x.yml",
        &format!("{GOOD}experience:\n  brand:\n    colour: \"#000000\"\n"),
        &HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`experience.brand.colour` (x.yml:7)"), "{err}");
}

#[test]
fn experience_defaults_and_a_valid_brand() {
    let loaded = load_str("x.yml", GOOD, &HashMap::new()).unwrap();
    let x = resolve(&loaded, true, None).unwrap().experience;
    assert!(x.show_password && !x.requires_agreement());
    assert_eq!(x.brand_name, "Tessera");
    let text = format!(
        "{GOOD}experience:\n  brand:\n    name: Bookstore\n    primary_color: \"#0F766E\"\n  terms_of_service_url: https://bookstore.example/terms\n"
    );
    let loaded = load_str("x.yml", &text, &HashMap::new()).unwrap();
    let x = resolve(&loaded, true, None).unwrap().experience;
    assert_eq!(x.primary_color, "#0f766e");
    assert!(x.requires_agreement());
}

#[test]
fn the_upstream_timeout_follows_the_request_timeout_and_must_stay_below_it() {
    let settings = |extra: &str| {
        let loaded = load_str("t.yml", &format!("{GOOD}{extra}"), &HashMap::new()).unwrap();
        resolve(&loaded, false, None)
    };
    let limits = settings("").unwrap().limits;
    assert_eq!(limits.upstream_timeout, std::time::Duration::from_secs(10));
    assert_eq!(limits.max_connections_per_address, 512);
    // Unset, it fits inside a short request timeout.
    let limits = settings("limits:\n  request_timeout: 4s\n").unwrap().limits;
    assert_eq!(limits.upstream_timeout, std::time::Duration::from_secs(2));
    let limits = settings("limits:\n  upstream_timeout: 3s\n")
        .unwrap()
        .limits;
    assert_eq!(limits.upstream_timeout, std::time::Duration::from_secs(3));
    // Set, it must be shorter, and the message names the key and its line.
    let err = settings("limits:\n  request_timeout: 5s\n  upstream_timeout: 5s\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`limits.upstream_timeout` (t.yml:7)") && err.contains("shorter than"),
        "{err}"
    );
    let err = settings("limits:\n  max_connections_per_address: 0\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.max_connections_per_address"), "{err}");
}
