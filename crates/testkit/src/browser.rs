//! The browser suite (`peers/browser/suite.mjs`: Debian's chromium driven by playwright-core,
//! both installed by `scripts/test-deps.sh`) run against a Tessera public URL.

use std::path::{Path, PathBuf};
use std::process::Stdio;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `<target dir>/ui-screenshots/<name>`: where a run saves its pages (`target/` is ignored).
pub fn screenshot_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("ui-screenshots").join(name);
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir
}

/// Runs the named scenarios (all when empty) against `base_url` and panics, with the suite's
/// output, unless every one passes. `env` adds variables some scenarios read.
pub async fn run_suite(base_url: &str, scenarios: &[&str], shots: &Path, env: &[(&str, String)]) {
    run_script("suite.mjs", base_url, scenarios, shots, env).await
}

/// [`run_suite`] for another script of `peers/browser/` (`more-options.mjs`), with the same
/// environment and the same success line.
pub async fn run_script(
    script: &str,
    base_url: &str,
    scenarios: &[&str],
    shots: &Path,
    env: &[(&str, String)],
) {
    let root = workspace_root();
    let playwright = root.join("peers/browser/node_modules/playwright-core");
    let chromium = std::env::var("TESSERA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        playwright.exists() && Path::new(&chromium).exists(),
        "the browser suite needs playwright-core in peers/browser/ and Debian's chromium ({chromium}): run `bash scripts/test-deps.sh` (scripts/test.sh does)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root.join("peers/browser").join(script))
        .args(scenarios)
        .current_dir(root.join("peers/browser"))
        .env("TESSERA_URL", base_url)
        .env("TESSERA_CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", shots)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("run node peers/browser/{script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all scenarios passed"),
        "the browser script {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
