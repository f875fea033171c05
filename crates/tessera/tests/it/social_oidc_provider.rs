//! Social sign-in against a real OpenID Provider nobody here wrote: the `oidc-provider` npm
//! package (peers/oidc-upstream.mjs). Sign-up, fill-the-gaps, sign-in again, linking — through
//! the browser flow and the API, with that provider's own PKCE, `iss` and id_token rules.

use base64::Engine as _;
use serde_json::{Value, json};
use tessera_testkit::journey::submit;
use tessera_testkit::journey::{location, whoami};
use tessera_testkit::peers::OidcProviderPeer;
use tessera_testkit::{Backend, Browser, TestServer, csrf_of};

const MAPPER: &str = r#"local claims = { email_verified: false } + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if 'given_name' in claims then 'name' else null]: { first: claims.given_name },
    },
    metadata_public: {
      [if 'groups' in claims.raw_claims then 'groups' else null]: claims.raw_claims.groups,
    },
  },
}
"#;

struct Setup {
    s: TestServer,
    peer: OidcProviderPeer,
}

/// The peer needs Tessera's callback URL and Tessera needs the peer's issuer: reserve the
/// peer's port first, start Tessera pointing at it, then the peer on that port.
async fn setup(auth_method: &str) -> Setup {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mapper = base64::engine::general_purpose::STANDARD.encode(MAPPER);
    let yaml = format!(
        "selfservice:\n  default_browser_return_url: https://app.example.com/home\n  methods:\n    oidc:\n      enabled: true\n      config:\n        providers:\n          - id: corp\n            provider: generic\n            label: Corp SSO\n            client_id: tessera\n            client_secret: a-long-client-secret-0123456789\n            issuer_url: http://127.0.0.1:{port}\n            mapper_url: base64://{mapper}\n            scope: [email, profile]\n            claims_source: userinfo\n  flows:\n    registration:\n      after:\n        oidc:\n          hooks:\n            - hook: session\n"
    );
    let s = TestServer::start(Backend::Sqlite, &yaml).await;
    let peer = OidcProviderPeer::start(json!({
        "port": port,
        "clients": [{
            "client_id": "tessera",
            "client_secret": "a-long-client-secret-0123456789",
            "redirect_uris": [format!("{}/self-service/methods/oidc/callback/corp", s.public)],
            "token_endpoint_auth_method": auth_method,
        }],
        "accounts": {
            "alice": {"email": "alice@corp.example", "email_verified": true, "given_name": "Alice", "groups": ["admins"]},
            "ivan": {"email": "ivan@corp.example", "email_verified": false, "given_name": "Иван"},
        },
    }))
    .await;
    Setup { s, peer }
}

/// Starts a browser login, presses "Corp SSO", signs in at the peer as `account`; returns the
/// response of Tessera's callback.
async fn sign_in(
    b: &Browser,
    client: &reqwest::Client,
    st: &Setup,
    account: &str,
) -> reqwest::Response {
    let s = &st.s;
    let flow: Value = b
        .get(&format!("{}/self-service/login/browser", s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&flow)), ("provider", "corp")],
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let authorize = location(&r);
    assert!(authorize.starts_with(st.peer.issuer()), "{authorize}");
    let callback = st.peer.login(client, &authorize, account).await;
    assert!(
        callback.query_pairs().any(|(k, _)| k == "iss"),
        "oidc-provider sends RFC 9207 iss: {callback}"
    );
    b.get(callback.as_str(), false).await
}

#[tokio::test]
async fn sign_up_and_sign_in_again_through_oidc_provider() {
    let st = setup("client_secret_basic").await;
    let b = Browser::default();
    let upstream = OidcProviderPeer::browser_client();
    let r = sign_in(&b, &upstream, &st, "alice").await;
    assert_eq!(r.status(), 303, "{}", st.peer.stderr());
    assert_eq!(
        location(&r),
        "https://app.example.com/home",
        "{}",
        st.peer.stderr()
    );
    let me = whoami(&b, &st.s).await;
    assert_eq!(me["identity"]["traits"]["email"], "alice@corp.example");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Alice");
    assert_eq!(
        me["identity"]["metadata_public"]["groups"],
        json!(["admins"])
    );
    let id = me["identity"]["id"].clone();

    // Again, from a fresh Tessera browser (the peer remembers its own session: no form).
    let b2 = Browser::default();
    let r = sign_in(&b2, &upstream, &st, "alice").await;
    assert_eq!(location(&r), "https://app.example.com/home");
    assert_eq!(whoami(&b2, &st.s).await["identity"]["id"], id);
    let all: Vec<Value> = reqwest::get(format!("{}/admin/identities", st.s.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let full: Value = reqwest::get(format!(
        "{}/admin/identities/{}",
        st.s.admin,
        id.as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        full["credentials"]["oidc"]["identifiers"],
        json!(["corp:alice"])
    );
}

#[tokio::test]
async fn an_unverified_email_is_asked_for_with_client_secret_post() {
    let st = setup("client_secret_post").await;
    let b = Browser::default();
    let upstream = OidcProviderPeer::browser_client();
    let r = sign_in(&b, &upstream, &st, "ivan").await;
    let loc = location(&r);
    assert!(
        loc.contains("/ui/registration?flow="),
        "{loc} {}",
        st.peer.stderr()
    );
    let id = loc.split("flow=").nth(1).unwrap();
    let flow: Value = b
        .get(
            &format!("{}/self-service/registration/flows?id={id}", st.s.public),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    let first = flow["ui"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["attributes"]["name"] == "traits.name.first")
        .unwrap();
    assert_eq!(first["attributes"]["value"], "Иван");
    let r = submit(
        &b,
        &flow,
        &[("provider", "corp"), ("traits.email", "ivan@example.ru")],
        false,
    )
    .await;
    assert_eq!(location(&r), "https://app.example.com/home");
    let me = whoami(&b, &st.s).await;
    assert_eq!(me["identity"]["traits"]["email"], "ivan@example.ru");
    assert_eq!(me["identity"]["traits"]["name"]["first"], "Иван");
}

#[tokio::test]
async fn a_denied_consent_is_a_message_not_an_error_page() {
    let st = setup("client_secret_basic").await;
    let b = Browser::default();
    let flow: Value = b
        .get(&format!("{}/self-service/login/browser", st.s.public), true)
        .await
        .json()
        .await
        .unwrap();
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().unwrap(),
            &[("csrf_token", &csrf_of(&flow)), ("provider", "corp")],
            false,
        )
        .await;
    let callback = st
        .peer
        .deny(&OidcProviderPeer::browser_client(), &location(&r))
        .await;
    let r = b.get(callback.as_str(), false).await;
    let loc = location(&r);
    assert!(loc.contains("/ui/login?flow="), "{loc}");
    let id = loc.split("flow=").nth(1).unwrap();
    let flow: Value = b
        .get(
            &format!("{}/self-service/login/flows?id={id}", st.s.public),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        flow["ui"]["messages"][0]["text"]
            .as_str()
            .unwrap()
            .contains("cancelled or denied"),
        "{flow}"
    );
}
