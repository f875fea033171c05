//! The classic Telegram Login Widget (`provider: telegram`, issue 17) end to end against its
//! emulator in tessera-emulators, with the default mapper `tessera demo` writes: the redirect
//! form (`bot_id`, `origin`, `return_to` carrying the state), the bridge page that brings
//! `#tgAuthResult` back from the URL's fragment (its CSP allows its one script by hash; without
//! JavaScript it explains in the page's language), sign-up with the email Telegram does not
//! give, and sign-in again into the same identity; then every attack on the signed result —
//! a forged hash, an altered field, a result for another bot, a stale `auth_date`, a replay,
//! garbage — and on the state, each a clear message in English, Russian and Chinese with
//! nothing written; the start-time checks; and the emulator refusing what Telegram refuses.
//! `telegram_widget_in_chromium` runs the bridge in a real browser (peers/browser/).
//!
//! Here a test does what the bridge page's script does: it takes `tgAuthResult` from the
//! fragment of the URL Telegram redirected to and posts it with the page's `state`.

use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::telegram::{BOT_TOKEN, TelegramWidgetEmulator};
use tessera_testkit::journey::{
    assert_stored_error, b64, config, flow_id_of, flow_json, identities, location,
    oidc_identifiers, param, press_provider, refusal, start_error, submit, upstream, whoami,
};
use tessera_testkit::{Backend, Browser, TestServer, each_backend};

/// `tessera demo`'s mapper, the one docs/providers/telegram.md shows.
const MAPPER: &str = include_str!("../../demo/telegram.jsonnet");
/// Another bot's token (the result of a widget on someone else's site).
const OTHER_BOT: &str = "5512093877:AAFoTheOtherBotsTokenxxxxxxxxxxxxxx";

fn yaml(tg: &TelegramWidgetEmulator, id: &str, token: &str, extra: &str) -> String {
    format!(
        "          - id: telegram\n            provider: telegram\n            label: Telegram\n            client_id: \"{id}\"\n            client_secret: \"{token}\"\n            auth_url: {}\n            mapper_url: base64://{}\n{extra}",
        tg.auth_url(),
        b64(MAPPER)
    )
}

async fn server(backend: Backend, tg: &TelegramWidgetEmulator, extra: &str) -> TestServer {
    let s = TestServer::start(
        backend,
        &config(&yaml(tg, tg.bot_id(), tg.bot_token(), extra)),
    )
    .await;
    tg.set_domain(s.public.clone());
    s
}

/// The bridge page the callback answers when Telegram's answer is in the fragment: HTML with
/// a CSP that allows one script by its hash, a form back to the callback; returns the form's
/// action and state.
async fn bridge(b: &Browser, callback: &str) -> (String, String) {
    let without_fragment = callback.split('#').next().unwrap_or_default();
    let r = b.get(without_fragment, false).await;
    assert_eq!(r.status(), 200, "{callback}");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.text().await.unwrap();
    let attr = |name: &str| {
        page.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .replace("&amp;", "&")
    };
    let state = page
        .split("name=\"state\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(page.contains("name=\"tgAuthResult\""), "{page}");
    (attr("action"), state)
}

/// The fragment's `tgAuthResult` of the URL Telegram redirected to.
fn result_of(callback: &str) -> String {
    callback
        .split_once("#tgAuthResult=")
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| panic!("no #tgAuthResult in {callback}"))
}

/// What the bridge page's script sends.
async fn post(b: &Browser, action: &str, state: &str, result: &str) -> reqwest::Response {
    b.post_form(action, &[("state", state), ("tgAuthResult", result)], false)
        .await
}

/// Presses the Telegram button, confirms as `user` on the emulator; the URL Telegram sends
/// the browser back to (with the fragment).
async fn confirm(b: &Browser, s: &TestServer, kind: &str, user: &str) -> String {
    let authorize = press_provider(b, s, kind, "telegram", "https://app.example.com/after").await;
    upstream(b, &authorize, user).await
}

/// A whole sign-in as `user`, through the bridge; the answer to the bridge's post.
async fn sign_in(b: &Browser, s: &TestServer, kind: &str, user: &str) -> reqwest::Response {
    let back = confirm(b, s, kind, user).await;
    let (action, state) = bridge(b, &back).await;
    post(b, &action, &state, &result_of(&back)).await
}

