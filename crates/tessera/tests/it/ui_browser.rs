//! The hosted sign-in pages in a real browser: Debian's `chromium` driven by `playwright-core`
//! (both installed by `scripts/test-deps.sh`). This test starts the real server and the
//! DingTalk, VK and GitHub emulators on loopback ports, then runs `peers/browser/suite.mjs`,
//! which clicks through every journey and fails on any wrong page, untranslated page or CSP
//! violation. Screenshots of each page at 360 px and 1280 px go to
//! `<target dir>/ui-screenshots/suite/` (`target/ui-screenshots/suite/` by default).
//!
//! The app sign-in through the OpenID Provider with consent (`app-sign-in-with-consent`,
//! `app-sign-in-deny`) uses an app this test registers through the admin API, whose redirect
//! URI is a tiny loopback HTTP server started here (it answers every request with a short page).
//!
//! `spa-sign-in` uses a second app, registered as `spa`, whose redirect URI is another loopback
//! origin serving `peers/browser/spa/` and oidc-client-ts's browser bundle: it proves a browser
//! app can redeem its code and call userinfo across origins (the OpenID Provider's CORS).

use base64::Engine as _;
use std::sync::{Arc, OnceLock};
use tessera_testkit::emulators::dingtalk::DingtalkEmulator;
use tessera_testkit::emulators::github::GithubEmulator;
use tessera_testkit::emulators::vk::VkEmulator;
use tessera_testkit::{Backend, TestServer};

/// One mapper for the three providers: the email when there is one (GitHub's only when
/// verified, and then declared verified, which allows "sign in to link"), the name from
/// whatever the provider has.
const MAPPER: &str = r#"local c = std.extVar('claims');
local first = if 'given_name' in c then c.given_name else if 'name' in c then c.name else null;
local last = if 'family_name' in c then c.family_name else null;
local email_ok = 'email' in c && (!('email_verified' in c) || c.email_verified);
local verified = 'email' in c && 'email_verified' in c && c.email_verified;
{
  identity: {
    traits: {
      [if email_ok then 'email' else null]: c.email,
      name: {
        [if first != null then 'first' else null]: first,
        [if last != null then 'last' else null]: last,
      },
    },
    verified_addresses: if verified then [{ value: c.email, via: 'email' }] else [],
  },
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_pages_in_chromium() {
    let dt = DingtalkEmulator::start().await;
    let vk = VkEmulator::start().await;
    let gh = GithubEmulator::start().await;
    let mapper = base64::engine::general_purpose::STANDARD.encode(MAPPER);
    let providers = format!(
        "          - id: github\n            provider: github\n            label: GitHub\n            client_id: {gh_id}\n            client_secret: {gh_secret}\n            mapper_url: base64://{mapper}\n            scope: [user:email]\n            auth_url: {gh_auth}\n            token_url: {gh_token}\n            api_base_url: {gh_api}\n          - id: vk\n            provider: vk\n            label: VK\n            client_id: \"{vk_id}\"\n            client_secret: {vk_secret}\n            auth_url: {vk_auth}\n            token_url: {vk_token}\n            api_base_url: {vk_api}\n            mapper_url: base64://{mapper}\n            scope: [email]\n          - id: dingtalk\n            provider: dingtalk\n            label: DingTalk\n            client_id: {dt_id}\n            client_secret: {dt_secret}\n            mapper_url: base64://{mapper}\n            auth_url: {dt_auth}\n            api_base_url: {dt_api}\n",
        gh_id = gh.client_id(),
        gh_secret = gh.client_secret(),
        gh_auth = gh.auth_url(),
        gh_token = gh.token_url(),
        gh_api = gh.base_url(),
        vk_id = vk.client_id(),
        vk_secret = vk.client_secret(),
        vk_auth = vk.auth_url(),
        vk_token = vk.token_url(),
        vk_api = vk.base_url(),
        dt_id = dt.client_id(),
        dt_secret = dt.client_secret(),
        dt_auth = dt.auth_url(),
        dt_api = dt.base_url(),
    );
    let config = format!(
        "selfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    recovery:\n      enabled: true\n    verification:\n      enabled: true\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n        oidc:\n          hooks:\n            - hook: session\nexperience:\n  provider_order: [dingtalk, vk, github]\n  brand:\n    name: Bookstore\n    primary_color: \"#0f766e\"\n  terms_of_service_url: https://bookstore.example/terms\n  privacy_policy_url: https://bookstore.example/privacy\n"
    );
    // The OpenID Provider with ES256 keys (RSA generation is slow in debug builds).
    let s = TestServer::start(
        Backend::Sqlite,
        &format!("{config}oidc_provider:\n  signing_alg: ES256\n"),
    )
    .await;
    gh.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/github",
        s.public
    ));
    vk.register_redirect_uri(&format!(
        "{}/self-service/methods/oidc/callback/vk",
        s.public
    ));
    dt.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/dingtalk",
        s.public
    ));

    let shots = tessera_testkit::browser::screenshot_dir("suite");

    // The app of the OpenID Provider scenarios: a page on a loopback port as its redirect URI.
    let app = start_app().await;
    let redirect_uri = format!("{app}/callback");
    let r = TestServer::client()
        .post(format!("{}/admin/clients", s.admin))
        .json(&serde_json::json!({
            "client_name": "Bookstore WordPress",
            "app_type": "traditional",
            "skip_consent": false,
            "redirect_uris": [redirect_uri],
        }))
        .send()
        .await
        .expect("create the app");
    assert_eq!(r.status(), 201, "create the app");
    let client: serde_json::Value = r.json().await.expect("the app as JSON");
    let client_id = client["client_id"].as_str().expect("client_id").to_string();

    // The single-page app of `spa-sign-in`, on another origin than Tessera and the app above:
    // registered as `spa`, so the OpenID Provider answers CORS for its origin.
    let spa_config = Arc::new(OnceLock::new());
    let spa = start_spa(spa_config.clone()).await;
    let r = TestServer::client()
        .post(format!("{}/admin/clients", s.admin))
        .json(&serde_json::json!({
            "client_name": "Bookshelf SPA",
            "app_type": "spa",
            "skip_consent": false,
            "scope": "openid profile email",
            "redirect_uris": [format!("{spa}/callback")],
        }))
        .send()
        .await
        .expect("create the SPA");
    assert_eq!(r.status(), 201, "create the SPA");
    let spa_client: serde_json::Value = r.json().await.expect("the SPA as JSON");
    let spa_client_id = spa_client["client_id"].as_str().expect("SPA client_id");
    let issuer = format!("{}/oidc", s.public);
    spa_config
        .set(serde_json::json!({ "authority": issuer, "client_id": spa_client_id }).to_string())
        .expect("the SPA's config is set once");

    tessera_testkit::browser::run_suite(
        &s.public,
        &[],
        &shots,
        &[
            ("APP_REDIRECT_URI", redirect_uri),
            ("APP_CLIENT_ID", client_id),
            ("SPA_URL", spa),
            ("ADMIN_URL", s.admin.clone()),
        ],
    )
    .await;
    s.stop().await;
}

