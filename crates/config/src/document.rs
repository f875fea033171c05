//! The configuration as a document a person downloads, edits and uploads again
//! (`tessera identity-config get|update`): secrets are replaced by placeholders on the way out
//! and put back on the way in, and the document can be written as YAML.
//!
//! A placeholder names a fingerprint of the secret it stands for (`<redacted:1a2b3c4d>`, the
//! first 8 hex digits of its SHA-256), not its position. Moving a secret (rotating cookie
//! secrets puts a new one first) or reordering providers therefore keeps the right value, and a
//! placeholder that matches no running secret is an error instead of a silently wrong secret.
//! Thirty-two bits of a hash reveal nothing useful about a secret of 16 or more random
//! characters.

use serde_json::{Map, Value};
use std::collections::HashMap;

const PREFIX: &str = "<redacted:";

/// Strings that are URIs whose password (`scheme://user:password@host`) is a secret: the
/// database DSN and the SMTP server's `connection_uri`.
const URI_SECRET_PATHS: &[&[&str]] = &[&["dsn"], &["courier", "smtp", "connection_uri"]];

/// The string at `path`, when there is one.
fn string_at<'a>(doc: &'a mut Value, path: &[&str]) -> Option<&'a mut String> {
    let mut at = doc;
    for key in path {
        at = at.get_mut(*key)?;
    }
    match at {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Where secrets live in a document: every string under these keys is redacted. `*` is any
/// array index.
const SECRET_PATHS: &[&[&str]] = &[
    &["secrets", "default", "*"],
    &["secrets", "cookie", "*"],
    &["secrets", "cipher", "*"],
    &["oidc_provider", "registration", "initial_access_token"],
    &[
        "selfservice",
        "methods",
        "oidc",
        "config",
        "providers",
        "*",
        "client_secret",
    ],
    &[
        "selfservice",
        "methods",
        "oidc",
        "config",
        "providers",
        "*",
        "apple_private_key",
    ],
    // The courier's HTTP channels carry an SMS gateway's credentials.
    &[
        "courier",
        "channels",
        "*",
        "request_config",
        "auth",
        "config",
        "value",
    ],
    &[
        "courier",
        "channels",
        "*",
        "request_config",
        "auth",
        "config",
        "password",
    ],
    &["courier", "channels", "*", "request_config", "headers", "*"],
    &[
        "courier",
        "http",
        "request_config",
        "auth",
        "config",
        "value",
    ],
    &[
        "courier",
        "http",
        "request_config",
        "auth",
        "config",
        "password",
    ],
    &["courier", "http", "request_config", "headers", "*"],
];

/// Where a secret sits inside one entry of a hook list (`*`: any header name).
const HOOK_SECRETS: &[&[&str]] = &[
    &["*", "config", "auth", "config", "value"],
    &["*", "config", "auth", "config", "password"],
    &["*", "config", "headers", "*"],
];

fn placeholder(secret: &str) -> String {
    let hash = tessera_core::crypto::token_hash(secret);
    format!("{PREFIX}{}>", &hash[..8])
}

/// The password of a URL-shaped DSN (`postgres://user:password@host/db`), as a byte range.
fn dsn_password(dsn: &str) -> Option<std::ops::Range<usize>> {
    let rest_at = dsn.find("://")? + 3;
    let authority_end = dsn[rest_at..]
        .find(['/', '?'])
        .map_or(dsn.len(), |i| rest_at + i);
    let at = dsn[rest_at..authority_end].rfind('@')? + rest_at;
    let colon = dsn[rest_at..at].find(':')? + rest_at;
    (colon + 1 < at).then_some(colon + 1..at)
}

fn visit_secrets(doc: &mut Value, f: &mut dyn FnMut(&str, &mut String)) {
    fn walk(v: &mut Value, path: &[&str], key: String, f: &mut dyn FnMut(&str, &mut String)) {
        match (path.split_first(), v) {
            (None, Value::String(s)) => f(&key, s),
            (Some((&"*", rest)), Value::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, rest, format!("{key}.{i}"), f);
                }
            }
            (Some((&"*", rest)), Value::Object(map)) => {
                for (name, item) in map.iter_mut() {
                    walk(item, rest, format!("{key}.{name}"), f);
                }
            }
            (Some((name, rest)), Value::Object(map)) => {
                if let Some(child) = map.get_mut(*name) {
                    let key = if key.is_empty() {
                        (*name).to_string()
                    } else {
                        format!("{key}.{name}")
                    };
                    walk(child, rest, key, f);
                }
            }
            _ => {}
        }
    }
    for path in SECRET_PATHS {
        walk(doc, path, String::new(), f);
    }
    // Web hooks' credentials and header values (which often carry an API key).
    for list in crate::load::HOOK_LISTS {
        for tail in HOOK_SECRETS {
            let path: Vec<&str> = list.split('.').chain(tail.iter().copied()).collect();
            walk(doc, &path, String::new(), f);
        }
    }
}

