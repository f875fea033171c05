//! Tessera's OpenID Provider against clients nobody here wrote, and against the exact requests
//! of the apps of seeds 001 and 002:
//! - `openid-client` (npm, peers/op-client.mjs): discovery, code + PKCE, id_token validation,
//!   userinfo, refresh, introspection, revocation, the logout URL;
//! - Authlib (PyPI, peers/op_client.py): code + PKCE, id_token verified against the JWKS;
//! - the Logto WordPress plugin's requests (logto-io/php's OidcCore and LogtoClient) replayed:
//!   discovery at `{endpoint}/oidc/.well-known/openid-configuration`, `client_secret_post`
//!   (what it sends) and `client_secret_basic`, and its strict token-response parsing;
//! - Dedicated DingTalk: implicit `id_token` to `https://login.dingtalk.com/oauth2/oidcCallBack.htm`
//!   (fragment and form_post) with `sub` = `credentials.oidc.dingtalk` for a user who signed up
//!   with DingTalk (through the DingTalk emulator).

use crate::op_common::*;
use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::emulators::dingtalk::{DingtalkEmulator, ZHANGWEI};
use tessera_testkit::journey::{flow_id_of, flow_json, location};
use tessera_testkit::peers::peers_dir;
use tessera_testkit::{Backend, Browser, TestServer, csrf_of};

const RP: &str = "http://127.0.0.1:9/callback";

async fn rs256_server() -> TestServer {
    // The default algorithm (RS256), as most apps expect.
    server(Backend::Sqlite, "oidc_provider:\n  signing_alg: RS256\n").await
}

#[tokio::test]
async fn openid_client_npm_code_pkce_userinfo_refresh_introspection_revocation_and_logout() {
    let s = rs256_server().await;
    let id = user(&s, "npm@example.com").await;
    for auth in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        // A key-authenticated app registers the public half of its key pair; the peer holds
        // the private half.
        let (_, mut public_jwk, mut private_jwk) = tessera_testkit::fake_oidc::ec_key_pair();
        public_jwk["kid"] = json!("app-key-1");
        private_jwk["kid"] = json!("app-key-1");
        let jwks_file =
            std::env::temp_dir().join(format!("tessera-jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&jwks_file, json!({"keys": [public_jwk]}).to_string()).unwrap();
        let jwks_arg = jwks_file.to_string_lossy().into_owned();
        let extra = match auth {
            "private_key_jwt" => vec!["--jwks", jwks_arg.as_str()],
            _ => vec![],
        };
        // The app is created with one CLI command, as a new user would.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "clients",
                "create",
                "--endpoint",
                &s.admin,
                "--name",
                "Bookstore",
                "--redirect-uri",
                RP,
                "--post-logout-redirect-uri",
                "http://127.0.0.1:9/bye",
                "--token-endpoint-auth-method",
                auth,
                "--json",
            ])
            .args(&extra)
            .output()
            .await
            .expect("tessera clients create");
        let _ = std::fs::remove_file(&jwks_file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c: Value = serde_json::from_slice(&out.stdout).expect("the created app as JSON");
        let mut peer = Peer::start(
            "node",
            "op-client.mjs",
            json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "client_secret": c["client_secret"], "redirect_uri": RP, "post_logout_redirect_uri": "http://127.0.0.1:9/bye", "auth": auth, "private_jwk": private_jwk}),
            NODE_HINT,
        )
        .await;
        let authorize = peer.read().await["authorize"].as_str().unwrap().to_string();
        let b = Browser::default();
        let (st, callback, body) =
            drive(&b, &s, &authorize, "npm@example.com", Some("accept")).await;
        assert_eq!(st, 303, "{callback} {body}");
        peer.write(json!({"callback": callback})).await;
        let r = peer.read().await["result"].clone();
        assert_eq!(r["sub"], json!(id), "{r}");
        assert_eq!(r["aud"], c["client_id"], "aud is a plain string");
        assert_eq!(r["email"], "npm@example.com");
        assert_eq!(r["userinfo"]["sub"], json!(id));
        assert_eq!(r["refreshed_sub"], json!(id));
        assert_eq!(r["rotated"], true);
        assert_eq!(r["introspected"]["active"], true);
        assert_eq!(r["after_revocation"], "invalid_grant", "{r}");
        // The logout URL openid-client built ends the session and comes back.
        let logout = r["logout"].as_str().unwrap();
        assert!(
            logout.starts_with(&format!("{}/oidc/session/end?", s.public)),
            "{logout}"
        );
        let resp = b.get(logout, false).await;
        assert_eq!(location(&resp), "http://127.0.0.1:9/bye?state=bye");
        let _ = peer.child.wait().await;
    }
    s.stop().await;
}

