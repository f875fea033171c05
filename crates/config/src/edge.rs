//! `serve.public` / `serve.admin` beyond the address: TLS, CORS and the request log, resolved
//! into what the HTTP edge needs. Every file is read and every value checked here, at load, so
//! a bad certificate or origin stops the start (or a configuration update) with its key and line
//! instead of failing the first request.

use crate::load::{Loaded, Problem, problem};
use crate::model::{CorsConfig, Endpoint, PemSource, Serve, TlsConfig};
use base64::Engine as _;

/// Both listeners' edge settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeSettings {
    pub public: ListenerEdge,
    pub admin: ListenerEdge,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerEdge {
    /// `None` unless `cors.enabled` (always `None` on the admin listener).
    pub cors: Option<CorsSettings>,
    pub tls: Option<TlsPem>,
    /// Log `/health/*` probes too (`request_log.disable_for_health: false`).
    pub log_health: bool,
}

/// Which origins CORS answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// `*`: every origin.
    Any,
    /// `https://app.example.com` (scheme, host and port as the browser sends them).
    Exact(String),
    /// `https://*.example.com`: the text before and after the one `*`.
    Wildcard { prefix: String, suffix: String },
}

impl OriginPattern {
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginPattern::Wildcard { prefix, suffix } => {
                let o = origin.to_ascii_lowercase();
                o.len() > prefix.len() + suffix.len()
                    && o.starts_with(prefix.as_str())
                    && o.ends_with(suffix.as_str())
                    // `*` stands for labels of a host name, never for `/`, `:` or `@`.
                    && o[prefix.len()..o.len() - suffix.len()]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CorsSettings {
    pub origins: Vec<OriginPattern>,
    pub methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<std::time::Duration>,
}

impl CorsSettings {
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }
}

/// A certificate chain and its private key in PEM, checked to parse. The key's bytes never
/// appear in `Debug` output (settings may be logged).
#[derive(Clone, PartialEq)]
pub struct TlsPem {
    pub cert_chain: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field(
                "cert_chain",
                &format_args!("{} bytes", self.cert_chain.len()),
            )
            .field("key", &"<redacted>")
            .finish()
    }
}

pub(crate) fn resolve(loaded: &Loaded, serve: &Serve, p: &mut Vec<Problem>) -> EdgeSettings {
    if serve.admin.cors.enabled {
        p.push(problem(
            loaded,
            "serve.admin.cors.enabled",
            "the admin API refuses every browser request (it has no authentication of its own), so it has no CORS: remove serve.admin.cors and call the admin API from a backend",
        ));
    }
    EdgeSettings {
        public: listener(loaded, "serve.public", &serve.public, p),
        admin: ListenerEdge {
            cors: None,
            ..listener(loaded, "serve.admin", &serve.admin, p)
        },
    }
}

fn listener(loaded: &Loaded, prefix: &str, e: &Endpoint, p: &mut Vec<Problem>) -> ListenerEdge {
    ListenerEdge {
        cors: cors(loaded, &format!("{prefix}.cors"), &e.cors, p),
        tls: tls(loaded, &format!("{prefix}.tls"), &e.tls, p),
        log_health: !e.request_log.disable_for_health,
    }
}

fn cors(loaded: &Loaded, key: &str, c: &CorsConfig, p: &mut Vec<Problem>) -> Option<CorsSettings> {
    if !c.enabled {
        return None;
    }
    let origins_key = format!("{key}.allowed_origins");
    let mut origins = Vec::new();
    for (i, o) in c.allowed_origins.iter().enumerate() {
        match origin_pattern(o) {
            Ok(pat) => origins.push(pat),
            Err(why) => p.push(problem(loaded, &format!("{origins_key}.{i}"), why)),
        }
    }
    if c.allowed_origins.is_empty() {
        // Kratos (rs/cors) reads an empty list as "every origin"; its quickstart relies on it.
        // The server warns at start when any origin may call with credentials.
        origins.push(OriginPattern::Any);
    }
    for (what, list) in [
        ("allowed_methods", &c.allowed_methods),
        ("allowed_headers", &c.allowed_headers),
        ("exposed_headers", &c.exposed_headers),
    ] {
        for (i, v) in list.iter().enumerate() {
            let bad = v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b));
            if bad {
                p.push(problem(
                    loaded,
                    &format!("{key}.{what}.{i}"),
                    format!("`{v}` is not an HTTP method or header name"),
                ));
            }
        }
    }
    Some(CorsSettings {
        origins,
        methods: c
            .allowed_methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        allowed_headers: c.allowed_headers.clone(),
        exposed_headers: c.exposed_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: (c.max_age > 0).then(|| std::time::Duration::from_secs(c.max_age)),
    })
}

