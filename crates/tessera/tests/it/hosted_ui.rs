//! The minimal hosted UI: a browser without JavaScript signs up and in through plain forms.

use tessera_testkit::{Backend, Browser, TestServer};

fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("`{marker}` not in page:\n{html}"));
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    rest[start..start + rest[start..].find('"').unwrap()].replace("&amp;", "&")
}

#[tokio::test]
async fn sign_up_and_sign_in_through_html_forms() {
    let s = TestServer::start(Backend::Sqlite, "selfservice:\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n").await;
    let b = Browser::default();
    let r = b
        .get(
            &format!("{}/self-service/registration/browser", s.public),
            false,
        )
        .await;
    let page_url = r.headers()["location"].to_str().unwrap().to_string();
    let r = b.get(&page_url, false).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<label for=") && html.contains(">Email</label>"),
        "{html}"
    );
    let action = attr_after(&html, "<form", "action");
    let csrf = attr_after(&html, "name=\"csrf_token\"", "value");

    // A short password comes back to the page with the error next to the field.
    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("traits.email", "ui@example.com"),
                ("password", "short"),
                ("method", "password"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = b
        .get(r.headers()["location"].to_str().unwrap(), false)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("data-id=\"4000005\"") && html.contains("aria-invalid=\"true\""),
        "{html}"
    );
    assert!(
        html.contains("value=\"ui@example.com\""),
        "typed email is kept"
    );

    let r = b
        .post_form(
            &action,
            &[
                ("csrf_token", &csrf),
                ("traits.email", "ui@example.com"),
                ("password", "correct horse battery"),
                ("method", "password"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let welcome = r.headers()["location"].to_str().unwrap().to_string();
    assert!(welcome.ends_with("/ui/welcome"), "{welcome}");
    let html = b.get(&welcome, false).await.text().await.unwrap();
    assert!(
        html.contains("You are signed in") && html.contains("ui@example.com"),
        "{html}"
    );

    // Sign out through the link on the page, then the page offers to sign in.
    let logout = attr_after(&html, "Account settings</a>", "href");
    assert!(logout.contains("/self-service/logout?token="), "{logout}");
    let r = b.get(&logout, false).await;
    assert_eq!(r.status(), 303);
    let html = b.get(&welcome, false).await.text().await.unwrap();
    assert!(html.contains("You are not signed in"));

    // A page without a flow (or with an unknown one) starts a fresh flow.
    let r = b
        .get(
            &format!(
                "{}/ui/login?flow=00000000-0000-0000-0000-000000000000",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/self-service/login/browser")
    );
}

#[tokio::test]
async fn pages_escape_user_input() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let b = Browser::default();
    let html = b
        .get(
            &format!(
                "{}/ui/error?error=%3Cscript%3Ealert(1)%3C/script%3E",
                s.public
            ),
            false,
        )
        .await
        .text()
        .await
        .unwrap();
    // The error page shows stored errors only (`?id=`); text in the URL is never echoed.
    assert!(
        !html.contains("<script>") && !html.contains("alert(1)"),
        "{html}"
    );
    assert!(html.contains("Something went wrong"), "{html}");
}

/// A server with the GitHub provider (never contacted here) and an experience section.
async fn server_with_experience(experience: &str) -> TestServer {
    let mapper = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "{identity: {traits: {email: std.extVar('claims').email}}}",
    );
    TestServer::start(
        Backend::Sqlite,
        &format!(
            "selfservice:\n  allowed_return_urls:\n    - https://app.example.com/\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: github\n            provider: github\n            label: GitHub\n            client_id: abc\n            client_secret: def\n            mapper_url: base64://{mapper}\n            auth_url: https://gh.example/login/oauth/authorize\n{experience}"
        ),
    )
    .await
}

/// The cookies of the browser that opened each flow page: the hosted UI shows a browser flow
/// only to the browser it belongs to (its CSRF cookie), so [`get_with`] sends them along.
static OPENED_BY: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Opens a browser flow and returns its page URL.
async fn page_url(s: &TestServer, b: &Browser, kind: &str) -> String {
    let r = b
        .get(&format!("{}/self-service/{kind}/browser", s.public), false)
        .await;
    assert_eq!(r.status(), 303);
    let url = r.headers()["location"].to_str().unwrap().to_string();
    OPENED_BY
        .lock()
        .unwrap()
        .push((url.clone(), b.cookie_header()));
    url
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (reqwest::header::HeaderMap, String) {
    let mut req = TestServer::client().get(url);
    let jar = OPENED_BY
        .lock()
        .unwrap()
        .iter()
        .find(|(page, _)| url.starts_with(page.as_str()))
        .map(|(_, c)| c.clone());
    if let Some(c) = jar {
        req = req.header("cookie", c);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let h = r.headers().clone();
    (h, r.text().await.unwrap())
}

#[tokio::test]
async fn every_page_has_a_strict_csp_and_csrf_on_every_form() {
    let s = server_with_experience("").await;
    let b = Browser::default();
    for kind in ["login", "registration"] {
        let url = page_url(&s, &b, kind).await;
        let (h, html) = get_with(&url, &[]).await;
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            // Social buttons answer 303 to the provider; allowed return URLs are targets too.
            "form-action 'self' https://app.example.com https://gh.example",
        ] {
            assert!(csp.contains(part), "{kind}: `{part}` not in {csp}");
        }
        assert!(
            !csp.contains("unsafe") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        let forms = html.matches("<form ").count();
        assert!(forms >= 1, "{html}");
        assert_eq!(
            html.matches("name=\"csrf_token\"").count(),
            forms,
            "{kind}: every form carries the CSRF token:\n{html}"
        );
        assert!(
            !html.contains("<script") && !html.contains(" style="),
            "{html}"
        );
    }
    for path in ["/ui/welcome", "/ui/error"] {
        let (h, _) = get_with(&format!("{}{path}", s.public), &[]).await;
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
    // The stylesheet and theme are cacheable for a year; the theme carries the brand colour.
    let (h, css) = get_with(&format!("{}/ui/static/tessera.css", s.public), &[]).await;
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(css.contains(":focus-visible"));
    let (_, theme) = get_with(&format!("{}/ui/theme.css", s.public), &[]).await;
    assert!(theme.contains("--primary:#4338ca"), "{theme}");
}

#[tokio::test]
async fn language_comes_from_ui_locales_then_cookie_then_accept_language() {
    let s = server_with_experience("").await;
    let b = Browser::default();
    let url = page_url(&s, &b, "login").await;
    let (_, en) = get_with(&url, &[]).await;
    assert!(en.contains("<html lang=\"en\">") && en.contains("<h1>Sign in</h1>"));
    assert!(en.contains("Continue with GitHub"));
    let (_, ru) = get_with(&url, &[("accept-language", "de-DE, ru;q=0.8, en;q=0.5")]).await;
    assert!(
        ru.contains("<html lang=\"ru\">") && ru.contains("<h1>Вход</h1>"),
        "{ru}"
    );
    assert!(ru.contains("Продолжить через GitHub") && ru.contains(">Пароль</label>"));
    let (_, zh) = get_with(
        &format!("{url}&ui_locales=zh-CN%20ru"),
        &[("accept-language", "ru"), ("cookie", "tessera_lang=ru")],
    )
    .await;
    assert!(
        zh.contains("<html lang=\"zh-CN\">") && zh.contains("<h1>登录</h1>"),
        "{zh}"
    );
    assert!(zh.contains("通过 GitHub 继续"));
    // ui_locales given when the flow starts (as the OpenID Provider will) reaches the page,
    // which remembers it for the rest of the journey.
    let r = b
        .get(
            &format!("{}/self-service/login/browser?ui_locales=ru", s.public),
            false,
        )
        .await;
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.ends_with("&ui_locales=ru"), "{to}");
    let r = b.get(&to, false).await;
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("tessera_lang=ru;")
    );
    assert!(r.text().await.unwrap().contains("<html lang=\"ru\">"));
    let (_, by_cookie) = get_with(
        &url,
        &[("accept-language", "en"), ("cookie", "tessera_lang=zh-CN")],
    )
    .await;
    assert!(by_cookie.contains("<html lang=\"zh-CN\">"));

    // The switcher sets the cookie and goes back, only ever to a page under /ui/.
    let path = url.trim_start_matches(&s.public).to_string();
    let switch = format!(
        "{}/ui/lang?set=ru&back={}",
        s.public,
        url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
    );
    let r = TestServer::client().get(&switch).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], path.as_str());
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("tessera_lang=ru;"), "{cookie}");
    for evil in [
        "https://evil.example/",
        "//evil.example/ui/",
        "/ui/..//evil",
    ] {
        let r = TestServer::client()
            .get(format!(
                "{}/ui/lang?set=ru&back={}",
                s.public,
                url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], "/ui/welcome", "{evil}");
    }
}

