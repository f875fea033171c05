//! What every emulator needs and no provider documents differently: the app registration
//! (client id and secret, registered redirect URI, the user tests script), random codes and
//! tokens, HTML escaping for the consent pages. Each emulator keeps its provider's own paths,
//! parameters, answers and error shapes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// `n` random bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2), for the emulators that check PKCE.
pub(crate) fn s256(verifier: &str) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `prefix` and 32 random hex digits (GitHub's and DingTalk's codes and tokens look so).
pub(crate) fn random_hex(prefix: &str) -> String {
    let mut buf = [0u8; 16];
    rand::rng().fill_bytes(&mut buf);
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Escapes text for the consent pages' HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An authorize request's query without `user`, so a consent page's links can repeat it with
/// the user a person picks.
pub(crate) fn query_without_user(q: &HashMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter().filter(|(k, _)| k.as_str() != "user"))
        .finish()
}

/// The accessors GitHub's and DingTalk's emulators share, over their `shared.client`
/// ([`Client`]); each emulator documents its own URLs and redirect-URI rules.
macro_rules! client_accessors {
    () => {
        /// The registered app's client id.
        pub fn client_id(&self) -> &str {
            &self.shared.client.client_id
        }

        /// The registered app's client secret.
        pub fn client_secret(&self) -> &str {
            &self.shared.client.client_secret
        }

        /// The user every following authorize request picks without showing the consent page
        /// (`None`: show it). A `user=` parameter wins.
        pub fn set_next_user(&self, key: Option<&str>) {
            self.shared.client.set_next_user(key);
        }

        /// How many token requests the emulator received.
        pub fn token_requests(&self) -> u64 {
            self.shared.client.token_requests()
        }
    };
}
pub(crate) use client_accessors;

/// An OAuth app as registered at the provider, and what tests script about it.
pub(crate) struct Client {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    registered_redirect_uri: Mutex<Option<String>>,
    next_user: Mutex<Option<String>>,
    token_requests: AtomicU64,
}

impl Client {
    pub fn new(addr: SocketAddr, client_id: &str, client_secret: &str) -> Client {
        Client {
            base: format!("http://{addr}"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            registered_redirect_uri: Mutex::new(None),
            next_user: Mutex::new(None),
            token_requests: AtomicU64::new(0),
        }
    }

    pub fn register_redirect_uri(&self, uri: String) {
        *self.registered_redirect_uri.lock().expect("lock") = Some(uri);
    }

    pub fn registered_redirect_uri(&self) -> Option<String> {
        self.registered_redirect_uri.lock().expect("lock").clone()
    }

    pub fn set_next_user(&self, key: Option<&str>) {
        *self.next_user.lock().expect("lock") = key.map(String::from);
    }

    /// The user an authorize request picks: its `user=<key>`, else the scripted next user
    /// (which stays for the following requests); `None`: show the consent page.
    pub fn pick(&self, q: &HashMap<String, String>) -> Option<String> {
        q.get("user")
            .cloned()
            .or_else(|| self.next_user.lock().expect("lock").clone())
    }

    pub fn count_token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_differ_and_have_their_shape() {
        let (a, b) = (random_hex("gho_"), random_hex("gho_"));
        assert_ne!(a, b);
        assert!(a.starts_with("gho_") && a.len() == 36, "{a}");
        assert_eq!(random_token(12).len(), 16);
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_consent_query_drops_only_user_and_the_pick_prefers_the_request() {
        let q: HashMap<String, String> = [("user", "a"), ("state", "s t")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(query_without_user(&q), "state=s+t");
        let c = Client::new(([127, 0, 0, 1], 9).into(), "id", "secret");
        assert_eq!(c.pick(&q).as_deref(), Some("a"));
        assert_eq!(c.pick(&HashMap::new()), None);
        c.set_next_user(Some("b"));
        assert_eq!(c.pick(&HashMap::new()).as_deref(), Some("b"));
        assert_eq!(c.pick(&HashMap::new()).as_deref(), Some("b"), "it stays");
    }
}
