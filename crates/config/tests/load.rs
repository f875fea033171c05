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
    assert_eq!(s.public_bind.1, 5555);
    assert_eq!(s.cookie_secrets, vec!["cookie-secret-0123456789"]);
    assert_eq!(s.schemas[0].id, "p");
    assert!(s.session_after_password_registration);
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

/// Kratos's own quickstart configuration (contrib/quickstart/kratos/email-password/kratos.yml)
/// starts unchanged: keys Tessera does not implement are warnings, not errors.
#[test]
fn kratos_quickstart_config_loads() {
    let text = r#"version: v0.13.0

dsn: memory

serve:
  public:
    base_url: http://127.0.0.1:4433/
    cors:
      enabled: true
  admin:
    base_url: http://kratos:4434/

selfservice:
  default_browser_return_url: http://127.0.0.1:4455/
  allowed_return_urls:
    - http://127.0.0.1:4455

  methods:
    password:
      enabled: true
    totp:
      config:
        issuer: Kratos
      enabled: true
    lookup_secret:
      enabled: true
    link:
      enabled: true
    code:
      enabled: true

  flows:
    error:
      ui_url: http://127.0.0.1:4455/error

    settings:
      ui_url: http://127.0.0.1:4455/settings
      privileged_session_max_age: 15m
      required_aal: highest_available

    recovery:
      enabled: true
      ui_url: http://127.0.0.1:4455/recovery
      use: code

    verification:
      enabled: true
      ui_url: http://127.0.0.1:4455/verification
      use: code
      after:
        default_browser_return_url: http://127.0.0.1:4455/

    logout:
      after:
        default_browser_return_url: http://127.0.0.1:4455/login

    login:
      ui_url: http://127.0.0.1:4455/login
      lifespan: 10m

    registration:
      lifespan: 10m
      ui_url: http://127.0.0.1:4455/registration
      after:
        password:
          hooks:
            - hook: session
            - hook: show_verification_ui

log:
  level: debug
  format: text
  leak_sensitive_values: true

secrets:
  cookie:
    - PLEASE-CHANGE-ME-I-AM-VERY-INSECURE
  cipher:
    - 32-LONG-SECRET-NOT-SECURE-AT-ALL

ciphers:
  algorithm: xchacha20-poly1305

hashers:
  algorithm: bcrypt
  bcrypt:
    cost: 8

identity:
  default_schema_id: default
  schemas:
    - id: default
      url: file:///etc/config/kratos/identity.schema.json

courier:
  smtp:
    connection_uri: smtps://test:test@mailslurper:1025/?skip_ssl_verify=true

feature_flags:
  use_continue_with_transitions: true
"#;
    let loaded = load_str("kratos.yml", text, &HashMap::new()).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("`courier` (kratos.yml:")),
        "{:?}",
        loaded.warnings
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("show_verification_ui"))
    );
    assert!(loaded.warnings.iter().any(|w| w.contains("hashers.bcrypt")));
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
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("`hashers.algorithm: bcrypt` (kratos.yml:85)")),
        "{:?}",
        loaded.warnings
    );
    let s = resolve(&loaded, false, None).unwrap();
    assert_eq!(s.login_ui_url.as_str(), "http://127.0.0.1:4455/login");
    assert_eq!(
        s.cookie_secrets,
        vec!["PLEASE-CHANGE-ME-I-AM-VERY-INSECURE"]
    );
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
