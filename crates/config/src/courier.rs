//! `courier:`: how messages (verification and recovery codes) are sent. Kratos's keys: SMTP
//! (`courier.smtp.*`), `message_retries`, the worker's pull settings, and template overrides
//! (`courier.templates.<template>.<valid|invalid>.email.{subject,body.html,body.plaintext}`),
//! plus the worker's claim lease (`courier.worker.lease`, Tessera). A template override is read
//! and parsed at start: one Tessera cannot render is a problem naming its key and file, never
//! ignored.

use crate::load::{Loaded, Problem, problem};
use crate::resolve::parse_duration;
use crate::source::{Document, SourcePolicy, read_local};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tessera_core::template::Template;
use url::Url;

/// `courier:` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CourierConfig {
    pub smtp: SmtpConfig,
    /// Attempts after which a message is `abandoned` (Kratos's default 5).
    pub message_retries: u32,
    pub worker: CourierWorkerConfig,
    /// Kratos's `smtp`, or `http` for email through `courier.http.request_config`.
    pub delivery_strategy: String,
    /// Kratos's `courier.http` (with `delivery_strategy: http`): the HTTP email channel.
    pub http: crate::channels::CourierHttpConfig,
    /// Kratos's `courier.channels`: SMS (and email) over HTTP.
    pub channels: Vec<crate::channels::ChannelConfig>,
    /// A folder of Go templates replacing Kratos's built-ins: refused (use `templates`).
    pub template_override_path: String,
    pub templates: CourierTemplates,
}

impl Default for CourierConfig {
    fn default() -> Self {
        CourierConfig {
            smtp: SmtpConfig::default(),
            message_retries: 5,
            worker: CourierWorkerConfig::default(),
            delivery_strategy: "smtp".into(),
            http: Default::default(),
            channels: Vec::new(),
            template_override_path: String::new(),
            templates: CourierTemplates::default(),
        }
    }
}

/// `courier.smtp`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// `smtp://user:pass@host:port/?disable_starttls=true&skip_ssl_verify=true&server_name=…`
    /// or `smtps://…` (implicit TLS).
    pub connection_uri: String,
    pub client_cert_path: String,
    pub client_key_path: String,
    pub from_address: String,
    pub from_name: String,
    /// Extra headers on every email (names are free, so this is not checked key by key).
    pub headers: Option<BTreeMap<String, String>>,
    /// The name sent in HELO/EHLO.
    pub local_name: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            connection_uri: String::new(),
            client_cert_path: String::new(),
            client_key_path: String::new(),
            from_address: "no-reply@ory.kratos.sh".into(),
            from_name: String::new(),
            headers: None,
            local_name: "localhost".into(),
        }
    }
}

/// `courier.worker`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CourierWorkerConfig {
    /// Messages taken per round.
    pub pull_count: u32,
    /// Pause between rounds when nothing was due.
    pub pull_wait: String,
    /// Tessera extension: how long a worker's claim on a message lasts. A worker that dies
    /// mid-send leaves the message to another worker after this long; sending gives up at half
    /// of it, so a live worker never loses its claim mid-send.
    pub lease: String,
}

impl Default for CourierWorkerConfig {
    fn default() -> Self {
        CourierWorkerConfig {
            pull_count: 10,
            pull_wait: "1s".into(),
            lease: "1m".into(),
        }
    }
}

