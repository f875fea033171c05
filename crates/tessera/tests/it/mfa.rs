//! Second factors end to end (issue 20), on both backends: TOTP enrolment in settings, the
//! `aal=aal2` step-up, whoami's and settings' `required_aal`, removal (self-service and
//! `DELETE /admin/identities/{id}/credentials/{type}`), import of `totp` credentials, and the
//! OpenID Provider's `acr`/`amr`, `acr_values` and step-up. Each happy path has its attacker's
//! case next to it: a replayed code, wrong codes until the limit, an aal1 session at whoami and
//! settings, a removed key still tried, `acr_values` asking for less.

use crate::op_common::{self, auth_url, create_client, param, pkce, token, traditional, verify};
use serde_json::{Value, json};
use tessera_testkit::journey::{flow_id_of, flow_json, location};
use tessera_testkit::{Backend, Browser, TestServer, csrf_of, each_backend};
use totp_rs::{Algorithm, Secret, TOTP};

const PASSWORD: &str = "correct-horse-battery";
/// The relying party's callback (never listened on: the browser stops at the redirect).
const RP: &str = "http://127.0.0.1:9/callback";
const TOTP_ON: &str =
    "  methods:\n    totp:\n      enabled: true\n      config:\n        issuer: Tessera Test\n";

/// A server with `totp` on; `selfservice` lines go under the same key (YAML refuses it twice).
async fn server_with(backend: Backend, extra: &str, selfservice: &str) -> TestServer {
    op_common::server(
        backend,
        &format!("selfservice:\n{TOTP_ON}{selfservice}{extra}"),
    )
    .await
}

async fn server(backend: Backend, extra: &str) -> TestServer {
    server_with(backend, extra, "").await
}

/// What an authenticator app shows now for a base32 secret.
fn code_for(secret: &str) -> String {
    let bytes = Secret::Encoded(secret.into()).to_bytes().expect("base32");
    // Unchecked: an imported key may be shorter than the 128 bits `new` insists on.
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into())
        .generate_current()
        .expect("clock")
}

/// The code the app showed a step (30 s) ago, which is still accepted: what enrolment uses
/// here, because the code that confirms a key is spent and the tests step up right after.
fn enrolment_code_for(secret: &str) -> String {
    let bytes = Secret::Encoded(secret.into()).to_bytes().expect("base32");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, "x".into()).generate(now - 30)
}

/// A code that is not the current one (nor, with overwhelming likelihood, a neighbour's).
fn wrong(code: &str) -> String {
    let first = if code.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &code[1..])
}

fn api(method: reqwest::Method, url: String, token: &str) -> reqwest::RequestBuilder {
    TestServer::client()
        .request(method, url)
        .header("X-Session-Token", token)
        .header("accept", "application/json")
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Registers and signs in with the password: the aal1 session token and the identity id.
async fn signed_in(s: &TestServer, email: &str) -> (String, String) {
    let reg = s.register(email, PASSWORD).await;
    let (status, login) = s.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["session"]["authenticator_assurance_level"], "aal1");
    (
        login["session_token"].as_str().expect("token").to_string(),
        reg["identity"]["id"].as_str().expect("id").to_string(),
    )
}

async fn settings_flow(s: &TestServer, token: &str) -> (u16, Value) {
    send(api(
        reqwest::Method::GET,
        format!("{}/self-service/settings/api", s.public),
        token,
    ))
    .await
}

async fn settings_submit(s: &TestServer, token: &str, flow: &Value, body: Value) -> (u16, Value) {
    let id = flow["id"].as_str().expect("flow id");
    send(
        api(
            reqwest::Method::POST,
            format!("{}/self-service/settings?flow={id}", s.public),
            token,
        )
        .json(&body),
    )
    .await
}

fn node<'a>(flow: &'a Value, name: &str) -> Option<&'a Value> {
    flow["ui"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["attributes"]["name"] == name || n["attributes"]["id"] == name)
}

