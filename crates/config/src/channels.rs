//! `courier.channels`: messages sent over HTTP (Kratos's `type: http` channels), SMS above all.
//! Each channel is an `id` (`sms`, or `email` to send email through an HTTP API instead of
//! SMTP) and a `request_config` of the shape `web_hook`s use (`url`, `method`, `headers`, a
//! Jsonnet `body`, `auth`), resolved into a [`RequestSpec`] by `hooks::resolve_request`, so the
//! two share one set of rules and one sender (`tessera_social::request`).
//!
//! Kratos's older spelling, `courier.delivery_strategy: http` with `courier.http.request_config`,
//! is the `email` channel.

use crate::hooks::{AuthFile, RequestSpec, WebHookFile, resolve_request};
use crate::load::{Loaded, Problem, problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of `courier.channels` as written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub id: String,
    /// Kratos's channel type; `http` is the only one that needs a channel entry (`smtp` is
    /// `courier.smtp`).
    #[serde(rename = "type", default = "http")]
    pub kind: String,
    /// Checked key by key in [`resolve_channels`], so an error names the exact key.
    #[serde(default)]
    pub request_config: Value,
}

fn http() -> String {
    "http".into()
}

/// `courier.http` (Kratos's pre-channels spelling of the HTTP email channel).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CourierHttpConfig {
    pub request_config: Value,
}

/// A resolved HTTP channel.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpChannel {
    /// `sms` or `email`: which messages it carries.
    pub id: String,
    pub request: RequestSpec,
}

/// `request_config` as written: `web_hook`'s request keys, nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestConfigFile {
    url: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    auth: Option<AuthFile>,
}

fn post() -> String {
    "POST".into()
}

/// The channel ids Tessera sends messages on.
pub const CHANNEL_IDS: &[&str] = &["sms", "email"];

/// Resolves `courier.channels` (and `courier.http` when `delivery_strategy` is `http`).
pub fn resolve_channels(
    loaded: &Loaded,
    channels: &[ChannelConfig],
    http: Option<&CourierHttpConfig>,
    p: &mut Vec<Problem>,
) -> Vec<HttpChannel> {
    let mut out: Vec<HttpChannel> = Vec::new();
    let mut entries: Vec<(String, String, &str, &Value)> = channels
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("courier.channels.{i}"),
                c.id.clone(),
                c.kind.as_str(),
                &c.request_config,
            )
        })
        .collect();
    if let Some(h) = http {
        entries.push((
            "courier.http".into(),
            "email".into(),
            "http",
            &h.request_config,
        ));
    }
    for (base, id, kind, rc) in entries {
        if !CHANNEL_IDS.contains(&id.as_str()) {
            p.push(problem(
                loaded,
                &format!("{base}.id"),
                format!(
                    "`{id}` is not a channel Tessera sends on: use `sms` (text messages) or `email` (email through an HTTP API instead of SMTP)"
                ),
            ));
            continue;
        }
        if kind != "http" {
            p.push(problem(
                loaded,
                &format!("{base}.type"),
                format!(
                    "`{kind}` is not supported here: a channel is `type: http` (email over SMTP is configured under courier.smtp)"
                ),
            ));
            continue;
        }
        if out.iter().any(|c| c.id == id) {
            p.push(problem(
                loaded,
                &format!("{base}.id"),
                format!("the channel `{id}` is configured twice; keep one"),
            ));
            continue;
        }
        let key = format!("{base}.request_config");
        if rc.is_null() {
            p.push(problem(
                loaded,
                &key,
                "an http channel needs a request_config with at least `url`",
            ));
            continue;
        }
        let file: RequestConfigFile = match serde_path_to_error::deserialize(rc) {
            Ok(f) => f,
            Err(e) => {
                let path = e.path().to_string();
                let k = if path == "." {
                    key.clone()
                } else {
                    format!("{key}.{path}")
                };
                p.push(problem(
                    loaded,
                    &k,
                    format!(
                        "{}; a request_config takes url, method, headers, body (file://, base64:// or https:// Jsonnet), auth (type api_key with config name/value/in header, cookie or query, or basic_auth with config user/password)",
                        e.inner()
                    ),
                ));
                continue;
            }
        };
        let whf = WebHookFile::request(file.url, file.method, file.headers, file.body, file.auth);
        if let Some(request) = resolve_request(loaded, &key, &whf, p) {
            out.push(HttpChannel { id, request });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{ApiKeyIn, RequestAuth};

    fn resolved(yaml: &str) -> (Vec<HttpChannel>, Vec<Problem>) {
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        let c = &loaded.config.courier;
        let http = (c.delivery_strategy == "http").then_some(&c.http);
        let out = resolve_channels(&loaded, &c.channels, http, &mut p);
        (out, p)
    }

    #[test]
    fn an_sms_channel_resolves_with_its_auth() {
        let (c, p) = resolved(
            "courier:\n  channels:\n    - id: sms\n      type: http\n      request_config:\n        url: https://sms.example/send\n        method: post\n        body: base64://e30=\n        headers:\n          Content-Type: application/x-www-form-urlencoded\n        auth:\n          type: api_key\n          config:\n            name: api_id\n            value: s3cret\n            in: query\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, "sms");
        assert_eq!(c[0].request.method, "POST");
        assert_eq!(c[0].request.key, "courier.channels.0.request_config");
        assert_eq!(
            c[0].request.auth,
            Some(RequestAuth::ApiKey {
                name: "api_id".into(),
                value: "s3cret".into(),
                in_: ApiKeyIn::Query
            })
        );
        assert!(!format!("{:?}", c[0]).contains("s3cret"));
    }

    #[test]
    fn bad_channels_are_refused_naming_key_and_line() {
        let (c, p) = resolved(
            "courier:\n  channels:\n    - id: fax\n      request_config:\n        url: https://x/\n    - id: sms\n      request_config:\n        url: ftp://x/\n    - id: email\n      request_config:\n        url: https://x/\n        timeout: 3s\n",
        );
        assert!(c.is_empty(), "{c:?}");
        let keys: Vec<(&str, String)> = p
            .iter()
            .map(|p| (p.key.as_str(), p.location.to_string()))
            .collect();
        assert_eq!(keys[0], ("courier.channels.0.id", "t.yml:3".to_string()));
        assert_eq!(keys[1].0, "courier.channels.1.request_config.url");
        assert!(
            keys[2].0.starts_with("courier.channels.2.request_config"),
            "{p:?}"
        );
        assert!(p[2].message.contains("timeout"), "{p:?}");
        let (_, p) = resolved(
            "courier:\n  channels:\n    - id: sms\n      request_config:\n        url: https://a/\n    - id: sms\n      request_config:\n        url: https://b/\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("twice"), "{p:?}");
    }

    #[test]
    fn kratos_http_delivery_strategy_is_the_email_channel() {
        let (c, p) = resolved(
            "courier:\n  delivery_strategy: http\n  http:\n    request_config:\n      url: https://mail-api.example/send\n      method: POST\n      body: base64://e30=\n",
        );
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, "email");
        assert_eq!(c[0].request.key, "courier.http.request_config");
    }
}