/// `courier.templates` (Kratos's names).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CourierTemplates {
    pub recovery_code: ValidInvalid,
    pub verification_code: ValidInvalid,
    pub recovery: ValidInvalid,
    pub verification: ValidInvalid,
    pub login_code: ValidInvalid,
    pub registration_code: ValidInvalid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ValidInvalid {
    pub valid: TemplateChannels,
    pub invalid: TemplateChannels,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateChannels {
    pub email: EmailTemplateFiles,
    pub sms: SmsTemplateFiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailTemplateFiles {
    pub subject: String,
    pub body: EmailBodyFiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailBodyFiles {
    pub html: String,
    pub plaintext: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsTemplateFiles {
    pub body: SmsBodyFiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsBodyFiles {
    pub plaintext: String,
}

/// The courier as the server runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CourierSettings {
    /// `None` without `courier.smtp.connection_uri`: messages queue and wait for one.
    pub smtp: Option<SmtpSettings>,
    pub message_retries: u32,
    pub pull_count: u32,
    pub pull_wait: Duration,
    pub lease: Duration,
    /// Overrides by Kratos template type (`verification_code_valid`, …).
    pub overrides: BTreeMap<String, TemplateOverride>,
    /// `courier.channels` (and `courier.http`): messages sent over HTTP, by channel id.
    pub channels: Vec<crate::channels::HttpChannel>,
}

impl CourierSettings {
    /// The HTTP channel carrying messages of `channel` (`sms`, `email`), if one is configured.
    pub fn channel(&self, channel: &str) -> Option<&crate::channels::HttpChannel> {
        self.channels.iter().find(|c| c.id == channel)
    }
}

/// The parts of one template type an operator replaced; the others stay built-in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateOverride {
    pub subject: Option<Template>,
    pub html: Option<Template>,
    pub plaintext: Option<Template>,
    /// The text message's body (`sms.body.plaintext`).
    pub sms: Option<Template>,
}

/// Whether TLS wraps the connection from the start or comes through STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: implicit TLS (RFC 8314).
    Implicit,
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtp://…?disable_starttls=true`: clear text.
    None,
}

/// `courier.smtp` resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub security: SmtpSecurity,
    pub skip_ssl_verify: bool,
    /// The name TLS checks the certificate for (`server_name`, else the host).
    pub server_name: String,
    pub from_address: String,
    pub from_name: String,
    pub headers: Vec<(String, String)>,
    pub local_name: String,
}

/// Resolves `courier:`. Template files are read relative to the file that names them.
pub fn resolve_courier(
    loaded: &Loaded,
    c: &CourierConfig,
    policy: &SourcePolicy,
    p: &mut Vec<Problem>,
) -> CourierSettings {
    let smtp = if c.smtp.connection_uri.is_empty() {
        None
    } else {
        resolve_smtp(loaded, &c.smtp, p)
    };
    if !matches!(c.delivery_strategy.as_str(), "smtp" | "http") {
        p.push(problem(
            loaded,
            "courier.delivery_strategy",
            format!(
                "`{}` is not supported: use smtp (courier.smtp) or http (courier.http.request_config)",
                c.delivery_strategy
            ),
        ));
    }
    let http = (c.delivery_strategy == "http").then_some(&c.http);
    if http.is_some_and(|h| h.request_config.is_null()) {
        p.push(problem(
            loaded,
            "courier.delivery_strategy",
            "`http` needs courier.http.request_config (url, method, body, …) to send email with",
        ));
    }
    let http = http.filter(|h| !h.request_config.is_null());
    let channels = crate::channels::resolve_channels(loaded, &c.channels, http, p);
    if !c.template_override_path.is_empty() {
        p.push(problem(
            loaded,
            "courier.template_override_path",
            "is not supported: name each replaced template under courier.templates.<template>.<valid|invalid>.email instead (file:// or base64://)",
        ));
    }
    let pull_wait = parse_duration(loaded, "courier.worker.pull_wait", &c.worker.pull_wait, p);
    let lease = parse_duration(loaded, "courier.worker.lease", &c.worker.lease, p);
    if lease < Duration::from_secs(2) {
        p.push(problem(
            loaded,
            "courier.worker.lease",
            "must be at least 2s",
        ));
    }
    let mut overrides = BTreeMap::new();
    let t = &c.templates;
    for (name, vi) in [
        ("recovery_code", &t.recovery_code),
        ("verification_code", &t.verification_code),
        ("recovery", &t.recovery),
        ("verification", &t.verification),
        ("login_code", &t.login_code),
        ("registration_code", &t.registration_code),
    ] {
        for (variant, ch) in [("valid", &vi.valid), ("invalid", &vi.invalid)] {
            let base = format!("courier.templates.{name}.{variant}");
            let mut o = TemplateOverride::default();
            for (part, url, slot) in [
                ("email.subject", &ch.email.subject, &mut o.subject),
                ("email.body.html", &ch.email.body.html, &mut o.html),
                (
                    "email.body.plaintext",
                    &ch.email.body.plaintext,
                    &mut o.plaintext,
                ),
            ] {
                if url.is_empty() {
                    continue;
                }
                let key = format!("{base}.{part}");
                *slot = read_template(loaded, &key, url, policy, p);
            }
            if !ch.sms.body.plaintext.is_empty() {
                let key = format!("{base}.sms.body.plaintext");
                o.sms = read_template(loaded, &key, &ch.sms.body.plaintext, policy, p);
            }
            // Tessera's messages are the code templates of verification, recovery and code
            // sign-in/sign-up, and the link templates (`recovery`, `verification`) of the
            // `link` method. Links go by email only, and code sign-in sends only `valid`
            // messages: any other override would never be sent.
            let set =
                o.subject.is_some() || o.html.is_some() || o.plaintext.is_some() || o.sms.is_some();
            let link = matches!(name, "recovery" | "verification");
            let sent = matches!(name, "recovery_code" | "verification_code")
                || (link && o.sms.is_none())
                || (variant == "valid" && matches!(name, "login_code" | "registration_code"));
            if set && sent {
                overrides.insert(format!("{name}_{variant}"), o);
            } else if set {
                p.push(problem(
                    loaded,
                    &base,
                    "Tessera never sends this template (links go by email only, and code sign-in sends only `valid` messages); remove it",
                ));
            }
        }
    }
    CourierSettings {
        smtp,
        message_retries: c.message_retries,
        pull_count: c.worker.pull_count.max(1),
        pull_wait,
        lease,
        overrides,
        channels,
    }
}

fn read_template(
    loaded: &Loaded,
    key: &str,
    url: &str,
    policy: &SourcePolicy,
    p: &mut Vec<Problem>,
) -> Option<Template> {
    let base = crate::load::base_dir(loaded, key);
    let bytes = match read_local(url, base.as_deref(), policy) {
        Ok(Document::Bytes(b)) => b,
        Ok(Document::Remote(_)) => {
            p.push(problem(
                loaded,
                key,
                format!("`{url}`: templates are read from file:// or base64:// only; save the template next to the configuration"),
            ));
            return None;
        }
        Err(e) => {
            p.push(problem(
                loaded,
                key,
                format!("cannot read the template: {e}"),
            ));
            return None;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            p.push(problem(loaded, key, format!("`{url}` is not UTF-8 text")));
            return None;
        }
    };
    match Template::parse(&text) {
        Ok(t) => Some(t),
        Err(e) => {
            p.push(problem(
                loaded,
                key,
                format!("the template `{url}` cannot be rendered by Tessera ({e}); rewrite it with field references only, or remove the key to use the built-in template"),
            ));
            None
        }
    }
}

fn resolve_smtp(loaded: &Loaded, c: &SmtpConfig, p: &mut Vec<Problem>) -> Option<SmtpSettings> {
    let key = "courier.smtp.connection_uri";
    let uri = match Url::parse(&c.connection_uri) {
        Ok(u) => u,
        Err(e) => {
            p.push(problem(
                loaded,
                key,
                format!(
                    "is not a URL ({e}); write e.g. smtps://user:password@mail.example.com:465/"
                ),
            ));
            return None;
        }
    };
    let query: BTreeMap<String, String> = uri.query_pairs().into_owned().collect();
    let flag = |name: &str, p: &mut Vec<Problem>| match query.get(name).map(String::as_str) {
        None => false,
        Some("true" | "1" | "TRUE" | "True" | "t" | "T") => true,
        Some("false" | "0" | "FALSE" | "False" | "f" | "F" | "") => false,
        Some(other) => {
            p.push(problem(
                loaded,
                key,
                format!("`{name}={other}` must be true or false"),
            ));
            false
        }
    };
    let security = match uri.scheme() {
        "smtps" => SmtpSecurity::Implicit,
        "smtp" if flag("disable_starttls", p) => SmtpSecurity::None,
        "smtp" => SmtpSecurity::StartTls,
        other => {
            p.push(problem(
                loaded,
                key,
                format!("the scheme `{other}` is not supported: use smtp:// (STARTTLS, or disable_starttls=true) or smtps:// (implicit TLS)"),
            ));
            return None;
        }
    };
    let skip_ssl_verify = flag("skip_ssl_verify", p);
    let Some(host) = uri.host_str().filter(|h| !h.is_empty()) else {
        p.push(problem(loaded, key, "names no host"));
        return None;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port().unwrap_or(match security {
        SmtpSecurity::Implicit => 465,
        _ => 587,
    });
    let decode = percent_decode;
    if !c.client_cert_path.is_empty() || !c.client_key_path.is_empty() {
        p.push(problem(
            loaded,
            "courier.smtp.client_cert_path",
            "TLS client certificates for SMTP are not supported yet; remove client_cert_path and client_key_path",
        ));
    }
    if c.from_address.is_empty() || !c.from_address.contains('@') {
        p.push(problem(
            loaded,
            "courier.smtp.from_address",
            "must be an email address such as no-reply@example.com",
        ));
    }
    Some(SmtpSettings {
        server_name: query
            .get("server_name")
            .cloned()
            .unwrap_or_else(|| host.clone()),
        host,
        port,
        username: decode(uri.username()),
        password: uri.password().map(decode).unwrap_or_default(),
        security,
        skip_ssl_verify,
        from_address: c.from_address.clone(),
        from_name: c.from_name.clone(),
        headers: c
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        local_name: c.local_name.clone(),
    })
}

/// `%XX` sequences of a URL's user part decoded (a password may hold `@` or `:`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(yaml: &str) -> (CourierSettings, Vec<Problem>) {
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        let s = resolve_courier(
            &loaded,
            &loaded.config.courier,
            &SourcePolicy::default(),
            &mut p,
        );
        (s, p)
    }

    #[test]
    fn kratos_quickstart_uri_is_implicit_tls_without_verification() {
        let (s, p) = resolved(
            "courier:\n  smtp:\n    connection_uri: smtps://test:te%40st@mailslurper:1025/?skip_ssl_verify=true\n",
        );
        assert!(p.is_empty(), "{p:?}");
        let smtp = s.smtp.expect("smtp");
        assert_eq!(smtp.security, SmtpSecurity::Implicit);
        assert!(smtp.skip_ssl_verify);
        assert_eq!((smtp.host.as_str(), smtp.port), ("mailslurper", 1025));
        assert_eq!(smtp.password, "te@st");
        assert_eq!(s.message_retries, 5);
        let (s, _) =
            resolved("courier:\n  smtp:\n    connection_uri: smtp://h:25/?disable_starttls=true\n");
        assert_eq!(s.smtp.expect("smtp").security, SmtpSecurity::None);
        let (s, _) = resolved("courier:\n  smtp:\n    connection_uri: smtp://h/\n");
        assert_eq!(s.smtp.expect("smtp").security, SmtpSecurity::StartTls);
    }

    #[test]
    fn bad_uris_and_strategies_are_problems_with_their_key_and_line() {
        let (_, p) = resolved(
            "courier:\n  smtp:\n    connection_uri: http://x/\n  delivery_strategy: pigeon\n",
        );
        let keys: Vec<(&str, String)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.location.to_string()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("courier.smtp.connection_uri", "t.yml:3".to_string()),
                ("courier.delivery_strategy", "t.yml:4".to_string()),
            ]
        );
    }

    #[test]
    fn a_go_template_override_that_cannot_render_is_refused_naming_key_and_file() {
        use base64::Engine;
        let good =
            base64::engine::general_purpose::STANDARD.encode("Code: {{ .VerificationCode }}");
        let bad = base64::engine::general_purpose::STANDARD
            .encode("{{ if .Identity }}Hi{{ end }} {{ .VerificationCode }}");
        let (s, p) = resolved(&format!(
            "courier:\n  templates:\n    verification_code:\n      valid:\n        email:\n          body:\n            plaintext: base64://{good}\n"
        ));
        assert!(p.is_empty(), "{p:?}");
        assert!(s.overrides["verification_code_valid"].plaintext.is_some());
        let (_, p) = resolved(&format!(
            "courier:\n  templates:\n    recovery_code:\n      valid:\n        email:\n          subject: base64://{bad}\n"
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0].key,
            "courier.templates.recovery_code.valid.email.subject"
        );
        assert!(p[0].message.contains("line 1"), "{p:?}");
        assert!(p[0].message.contains("if .Identity"), "{p:?}");
    }
}
