//! Kratos DSNs as users write them, translated for sqlx. Kratos (Go) accepts driver parameters
//! such as `_fk=true` that sqlx would refuse; Tessera applies their effect itself (foreign keys
//! are always on) and drops them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct ParsedDsn {
    pub backend: Backend,
    pub url: String,
    pub max_connections: u32,
    /// In-memory SQLite must keep one connection open or the data disappears.
    pub keep_alive: bool,
}

impl ParsedDsn {
    /// The URL without its password, for messages and logs.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.url.clone(),
        }
    }
}

pub fn parse_dsn(dsn: &str) -> Result<ParsedDsn, String> {
    let dsn = dsn.trim();
    if dsn == "memory"
        || dsn == "sqlite::memory:"
        || dsn.starts_with("sqlite://:memory:")
        || dsn.starts_with("sqlite::memory:")
    {
        let name = format!("tessera-mem-{}", uuid::Uuid::new_v4().simple());
        return Ok(ParsedDsn {
            backend: Backend::Sqlite,
            url: format!("sqlite:file:{name}?mode=memory&cache=shared"),
            max_connections: 1,
            keep_alive: true,
        });
    }
    if let Some(rest) = dsn
        .strip_prefix("sqlite://")
        .or_else(|| dsn.strip_prefix("sqlite:"))
    {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(format!(
                "the DSN `{dsn}` has no database file: write e.g. sqlite://tessera.db?mode=rwc"
            ));
        }
        let mut mode = "rwc".to_string();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "mode" => match v {
                    "rwc" | "rw" | "ro" => mode = v.to_string(),
                    "memory" => return parse_dsn("memory"),
                    _ => {
                        return Err(format!(
                            "DSN parameter mode={v} is not supported: use rwc, rw or ro"
                        ));
                    }
                },
                // Go sqlite driver knobs; Tessera always enables foreign keys, WAL and a busy timeout.
                k if k.starts_with('_') => {}
                "cache" | "max_conns" | "max_idle_conns" | "max_conn_lifetime"
                | "max_conn_idle_time" => {}
                other => {
                    return Err(format!(
                        "unknown SQLite DSN parameter `{other}`: supported are mode=rwc|rw|ro"
                    ));
                }
            }
        }
        return Ok(ParsedDsn {
            backend: Backend::Sqlite,
            url: format!("sqlite://{path}?mode={mode}"),
            max_connections: 4,
            keep_alive: false,
        });
    }
    if dsn.starts_with("postgres://")
        || dsn.starts_with("postgresql://")
        || dsn.starts_with("cockroach://")
    {
        let mut url = url::Url::parse(&dsn.replacen("cockroach://", "postgres://", 1))
            .map_err(|e| format!("the PostgreSQL DSN is not a valid URL: {e}"))?;
        let mut max = 10u32;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| match k.as_ref() {
                "max_conns" => {
                    if let Ok(n) = v.parse() {
                        max = n;
                    }
                    None
                }
                "max_idle_conns" | "max_conn_lifetime" | "max_conn_idle_time" => None,
                _ => Some((k.into_owned(), v.into_owned())),
            })
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        return Ok(ParsedDsn {
            backend: Backend::Postgres,
            url: url.to_string(),
            max_connections: max,
            keep_alive: false,
        });
    }
    Err(format!(
        "unsupported DSN `{}`: use `memory`, `sqlite://path/to/file.db?mode=rwc` or `postgres://user:pass@host:5432/db`",
        dsn.split('@').next_back().unwrap_or(dsn)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kratos_sqlite_dsn_works_as_written() {
        let p = parse_dsn("sqlite:///var/lib/tessera/db.sqlite?_fk=true").unwrap();
        assert_eq!(p.backend, Backend::Sqlite);
        assert_eq!(p.url, "sqlite:///var/lib/tessera/db.sqlite?mode=rwc");
        let p = parse_dsn("sqlite://tessera.db?mode=rwc").unwrap();
        assert_eq!(p.url, "sqlite://tessera.db?mode=rwc");
    }

    #[test]
    fn memory_dsn_is_a_private_shared_cache_db() {
        let a = parse_dsn("memory").unwrap();
        let b = parse_dsn("memory").unwrap();
        assert!(a.keep_alive);
        assert_ne!(a.url, b.url);
    }

    #[test]
    fn postgres_dsn_keeps_sslmode_and_takes_pool_size() {
        let p =
            parse_dsn("postgres://user:pass@host:5432/db?sslmode=disable&max_conns=20").unwrap();
        assert_eq!(p.backend, Backend::Postgres);
        assert_eq!(p.max_connections, 20);
        assert!(p.url.ends_with("/db?sslmode=disable"), "{}", p.url);
        assert!(p.redacted().contains("***") && !p.redacted().contains("pass@"));
    }

    #[test]
    fn bad_dsns_are_explained() {
        assert!(
            parse_dsn("mysql://x")
                .unwrap_err()
                .contains("unsupported DSN")
        );
        assert!(
            parse_dsn("sqlite://x.db?foo=1")
                .unwrap_err()
                .contains("`foo`")
        );
        assert!(
            parse_dsn("sqlite://")
                .unwrap_err()
                .contains("no database file")
        );
    }
}
