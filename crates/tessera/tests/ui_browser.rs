//! The hosted sign-in pages in a real browser: Debian's `chromium` driven by `playwright-core`
//! (both installed by `scripts/test-deps.sh`). This test starts the real server and the
//! DingTalk, VK and GitHub emulators on loopback ports, then runs `peers/browser/suite.mjs`,
//! which clicks through every journey and fails on any wrong page, untranslated page or CSP
//! violation. Screenshots of each page at 360 px and 1280 px go to
//! `<target dir>/ui-screenshots/suite/` (`target/ui-screenshots/suite/` by default).
//!
//! The app sign-in through the OpenID Provider with consent is one more scenario, added where
//! the OpenID Provider exists (see the note at the end of `suite.mjs`).

use base64::Engine as _;
use tessera_testkit::emulators::dingtalk::DingtalkEmulator;
use tessera_testkit::emulators::github::GithubEmulator;
use tessera_testkit::emulators::vk::VkEmulator;
use tessera_testkit::{Backend, TestServer};

/// One mapper for the three providers: the email when there is one (GitHub's only when
/// verified), the name from whatever the provider has.
const MAPPER: &str = r#"local c = std.extVar('claims');
local first = if 'given_name' in c then c.given_name else if 'name' in c then c.name else null;
local last = if 'family_name' in c then c.family_name else null;
local email_ok = 'email' in c && (!('email_verified' in c) || c.email_verified);
{
  identity: {
    traits: {
      [if email_ok then 'email' else null]: c.email,
      name: {
        [if first != null then 'first' else null]: first,
        [if last != null then 'last' else null]: last,
      },
    },
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
        "selfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n{providers}  flows:\n    registration:\n      after:\n        password:\n          hooks:\n            - hook: session\n        oidc:\n          hooks:\n            - hook: session\nexperience:\n  provider_order: [dingtalk, vk, github]\n  brand:\n    name: Bookstore\n    primary_color: \"#0f766e\"\n  terms_of_service_url: https://bookstore.example/terms\n  privacy_policy_url: https://bookstore.example/privacy\n"
    );
    let s = TestServer::start(Backend::Sqlite, &config).await;
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

    // The consent page's template with sample data, in each language, for the suite's
    // `consent-preview` (a look at the page, not the OpenID Provider journey, which this branch
    // does not have).
    let previews = s.dir.join("consent-previews");
    std::fs::create_dir_all(&previews).expect("create the preview folder");
    let st = tessera_server::AppState::new(s.engine.0.clone());
    for lang in tessera_server::ui::i18n::LANGS {
        let html = tessera_server::ui::render::render_consent(
            tessera_server::ui::chrome(&st, lang, "/ui/consent"),
            tessera_server::ui::ConsentView {
                app_name: "Bookstore WordPress".into(),
                scopes: ["openid", "profile", "email", "offline_access"]
                    .map(String::from)
                    .to_vec(),
                user_identifier: "zhangwei@example.cn".into(),
                form_action: "/oidc/consent".into(),
                csrf_token: "preview".into(),
                request_id: "preview".into(),
            },
        )
        .expect("render the consent template");
        std::fs::write(previews.join(format!("{}.html", lang.tag())), html)
            .expect("write a consent preview");
    }

    tessera_testkit::browser::run_suite(
        &s.public,
        &[],
        &shots,
        &[("CONSENT_PREVIEW_DIR", previews.display().to_string())],
    )
    .await;
    s.stop().await;
}