/// The document with every secret (and a DSN's password) replaced by its placeholder.
pub fn redact(doc: &Value) -> Value {
    let mut out = doc.clone();
    visit_secrets(&mut out, &mut |_, s| *s = placeholder(s));
    for path in URI_SECRET_PATHS {
        if let Some(uri) = string_at(&mut out, path)
            && let Some(range) = dsn_password(uri)
        {
            let p = placeholder(&uri[range.clone()]);
            uri.replace_range(range, &p);
        }
    }
    out
}

/// A placeholder in an uploaded document that matches no secret of the running configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownPlaceholder {
    /// Dotted key, e.g. `secrets.cookie.1`.
    pub key: String,
    pub placeholder: String,
}

/// Puts the running configuration's secrets back where `doc` has placeholders. Returns whether
/// anything was restored (the document then differs from the uploaded text), or every
/// placeholder that matches nothing.
pub fn restore(doc: &mut Value, running: &Value) -> Result<bool, Vec<UnknownPlaceholder>> {
    let mut known: HashMap<String, String> = HashMap::new();
    let mut running = running.clone();
    visit_secrets(&mut running, &mut |_, s| {
        known.insert(placeholder(s), s.clone());
    });
    for path in URI_SECRET_PATHS {
        if let Some(uri) = string_at(&mut running, path)
            && let Some(range) = dsn_password(uri)
        {
            let secret = uri[range].to_string();
            known.insert(placeholder(&secret), secret);
        }
    }

    let mut restored = false;
    let mut unknown = Vec::new();
    visit_secrets(doc, &mut |key, s| {
        if s.starts_with(PREFIX) {
            match known.get(s.as_str()) {
                Some(secret) => {
                    *s = secret.clone();
                    restored = true;
                }
                None => unknown.push(UnknownPlaceholder {
                    key: key.to_string(),
                    placeholder: s.clone(),
                }),
            }
        }
    });
    for path in URI_SECRET_PATHS {
        let Some(uri) = string_at(doc, path) else {
            continue;
        };
        let Some(start) = uri.find(PREFIX) else {
            continue;
        };
        let end = uri[start..].find('>').map(|i| start + i + 1);
        match end.and_then(|end| known.get(&uri[start..end]).map(|s| (end, s))) {
            Some((end, secret)) => {
                uri.replace_range(start..end, secret);
                restored = true;
            }
            None => unknown.push(UnknownPlaceholder {
                key: path.join("."),
                placeholder: uri[start..end.unwrap_or(uri.len())].to_string(),
            }),
        }
    }
    if unknown.is_empty() {
        Ok(restored)
    } else {
        Err(unknown)
    }
}

