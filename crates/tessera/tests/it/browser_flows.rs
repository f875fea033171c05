//! Browser flows: redirects to the UI, CSRF double-submit, cookies, return_to allow-list, logout.

use serde_json::Value;
use tessera_testkit::journey::{location, submit};
use tessera_testkit::{Backend, Browser, TestServer, csrf_of, each_backend};

const CONFIG: &str = "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  allowed_return_urls:\n    - https://app.example.com/\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n";

each_backend!(browser_registration_login_and_logout);
async fn browser_registration_login_and_logout(backend: Backend) {
    let s = TestServer::start(backend, CONFIG).await;
    let b = Browser::default();
    // Plain browser: 303 to the UI with the flow id, and a CSRF cookie.
    let r = b
        .get(
            &format!(
                "{}/self-service/registration/browser?return_to=https://app.example.com/welcome",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let csrf_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("tessera_csrf_token="))
        .expect("csrf cookie");
    assert!(
        csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"),
        "{csrf_cookie}"
    );
    let id = loc.split("flow=").nth(1).unwrap().to_string();

    let flow: Value = b
        .get(
            &format!("{}/self-service/registration/flows?id={id}", s.public),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(flow["type"], "browser");
    assert_eq!(flow["return_to"], "https://app.example.com/welcome");
    // A token masked from the browser's secret, never the secret (the cookie) itself.
    let csrf = csrf_of(&flow);
    let secret = b.cookie("tessera_csrf_token").expect("CSRF cookie");
    assert!(!csrf.is_empty() && csrf != secret && !csrf.contains(&secret));
    assert!(tessera_core::crypto::csrf_matches(&csrf, &secret));
    let action = flow["ui"]["action"].as_str().unwrap().to_string();

    // Without the CSRF token: refused, nothing created.
    let r = b
        .post_form(
            &action,
            &[
                ("method", "password"),
                ("traits.email", "ivy@example.com"),
                ("password", "correct horse battery"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 403);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["id"], "security_csrf_violation");

    // A form that fails validation sends the browser back to the UI.
    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("method", "password"),
                ("traits.email", "ivy@example.com"),
                ("password", "short"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).contains(&format!("flow={id}")));

    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("method", "password"),
                ("traits.email", "ivy@example.com"),
                ("password", "correct horse battery"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    assert_eq!(location(&r), "https://app.example.com/welcome");
    assert!(b.cookie("tessera_session").is_some());

    // Replaying the completed flow is refused.
    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("method", "password"),
                ("traits.email", "ivy2@example.com"),
                ("password", "correct horse battery"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 400);

    let me: Value = b
        .get(&format!("{}/sessions/whoami", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["identity"]["traits"]["email"], "ivy@example.com");

    // A signed-in browser asking for login is sent to the return URL.
    let r = b
        .get(&format!("{}/self-service/login/browser", s.public), false)
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "https://app.example.com/home");

    // Logout: token URL, then 303 and the cookie cleared.
    let out: Value = b
        .get(&format!("{}/self-service/logout/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let url = out["logout_url"].as_str().unwrap();
    assert!(
        out["logout_token"]
            .as_str()
            .is_some_and(|t| url.contains(t))
    );
    let r = b.get(url, false).await;
    assert_eq!(r.status(), 303);
    assert!(b.cookie("tessera_session").is_none());
    let r = b.get(&format!("{}/sessions/whoami", s.public), true).await;
    assert_eq!(r.status(), 401);

    // Browser login, AJAX style: JSON answer and the cookie.
    let r = b
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await;
    let flow: Value = r.json().await.unwrap();
    let r = submit(
        &b,
        &flow,
        &[
            ("method", "password"),
            ("identifier", "ivy@example.com"),
            ("password", "correct horse battery"),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.get("session_token").is_none(),
        "browser flows never expose the token"
    );
    assert_eq!(
        body["session"]["identity"]["traits"]["email"],
        "ivy@example.com"
    );
    s.stop().await;
}

#[tokio::test]
async fn return_to_outside_the_allow_list_is_refused() {
    let s = TestServer::start(Backend::Sqlite, CONFIG).await;
    let b = Browser::default();
    for bad in [
        "https://evil.example.net/",
        "https://app.example.com.evil.net/",
        "javascript:alert(1)",
    ] {
        let r = b
            .get(
                &format!(
                    "{}/self-service/login/browser?return_to={}",
                    s.public,
                    url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
                ),
                true,
            )
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["id"], "self_service_flow_return_to_forbidden");
    }
}

#[tokio::test]
async fn csrf_token_of_another_browser_is_refused() {
    let s = TestServer::start(Backend::Sqlite, CONFIG).await;
    let alice = Browser::default();
    let mallory = Browser::default();
    let flow: Value = alice
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let _ = mallory
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await;
    // Mallory submits Alice's flow with Alice's token but her own cookie.
    let r = submit(
        &mallory,
        &flow,
        &[
            ("method", "password"),
            ("identifier", "x@example.com"),
            ("password", "whatever12345"),
        ],
        true,
    )
    .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn secure_cookies_when_base_url_is_https() {
    // --dev is what the harness uses; the cookie must still be HttpOnly and Lax.
    let s = TestServer::start(Backend::Sqlite, CONFIG).await;
    let b = Browser::default();
    let r = b
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await;
    let c = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(c.contains("HttpOnly") && !c.contains("Secure"), "{c}");
}

/// An allowed return URL with a path allows that path and below, not a longer sibling
/// (`/app` must not allow `/app-evil`).
#[tokio::test]
async fn an_allowed_return_path_ends_at_a_segment() {
    let s = TestServer::start(
        Backend::Sqlite,
        "selfservice:\n  default_browser_return_url: https://app.example.com/app/home\n  allowed_return_urls:\n    - https://app.example.com/app\n",
    )
    .await;
    let b = Browser::default();
    for (to, ok) in [
        ("https://app.example.com/app", true),
        ("https://app.example.com/app/after?x=1", true),
        ("https://app.example.com/app-evil/steal", false),
        ("https://app.example.com/application", false),
    ] {
        let r = b
            .get(
                &format!(
                    "{}/self-service/login/browser?return_to={}",
                    s.public,
                    url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>()
                ),
                true,
            )
            .await;
        assert_eq!(r.status() == 200, ok, "{to}: {}", r.status());
    }
}
