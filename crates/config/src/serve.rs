//! Where the process listens and how it presents itself: `dsn`-independent listener addresses
//! and base URLs (`serve.public|admin`), the secrets that sign cookies and seal data
//! (`secrets.*`), and the log (`log.*`).

use crate::load::{Loaded, Problem, problem};
use crate::model::Config;
use url::Url;

pub const MIN_SECRET_LENGTH: usize = 16;

/// The two listeners: where they bind and the URL the outside world reaches them by.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub public_base_url: Url,
    pub admin_base_url: Url,
    pub public_bind: (String, u16),
    pub admin_bind: (String, u16),
}

/// `secrets.*`. The first entry of each list signs or encrypts; the rest are accepted for
/// rotation.
#[derive(Debug, Clone)]
pub struct SecretSettings {
    pub cookie: Vec<String>,
    pub cipher: Vec<String>,
}

/// `log.*`, with Kratos's level names mapped onto `tracing`'s.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub json: bool,
}

/// `serve.public|admin.{host,port,base_url}`; `edge` says whether a listener has TLS, which
/// changes the default base URL's scheme.
pub(crate) fn resolve_serve(
    loaded: &Loaded,
    c: &Config,
    dev: bool,
    edge: &crate::edge::EdgeSettings,
    p: &mut Vec<Problem>,
) -> ServeSettings {
    let public_port = if c.serve.public.port == 0 {
        4433
    } else {
        c.serve.public.port
    };
    let admin_port = if c.serve.admin.port == 0 {
        4434
    } else {
        c.serve.admin.port
    };
    let default_host = |h: &str, fallback: &str| {
        if h.is_empty() {
            fallback.to_string()
        } else {
            h.to_string()
        }
    };
    // Public listens everywhere like Kratos; the unauthenticated admin API stays on loopback
    // unless the operator exposes it on purpose.
    let public_host = default_host(
        &c.serve.public.host,
        if dev { "127.0.0.1" } else { "0.0.0.0" },
    );
    let admin_host = default_host(&c.serve.admin.host, "127.0.0.1");
    let url_host = |h: &str| {
        if h == "0.0.0.0" || h == "::" || h.is_empty() {
            "127.0.0.1".to_string()
        } else {
            h.to_string()
        }
    };
    let base = |key: &str, v: &str, fallback: String, p: &mut Vec<Problem>| {
        let raw = if v.is_empty() {
            fallback
        } else {
            v.to_string()
        };
        let mut u = crate::resolve::parse_url(loaded, key, &raw, p)
            .unwrap_or_else(|| Url::parse("http://127.0.0.1/").expect("literal URL"));
        if !u.path().ends_with('/') {
            let path = format!("{}/", u.path());
            u.set_path(&path);
        }
        u
    };
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    let public_base_url = base(
        "serve.public.base_url",
        &c.serve.public.base_url,
        format!(
            "{}://{}:{public_port}/",
            scheme(edge.public.tls.is_some()),
            url_host(&public_host)
        ),
        p,
    );
    let admin_base_url = base(
        "serve.admin.base_url",
        &c.serve.admin.base_url,
        format!(
            "{}://{}:{admin_port}/",
            scheme(edge.admin.tls.is_some()),
            url_host(&admin_host)
        ),
        p,
    );
    ServeSettings {
        public_base_url,
        admin_base_url,
        public_bind: (public_host, public_port),
        admin_bind: (admin_host, admin_port),
    }
}

/// `secrets.default|cookie|cipher`: each at least [`MIN_SECRET_LENGTH`] characters; cookie and
/// cipher fall back to `default`, then to the secret `--dev` generated.
pub(crate) fn resolve_secrets(
    loaded: &Loaded,
    c: &Config,
    generated_secret: Option<&str>,
    p: &mut Vec<Problem>,
) -> SecretSettings {
    let check = |key: &str, list: &[String], p: &mut Vec<Problem>| {
        for (i, s) in list.iter().enumerate() {
            if s.chars().count() < MIN_SECRET_LENGTH {
                p.push(problem(loaded, &format!("{key}.{i}"), format!("is {} characters long; secrets must be at least {MIN_SECRET_LENGTH} characters (generate one with `openssl rand -hex 32`)", s.chars().count())));
            }
        }
    };
    check("secrets.default", &c.secrets.default, p);
    check("secrets.cookie", &c.secrets.cookie, p);
    check("secrets.cipher", &c.secrets.cipher, p);
    let fallback: Vec<String> = if !c.secrets.default.is_empty() {
        c.secrets.default.clone()
    } else {
        generated_secret
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    };
    let or_fallback = |list: &Vec<String>| {
        if list.is_empty() {
            fallback.clone()
        } else {
            list.clone()
        }
    };
    let secrets = SecretSettings {
        cookie: or_fallback(&c.secrets.cookie),
        cipher: or_fallback(&c.secrets.cipher),
    };
    if secrets.cookie.is_empty() {
        p.push(problem(loaded, "secrets.default", "is required: set at least one secret of 16+ characters (e.g. `openssl rand -hex 32`), or run with --dev to generate one"));
    }
    secrets
}

/// `log.level` and `log.format`.
pub(crate) fn resolve_log(loaded: &Loaded, c: &Config, p: &mut Vec<Problem>) -> LogSettings {
    if !matches!(c.log.format.as_str(), "text" | "json") {
        p.push(problem(loaded, "log.format", "must be `text` or `json`"));
    }
    if !matches!(
        c.log.level.as_str(),
        "trace" | "debug" | "info" | "warning" | "warn" | "error" | "fatal" | "panic"
    ) {
        p.push(problem(
            loaded,
            "log.level",
            "must be one of trace, debug, info, warning, error",
        ));
    }
    LogSettings {
        level: c
            .log
            .level
            .replace("warning", "warn")
            .replace("fatal", "error")
            .replace("panic", "error"),
        json: c.log.format == "json",
    }
}