/// A refusal on the login page: the English message, after checking the Russian and Chinese
/// pages say `ru` and `zh`.
async fn refused(b: &Browser, s: &TestServer, r: reqwest::Response, ru: &str, zh: &str) -> String {
    let loc = location(&r);
    let en = refusal(b, s, r).await;
    for (lang, needle) in [("ru", ru), ("zh-CN", zh)] {
        let page = b
            .get(&format!("{loc}&ui_locales={lang}"), false)
            .await
            .text()
            .await
            .unwrap();
        assert!(page.contains(needle), "{lang}: {page}");
    }
    en
}

/// A fresh attempt of Иван's in a new browser, up to the bridge: the browser, the bridge's
/// action and state, and the genuine result.
async fn attempt(s: &TestServer) -> (Browser, String, String, String) {
    let b = Browser::default();
    let back = confirm(&b, s, "login", "ivan").await;
    let (action, state) = bridge(&b, &back).await;
    (b, action, state, result_of(&back))
}

const UNVERIFIED: (&str, &str) = (
    "Не удалось проверить ответ Telegram",
    "无法验证来自 Telegram 的响应",
);
const NOT_COMPLETED: (&str, &str) = (
    "Не удалось завершить вход через Telegram",
    "通过 Telegram 登录未能完成",
);

