//! CORS on the public listener.
//!
//! - The self-service API follows Kratos's `serve.public.cors` (off unless enabled).
//! - The OpenID Provider's browser-facing endpoints (discovery, JWKS, token, userinfo,
//!   revocation) answer the origins of the redirect URIs registered by single-page and native
//!   apps, as Keycloak's "web origins" and oidc-provider's client-based CORS do: an app that may
//!   receive a code in a browser may also redeem it from there. No cookies are involved
//!   (credentials are not allowed), and confidential endpoints (introspection) have no CORS.
//!
//! tower-http's `CorsLayer` refuses (panics on) credentials combined with a literal `*`; a
//! configured `*` is therefore answered by mirroring the request's origin, method or headers,
//! which is what Kratos (rs/cors) does too.

use crate::AppState;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_config::edge::CorsSettings;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

/// The self-service API's CORS (`serve.public.cors`).
pub fn kratos(c: &CorsSettings) -> CorsLayer {
    let settings = Arc::new(c.clone());
    let origin = AllowOrigin::predicate(move |origin: &HeaderValue, _: &Parts| {
        let ok = origin.to_str().is_ok_and(|o| settings.allows(o));
        if !ok {
            tracing::debug!(origin = ?origin, "CORS: origin not in serve.public.cors.allowed_origins");
        }
        ok
    });
    let methods = if c.methods.iter().any(|m| m == "*") {
        AllowMethods::mirror_request()
    } else {
        AllowMethods::list(
            c.methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
        )
    };
    let headers = if c.allowed_headers.iter().any(|h| h == "*") {
        AllowHeaders::mirror_request()
    } else {
        AllowHeaders::list(names(&c.allowed_headers))
    };
    // `*` cannot be mirrored for exposed headers; with credentials browsers would ignore it.
    let exposed: Vec<HeaderName> = names(&c.exposed_headers);
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(ExposeHeaders::list(exposed))
        .allow_credentials(c.allow_credentials);
    if let Some(age) = c.max_age {
        layer = layer.max_age(age);
    }
    layer
}

fn names(list: &[String]) -> Vec<HeaderName> {
    list.iter()
        .filter(|h| h.as_str() != "*")
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect()
}

/// How long the set of app origins is reused before the client list is read again: short
/// enough that a newly registered app works at once in practice, long enough that a flood of
/// preflights costs no database work.
const ORIGINS_TTL: Duration = Duration::from_secs(5);

/// The OpenID Provider's endpoints a browser app calls with `fetch`. Authorization and sign-out
/// are navigations (no CORS), introspection is for confidential apps' backends.
const BROWSER_FACING: &[&str] = &[
    "/oidc/.well-known/openid-configuration",
    "/oidc/jwks",
    "/oidc/token",
    "/oidc/me",
    "/oidc/token/revocation",
];

/// The OpenID Provider's CORS: origins of single-page and native apps' redirect URIs.
pub fn op(st: &AppState) -> CorsLayer {
    let origins = AppOrigins {
        st: st.clone(),
        cache: Arc::new(Mutex::new(None)),
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, parts: &Parts| {
                let browser_facing = BROWSER_FACING.contains(&parts.uri.path());
                async move {
                    match origin.to_str() {
                        Ok(o) if browser_facing => origins.allows(o).await,
                        _ => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        // DPoP (RFC 9449): browser apps send proofs and must read the server's nonces.
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(Duration::from_secs(600))
}

/// The origin set and when it was read.
type Cached = (Instant, Arc<HashSet<String>>);

#[derive(Clone)]
struct AppOrigins {
    st: AppState,
    cache: Arc<Mutex<Option<Cached>>>,
}

impl AppOrigins {
    async fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|(at, _)| at.elapsed() < ORIGINS_TTL)
            .map(|(_, set)| set);
        let set = match cached {
            Some(set) => set,
            None => {
                let set = Arc::new(self.load().await);
                if let Ok(mut c) = self.cache.lock() {
                    *c = Some((Instant::now(), set.clone()));
                }
                set
            }
        };
        let ok = set.contains(&origin);
        if !ok {
            tracing::debug!(origin = %origin, "CORS: no single-page or native app has a redirect URI at this origin");
        }
        ok
    }

    async fn load(&self) -> HashSet<String> {
        match self.st.op().list_clients().await {
            Ok(clients) => browser_origins(clients.iter().map(|(c, _)| c)),
            Err(e) => {
                tracing::warn!(reason = %e.reason, "CORS: cannot read the apps' redirect URIs; refusing cross-origin requests");
                HashSet::new()
            }
        }
    }
}

/// Origins of the http(s) redirect URIs of apps that run in a browser or on a device (private
/// `com.example.app:/` schemes have no web origin and are skipped).
fn browser_origins<'a>(
    clients: impl Iterator<Item = &'a tessera_op::client::Client>,
) -> HashSet<String> {
    use tessera_op::client::AppType;
    clients
        .filter(|c| matches!(c.app_type, AppType::Spa | AppType::Native))
        .flat_map(|c| c.redirect_uris.iter())
        .filter_map(|u| url::Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| u.origin().ascii_serialization())
        .collect()
}
