//! `tessera demo` as a newcomer meets it: one command, a printed URL, and sign-in with DingTalk,
//! VK, GitHub, Yandex ID, Feishu, Mail.ru, WeCom and OK through the emulators' consent pages (a person
//! picks someone from the page; the test follows the first link), all without a network.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tessera_testkit::journey::location;
use tessera_testkit::{Browser, csrf_of};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

struct Demo {
    child: Child,
    /// The URL the demo tells the newcomer to open.
    open: String,
    public: String,
    admin: String,
    /// The sample app that signs in through the OpenID Provider.
    app: String,
    /// The page listing the email and texts the demo sent.
    outbox: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tessera demo` on free ports in `dir` and reads its banner.
fn start_demo(cwd: &std::path::Path) -> Demo {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0", "--admin-port", "0"])
        .current_dir(cwd)
        .env("HASHERS_ARGON2_MEMORY", "1MB")
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(cwd.join("demo.stderr"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("spawn tessera demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the banner: a closed pipe would fail the demo's next write.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut open, mut public, mut admin, mut app, mut outbox) = (None, None, None, None, None);
    let mut banner = Vec::new();
    while !banner
        .last()
        .is_some_and(|l: &String| l.contains("Stop with Ctrl-C"))
    {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("tessera demo's banner is incomplete; got: {banner:?}"));
        let url_after = |marker: &str| {
            line.split(marker)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|u| u.trim_end_matches('/').to_string())
        };
        if line.contains("public API:") {
            public = url_after("public API:");
        } else if line.contains("admin API:") {
            admin = url_after("admin API:");
        } else if line.contains("Open ") {
            open = url_after("Open ");
        } else if line.contains("Sample app:") {
            app = url_after("Sample app:");
        } else if line.contains("What was sent") {
            outbox = url_after("codes): ");
        }
        banner.push(line);
    }
    Demo {
        child,
        open: open.unwrap_or_default(),
        public: public.expect("public URL in the banner"),
        admin: admin.expect("admin URL in the banner"),
        app: app.expect("sample app URL in the banner"),
        outbox: outbox.expect("the outbox page in the banner"),
    }
}

/// From the printed URL to a signed-in session, clicking the provider's button and the first
/// person on the emulator's consent page. Returns the session's identity.
async fn sign_up_with(demo: &Demo, provider: &str) -> Value {
    let b = Browser::default();
    // The printed page starts a login flow and comes back to itself with `?flow=`.
    let mut url = demo.open.clone();
    for _ in 0..3 {
        if url.contains("flow=") {
            break;
        }
        let r = b.get(&url, false).await;
        assert_eq!(r.status(), 303, "{url} starts a login flow");
        url = location(&r);
    }
    let flow_id = url.split("flow=").nth(1).expect("flow id").to_string();
    let flow: Value = b
        .get(
            &format!("{}/self-service/login/flows?id={flow_id}", demo.public),
            true,
        )
        .await
        .json()
        .await
        .expect("flow json");
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[("csrf_token", &csrf_of(&flow)), ("provider", provider)],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "pressing {provider}");
    let upstream = location(&r);
    let page = b.get(&upstream, false).await;
    assert_eq!(page.status(), 200, "{provider}'s consent page");
    let html = page.text().await.expect("consent html");
    let href = html
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("user="))
        .unwrap_or_else(|| panic!("no person to pick on {provider}'s page:\n{html}"))
        .replace("&amp;", "&");
    let origin: String = upstream.split('/').take(3).collect::<Vec<_>>().join("/");
    let r = b.get(&format!("{origin}{href}"), false).await;
    assert!(
        r.status().is_redirection(),
        "picking a person on {provider}'s page"
    );
    let mut next = location(&r);
    // Callback → (maybe fill-the-gaps) → return URL; follow redirects by hand, at most a few.
    for _ in 0..5 {
        if !next.starts_with(&demo.public) {
            break;
        }
        let r = b.get(&next, false).await;
        if !r.status().is_redirection() {
            break;
        }
        next = location(&r);
    }
    let who: Value = b
        .get(&format!("{}/sessions/whoami", demo.public), true)
        .await
        .json()
        .await
        .expect("whoami");
    assert_eq!(
        who["active"], true,
        "signed in after {provider}; whoami: {who}"
    );
    who["identity"].clone()
}

#[tokio::test]
async fn a_newcomer_signs_in_with_the_emulated_providers_offline() {
    let dir = tessera_testkit::temp_dir();
    let demo = start_demo(&dir);
    assert!(
        demo.open.ends_with("/ui/login"),
        "printed URL: {}",
        demo.open
    );

    let mut ids = Vec::new();
    let providers = [
        "dingtalk", "vk", "github", "yandex", "feishu", "mailru", "wecom",
    ];
    for provider in providers {
        let identity = sign_up_with(&demo, provider).await;
        let identifiers: Value = reqwest::get(format!(
            "{}/admin/identities/{}?include_credential=oidc",
            demo.admin,
            identity["id"].as_str().expect("id")
        ))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
        let ident = identifiers["credentials"]["oidc"]["identifiers"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ident.starts_with(&format!("{provider}:")),
            "{provider} identity is linked as {ident}"
        );
        ids.push(identity["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), providers.len(), "one person, one identity each");

    // The demo folder holds what the banner says, and the seed mappers are there to edit.
    let folder = dir.join("tessera-demo");
    for f in [
        "tessera.yml",
        "tessera.db",
        "dingtalk.jsonnet",
        "vk.jsonnet",
        "github.jsonnet",
        "google.jsonnet",
        "discord.jsonnet",
        "yandex.jsonnet",
        "wechat.jsonnet",
        "feishu.jsonnet",
        "qq.jsonnet",
        "mailru.jsonnet",
        "wecom.jsonnet",
        "odnoklassniki.jsonnet",
        "weibo.jsonnet",
        "baidu.jsonnet",
        "douyin.jsonnet",
        "alipay.jsonnet",
        "telegram_oidc.jsonnet",
    ] {
        assert!(folder.join(f).exists(), "{f} in the demo folder");
    }
}

#[tokio::test]
async fn the_demo_keeps_its_people_across_restarts_and_its_config_can_be_downloaded() {
    let dir = tessera_testkit::temp_dir();
    let first = {
        let demo = start_demo(&dir);
        sign_up_with(&demo, "github").await
    };
    let demo = start_demo(&dir);
    let again = sign_up_with(&demo, "github").await;
    assert_eq!(
        first["id"], again["id"],
        "the same GitHub person signs into the same identity after a restart"
    );

    let out = Command::new(BIN)
        .args(["identity-config", "get", "--endpoint", &demo.admin])
        .output()
        .expect("identity-config get");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8_lossy(&out.stdout);
    for provider in ["dingtalk", "wechat", "yandex", "feishu", "qq"] {
        assert!(yaml.contains(&format!("provider: {provider}")), "{yaml}");
    }
    assert!(
        !yaml.contains("emulated-github-secret") && yaml.contains("<redacted:"),
        "secrets are redacted:\n{yaml}"
    );
}

/// Issue 7's "tried as a new user would": the demo, in Chromium, signing up with DingTalk in
/// Chinese, VK in Russian and GitHub in English (the browser suite's scenarios of those names,
/// run against the demo instead of a test server). Screenshots: `ui-screenshots/demo/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_chromium_dingtalk_in_chinese_vk_in_russian_github_in_english() {
    let dir = tessera_testkit::temp_dir();
    let demo = start_demo(&dir);
    let shots = tessera_testkit::browser::screenshot_dir("demo");
    tessera_testkit::browser::run_suite(
        &demo.public,
        &["dingtalk-zh", "vk-ru", "github-en"],
        &shots,
        &[],
    )
    .await;
}

/// Follows redirects that stay on Tessera, returning the last URL and its response.
async fn follow(b: &Browser, demo: &Demo, mut url: String) -> (String, reqwest::Response) {
    for _ in 0..10 {
        let r = b.get(&url, false).await;
        if !r.status().is_redirection() {
            return (url, r);
        }
        let next = location(&r);
        if !next.starts_with(&demo.public) {
            return (url, r);
        }
        url = next;
    }
    panic!("too many redirects from {url}");
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no hidden field {name} in:\n{html}"))
        .to_string()
}

/// The provider side of the demo: the sample app signs in through Tessera's OpenID Provider
/// (GitHub sign-in, then consent, then code + PKCE back at the app), and a second sign-in to
/// the app needs neither (single sign-on, consent remembered).
#[tokio::test]
async fn the_sample_app_signs_in_through_the_openid_provider() {
    let dir = tessera_testkit::temp_dir();
    let demo = start_demo(&dir);
    // The app is registered through the admin API right after the server is up.
    let registered = format!("{}/admin/clients/demo-bookshelf", demo.admin);
    let mut tries = 0;
    while reqwest::get(&registered)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        tries += 1;
        assert!(tries < 200, "the demo never registered its sample app");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let b = Browser::default();
    let r = b.get(&format!("{}/login", demo.app), false).await;
    assert_eq!(r.status(), 303);
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!("{}/oidc/auth?", demo.public)),
        "{authorize}"
    );
    // Not signed in: the authorization request leads to the login page.
    let (login_page, _) = follow(&b, &demo, authorize.clone()).await;
    assert!(login_page.contains("/ui/login?flow="), "{login_page}");
    let flow_id = login_page.split("flow=").nth(1).unwrap_or_default();
    let flow: Value = b
        .get(
            &format!("{}/self-service/login/flows?id={flow_id}", demo.public),
            true,
        )
        .await
        .json()
        .await
        .expect("flow");
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[("csrf_token", &csrf_of(&flow)), ("provider", "github")],
            false,
        )
        .await;
    let r = b
        .get(&format!("{}&user=octocat", location(&r)), false)
        .await;
    assert!(
        r.status().is_redirection(),
        "GitHub emulator: {}",
        r.status()
    );
    // GitHub's callback, then back to the stored authorization request, then consent.
    let (consent_url, page) = follow(&b, &demo, location(&r)).await;
    assert!(consent_url.contains("/ui/consent?"), "{consent_url}");
    let html = page.text().await.expect("consent page");
    assert!(html.contains("Bookshelf (sample app)"), "{html}");
    let r = b
        .post_form(
            &format!("{}/ui/consent", demo.public),
            &[
                ("csrf_token", &hidden(&html, "csrf_token")),
                ("request", &hidden(&html, "request")),
                ("decision", "accept"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "consent");
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/callback?code=", demo.app)),
        "{back}"
    );
    let r = b.get(&back, false).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("app page");
    assert!(
        page.contains("Signed in to Bookshelf as <strong>octocat@example.com</strong>"),
        "{page}"
    );

    // Again: the Tessera session and the remembered consent take the browser straight back.
    let r = b.get(&format!("{}/login", demo.app), false).await;
    let (last, r) = follow(&b, &demo, location(&r)).await;
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{}/callback?code=", demo.app)),
        "second sign-in stopped at {last}: {}",
        r.status()
    );
    let page = b.get(&back, false).await.text().await.expect("app page");
    assert!(page.contains("octocat@example.com"), "{page}");
}

#[tokio::test]
async fn a_newcomer_reads_the_verification_code_on_the_outbox_page() {
    let dir = tessera_testkit::temp_dir();
    let demo = start_demo(&dir);
    let c = reqwest::Client::new();
    let flow: Value = c
        .get(format!("{}/self-service/registration/api", demo.public))
        .send()
        .await
        .expect("flow")
        .json()
        .await
        .expect("json");
    let r = c
        .post(flow["ui"]["action"].as_str().expect("action"))
        .json(&serde_json::json!({
            "method": "password",
            "traits": {"email": "newcomer@example.org"},
            "password": "correct horse battery staple",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 200);
    // The courier delivers to the demo's mail catcher, and the outbox page shows the code.
    let start = std::time::Instant::now();
    loop {
        let page = reqwest::get(&demo.outbox)
            .await
            .expect("outbox")
            .text()
            .await
            .expect("text");
        if page.contains("newcomer@example.org") {
            assert!(page.contains("Please verify your email address"), "{page}");
            let code = page
                .split(|ch: char| !ch.is_ascii_digit())
                .any(|w| w.len() == 6);
            assert!(code, "no code on {page}");
            assert!(page.contains("<h2>SMS</h2>"), "{page}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the verification email never reached the outbox: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
