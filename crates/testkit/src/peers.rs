//! Third-party software that Tessera's tests run against, as child processes.
//!
//! The point of these peers is that nobody on this project wrote them: a test against them
//! checks Tessera against someone else's reading of the specifications, which a fake written
//! alongside Tessera (see [`crate::fake_oidc`]) cannot do.
//!
//! They are npm packages under `peers/`, installed by `bash scripts/test-deps.sh` (which
//! `scripts/test.sh` runs first), and need `node` on `PATH`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// How long a peer may take to print its READY line. It takes about half a second (Node's start
/// and an RSA key); the margin is for a machine busy compiling.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The most of a peer's stderr kept for failure messages.
const STDERR_KEEP: usize = 64 * 1024;

const INSTALL_HINT: &str = "run `bash scripts/test-deps.sh` (it installs the npm peers; it needs node and npm: apt-get install nodejs npm)";

/// The repository's `peers/` directory.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../peers")
}

/// The real [`oidc-provider`](https://github.com/panva/node-oidc-provider) npm package, as a
/// generic OIDC upstream on 127.0.0.1 (`peers/oidc-upstream.mjs`; its header describes what is
/// enabled).
///
/// Config (JSON):
///
/// ```json
/// { "clients": [{ "client_id": "tessera", "client_secret": "s3cret",
///                 "redirect_uris": ["http://127.0.0.1:4433/self-service/methods/oidc/callback/generic"],
///                 "token_endpoint_auth_method": "client_secret_post" }],
///   "accounts": { "alice": { "email": "alice@example.com", "email_verified": true, "groups": ["admins"] } },
///   "conform_id_token_claims": true }
/// ```
///
/// An account's standard claims are released with their standard scopes (`email`, `profile`,
/// `phone`, `address`); any other claim (such as `groups`) with `openid`. oidc-provider's own
/// default `conform_id_token_claims: true` keeps scope claims out of a code-flow id_token
/// (they come from userinfo, or into the id_token through the `claims` parameter); `false`
/// puts them in the id_token as Google does.
///
/// PKCE (S256) is required, the authorization response carries `iss` (RFC 9207), and the
/// process stops when this value is dropped.
pub struct OidcProviderPeer {
    issuer: String,
    stderr: Arc<Mutex<String>>,
    // Killed on drop; stdin is its lifeline too, so it also exits if this process dies.
    _child: Child,
    _stdin: ChildStdin,
}

impl OidcProviderPeer {
    /// Spawns `node peers/oidc-upstream.mjs <config>` and waits for it to listen. Panics with
    /// the peer's stderr and an install hint if it does not within 20 s.
    pub async fn start(config: Value) -> Self {
        let dir = peers_dir();
        let script = dir.join("oidc-upstream.mjs");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the oidc-provider npm package is not installed in {}: {INSTALL_HINT}",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(&script)
            .arg(config.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `node {}`: {e}; {INSTALL_HINT}",
                    script.display()
                )
            });
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = tokio::spawn(drain_stderr(
            child.stderr.take().expect("piped stderr"),
            stderr.clone(),
        ));

        let mut line = String::new();
        let ready = tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line)).await;
        let issuer = match ready {
            Ok(Ok(n)) if n > 0 && line.starts_with("READY ") => {
                line["READY ".len()..].trim().to_string()
            }
            other => {
                let why = match other {
                    Err(_) => format!("no READY line within {READY_TIMEOUT:?}"),
                    Ok(Err(e)) => format!("reading its stdout failed: {e}"),
                    Ok(Ok(0)) => "it exited before it was ready".to_string(),
                    Ok(Ok(_)) => format!("unexpected first line {line:?}"),
                };
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(2), stderr_task).await;
                let log = stderr.lock().expect("lock").clone();
                panic!(
                    "the oidc-provider peer did not start: {why}.\n--- its stderr ---\n{log}\n---\nIf a module is missing: {INSTALL_HINT}"
                );
            }
        };
        // Nothing more is expected on stdout, but a full pipe would block the peer.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink).await;
        });
        OidcProviderPeer {
            issuer,
            stderr,
            _child: child,
            _stdin: stdin,
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What the peer has written to stderr so far (its last 64 KiB): oidc-provider's errors,
    /// e.g. why it refused a token request. Useful in assertion messages.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// A client fit for [`login`](Self::login): a cookie store (the upstream's interaction and
    /// session cookies) and no automatic redirects (the test must see where the upstream sends
    /// the browser).
    pub fn browser_client() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// Plays the browser's part of a sign-in at the upstream: GETs `authorize_url`, follows the
    /// upstream's redirects to its login page, submits `account`, follows redirects while they
    /// stay on the upstream, and returns the first URL that leaves it: the relying party's
    /// callback with `code`, `state` and `iss` (or `error`). If the upstream already has a
    /// session for this client, no form is shown and the callback comes straight back.
    ///
    /// `client` must have a cookie store and follow no redirects, like
    /// [`browser_client`](Self::browser_client); the upstream binds the interaction to a cookie.
    /// Panics (with the page and the peer's stderr) on any other answer, e.g. an unknown account.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        authorize_url: &str,
        account: &str,
    ) -> url::Url {
        self.interact(client, authorize_url, "login", &[("account", account)])
            .await
    }

    /// Like [`login`](Self::login), but presses "Deny": the callback URL carries
    /// `error=access_denied`.
    pub async fn deny(&self, client: &reqwest::Client, authorize_url: &str) -> url::Url {
        self.interact(client, authorize_url, "abort", &[]).await
    }

    async fn interact(
        &self,
        client: &reqwest::Client,
        authorize_url: &str,
        action: &str,
        form: &[(&str, &str)],
    ) -> url::Url {
        let origin = url::Url::parse(&self.issuer).expect("issuer URL").origin();
        let mut url = url::Url::parse(authorize_url).expect("authorize URL");
        let mut posted = false;
        let mut resp = client.get(url.clone()).send().await.expect("GET authorize");
        for _ in 0..20 {
            let status = resp.status();
            if status.is_redirection() {
                let location = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("{status} without Location from {url}"));
                url = url.join(location).expect("Location is a URL");
                if url.origin() != origin {
                    return url;
                }
                resp = client
                    .get(url.clone())
                    .send()
                    .await
                    .expect("follow redirect");
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            assert!(
                status == reqwest::StatusCode::OK && !posted,
                "the upstream answered {status} at {url}:\n{body}\n--- its stderr ---\n{}",
                self.stderr()
            );
            let target = url.join(&format_action(&url, action)).expect("form action");
            assert!(
                body.contains(&format!("action=\"{}\"", target.path())),
                "no {action} form at {url}:\n{body}"
            );
            posted = true;
            url = target;
            resp = client
                .post(url.clone())
                .form(form)
                .send()
                .await
                .expect("POST the interaction form");
        }
        panic!("more than 20 redirects at the upstream, last {url}");
    }
}

/// `/interaction/<uid>` → `/interaction/<uid>/<action>`.
fn format_action(page: &url::Url, action: &str) -> String {
    format!("{}/{action}", page.path().trim_end_matches('/'))
}

async fn drain_stderr(mut pipe: tokio::process::ChildStderr, into: Arc<Mutex<String>>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut log = into.lock().expect("lock");
                log.push_str(&String::from_utf8_lossy(&buf[..n]));
                if log.len() > STDERR_KEEP {
                    let mut cut = log.len() - STDERR_KEEP;
                    while !log.is_char_boundary(cut) {
                        cut += 1;
                    }
                    log.drain(..cut);
                }
            }
        }
    }
}
