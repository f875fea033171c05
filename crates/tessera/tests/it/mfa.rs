//! Second factors and assurance levels (issue 20).
//!
//! A second factor Tessera does not implement yet must not be ignored: a `kratos.yml` that turns
//! one on refuses to start, naming the key and its line, rather than letting people sign in with
//! one factor.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn quickstart(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/kratos-quickstart")
        .join(name)
        .join("kratos.yml")
}

/// Kratos's email-password quickstart turns on `totp` and `lookup_secret`: `serve` refuses it
/// unchanged, with both keys, their lines and why, and exits before binding anything.
#[test]
fn quickstart_with_second_factors_refuses_to_start() {
    let dir = tessera_testkit::temp_dir();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(quickstart("email-password"))
        .current_dir(&dir)
        .env("DSN", "memory")
        .env("SERVE_PUBLIC_PORT", "0")
        .env("SERVE_ADMIN_PORT", "0")
        .output()
        .expect("run tessera serve");
    assert!(
        !out.status.success(),
        "started with an ignored second factor"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`selfservice.methods.totp.enabled`") && err.contains("kratos.yml:26"),
        "{err}"
    );
    assert!(
        err.contains("`selfservice.methods.lookup_secret.enabled`")
            && err.contains("kratos.yml:28"),
        "{err}"
    );
    assert!(err.contains("without the second factor"), "{err}");
}

/// The passkey quickstart turns on `webauthn` and `passkey`: refused the same way.
#[test]
fn quickstart_with_passkeys_refuses_to_start() {
    let dir = tessera_testkit::temp_dir();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(quickstart("passkey"))
        .current_dir(&dir)
        .env("DSN", "memory")
        .output()
        .expect("run tessera serve");
    assert!(
        !out.status.success(),
        "started with an ignored passkey method"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`selfservice.methods.passkey.enabled`"),
        "{err}"
    );
    assert!(
        err.contains("`selfservice.methods.webauthn.enabled`"),
        "{err}"
    );
}