/// DPoP (RFC 9449) with openid-client: a native app's tokens are bound to a key only the app
/// holds. A thief with copies of its access and refresh tokens gets nothing: userinfo refuses
/// the access token as `Bearer`, the refresh token is refused without a proof from the key,
/// and the thief's attempts do not spend it (the app refreshes afterwards).
#[tokio::test]
async fn openid_client_npm_dpop_binds_the_tokens_to_the_apps_key() {
    let s = rs256_server().await;
    let id = user(&s, "dpop@example.com").await;
    let c = create_client(
        &s,
        json!({"client_name": "Reader", "app_type": "native", "redirect_uris": [RP],
               "skip_consent": true}),
    )
    .await;
    let mut peer = Peer::start(
        "node",
        "op-client.mjs",
        json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "redirect_uri": RP,
               "post_logout_redirect_uri": RP, "auth": "none", "dpop": true}),
        NODE_HINT,
    )
    .await;
    let authorize = peer.read().await["authorize"].as_str().unwrap().to_string();
    let b = Browser::default();
    let (st, callback, body) = drive(&b, &s, &authorize, "dpop@example.com", None).await;
    assert_eq!(st, 303, "{callback} {body}");
    peer.write(json!({"callback": callback})).await;
    let stolen = peer.read().await["stolen"].clone();
    let at = stolen["access_token"].as_str().unwrap();
    let rt = stolen["refresh_token"].as_str().unwrap();
    let r = TestServer::client()
        .get(format!("{}/oidc/me", s.public))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("bound to a DPoP key"),
        "{v}"
    );
    let client_id = c["client_id"].as_str().unwrap();
    let (st, v, _) = token(
        &s,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id),
        ],
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"], "invalid_grant", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("bound to a DPoP key"),
        "{v}"
    );
    peer.write(json!({"go": true})).await;
    let r = peer.read().await["result"].clone();
    assert_eq!(r["token_type"], "dpop", "{r}");
    assert_eq!(r["sub"], json!(id), "{r}");
    assert_eq!(r["userinfo"]["email"], "dpop@example.com");
    assert_eq!(r["refreshed_sub"], json!(id));
    assert_eq!(r["after_revocation"], "invalid_grant", "{r}");
    let _ = peer.child.wait().await;
    s.stop().await;
}

/// JAR (RFC 9101) with openid-client: an app that must sign its authorization requests does
/// so with its key, once in the address bar and once pushed (PAR); its key also authenticates
/// it (`private_key_jwt`), so it holds no shared secret at all.
#[tokio::test]
async fn openid_client_npm_signed_request_objects_direct_and_pushed() {
    let s = rs256_server().await;
    let id = user(&s, "jar@example.com").await;
    let (_, mut public, mut private) = tessera_testkit::fake_oidc::ec_key_pair();
    public["kid"] = json!("jar-1");
    private["kid"] = json!("jar-1");
    let c = create_client(
        &s,
        json!({"client_name": "Ledger", "app_type": "traditional", "redirect_uris": [RP],
               "post_logout_redirect_uris": [RP], "skip_consent": true,
               "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]},
               "require_signed_request_object": true, "request_object_signing_alg": "ES256"}),
    )
    .await;
    for par in [false, true] {
        let mut peer = Peer::start(
            "node",
            "op-client.mjs",
            json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "redirect_uri": RP,
                   "post_logout_redirect_uri": RP, "auth": "private_key_jwt", "private_jwk": private,
                   "jar": true, "par": par}),
            NODE_HINT,
        )
        .await;
        let authorize = peer.read().await["authorize"].as_str().unwrap().to_string();
        let has_request = authorize.contains("request=");
        assert_eq!(has_request, !par, "{authorize}");
        assert!(
            !authorize.contains("scope="),
            "nothing but the object goes through the browser: {authorize}"
        );
        let b = Browser::default();
        let (st, callback, body) = drive(&b, &s, &authorize, "jar@example.com", None).await;
        assert_eq!(st, 303, "{callback} {body}");
        peer.write(json!({"callback": callback})).await;
        let r = peer.read().await["result"].clone();
        assert_eq!(r["sub"], json!(id), "{r}");
        assert_eq!(r["userinfo"]["email"], "jar@example.com");
        let _ = peer.child.wait().await;
    }
    s.stop().await;
}