#[tokio::test]
async fn agreement_is_enforced_by_the_server_not_just_the_page() {
    let s = server_with_experience(
        "experience:\n  terms_of_service_url: https://bookstore.example/terms\n  privacy_policy_url: https://bookstore.example/privacy\n",
    )
    .await;
    let b = Browser::default();
    let url = page_url(&s, &b, "registration").await;
    let (_, html) = get_with(&url, &[]).await;
    assert!(
        html.contains("type=\"checkbox\" id=\"f-default-terms_accepted\"")
            || html.contains("name=\"terms_accepted\""),
        "{html}"
    );
    assert!(html.contains("href=\"https://bookstore.example/terms\""));
    let (_, login) = get_with(
        &page_url(&s, &b, "login").await,
        &[("accept-language", "ru")],
    )
    .await;
    assert!(login.contains("Продолжая, вы принимаете"), "{login}");

    // Through the API: without the agreement the flow comes back with 4000900 on its node.
    let c = TestServer::client();
    let flow: serde_json::Value = c
        .get(format!("{}/self-service/registration/api", s.public))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "terms_accepted")
        .cloned()
        .expect("agreement node");
    assert_eq!(node["attributes"]["type"], "checkbox");
    assert_eq!(node["meta"]["label"]["id"], 1070900);
    let submit = |body: serde_json::Value| {
        let c = c.clone();
        let url = format!(
            "{}/self-service/registration?flow={}",
            s.public,
            flow["id"].as_str().unwrap()
        );
        async move { c.post(url).json(&body).send().await.unwrap() }
    };
    let r = submit(serde_json::json!({"method": "password", "traits": {"email": "t@example.com"}, "password": "correct horse battery"})).await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    let node = body["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "terms_accepted")
        .unwrap();
    assert_eq!(node["messages"][0]["id"], 4000900, "{body}");
    let email = body["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.email")
        .unwrap();
    assert_eq!(
        email["attributes"]["value"], "t@example.com",
        "typed data is kept"
    );
    let r = submit(serde_json::json!({"method": "password", "traits": {"email": "t@example.com"}, "password": "correct horse battery", "terms_accepted": true})).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

#[tokio::test]
async fn social_only_pages_show_no_password_fields() {
    let s = server_with_experience("experience:\n  social_only: true\n").await;
    let b = Browser::default();
    for kind in ["login", "registration"] {
        let (_, html) = get_with(&page_url(&s, &b, kind).await, &[]).await;
        assert!(!html.contains("type=\"password\""), "{kind}: {html}");
        assert!(!html.contains("traits.email") && !html.contains("name=\"identifier\""));
        assert!(html.contains("Continue with GitHub"), "{html}");
    }
}

#[tokio::test]
async fn errors_and_expired_flows_offer_a_way_forward_in_the_page_language() {
    let s = TestServer::start(
        Backend::Sqlite,
        "selfservice:\n  flows:\n    login:\n      lifespan: 1ms\n",
    )
    .await;
    let (_, html) = get_with(
        &format!(
            "{}/ui/error?id=00000000-0000-4000-8000-000000000000",
            s.public
        ),
        &[("accept-language", "zh-CN")],
    )
    .await;
    assert!(
        html.contains("此链接已失效") && html.contains(">重新开始</a>"),
        "{html}"
    );
    assert!(html.contains("/self-service/login/browser"));
    let b = Browser::default();
    let url = page_url(&s, &b, "login").await;
    // The 1 ms lifespan has passed by the time the page is fetched.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, html) = get_with(&url, &[("accept-language", "ru")]).await;
    assert!(html.contains("Срок действия страницы истёк"), "{html}");
    assert!(html.contains(">Начать заново</a>"));
}

#[tokio::test]
async fn a_form_post_without_its_csrf_token_lands_on_the_error_page() {
    let s = TestServer::start(Backend::Sqlite, "").await;
    let b = Browser::default();
    let url = page_url(&s, &b, "login").await;
    let html = b.get(&url, false).await.text().await.unwrap();
    let action = attr_after(&html, "<form", "action");
    let r = b
        .post_form(
            &action,
            &[
                ("method", "password"),
                ("identifier", "x@example.com"),
                ("password", "whatever12345"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains("/ui/error?id="), "{to}");
    let (_, page) = get_with(&to, &[("accept-language", "ru")]).await;
    assert!(page.contains("ради безопасности вашего аккаунта"), "{page}");
    assert!(page.contains("Код ошибки: 403"), "{page}");
}