/// Parses one `allowed_origins` entry. Origins are compared as browsers send them: scheme,
/// host and port, lower case, no path.
pub fn origin_pattern(o: &str) -> Result<OriginPattern, String> {
    if o == "*" {
        return Ok(OriginPattern::Any);
    }
    let lower = o.trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(format!(
            "`{o}` is not an origin: write the scheme and host, e.g. https://app.example.com"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{o}` must be an http:// or https:// origin"));
    }
    if rest.contains(['/', '?', '#', '@']) || rest.is_empty() {
        return Err(format!(
            "`{o}` is not an origin (scheme://host[:port], no path, query or user): browsers send only those parts"
        ));
    }
    match rest.matches('*').count() {
        0 => {
            let u = url::Url::parse(&lower).map_err(|e| format!("`{o}` is not an origin: {e}"))?;
            Ok(OriginPattern::Exact(u.origin().ascii_serialization()))
        }
        1 if rest.starts_with("*.") && rest.len() > 2 => Ok(OriginPattern::Wildcard {
            prefix: format!("{scheme}://"),
            suffix: rest[1..].to_string(),
        }),
        _ => Err(format!(
            "`{o}`: only one `*` at the start of the host is supported (https://*.example.com), or `*` alone for every origin"
        )),
    }
}

fn tls(loaded: &Loaded, key: &str, t: &TlsConfig, p: &mut Vec<Problem>) -> Option<TlsPem> {
    let configured = !(t.cert.path.is_empty()
        && t.cert.base64.is_empty()
        && t.key.path.is_empty()
        && t.key.base64.is_empty());
    if t.enabled == Some(false) || (!configured && t.enabled.is_none()) {
        return None;
    }
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert = pem(loaded, &format!("{key}.cert"), &t.cert, p).filter(|cert| {
        let why = match CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => return true,
            Ok(_) => "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_string(),
            Err(e) => format!("is not a PEM certificate chain: {e}"),
        };
        p.push(problem(loaded, &format!("{key}.cert"), why));
        false
    });
    let key_pem = pem(loaded, &format!("{key}.key"), &t.key, p).filter(|k| {
        match PrivateKeyDer::from_pem_slice(k) {
            Ok(_) => true,
            Err(e) => {
                // The error names the PEM section, never the key's bytes.
                p.push(problem(
                    loaded,
                    &format!("{key}.key"),
                    format!("is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
                ));
                false
            }
        }
    });
    Some(TlsPem {
        cert_chain: cert?,
        key: key_pem?,
    })
}

fn pem(loaded: &Loaded, key: &str, s: &PemSource, p: &mut Vec<Problem>) -> Option<Vec<u8>> {
    match (s.path.is_empty(), s.base64.is_empty()) {
        (true, true) => {
            p.push(problem(
                loaded,
                key,
                "is missing: set `path` (a PEM file) or `base64` (the PEM file's content, base64-encoded)",
            ));
            None
        }
        (false, false) => {
            p.push(problem(
                loaded,
                key,
                "has both `path` and `base64`: keep one",
            ));
            None
        }
        (false, true) => {
            let path_key = format!("{key}.path");
            let path = std::path::Path::new(&s.path);
            let full = match crate::load::base_dir(loaded, &path_key) {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_path_buf(),
            };
            match std::fs::read(&full) {
                Ok(b) => Some(b),
                Err(e) => {
                    p.push(problem(
                        loaded,
                        &path_key,
                        format!("cannot read `{}`: {e}", full.display()),
                    ));
                    None
                }
            }
        }
        (true, false) => {
            match base64::engine::general_purpose::STANDARD.decode(s.base64.trim().as_bytes()) {
                Ok(b) => Some(b),
                Err(e) => {
                    p.push(problem(
                        loaded,
                        &format!("{key}.base64"),
                        format!("is not valid base64: {e}"),
                    ));
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tls_and_cors_settings_are_each_reported_with_their_key() {
        let yaml = "dsn: memory\nserve:\n  public:\n    tls:\n      cert:\n        base64: bm90IGEgY2VydA==\n      key:\n        path: /nonexistent/missing.pem\n    cors:\n      enabled: true\n      allowed_origins: [\"https://*.*.example.com\", \"https://ok.example.com\"]\n  admin:\n    cors:\n      enabled: true\n";
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("parses");
        let err = crate::resolve(&loaded, true, None)
            .expect_err("refused")
            .to_string();
        for needle in [
            "`serve.public.tls.cert`",
            "`serve.public.tls.key.path`",
            "missing.pem",
            "`serve.public.cors.allowed_origins.0`",
            "`serve.admin.cors.enabled`",
        ] {
            assert!(err.contains(needle), "missing {needle} in:\n{err}");
        }
        assert!(!err.contains("allowed_origins.1"), "{err}");
    }

    #[test]
    fn an_empty_origin_list_means_every_origin_as_in_kratos() {
        let yaml = "dsn: memory\nsecrets:\n  default: [\"test-secret-0123456789abcdef\"]\nserve:\n  public:\n    cors:\n      enabled: true\n";
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("parses");
        let s = crate::resolve(&loaded, true, None).unwrap_or_else(|e| panic!("{e}"));
        let cors = s.edge.public.cors.expect("enabled");
        assert!(cors.allows("https://anything.example"));
        assert!(cors.allow_credentials);
        assert!(s.edge.admin.cors.is_none() && s.edge.public.tls.is_none());
    }

    #[test]
    fn origin_patterns_match_as_browsers_send_origins() {
        let exact = origin_pattern("https://App.example.com/").unwrap();
        assert!(exact.matches("https://app.example.com"));
        assert!(!exact.matches("https://app.example.com.evil.test"));
        assert!(!exact.matches("http://app.example.com"));
        let port = origin_pattern("http://localhost:5173").unwrap();
        assert!(port.matches("http://localhost:5173"));
        assert!(!port.matches("http://localhost:5174"));
        let wild = origin_pattern("https://*.example.com").unwrap();
        assert!(wild.matches("https://a.example.com"));
        assert!(wild.matches("https://a.b.example.com"));
        assert!(!wild.matches("https://example.com"));
        assert!(!wild.matches("https://evil.test/.example.com"));
        assert!(!wild.matches("https://evil.test:1@x.example.com"));
        assert!(!wild.matches("http://a.example.com"));
        assert!(
            origin_pattern("*")
                .unwrap()
                .matches("https://anything.test")
        );
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://*.*.example.com",
            "https://a*.example.com",
            "https://",
        ] {
            assert!(origin_pattern(bad).is_err(), "{bad} accepted");
        }
    }
}