each_backend!(telegram_widget_sign_up_fills_the_email_then_signs_in_again);
async fn telegram_widget_sign_up_fills_the_email_then_signs_in_again(backend: Backend) {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(backend, &tg, "").await;
    let b = Browser::default();
    let authorize =
        press_provider(&b, &s, "login", "telegram", "https://app.example.com/after").await;
    // The widget's redirect form: the bot id, this site's origin, and the callback with the
    // attempt's state as the page Telegram returns to.
    assert!(authorize.starts_with(&tg.auth_url()), "{authorize}");
    assert_eq!(param(&authorize, "bot_id").as_deref(), Some(tg.bot_id()));
    assert_eq!(
        param(&authorize, "origin").as_deref(),
        Some(s.public.as_str())
    );
    let return_to = param(&authorize, "return_to").unwrap();
    let callback = format!("{}/self-service/methods/oidc/callback/telegram", s.public);
    assert!(
        return_to.starts_with(&format!("{callback}?state=")),
        "{return_to}"
    );
    let back = upstream(&b, &authorize, "ivan").await;
    assert!(
        back.starts_with(&format!("{return_to}#tgAuthResult=")),
        "{back}"
    );
    // The bridge page can be loaded twice (a reload): showing it spends nothing.
    let (action, state) = bridge(&b, &back).await;
    assert_eq!(bridge(&b, &back).await, (action.clone(), state.clone()));
    assert_eq!(action, callback);
    assert_eq!(Some(state.clone()), param(&return_to, "state"));
    let r = post(&b, &action, &state, &result_of(&back)).await;
    // Telegram gives no email: the registration page asks for one, the name filled in.
    let loc = location(&r);
    assert!(
        loc.starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{loc}"
    );
    let flow = flow_json(&b, &s, "registration", &flow_id_of(&loc)).await;
    let nodes = flow["ui"]["nodes"].as_array().unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["attributes"]["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(node("traits.email")["messages"][0]["id"], 4000002, "{flow}");
    assert_eq!(node("traits.name.first")["attributes"]["value"], "Иван");
    assert!(identities(&s).await.is_empty(), "nothing created yet");
    let r = submit(
        &b,
        &flow,
        &[
            ("provider", "telegram"),
            ("traits.email", "ivan@example.ru"),
        ],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let me = whoami(&b, &s).await["identity"].clone();
    assert_eq!(me["traits"]["email"], "ivan@example.ru");
    assert_eq!(me["traits"]["name"]["last"], "Петров");
    assert_eq!(me["metadata_public"]["telegram_id"], "184467321");
    assert_eq!(me["metadata_public"]["telegram_username"], "ivan_petrov");
    let id = me["id"].as_str().unwrap().to_string();
    assert_eq!(
        oidc_identifiers(&s, &id).await,
        json!([format!("telegram:{}", tg.id_of("ivan"))])
    );

    // Again, from another browser and the registration page: the same identity. (Telegram's
    // result is the person's fields and the second they confirmed, so two confirmations
    // within one second are the same result, which is accepted once; a person is not that
    // quick, this test is: it dates the second one a minute earlier.)
    tg.set_auth_date_offset(-60);
    let b2 = Browser::default();
    let r = sign_in(&b2, &s, "registration", "ivan").await;
    assert_eq!(location(&r), "https://app.example.com/after");
    assert_eq!(whoami(&b2, &s).await["identity"]["id"], id.as_str());

    // Мария has no @username: the mapper leaves it out.
    let b3 = Browser::default();
    let r = sign_in(&b3, &s, "login", "maria").await;
    let flow = flow_json(&b3, &s, "registration", &flow_id_of(&location(&r))).await;
    let r = submit(
        &b3,
        &flow,
        &[
            ("provider", "telegram"),
            ("traits.email", "maria@example.ru"),
        ],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/after");
    let maria = whoami(&b3, &s).await["identity"].clone();
    assert_eq!(maria["metadata_public"]["telegram_id"], "5512093877");
    assert!(maria["metadata_public"].get("telegram_username").is_none());
    assert_eq!(identities(&s).await.len(), 2);
    s.stop().await;
}

each_backend!(telegram_widget_result_is_accepted_once);
/// A captured result (from a browser's history, a log, a proxy) replayed in a fresh attempt of
/// another browser is refused, while it is still fresh and its signature good.
async fn telegram_widget_result_is_accepted_once(backend: Backend) {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(backend, &tg, "").await;
    tg.set_next_user(Some("ivan"));
    let victim = Browser::default();
    let back = confirm(&victim, &s, "login", "ivan").await;
    let captured = result_of(&back);
    let (action, state) = bridge(&victim, &back).await;
    let r = post(&victim, &action, &state, &captured).await;
    let flow = flow_json(&victim, &s, "registration", &flow_id_of(&location(&r))).await;
    submit(
        &victim,
        &flow,
        &[
            ("provider", "telegram"),
            ("traits.email", "ivan@example.ru"),
        ],
        false,
    )
    .await;
    assert_eq!(identities(&s).await.len(), 1);

    let attacker = Browser::default();
    let own = confirm(&attacker, &s, "login", "ivan").await;
    let (action, state) = bridge(&attacker, &own).await;
    let r = post(&attacker, &action, &state, &captured).await;
    let text = refused(&attacker, &s, r, NOT_COMPLETED.0, NOT_COMPLETED.1).await;
    assert!(text.contains("already used"), "{text}");
    assert_eq!(identities(&s).await.len(), 1, "nothing written");
    s.stop().await;
}

#[tokio::test]
async fn telegram_widget_refuses_forged_altered_foreign_stale_and_garbage_results() {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(Backend::Sqlite, &tg, "").await;
    let std64 = base64::engine::general_purpose::STANDARD;
    let url64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let fields =
        |result: &str| -> Value { serde_json::from_slice(&url64.decode(result).unwrap()).unwrap() };

    // A made-up hash over genuine fields.
    let (b, action, state, result) = attempt(&s).await;
    let mut f = fields(&result);
    f["hash"] = "ab".repeat(32).into();
    let r = post(&b, &action, &state, &std64.encode(f.to_string())).await;
    let text = refused(&b, &s, r, UNVERIFIED.0, UNVERIFIED.1).await;
    assert!(text.contains("could not be verified"), "{text}");

    // A genuine result with one field changed: someone else's id.
    let (b, action, state, result) = attempt(&s).await;
    let mut f = fields(&result);
    f["id"] = json!(1);
    let r = post(&b, &action, &state, &url64.encode(f.to_string())).await;
    refused(&b, &s, r, UNVERIFIED.0, UNVERIFIED.1).await;

    // A genuine result of another bot (the widget of someone else's site).
    tg.sign_with(Some(OTHER_BOT));
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "ivan").await;
    refused(&b, &s, r, UNVERIFIED.0, UNVERIFIED.1).await;
    tg.sign_with(None);

    // A genuine result confirmed ten minutes ago: older than the five minutes allowed.
    tg.set_auth_date_offset(-600);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "ivan").await;
    let text = refused(&b, &s, r, NOT_COMPLETED.0, NOT_COMPLETED.1).await;
    assert!(
        text.contains("10 min ago") && text.contains("for 5 min only"),
        "{text}"
    );
    tg.set_auth_date_offset(0);

    // Garbage instead of base64, base64 of something else than JSON, a JSON list, no hash.
    let mut bare = fields(&attempt(&s).await.3);
    bare.as_object_mut().unwrap().remove("hash");
    for (garbage, says) in [
        ("%%%not*base64%%%".to_string(), "base64-encoded JSON"),
        (std64.encode("<html>not json</html>"), "base64-encoded JSON"),
        (std64.encode("[1,2]"), "base64-encoded JSON"),
        (std64.encode(bare.to_string()), "lacks `hash`"),
    ] {
        let (b, action, state, _) = attempt(&s).await;
        let r = post(&b, &action, &state, &garbage).await;
        let text = refused(&b, &s, r, NOT_COMPLETED.0, NOT_COMPLETED.1).await;
        assert!(text.contains(says), "{garbage}: {text}");
    }

    // Cancelled on Telegram's page, or the result lost on the way.
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "deny").await;
    let text = refused(
        &b,
        &s,
        r,
        "Вход через Telegram отменён",
        "Telegram 登录已取消",
    )
    .await;
    assert!(text.contains("cancelled or denied"), "{text}");
    let (b, action, state, _) = attempt(&s).await;
    let r = post(&b, &action, &state, "").await;
    refused(
        &b,
        &s,
        r,
        "Вход через Telegram отменён",
        "Telegram 登录已取消",
    )
    .await;

    assert!(identities(&s).await.is_empty(), "nothing written");
    s.stop().await;
}