/// Enrols an authenticator app in settings; returns the secret the page showed.
async fn enrol(s: &TestServer, token: &str) -> String {
    let (status, flow) = settings_flow(s, token).await;
    assert_eq!(status, 200, "{flow}");
    let qr = node(&flow, "totp_qr").expect("a QR code is offered");
    assert!(
        qr["attributes"]["src"]
            .as_str()
            .is_some_and(|src| src.starts_with("data:image/svg+xml;base64,")),
        "{qr}"
    );
    let secret = node(&flow, "totp_secret_key")
        .and_then(|n| n["attributes"]["text"]["context"]["secret"].as_str())
        .expect("the secret is shown as text")
        .to_string();
    let (status, done) = settings_submit(
        s,
        token,
        &flow,
        json!({"method": "totp", "totp_code": enrolment_code_for(&secret)}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(
        node(&done, "totp_unlink").is_some(),
        "now it can be unlinked: {done}"
    );
    secret
}

/// The `aal=aal2` login of an API client: the flow, or the refusal.
async fn step_up_flow(s: &TestServer, token: &str) -> (u16, Value) {
    send(api(
        reqwest::Method::GET,
        format!("{}/self-service/login/api?aal=aal2", s.public),
        token,
    ))
    .await
}

async fn step_up(s: &TestServer, token: &str, code: &str) -> (u16, Value) {
    let (status, flow) = step_up_flow(s, token).await;
    assert_eq!(status, 200, "{flow}");
    let id = flow["id"].as_str().expect("flow id");
    send(
        api(
            reqwest::Method::POST,
            format!("{}/self-service/login?flow={id}", s.public),
            token,
        )
        .json(&json!({"method": "totp", "totp_code": code})),
    )
    .await
}

async fn password_then_totp(backend: Backend) {
    let s = server(backend, "").await;
    let (enrolling, _) = signed_in(&s, "t@example.com").await;
    let secret = enrol(&s, &enrolling).await;

    let (_, login) = s.login("t@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token").to_string();
    // Attacker with the password only: whoami and settings refuse, with Kratos's error.
    let (status, body) = s.whoami(&aal1).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["id"], "session_aal2_required", "{body}");
    assert!(
        body["redirect_browser_to"]
            .as_str()
            .is_some_and(|r| r.contains("aal=aal2")),
        "{body}"
    );
    let (status, body) = settings_flow(&s, &aal1).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["id"], "session_aal2_required", "{body}");

    // A wrong code signs nobody in; the right one lifts the session to aal2.
    let code = code_for(&secret);
    let (status, body) = step_up(&s, &aal1, &wrong(&code)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        tessera_testkit::message_ids(&body)
            .iter()
            .any(|(_, id)| *id == 4000008),
        "the TOTP code is wrong (4000008): {body}"
    );
    let (status, done) = step_up(&s, &aal1, &code).await;
    assert_eq!(status, 200, "{done}");
    let session = &done["session"];
    assert_eq!(session["authenticator_assurance_level"], "aal2");
    let methods: Vec<&str> = session["authentication_methods"]
        .as_array()
        .expect("methods")
        .iter()
        .filter_map(|m| m["method"].as_str())
        .collect();
    assert_eq!(methods, ["password", "totp"]);
    let aal2 = done["session_token"].as_str().expect("new token");
    assert_ne!(aal2, aal1, "a lifted session gets a new token");
    let (status, who) = s.whoami(aal2).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["authenticator_assurance_level"], "aal2");
    assert_eq!(s.whoami(&aal1).await.0, 401, "the aal1 token is spent");

    // Attacker replays the code just used, from another password session: refused.
    let (_, again) = s.login("t@example.com", PASSWORD).await;
    let other = again["session_token"].as_str().expect("token");
    let (status, body) = step_up(&s, other, &code).await;
    assert_eq!(status, 400, "a replayed code was accepted: {body}");
    assert_eq!(s.whoami(other).await.0, 403);
    s.stop().await;
}
each_backend!(password_then_totp);