#[tokio::test]
async fn python_authlib_code_flow_verifies_the_id_token() {
    let s = rs256_server().await;
    let id = user(&s, "py@example.com").await;
    let mut body = traditional(RP);
    body["skip_consent"] = json!(true);
    let c = create_client(&s, body).await;
    let python = peers_dir().join(".venv/bin/python");
    let mut peer = Peer::start(
        python.to_str().unwrap(),
        "op_client.py",
        json!({"issuer": format!("{}/oidc", s.public), "client_id": c["client_id"], "client_secret": c["client_secret"], "redirect_uri": RP}),
        PY_HINT,
    )
    .await;
    let authorize = peer.read().await["authorize"].as_str().unwrap().to_string();
    let b = Browser::default();
    let (st, callback, _) = drive(&b, &s, &authorize, "py@example.com", None).await;
    assert_eq!(st, 303);
    peer.write(json!({"callback": callback})).await;
    let r = peer.read().await["result"].clone();
    assert_eq!(r["sub"], json!(id), "{r}");
    assert_eq!(r["aud"], c["client_id"]);
    assert_eq!(r["email"], "py@example.com");
    assert_eq!(r["userinfo"]["email"], "py@example.com");
    assert!(r["expires_in"].is_i64());
    let _ = peer.child.wait().await;
    s.stop().await;
}