/// YAML for a JSON value: block style, keys in document order, strings quoted whenever a plain
/// scalar could be read back as something else. `crate::yaml::parse` reads it back unchanged.
///
/// Written by hand rather than with `serde_saphyr::to_string` (0.0.25), because the download
/// must read back as the same document and that emitter loses data in two cases a
/// configuration can hold: a string or key ending in a space is written plain (and read back
/// without the space), and a `<<` key is written plain (and read back as a merge key). The
/// test `yaml_output_reads_back_as_the_same_document` pins both.
pub fn to_yaml(doc: &Value) -> String {
    let mut out = String::new();
    match doc {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &Map<String, Value>, level: usize) {
    let mut first = true;
    for (k, v) in map {
        // The first key of a mapping inside a sequence item shares the `- ` line.
        if !(first && out.ends_with("- ")) {
            indent(out, level);
        }
        first = false;
        out.push_str(&key(k));
        out.push(':');
        write_child(out, v, level);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, level + 2),
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, level + 2);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_child(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, level + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, level + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn key(k: &str) -> String {
    if plain_ok(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if plain_ok(s) => s.clone(),
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// JSON's double-quoted strings are valid YAML double-quoted scalars.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Whether a string can be written unquoted and read back as the same string.
fn plain_ok(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE", "yes",
        "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".nan",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    if RESERVED.contains(&s) || s.parse::<f64>().is_ok() || s.starts_with("0x") {
        return false;
    }
    if !(first.is_alphanumeric() || first == '/' || first == '.' || first == '_') {
        return false;
    }
    if s.ends_with(' ') || s.ends_with(':') || s.contains(": ") || s.contains(" #") {
        return false;
    }
    s.chars().all(|c| {
        c.is_alphanumeric() || " _-./:@+=?&%~()".contains(c) || (!c.is_ascii() && !c.is_control())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "dsn": "postgres://tessera:s3cret-pass@db.internal:5432/tessera?sslmode=disable",
            "courier": { "smtp": { "connection_uri": "smtps://mailer:smtp-pass-9876@mail.example:465/?skip_ssl_verify=false" } },
            "secrets": { "cookie": ["cookie-secret-one-1234", "cookie-secret-two-5678"], "cipher": ["cipher-secret-abcdefgh"] },
            "selfservice": { "methods": { "oidc": { "enabled": true, "config": { "providers": [
                { "id": "github", "provider": "github", "client_id": "abc", "client_secret": "gh-secret" },
                { "id": "vk", "provider": "vk", "client_id": "123", "client_secret": "vk-secret" }
            ] } } } },
            "serve": { "public": { "port": 4433, "base_url": "http://127.0.0.1:4433/" } },
            "odd": ["yes", "", "12", "a: b", "-dash", "# hash", "Ж и 中文", "line\nbreak", "trail ", null, true, 1.5]
        })
    }

    #[test]
    fn web_hook_credentials_and_headers_are_redacted_and_restored() {
        let doc = json!({"selfservice": {"flows": {"login": {"after": {"password": {"hooks": [
            {"hook": "web_hook", "config": {
                "url": "https://h.example/x", "method": "POST",
                "headers": {"X-Api-Key": "hdr-secret-value"},
                "auth": {"type": "basic_auth", "config": {"user": "u", "password": "pw-secret-value"}}
            }}
        ]}}}}}});
        let out = redact(&doc).to_string();
        assert!(
            !out.contains("hdr-secret-value") && !out.contains("pw-secret-value"),
            "{out}"
        );
        assert!(
            out.contains("https://h.example/x") && out.contains("\"user\":\"u\""),
            "{out}"
        );
    }

    #[test]
    fn redaction_hides_every_secret_and_the_dsn_password() {
        let red = redact(&sample());
        let text = red.to_string();
        for secret in [
            "s3cret-pass",
            "cookie-secret-one-1234",
            "cookie-secret-two-5678",
            "cipher-secret-abcdefgh",
            "gh-secret",
            "vk-secret",
            "smtp-pass-9876",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(
            red["courier"]["smtp"]["connection_uri"]
                .as_str()
                .is_some_and(|u| u.starts_with("smtps://mailer:<redacted:")
                    && u.ends_with("@mail.example:465/?skip_ssl_verify=false")),
            "{}",
            red["courier"]["smtp"]["connection_uri"]
        );
        assert!(
            red["dsn"]
                .as_str()
                .is_some_and(|d| d.starts_with("postgres://tessera:<redacted:")
                    && d.ends_with("@db.internal:5432/tessera?sslmode=disable")),
            "{}",
            red["dsn"]
        );
        assert_eq!(
            red["selfservice"]["methods"]["oidc"]["config"]["providers"][0]["client_id"],
            "abc"
        );
    }

    #[test]
    fn restoring_follows_the_secret_not_its_position() {
        let running = sample();
        let mut upload = redact(&running);
        // Rotate: a new cookie secret first, the old ones after it; swap the providers.
        let cookies = upload["secrets"]["cookie"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        upload["secrets"]["cookie"] = json!(["brand-new-cookie-secret", cookies[0], cookies[1]]);
        let providers = upload["selfservice"]["methods"]["oidc"]["config"]["providers"]
            .as_array_mut()
            .expect("providers");
        providers.swap(0, 1);
        assert_eq!(restore(&mut upload, &running), Ok(true));
        assert_eq!(
            upload["secrets"]["cookie"],
            json!([
                "brand-new-cookie-secret",
                "cookie-secret-one-1234",
                "cookie-secret-two-5678"
            ])
        );
        let p = &upload["selfservice"]["methods"]["oidc"]["config"]["providers"];
        assert_eq!(p[0]["client_secret"], "vk-secret");
        assert_eq!(p[1]["client_secret"], "gh-secret");
        assert_eq!(upload["dsn"], running["dsn"]);
        assert_eq!(
            upload["courier"]["smtp"]["connection_uri"],
            running["courier"]["smtp"]["connection_uri"]
        );
    }

    #[test]
    fn a_placeholder_that_matches_nothing_is_reported_by_key() {
        let mut upload = redact(&sample());
        upload["secrets"]["cipher"][0] = json!("<redacted:00000000>");
        let err = restore(&mut upload, &sample()).expect_err("unknown placeholder");
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].key, "secrets.cipher.0");
        let mut plain = sample();
        assert_eq!(restore(&mut plain, &sample()), Ok(false));
    }

    #[test]
    fn yaml_output_reads_back_as_the_same_document() {
        for doc in [
            sample(),
            redact(&sample()),
            json!({}),
            json!({"a": [], "b": {}, "c": [[1, 2], [{"x": 1}]]}),
            // What serde-saphyr's emitter writes plain and reads back as something else.
            json!({
                "<<": {"a": 1},
                "key ": "trailing ",
                "label": " leading",
                "claims": {"<<": "x", "tab\t": "\ttab"},
                "numbers": ["1_000", "0b11", "tRUE", "nULL", ".inf", "18446744073709551616"]
            }),
        ] {
            let text = to_yaml(&doc);
            let (back, _) = crate::yaml::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let back = if back.is_null() { json!({}) } else { back };
            assert_eq!(back, doc, "{text}");
        }
    }
}