/// Wrong codes count against the identity like wrong passwords: after the limit even the
/// right code is refused with 429.
async fn guessing_codes_is_rate_limited(backend: Backend) {
    let s = server(
        backend,
        "limits:\n  failed_logins:\n    per_identifier_and_address: 3\n    per_identifier: 3\n    per_address: 100\n",
    )
    .await;
    let (token, _) = signed_in(&s, "g@example.com").await;
    let secret = enrol(&s, &token).await;
    let (_, login) = s.login("g@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token").to_string();
    let code = code_for(&secret);
    let mut statuses = vec![];
    for _ in 0..4 {
        statuses.push(step_up(&s, &aal1, &wrong(&code)).await.0);
    }
    assert_eq!(statuses[..3], [400, 400, 400], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    let (status, body) = step_up(&s, &aal1, &code).await;
    assert_eq!(status, 429, "the right code after the limit: {body}");
    assert_eq!(body["error"]["id"], "self_service_rate_limited", "{body}");
    s.stop().await;
}
each_backend!(guessing_codes_is_rate_limited);

/// Unlinking takes an aal2 session even with `settings.required_aal: aal1`; once removed, the
/// key is never asked for nor accepted again.
async fn removing_the_app(backend: Backend) {
    let s = server_with(
        backend,
        "session:\n  whoami:\n    required_aal: aal1\n",
        "  flows:\n    settings:\n      required_aal: aal1\n",
    )
    .await;
    let (token, _) = signed_in(&s, "r@example.com").await;
    let secret = enrol(&s, &token).await;
    // With `aal1` everywhere, a password session reaches settings, but cannot strip the
    // factor.
    let (_, login) = s.login("r@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token").to_string();
    assert_eq!(s.whoami(&aal1).await.0, 200, "required_aal: aal1");
    let (status, flow) = settings_flow(&s, &aal1).await;
    assert_eq!(status, 200, "{flow}");
    let (status, body) = settings_submit(
        &s,
        &aal1,
        &flow,
        json!({"method": "totp", "totp_unlink": true}),
    )
    .await;
    assert_eq!(status, 403, "an aal1 session removed the factor: {body}");
    assert_eq!(body["error"]["id"], "session_aal2_required", "{body}");

    let (status, done) = step_up(&s, &aal1, &code_for(&secret)).await;
    assert_eq!(status, 200, "{done}");
    let aal2 = done["session_token"].as_str().expect("token").to_string();
    let (_, flow) = settings_flow(&s, &aal2).await;
    let (status, body) = settings_submit(
        &s,
        &aal2,
        &flow,
        json!({"method": "totp", "totp_unlink": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        node(&body, "totp_qr").is_some(),
        "a new key is offered: {body}"
    );

    // The removed key: no step-up to complete any more.
    let (_, login) = s.login("r@example.com", PASSWORD).await;
    let fresh = login["session_token"].as_str().expect("token");
    let (status, body) = step_up_flow(&s, fresh).await;
    assert_eq!(status, 400, "{body}");
    s.stop().await;
}
each_backend!(removing_the_app);

async fn admin_delete(s: &TestServer, id: &str, kind: &str, query: &str) -> (u16, Value) {
    send(TestServer::client().delete(format!(
        "{}/admin/identities/{id}/credentials/{kind}{query}",
        s.admin
    )))
    .await
}

/// Kratos's `DELETE /admin/identities/{id}/credentials/{type}`: a second factor goes, the
/// last first factor stays, unknown and absent types are refused.
async fn an_admin_removes_a_factor(backend: Backend) {
    let s = server(backend, "").await;
    let (token, id) = signed_in(&s, "a@example.com").await;
    let secret = enrol(&s, &token).await;
    let (status, body) = admin_delete(&s, &id, "password", "").await;
    assert_eq!(status, 400, "the last first factor: {body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("last first factor")),
        "{body}"
    );
    let (status, body) = admin_delete(&s, &id, "webauthn", "").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin_delete(&s, &id, "totp", "").await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = admin_delete(&s, &id, "totp", "").await;
    assert_eq!(status, 404, "already gone");
    // The removed key is not asked for, and its code opens nothing.
    let (_, login) = s.login("a@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token");
    assert_eq!(s.whoami(aal1).await.0, 200, "no second factor left");
    let (status, body) = step_up_flow(&s, aal1).await;
    assert_eq!(status, 400, "{body}");
    let _ = secret;
    s.stop().await;
}
each_backend!(an_admin_removes_a_factor);

/// Kratos's identity import takes `credentials.totp.config.totp_url`; the key is then asked
/// for at sign-in. A malformed key is refused with the field named.
async fn importing_a_totp_key(backend: Backend) {
    let s = server(backend, "").await;
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DP";
    let create = |creds: Value| {
        TestServer::client()
            .post(format!("{}/admin/identities", s.admin))
            .json(&json!({
                "schema_id": "default",
                "traits": {"email": "i@example.com"},
                "credentials": creds,
            }))
    };
    let (status, body) = send(create(json!({
        "password": {"config": {"password": PASSWORD}},
        "totp": {"config": {"totp_url": "otpauth://totp/X:i?secret=JBSWY3DP&issuer=X"}},
    })))
    .await;
    assert_eq!(status, 400, "a 40-bit secret: {body}");
    assert!(
        body.to_string()
            .contains("credentials.totp.config.totp_url"),
        "{body}"
    );
    let (status, body) = send(create(json!({
        "password": {"config": {"password": PASSWORD}},
        "totp": {"config": {"totp_url": format!("otpauth://totp/Example:i@example.com?secret={secret}&issuer=Example")}},
    })))
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, login) = s.login("i@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token");
    assert_eq!(s.whoami(aal1).await.0, 403, "the imported key is required");
    let (status, done) = step_up(&s, aal1, &code_for(secret)).await;
    assert_eq!(status, 200, "{done}");
    s.stop().await;
}
each_backend!(importing_a_totp_key);

/// Drives a browser from `start` through Tessera's login (password, then the TOTP code when
/// asked, from `secret`) until it leaves Tessera: where it went, whether the code and whether
/// the password were asked for.
async fn drive_counting(
    b: &Browser,
    s: &TestServer,
    start: &str,
    email: &str,
    secret: Option<&str>,
) -> (String, bool, bool) {
    let mut url = start.to_string();
    let mut asked_for_code = false;
    let mut asked_for_password = false;
    for _ in 0..16 {
        let r = b.get(&url, false).await;
        let status = r.status().as_u16();
        let loc = location(&r);
        assert!(
            (300..400).contains(&status),
            "{url}: {status} {}",
            r.text().await.unwrap_or_default()
        );
        if !loc.starts_with(&s.public) {
            return (loc, asked_for_code, asked_for_password);
        }
        if loc.contains("/ui/login?flow=") {
            let flow = flow_json(b, s, "login", &flow_id_of(&loc)).await;
            let fields: Vec<(&str, String)> = if node(&flow, "totp_code").is_some() {
                asked_for_code = true;
                let code = code_for(secret.expect("a second factor was not expected"));
                vec![("method", "totp".into()), ("totp_code", code)]
            } else {
                asked_for_password = true;
                vec![
                    ("method", "password".into()),
                    ("identifier", email.into()),
                    ("password", PASSWORD.into()),
                ]
            };
            let csrf = csrf_of(&flow);
            let mut form = vec![("csrf_token", csrf.as_str())];
            form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            let r = b
                .post_form(flow["ui"]["action"].as_str().expect("action"), &form, false)
                .await;
            assert_eq!(r.status(), 303, "login: {:?}", r.text().await);
            url = location(&r);
            continue;
        }
        url = loc;
    }
    panic!("too many redirects from {start}");
}

/// A code flow for `client` with `acr_values`; the id_token's claims and whether the code
/// was asked for.
async fn sign_in_to_app(
    b: &Browser,
    s: &TestServer,
    client: &Value,
    email: &str,
    secret: Option<&str>,
    acr_values: Option<&str>,
) -> (Value, bool) {
    let extra: Vec<(&str, &str)> = acr_values.map(|a| ("acr_values", a)).into_iter().collect();
    let (claims, code, _) = sign_in_to_app_with(b, s, client, email, secret, &extra).await;
    (claims, code)
}

/// [`sign_in_to_app`] with any extra authorization parameters; also says whether the
/// password was asked for.
async fn sign_in_to_app_with(
    b: &Browser,
    s: &TestServer,
    client: &Value,
    email: &str,
    secret: Option<&str>,
    extra: &[(&str, &str)],
) -> (Value, bool, bool) {
    let p = pkce();
    let client_id = client["client_id"].as_str().expect("client_id");
    let redirect = client["redirect_uris"][0].as_str().expect("redirect");
    let mut params = vec![
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let (loc, asked, password) = drive_counting(b, s, &auth_url(s, &params), email, secret).await;
    let code = param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
    let secret_of_app = client["client_secret"].as_str().unwrap_or_default();
    let (st, t, _) = token(
        s,
        Some((client_id, secret_of_app)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    let claims = verify(s, t["id_token"].as_str().expect("id_token"), client_id).await;
    (claims, asked, password)
}

async fn app(s: &TestServer) -> Value {
    let mut body = traditional("https://rp.example.com/cb");
    body["skip_consent"] = json!(true);
    create_client(s, body).await
}

/// Enrols a second factor for a new user through the API; the secret.
async fn user_with_totp(s: &TestServer, email: &str) -> String {
    let (token, _) = signed_in(s, email).await;
    enrol(s, &token).await
}

/// The OP reports `acr`/`amr` (RFC 8176) and sends a person holding a second factor through
/// it; asking for `aal1` does not skip it; discovery lists the levels.
async fn the_op_reports_and_requires_the_second_factor(backend: Backend) {
    let s = server(backend, "").await;
    let client = app(&s).await;
    let d: Value = reqwest::get(format!(
        "{}/oidc/.well-known/openid-configuration",
        s.public
    ))
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    assert_eq!(d["acr_values_supported"], json!(["aal1", "aal2"]));

    // One factor: aal1, `pwd`; asking for aal2 cannot be met, and the id_token says so.
    s.register("one@example.com", PASSWORD).await;
    let (claims, asked) = sign_in_to_app(
        &Browser::default(),
        &s,
        &client,
        "one@example.com",
        None,
        Some("aal2"),
    )
    .await;
    assert!(!asked);
    assert_eq!(claims["acr"], "aal1", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd"]), "{claims}");

    // Two factors: the downgrade attempt (`acr_values=aal1`) still goes through the code.
    let secret = user_with_totp(&s, "two@example.com").await;
    let (claims, asked) = sign_in_to_app(
        &Browser::default(),
        &s,
        &client,
        "two@example.com",
        Some(&secret),
        Some("aal1"),
    )
    .await;
    assert!(asked, "acr_values=aal1 skipped the second factor");
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
    s.stop().await;
}
each_backend!(the_op_reports_and_requires_the_second_factor);

/// An app's `max_age=0` makes a person with a second factor give the password again, and
/// only the password: the renewed session keeps its second factor (Kratos's refresh), so the
/// id_token still says aal2 with a new `auth_time`.
async fn max_age_asks_again_for_the_password_only(backend: Backend) {
    let s = server(backend, "").await;
    let client = app(&s).await;
    let secret = user_with_totp(&s, "again@example.com").await;
    let b = Browser::default();
    let (first, code, password) =
        sign_in_to_app_with(&b, &s, &client, "again@example.com", Some(&secret), &[]).await;
    assert!(code && password);
    assert_eq!(first["acr"], "aal2", "{first}");
    // The next whole second, so a new auth_time shows.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (again, code, password) = sign_in_to_app_with(
        &b,
        &s,
        &client,
        "again@example.com",
        Some(&secret),
        &[("max_age", "0")],
    )
    .await;
    assert!(password, "max_age=0 did not ask for the password");
    assert!(!code, "the second factor was asked for again");
    assert_eq!(again["acr"], "aal2", "{again}");
    assert_eq!(again["amr"], json!(["pwd", "otp", "mfa"]), "{again}");
    assert!(
        again["auth_time"].as_i64() > first["auth_time"].as_i64(),
        "{first} {again}"
    );
    s.stop().await;
}
each_backend!(max_age_asks_again_for_the_password_only);

/// With `whoami.required_aal: aal1` a password session is enough for apps, until one asks for
/// `acr_values=aal2`: then the same browser is stepped up, and `prompt=none` is refused.
async fn acr_values_aal2_forces_a_step_up(backend: Backend) {
    let s = server(backend, "session:\n  whoami:\n    required_aal: aal1\n").await;
    let client = app(&s).await;
    let secret = user_with_totp(&s, "up@example.com").await;
    let b = Browser::default();
    let (claims, asked) = sign_in_to_app(&b, &s, &client, "up@example.com", None, None).await;
    assert!(!asked);
    assert_eq!(claims["acr"], "aal1", "{claims}");

    // `prompt=none` cannot show the code form.
    let client_id = client["client_id"].as_str().expect("client_id");
    let p = pkce();
    let none = auth_url(
        &s,
        &[
            ("client_id", client_id),
            ("redirect_uri", "https://rp.example.com/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
            ("acr_values", "aal2"),
        ],
    );
    let r = b.get(&none, false).await;
    let loc = location(&r);
    assert_eq!(
        param(&loc, "error").as_deref(),
        Some("interaction_required"),
        "{loc}"
    );

    let (claims, asked) = sign_in_to_app(
        &b,
        &s,
        &client,
        "up@example.com",
        Some(&secret),
        Some("aal2"),
    )
    .await;
    assert!(asked, "acr_values=aal2 did not ask for the code");
    assert_eq!(claims["acr"], "aal2", "{claims}");
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]), "{claims}");
    s.stop().await;
}
each_backend!(acr_values_aal2_forces_a_step_up);

const CODES_ON: &str = "    lookup_secret:\n      enabled: true\n";

/// The codes a settings answer shows (`lookup_secret_codes`), if any.
fn shown_codes(flow: &Value) -> Vec<String> {
    node(flow, "lookup_secret_codes")
        .and_then(|n| n["attributes"]["text"]["context"]["secrets"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|m| m["context"]["secret"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Generates and confirms recovery codes with `token`'s session; returns them.
async fn new_codes(s: &TestServer, token: &str) -> Vec<String> {
    let (status, flow) = settings_flow(s, token).await;
    assert_eq!(status, 200, "{flow}");
    assert!(node(&flow, "lookup_secret_regenerate").is_some(), "{flow}");
    let (status, shown) = settings_submit(
        s,
        token,
        &flow,
        json!({"method": "lookup_secret", "lookup_secret_regenerate": true}),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    let codes = shown_codes(&shown);
    assert_eq!(codes.len(), 12, "{shown}");
    let (status, done) = settings_submit(
        s,
        token,
        &shown,
        json!({"method": "lookup_secret", "lookup_secret_confirm": true}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(shown_codes(&done).is_empty(), "shown once: {done}");
    codes
}

async fn step_up_with_code(s: &TestServer, token: &str, code: &str) -> (u16, Value) {
    let (status, flow) = step_up_flow(s, token).await;
    assert_eq!(status, 200, "{flow}");
    assert!(node(&flow, "lookup_secret").is_some(), "{flow}");
    let id = flow["id"].as_str().expect("flow id");
    send(
        api(
            reqwest::Method::POST,
            format!("{}/self-service/login?flow={id}", s.public),
            token,
        )
        .json(&json!({"method": "lookup_secret", "lookup_secret": code})),
    )
    .await
}

fn has_message(body: &Value, id: u64) -> bool {
    tessera_testkit::message_ids(body)
        .iter()
        .any(|(_, m)| *m == id)
}

/// Recovery codes: generated and shown once, confirmed, each usable once as the second factor,
/// regenerated (the old ones stop working), never stored in clear.
async fn recovery_codes(backend: Backend) {
    let s = server_with(backend, "", CODES_ON).await;
    let (token, id) = signed_in(&s, "c@example.com").await;
    let codes = new_codes(&s, &token).await;
    // Not readable back: not in a new settings flow, not in the admin's view of credentials.
    let (_, again) = settings_flow(&s, &token).await;
    assert!(!again.to_string().contains(&codes[0]), "{again}");
    let (_, admin) = send(TestServer::client().get(format!(
        "{}/admin/identities/{id}?include_credential=lookup_secret",
        s.admin
    )))
    .await;
    assert!(
        !admin.to_string().contains(&codes[0]),
        "stored in clear: {admin}"
    );
    // The codes are a second factor now: the password session falls short.
    assert_eq!(s.whoami(&token).await.0, 403);

    let (_, login) = s.login("c@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token").to_string();
    let (status, body) = step_up_with_code(&s, &aal1, "notacode1234").await;
    assert_eq!(status, 400, "{body}");
    assert!(has_message(&body, 4000016), "invalid code: {body}");
    let (status, done) = step_up_with_code(&s, &aal1, &codes[0].to_uppercase()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["session"]["authenticator_assurance_level"], "aal2");
    let last = done["session"]["authentication_methods"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["method"], "lookup_secret", "{done}");
    let aal2 = done["session_token"].as_str().expect("token").to_string();

    // Attacker replays the used code from another password session.
    let (_, login) = s.login("c@example.com", PASSWORD).await;
    let other = login["session_token"].as_str().expect("token").to_string();
    let (status, body) = step_up_with_code(&s, &other, &codes[0]).await;
    assert_eq!(status, 400, "a used code worked again: {body}");
    assert!(has_message(&body, 4000012), "already used: {body}");

    // New codes replace the old ones.
    let fresh = new_codes(&s, &aal2).await;
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    let (status, body) = step_up_with_code(&s, &other, &codes[1]).await;
    assert_eq!(status, 400, "an old code survived regeneration: {body}");
    let (status, body) = step_up_with_code(&s, &other, &fresh[0]).await;
    assert_eq!(status, 200, "{body}");

    // An admin removes them; then nothing is asked for.
    let (status, body) = admin_delete(&s, &id, "lookup_secret", "").await;
    assert_eq!(status, 204, "{body}");
    let (_, login) = s.login("c@example.com", PASSWORD).await;
    let plain = login["session_token"].as_str().expect("token");
    assert_eq!(s.whoami(plain).await.0, 200);
    s.stop().await;
}
each_backend!(recovery_codes);

/// One sign-in of openid-client (npm), a relying party nobody here wrote, driven by browser
/// `b`; its result and whether the code and the password were asked for.
async fn openid_client_run(
    s: &TestServer,
    c: &Value,
    b: &Browser,
    email: &str,
    secret: Option<&str>,
    ask: Value,
) -> (Value, bool, bool) {
    use crate::op_common::{NODE_HINT, Peer};
    let mut config = json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "client_secret": c["client_secret"], "redirect_uri": RP, "post_logout_redirect_uri": "https://rp.example.com/signed-out", "auth": "client_secret_basic"});
    if let (Some(o), Some(a)) = (config.as_object_mut(), ask.as_object()) {
        o.extend(a.clone());
    }
    let mut peer = Peer::start("node", "op-client.mjs", config, NODE_HINT).await;
    let authorize = peer.read().await["authorize"]
        .as_str()
        .expect("authorize")
        .to_string();
    let (callback, code, password) = drive_counting(b, s, &authorize, email, secret).await;
    peer.write(json!({"callback": callback})).await;
    let r = peer.read().await["result"].clone();
    let _ = peer.child.wait().await;
    (r, code, password)
}

/// openid-client asks for `acr_values=aal2` and `max_age`, validates the id_token (`auth_time`
/// against `max_age` included) and reads `acr`/`amr`, also after a refresh. `max_age=0` makes
/// a signed-in browser give its password again.
#[tokio::test]
async fn openid_client_asks_for_aal2_and_max_age() {
    let s = server(Backend::Sqlite, "").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;

    let secret = user_with_totp(&s, "rp@example.com").await;
    let (r, code, password) = openid_client_run(
        &s,
        &c,
        &Browser::default(),
        "rp@example.com",
        Some(&secret),
        json!({"acr_values": "aal2", "max_age": 300}),
    )
    .await;
    assert!(code && password, "signed in with password and code");
    assert_eq!(r["acr"], "aal2", "{r}");
    assert_eq!(r["amr"], json!(["pwd", "otp", "mfa"]), "{r}");
    assert_eq!(r["refreshed_acr"], "aal2", "refresh keeps acr: {r}");

    s.register("plain@example.com", PASSWORD).await;
    let b = Browser::default();
    let (first, _, password) = openid_client_run(
        &s,
        &c,
        &b,
        "plain@example.com",
        None,
        json!({"max_age": 300}),
    )
    .await;
    assert!(password);
    assert_eq!(first["acr"], "aal1", "{first}");
    assert_eq!(first["amr"], json!(["pwd"]), "{first}");
    let (_, _, password) = openid_client_run(
        &s,
        &c,
        &b,
        "plain@example.com",
        None,
        json!({"max_age": 300}),
    )
    .await;
    assert!(
        !password,
        "a fresh enough session was asked to sign in again"
    );
    let (second, _, password) =
        openid_client_run(&s, &c, &b, "plain@example.com", None, json!({"max_age": 0})).await;
    assert!(password, "max_age=0 did not ask for the password again");
    assert!(
        second["auth_time"].as_i64() >= first["auth_time"].as_i64(),
        "{first} {second}"
    );
    s.stop().await;
}

/// A hosted page in a language (the browser's cookies, `Accept-Language`).
async fn page_in(b: &Browser, url: &str, lang: &str) -> String {
    let r = b
        .client
        .get(url)
        .header("cookie", b.cookie_header())
        .header("accept-language", lang)
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.expect("html")
}

/// Follows a redirect from Tessera to its hosted page; the page URL.
async fn to_page(b: &Browser, url: &str) -> String {
    let r = b.get(url, false).await;
    assert_eq!(r.status(), 303, "{url}");
    location(&r)
}

/// Posts a hosted page's form (its flow's action and CSRF token) with `fields`; where it leads.
async fn post_page(
    b: &Browser,
    s: &TestServer,
    kind: &str,
    page: &str,
    fields: &[(&str, &str)],
) -> String {
    let flow = flow_json(b, s, kind, &flow_id_of(page)).await;
    let csrf = csrf_of(&flow);
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = b
        .post_form(flow["ui"]["action"].as_str().expect("action"), &form, false)
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    location(&r)
}

/// The hosted pages: TOTP enrolment (QR code, secret), the step-up page and the recovery-code
/// sheet, in English, Russian and Chinese.
async fn hosted_pages_in_three_languages(backend: Backend) {
    let s = server_with(backend, "", CODES_ON).await;
    s.register("ui@example.com", PASSWORD).await;
    let b = Browser::default();
    let login = to_page(&b, &format!("{}/self-service/login/browser", s.public)).await;
    post_page(
        &b,
        &s,
        "login",
        &login,
        &[
            ("method", "password"),
            ("identifier", "ui@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;

    let settings = to_page(&b, &format!("{}/self-service/settings/browser", s.public)).await;
    for (lang, qr, codes) in [
        (
            "en",
            "Authenticator app QR code",
            "Generate new backup recovery codes",
        ),
        (
            "ru",
            "QR-код для приложения-аутентификатора",
            "Создать новые резервные коды",
        ),
        ("zh-CN", "身份验证器应用二维码", "生成新的备用恢复码"),
    ] {
        let html = page_in(&b, &settings, lang).await;
        assert!(
            html.contains("<img src=\"data:image/svg+xml;base64,"),
            "{lang}: {html}"
        );
        assert!(html.contains(qr) && html.contains(codes), "{lang}: {html}");
    }
    let flow = flow_json(&b, &s, "settings", &flow_id_of(&settings)).await;
    let secret = node(&flow, "totp_secret_key")
        .and_then(|n| n["attributes"]["text"]["context"]["secret"].as_str())
        .expect("secret")
        .to_string();
    let html = page_in(&b, &settings, "en").await;
    assert!(
        html.contains(&secret),
        "the secret is on the page for apps that cannot scan: {secret} {}",
        html.split("field-text").nth(1).unwrap_or(&html)
    );
    post_page(
        &b,
        &s,
        "settings",
        &settings,
        &[
            ("method", "totp"),
            ("totp_code", &enrolment_code_for(&secret)),
        ],
    )
    .await;

    // A new browser signs in: after the password comes the step-up page.
    let b = Browser::default();
    let login = to_page(&b, &format!("{}/self-service/login/browser", s.public)).await;
    let next = post_page(
        &b,
        &s,
        "login",
        &login,
        &[
            ("method", "password"),
            ("identifier", "ui@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert!(next.contains("aal=aal2"), "{next}");
    let step = to_page(&b, &next).await;
    for (lang, title, label) in [
        (
            "en",
            "Please complete the second authentication challenge.",
            "Authentication code",
        ),
        ("ru", "Пройдите второй шаг проверки.", "Код подтверждения"),
        ("zh-CN", "请完成第二步验证。", "验证码"),
    ] {
        let html = page_in(&b, &step, lang).await;
        assert!(
            html.contains(title) && html.contains(label),
            "{lang}: {html}"
        );
        assert!(
            html.contains("autocomplete=\"one-time-code\""),
            "{lang}: {html}"
        );
    }
    post_page(
        &b,
        &s,
        "login",
        &step,
        &[("method", "totp"), ("totp_code", &code_for(&secret))],
    )
    .await;
    assert_eq!(
        tessera_testkit::journey::whoami(&b, &s).await["authenticator_assurance_level"],
        "aal2"
    );

    // Recovery codes: the sheet, in the page's language.
    let settings = to_page(&b, &format!("{}/self-service/settings/browser", s.public)).await;
    let shown = post_page(
        &b,
        &s,
        "settings",
        &settings,
        &[
            ("method", "lookup_secret"),
            ("lookup_secret_regenerate", "true"),
        ],
    )
    .await;
    for (lang, label) in [
        ("en", "These are your backup recovery codes."),
        ("ru", "Это ваши резервные коды восстановления."),
        ("zh-CN", "这些是你的备用恢复码"),
    ] {
        let html = page_in(&b, &shown, lang).await;
        assert!(
            html.contains("recovery-sheet") && html.contains(label),
            "{lang}: {html}"
        );
        assert_eq!(html.matches("<li><code>").count(), 12, "{lang}: {html}");
    }
    s.stop().await;
}
each_backend!(hosted_pages_in_three_languages);

/// Kratos's import of `lookup_secret` codes (`{code, used_at}`): kept hashed, an unused one
/// works once, a used one never; malformed entries are refused naming the field.
async fn importing_recovery_codes(backend: Backend) {
    let s = server_with(backend, "", CODES_ON).await;
    let create = |codes: Value| {
        TestServer::client()
            .post(format!("{}/admin/identities", s.admin))
            .json(&json!({
                "schema_id": "default",
                "traits": {"email": "k@example.com"},
                "credentials": {
                    "password": {"config": {"password": PASSWORD}},
                    "lookup_secret": {"config": {"codes": codes}},
                },
            }))
    };
    let (status, body) = send(create(json!([{"code": ""}]))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("credentials.lookup_secret.config.codes.0.code"),
        "{body}"
    );
    let (status, body) = send(create(json!([
        {"code": "key1", "used_at": null},
        {"code": "key2", "used_at": "2026-01-01T00:00:00Z"},
    ])))
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("key1"), "{body}");
    let (_, login) = s.login("k@example.com", PASSWORD).await;
    let aal1 = login["session_token"].as_str().expect("token").to_string();
    assert_eq!(
        s.whoami(&aal1).await.0,
        403,
        "the imported codes are required"
    );
    let (status, body) = step_up_with_code(&s, &aal1, "key2").await;
    assert_eq!(status, 400, "a code imported as used worked: {body}");
    assert!(has_message(&body, 4000012), "{body}");
    let (status, body) = step_up_with_code(&s, &aal1, "key1").await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;
}
each_backend!(importing_recovery_codes);