/// The Logto WordPress plugin (logto-io/wordpress over logto-io/php), request by request.
#[tokio::test]
async fn logto_wordpress_plugin_requests_replayed() {
    let s = rs256_server().await;
    let id = user(&s, "editor@example.com").await;
    // "Logto endpoint" = Tessera's public URL; the plugin appends /oidc/.well-known/….
    let endpoint = s.public.clone();
    let redirect = "https://blog.example.com/login-callback/";
    let home = "https://blog.example.com";
    for method in ["client_secret_post", "client_secret_basic"] {
        let c = create_client(&s, json!({"client_name": "Blog", "app_type": "traditional", "redirect_uris": [redirect], "post_logout_redirect_uris": [home], "token_endpoint_auth_method": method, "skip_consent": true})).await;
        let app_id = c["client_id"].as_str().unwrap();
        let app_secret = c["client_secret"].as_str().unwrap();
        // OidcCore::create: GET with its user-agent; the constructor takes the document's keys
        // as named arguments, typed (strings, arrays, booleans).
        let meta: Value = TestServer::client()
            .get(format!("{endpoint}/oidc/.well-known/openid-configuration"))
            .header("user-agent", "@logto/php")
            .header("accept", "*/*")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for k in [
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "end_session_endpoint",
        ] {
            assert!(
                meta[k].is_string(),
                "{k} must be a string for OidcProviderMetadata"
            );
        }
        for k in [
            "scopes_supported",
            "response_types_supported",
            "grant_types_supported",
            "subject_types_supported",
            "id_token_signing_alg_values_supported",
            "token_endpoint_auth_methods_supported",
            "claims_supported",
            "ui_locales_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(
                meta.get(k).is_none_or(Value::is_array),
                "{k} must be an array"
            );
        }
        for k in [
            "claims_parameter_supported",
            "request_parameter_supported",
            "request_uri_parameter_supported",
        ] {
            assert!(
                meta.get(k).is_none_or(Value::is_boolean),
                "{k} must be a boolean"
            );
        }
        // LogtoClient::signIn: PKCE, state, scopes "email" + defaults, prompt=consent.
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
        let challenge = {
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
        };
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", app_id),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "email openid offline_access profile"),
                ("prompt", "consent"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", "wp-state"),
            ])
            .finish();
        let sign_in = format!("{}?{q}", meta["authorization_endpoint"].as_str().unwrap());
        let b = Browser::default();
        let (st, callback, _) = drive(&b, &s, &sign_in, "editor@example.com", None).await;
        assert_eq!(st, 303);
        assert!(callback.starts_with(redirect), "{callback}");
        assert_eq!(param(&callback, "state").as_deref(), Some("wp-state"));
        let code = param(&callback, "code").unwrap();
        // OidcCore::fetchTokenByCode: form_params with client_id and client_secret (the
        // basic variant moves them to the header, as other PHP clients do).
        let token_endpoint = meta["token_endpoint"].as_str().unwrap();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let mut req = TestServer::client().post(token_endpoint);
        if method == "client_secret_post" {
            form.splice(1..1, [("client_id", app_id), ("client_secret", app_secret)]);
        } else {
            req = req.basic_auth(app_id, Some(app_secret));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let r = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let t: Value = r.json().await.unwrap();
        // new TokenResponse(...$json) under strict_types: access_token and token_type strings,
        // expires_in an int, refresh_token and id_token strings or null.
        assert!(t["access_token"].is_string() && t["token_type"].is_string());
        assert!(
            t["expires_in"].is_i64(),
            "expires_in must be an integer for PHP: {t}"
        );
        assert!(
            t["refresh_token"].is_string() && t["id_token"].is_string(),
            "{t}"
        );
        // OidcCore::verifyIdToken: `aud` and `iss` compared with !== to strings.
        let claims = verify(&s, t["id_token"].as_str().unwrap(), app_id).await;
        assert_eq!(claims["aud"], json!(app_id));
        assert_eq!(claims["iss"], meta["issuer"]);
        // IdTokenClaims(...$claims): typed named arguments; the plugin needs the email.
        assert!(claims["exp"].is_i64() && claims["iat"].is_i64() && claims["sub"] == json!(id));
        assert_eq!(claims["email"], "editor@example.com");
        assert!(
            claims["email_verified"].is_boolean() && claims["name"].is_null()
                || claims["name"].is_string()
        );
        // fetchTokenByRefreshToken: same form_params, `resource` omitted when empty.
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ];
        let mut req = TestServer::client().post(token_endpoint);
        if method == "client_secret_post" {
            form.splice(1..1, [("client_id", app_id), ("client_secret", app_secret)]);
        } else {
            req = req.basic_auth(app_id, Some(app_secret));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        let r = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let t2: Value = r.json().await.unwrap();
        assert!(
            t2["expires_in"].is_i64() && t2["access_token"].is_string(),
            "{t2}"
        );
        // fetchUserInfo: UserInfoResponse(...$json) needs `sub` a string.
        let info: Value = TestServer::client()
            .get(meta["userinfo_endpoint"].as_str().unwrap())
            .header(
                "authorization",
                format!("Bearer {}", t2["access_token"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], json!(id));
        // LogtoClient::signOut: client_id + post_logout_redirect_uri = home_url().
        let out = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", app_id), ("post_logout_redirect_uri", home)])
            .finish();
        let r = b
            .get(
                &format!("{}?{out}", meta["end_session_endpoint"].as_str().unwrap()),
                false,
            )
            .await;
        // No id_token_hint: Tessera asks "Sign out?" first (a CSRF-bound form), then returns.
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        let fields: Vec<(String, String)> = ["client_id", "post_logout_redirect_uri", "csrf_token"]
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    between(&page, &format!("name=\"{k}\" value=\""), "\""),
                )
            })
            .chain([("confirm".to_string(), "yes".to_string())])
            .collect();
        let form: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = b
            .post_form(meta["end_session_endpoint"].as_str().unwrap(), &form, false)
            .await;
        assert_eq!(r.status(), 303);
        assert_eq!(location(&r).trim_end_matches('/'), home);
        assert!(
            tessera_testkit::journey::whoami(&b, &s)
                .await
                .get("error")
                .is_some(),
            "signed out"
        );
    }
    s.stop().await;
}

const DINGTALK_CALLBACK: &str = "https://login.dingtalk.com/oauth2/oidcCallBack.htm";

const DT_MAPPER: &str = r#"local claims = std.extVar('claims');
{ identity: { traits: { [if 'email' in claims then 'email' else null]: claims.email } } }
"#;