#[tokio::test]
async fn telegram_widget_state_is_required_bound_to_the_browser_and_spent_once() {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(Backend::Sqlite, &tg, "").await;
    let b = Browser::default();
    let back = confirm(&b, &s, "login", "ivan").await;
    let (action, state) = bridge(&b, &back).await;
    let result = result_of(&back);
    // No state: the result alone is not a sign-in. (Posted from a browser of its own: a
    // refused callback clears the continuity cookie of the browser that sent it.)
    let r = post(&Browser::default(), &action, "", &result).await;
    assert_stored_error(&s, &r, "`state` parameter is unknown").await;
    // The victim's state and result posted from another browser (without the continuity
    // cookie), as a cross-site form would.
    let other = Browser::default();
    let r = post(&other, &action, &state, &result).await;
    assert_stored_error(&s, &r, "did not start this sign-in").await;
    // That did not spend the state: the victim's own post goes on (to the email Telegram
    // does not give), and replaying it is refused.
    let r = post(&b, &action, &state, &result).await;
    assert!(
        location(&r).contains("/ui/registration?flow="),
        "{}",
        location(&r)
    );
    let r = post(&b, &action, &state, &result).await;
    assert_stored_error(&s, &r, "already used").await;
    assert!(identities(&s).await.is_empty());
    assert!(whoami(&b, &s).await.get("identity").is_none());
}

