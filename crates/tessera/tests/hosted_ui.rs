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
