//! `session:`: how long sessions live, the per-instance session cache, and the session cookie,
//! resolved on their own (the first section of `resolve` split out with its own problems).

use crate::load::{Loaded, Problem, problem};
use crate::model::SessionConfig;
use crate::resolve::parse_duration;
use std::time::Duration;
use tessera_core::duration;

/// The `session:` section as the server runs with it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    /// `session.lifespan`.
    pub lifespan: Duration,
    /// `session.cache_ttl` (at most 60 s; zero turns the cache off).
    pub cache_ttl: Duration,
    pub cookie: CookieSettings,
}

/// `session.cookie`, plus whether cookies are `Secure` (an https public URL outside `--dev`).
#[derive(Debug, Clone, PartialEq)]
pub struct CookieSettings {
    pub name: String,
    pub domain: Option<String>,
    pub path: String,
    pub same_site: SameSite,
    pub persistent: bool,
    /// Every cookie the server sets is `Secure`.
    pub secure: bool,
}

/// `session.cookie.same_site`: Kratos's three values (any case in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// Resolves `session:`; `secure` says whether cookies are `Secure`. Problems name their key
/// and line.
pub fn resolve_session(
    loaded: &Loaded,
    c: &SessionConfig,
    secure: bool,
    p: &mut Vec<Problem>,
) -> SessionSettings {
    let lifespan = parse_duration(loaded, "session.lifespan", &c.lifespan, p);
    let cache_ttl = match duration::parse(&c.cache_ttl) {
        Ok(d) if d <= Duration::from_secs(60) => d,
        Ok(_) => {
            p.push(problem(
                loaded,
                "session.cache_ttl",
                "must be at most 60s (0 turns the cache off)",
            ));
            Duration::ZERO
        }
        Err(e) => {
            p.push(problem(
                loaded,
                "session.cache_ttl",
                format!("{e}; write e.g. 1s, or 0 to turn the cache off"),
            ));
            Duration::ZERO
        }
    };
    let same_site = match c.cookie.same_site.to_ascii_lowercase().as_str() {
        "lax" => SameSite::Lax,
        "strict" => SameSite::Strict,
        "none" => SameSite::None,
        _ => {
            p.push(problem(
                loaded,
                "session.cookie.same_site",
                "must be Lax, Strict or None",
            ));
            SameSite::Lax
        }
    };
    SessionSettings {
        lifespan,
        cache_ttl,
        cookie: CookieSettings {
            name: c.cookie.name.clone(),
            domain: Some(c.cookie.domain.clone()).filter(|d| !d.is_empty()),
            path: c.cookie.path.clone(),
            same_site,
            persistent: c.cookie.persistent,
            secure,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(yaml: &str) -> (SessionSettings, Vec<Problem>) {
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        let s = resolve_session(&loaded, &loaded.config.session, true, &mut p);
        (s, p)
    }

    #[test]
    fn same_site_is_read_in_any_case_into_the_enum() {
        let (s, p) =
            resolved("session:\n  cookie:\n    same_site: sTrIcT\n    domain: example.test\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.cookie.same_site, SameSite::Strict);
        assert_eq!(s.cookie.domain.as_deref(), Some("example.test"));
        assert!(s.cookie.secure);
        let (s, _) = resolved("session:\n  lifespan: 2h\n");
        assert_eq!(s.cookie.same_site, SameSite::Lax, "Kratos's default");
        assert_eq!(s.cookie.domain, None);
        assert_eq!(s.lifespan, Duration::from_secs(7200));
    }

    #[test]
    fn bad_values_are_problems_with_their_key_and_line() {
        let (_, p) = resolved("session:\n  cache_ttl: 2m\n  cookie:\n    same_site: sideways\n");
        let keys: Vec<(&str, String)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.location.to_string()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("session.cache_ttl", "t.yml:2".to_string()),
                ("session.cookie.same_site", "t.yml:4".to_string()),
            ]
        );
        assert!(p[1].message.contains("Lax, Strict or None"), "{p:?}");
    }
}