/// A stand-in for an app's callback: answers every request with a short page. Returns its base
/// URL (`http://127.0.0.1:<port>`).
async fn start_app() -> String {
    serve(Arc::new(|_path: &str| {
        let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Bookstore</title></head><body><h1>Bookstore</h1><p>Back at the app.</p></body></html>";
        Some(("text/html; charset=utf-8", body.as_bytes().to_vec()))
    }))
    .await
}

/// The single-page app of the `spa-sign-in` scenario, on its own loopback origin:
/// `peers/browser/spa/` (the page at `/` and `/callback`, its script at `/spa.js`),
/// oidc-client-ts's browser bundle from `peers/browser/node_modules/`, and `/config.js` with
/// Tessera's issuer and the app's `client_id` once `config` is set (the app can only be
/// registered after the port, hence its redirect URI, is known).
async fn start_spa(config: Arc<OnceLock<String>>) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../peers/browser");
    let read = |p: &str| {
        std::fs::read(dir.join(p)).unwrap_or_else(|e| {
            panic!("read peers/browser/{p} ({e}): run `bash scripts/test-deps.sh`")
        })
    };
    let page = read("spa/index.html");
    let script = read("spa/spa.js");
    let library = read("node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js");
    serve(Arc::new(move |path: &str| match path {
        "/" | "/callback" => Some(("text/html; charset=utf-8", page.clone())),
        "/spa.js" => Some(("text/javascript", script.clone())),
        "/oidc-client-ts.min.js" => Some(("text/javascript", library.clone())),
        "/config.js" => config.get().map(|c| {
            (
                "text/javascript",
                format!("const SPA_CONFIG = {c};").into_bytes(),
            )
        }),
        _ => None,
    }))
    .await
}

/// What a loopback page server answers for a path: content type and body, or `None` for 404.
type Pages = Arc<dyn Fn(&str) -> Option<(&'static str, Vec<u8>)> + Send + Sync>;

/// A minimal HTTP/1.1 server on a fresh loopback port (one request per connection). Returns its
/// base URL (`http://127.0.0.1:<port>`).
async fn serve(pages: Pages) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the loopback address");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                // "GET /callback?code=… HTTP/1.1": the path without its query.
                let head = String::from_utf8_lossy(&seen);
                let target = head.split(' ').nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or("/");
                let (status, ctype, body) = match pages(path) {
                    Some((ctype, body)) => ("200 OK", ctype, body),
                    None => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}