#[tokio::test]
async fn telegram_widget_bridge_explains_itself_without_javascript_in_every_language() {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(Backend::Sqlite, &tg, "").await;
    let url = format!(
        "{}/self-service/methods/oidc/callback/telegram?state=abc%22%3E%3Cscript%3E",
        s.public
    );
    for (lang, title, says) in [
        ("en", "Signing in with Telegram", "JavaScript is off"),
        (
            "ru",
            "Вход через Telegram",
            "JavaScript в этом браузере выключен",
        ),
        ("zh-CN", "通过 Telegram 登录", "已关闭 JavaScript"),
    ] {
        let r = TestServer::client()
            .get(&url)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{page}");
        assert!(page.contains(&format!("<h1>{title}</h1>")), "{page}");
        assert!(page.contains("<noscript><p role=\"alert\">"), "{page}");
        assert!(page.contains(says), "{lang}: {page}");
        // The state is text in an attribute, never markup.
        assert!(
            page.contains("value=\"abc&quot;&gt;&lt;script&gt;\""),
            "{page}"
        );
        assert_eq!(page.matches("<script>").count(), 1, "{page}");
    }
    // Providers that answer in the query never get the page.
    let r = TestServer::client()
        .get(format!(
            "{}/self-service/methods/oidc/callback/nope?state=x",
            s.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn telegram_widget_entries_are_checked_at_start() {
    let tg = TelegramWidgetEmulator::start().await;
    let err = |id: &str, token: &str, extra: &str| {
        let yaml = config(&yaml(&tg, id, token, extra));
        async move { start_error(&yaml).await }
    };
    let e = err("@tessera_bot", BOT_TOKEN, "").await;
    assert!(
        e.contains("providers.0.client_id") && e.contains("not a Telegram bot id"),
        "{e}"
    );
    let e = err(tg.bot_id(), "tg-login-secret", "").await;
    assert!(
        e.contains("providers.0.client_secret") && e.contains("not a Telegram bot token"),
        "{e}"
    );
    let e = err(tg.bot_id(), OTHER_BOT, "").await;
    assert!(
        e.contains("providers.0.client_secret") && e.contains("belongs to bot 5512093877"),
        "{e}"
    );
    let e = err(tg.bot_id(), "", "").await;
    assert!(
        e.contains("providers.0.client_secret") && e.contains("client_secret is required"),
        "{e}"
    );
    let e = err(
        tg.bot_id(),
        BOT_TOKEN,
        "            telegram_auth_max_age: 7d\n",
    )
    .await;
    assert!(e.contains("providers.0.telegram_auth_max_age"), "{e}");
    let e = err(
        tg.bot_id(),
        BOT_TOKEN,
        "            telegram_auth_max_age: 48h\n",
    )
    .await;
    assert!(
        e.contains("providers.0.telegram_auth_max_age") && e.contains("between 30s and 24h"),
        "{e}"
    );
}

#[tokio::test]
async fn telegram_widget_max_age_is_configurable() {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(
        Backend::Sqlite,
        &tg,
        "            telegram_auth_max_age: 30m\n",
    )
    .await;
    // Ten minutes old is fine under a thirty-minute limit.
    tg.set_auth_date_offset(-600);
    let b = Browser::default();
    let r = sign_in(&b, &s, "login", "ivan").await;
    assert!(
        location(&r).starts_with(&format!("{}/ui/registration?flow=", s.public)),
        "{}",
        location(&r)
    );
}

#[tokio::test]
async fn telegram_widget_emulator_refuses_what_telegram_refuses() {
    let tg = TelegramWidgetEmulator::start().await;
    tg.set_domain("https://id.example.com");
    let c = TestServer::client();
    let auth = |bot: &str, origin: &str, return_to: &str| {
        let mut u = url::Url::parse(&tg.auth_url()).unwrap();
        u.query_pairs_mut()
            .append_pair("bot_id", bot)
            .append_pair("origin", origin)
            .append_pair("return_to", return_to)
            .append_pair("user", "ivan");
        u.to_string()
    };
    let cb = "https://id.example.com/self-service/methods/oidc/callback/telegram?state=s";
    for (url, says) in [
        (auth("1", "https://id.example.com", cb), "Bot invalid"),
        (
            auth(
                tg.bot_id(),
                "https://evil.example",
                "https://evil.example/cb",
            ),
            "Bot domain invalid",
        ),
        (
            auth(
                tg.bot_id(),
                "https://id.example.com",
                "https://evil.example/cb",
            ),
            "Bot domain invalid",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert!(r.text().await.unwrap().contains(says), "{url}: {says}");
    }
    let r = c
        .get(auth(tg.bot_id(), "https://id.example.com", cb))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = location(&r);
    assert!(to.starts_with(&format!("{cb}#tgAuthResult=")), "{to}");
    // The result is the documented fields and a hash that checks out under the bot token.
    let f: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(result_of(&to))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(f["id"], tg.id_of("ivan"));
    assert_eq!(f["username"], "ivan_petrov");
    assert!(f.get("email").is_none());
    let v = TelegramWidgetEmulator::result_for("ivan", f["auth_date"].as_i64().unwrap(), BOT_TOKEN);
    assert_eq!(result_of(&format!("#tgAuthResult={v}")), result_of(&to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_widget_in_chromium() {
    let tg = TelegramWidgetEmulator::start().await;
    let s = server(Backend::Sqlite, &tg, "").await;
    let shots = tessera_testkit::browser::screenshot_dir("telegram-widget");
    tessera_testkit::browser::run_script("telegram-widget.mjs", &s.public, &[], &shots, &[]).await;
    // The sign-up in the browser made Иван's identity, linked to his Telegram id.
    let all = identities(&s).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let id = all[0]["id"].as_str().unwrap();
    assert_eq!(
        oidc_identifiers(&s, id).await,
        json!([format!("telegram:{}", tg.id_of("ivan"))])
    );
    s.stop().await;
}
