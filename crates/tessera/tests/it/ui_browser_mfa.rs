//! Second factors in the hosted pages in a real browser (issue 20): `peers/browser/mfa.mjs`
//! enrols an authenticator app and backup recovery codes in settings, then signs in with
//! password + code and password + recovery code, and sees a used recovery code refused, in
//! English and in Russian. Screenshots go to `<target dir>/ui-screenshots/mfa/`.

use tessera_testkit::{Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factors_in_chromium_in_english_and_russian() {
    let s = TestServer::start(
        Backend::Sqlite,
        "selfservice:\n  methods:\n    totp:\n      enabled: true\n      config:\n        issuer: Bookstore\n    lookup_secret:\n      enabled: true\n  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n",
    )
    .await;
    let shots = tessera_testkit::browser::screenshot_dir("mfa");
    tessera_testkit::browser::run_script("mfa.mjs", &s.public, &[], &shots, &[]).await;
    s.stop().await;
}