/// Dedicated DingTalk's SSO: an implicit `id_token` whose `sub` is the user's DingTalk ID.
#[tokio::test]
async fn dedicated_dingtalk_implicit_id_token_with_the_dingtalk_subject() {
    let dt = DingtalkEmulator::start().await;
    let yaml = format!(
        "oidc_provider:\n  signing_alg: RS256\nselfservice:\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: dingtalk\n            provider: dingtalk\n            label: DingTalk\n            client_id: {}\n            client_secret: {}\n            mapper_url: base64://{}\n            auth_url: {}\n            api_base_url: {}\n  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n",
        dt.client_id(),
        dt.client_secret(),
        base64::engine::general_purpose::STANDARD.encode(DT_MAPPER),
        dt.auth_url(),
        dt.base_url()
    );
    let s = TestServer::start(Backend::Sqlite, &yaml).await;
    dt.register_redirect_uri(format!(
        "{}/self-service/methods/oidc/callback/dingtalk",
        s.public
    ));
    // The IT admin's app: implicit, id_token, sub from the DingTalk link, all employees.
    let c = create_client(&s, json!({"client_name": "Dedicated DingTalk", "app_type": "traditional", "grant_types": ["implicit"], "response_types": ["id_token"], "redirect_uris": [DINGTALK_CALLBACK], "subject": "credentials.oidc.dingtalk", "skip_consent": true})).await;
    let cid = c["client_id"].as_str().unwrap();
    let implicit = |mode: &str, nonce: &str| {
        let mut p = vec![
            ("client_id", cid),
            ("redirect_uri", DINGTALK_CALLBACK),
            ("response_type", "id_token"),
            ("scope", "openid"),
            ("state", "dt-state"),
            ("nonce", nonce),
        ];
        if !mode.is_empty() {
            p.push(("response_mode", mode));
        }
        auth_url(&s, &p)
    };
    // DingTalk sends the employee to Tessera (SP-initiated); not signed in, so to the login
    // page, where they press "DingTalk" and sign up with it.
    let b = Browser::default();
    let r = b.get(&implicit("form_post", "n-form"), false).await;
    let login = location(&r);
    assert!(login.contains("/self-service/login/browser"), "{login}");
    let r = b.get(&login, false).await;
    let flow = flow_json(&b, &s, "login", &flow_id_of(&location(&r))).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&flow)), ("provider", "dingtalk")],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = b
        .get(&format!("{}&user={}", location(&r), ZHANGWEI.key), false)
        .await;
    let r = b.get(&location(&r), false).await; // the callback: signs up, session, return_to
    let resume = location(&r);
    assert!(resume.contains("/oidc/auth/resume?request="), "{resume}");
    let r = b.get(&resume, false).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    // form_post: an auto-submitting form to DingTalk's callback with id_token and state.
    assert!(
        page.contains(&format!("action=\"{DINGTALK_CALLBACK}\"")),
        "{page}"
    );
    let id_token = between(&page, "name=\"id_token\" value=\"", "\"");
    assert_eq!(between(&page, "name=\"state\" value=\"", "\""), "dt-state");
    let claims = verify(&s, &id_token, cid).await;
    assert_eq!(
        claims["sub"], ZHANGWEI.open_id,
        "sub is the DingTalk subject"
    );
    assert_eq!(claims["nonce"], "n-form");
    assert_eq!(claims["aud"], json!(cid));
    // Fragment (the default for id_token): straight back, the session is there.
    let r = b.get(&implicit("", "n-frag"), false).await;
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.starts_with(&format!("{DINGTALK_CALLBACK}#")), "{loc}");
    let claims = verify(&s, &param(&loc, "id_token").unwrap(), cid).await;
    assert_eq!(claims["sub"], ZHANGWEI.open_id);
    assert_eq!(claims["nonce"], "n-frag");
    assert!(param(&loc, "access_token").is_none());
    // An employee who never signed in with DingTalk: a clear page, never an empty sub.
    user(&s, "nolink@example.com").await;
    let other = Browser::default();
    let (st, _, page) = drive(
        &other,
        &s,
        &implicit("form_post", "n3"),
        "nolink@example.com",
        None,
    )
    .await;
    assert_eq!(st, 403);
    assert!(
        page.contains("Dedicated DingTalk") && page.contains("not linked with `dingtalk`"),
        "{page}"
    );
    assert!(!page.contains("id_token"), "{page}");
    s.stop().await;
}
