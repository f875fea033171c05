//! The configuration a test server runs with, built as JSON rather than hand-indented YAML.
//!
//! A test says what it adds to the base configuration (database, loopback ports, a secret,
//! cheap password hashes) as a [`Config`]: `json!` fragments deep-merged in order (objects
//! merge key by key, anything else is replaced), plus steps for what many tests repeat
//! ([`Config::session_hook`], [`Config::provider`]). YAML text is still accepted and goes
//! through the same merge. The result is written as the server's `tessera.yml` (JSON is YAML)
//! and read back by `tessera_config::load`, the loader `tessera serve` uses, so every key is
//! checked exactly as in production and the file stays usable by the `tessera` commands a test
//! runs against the same server.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// What a test adds to the base configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config(Value);

impl Config {
    /// Nothing added: the base configuration alone.
    pub fn new() -> Self {
        Config(Value::Object(Map::new()))
    }

    /// Deep-merges `fragment` over what is there (later wins, as with several config files).
    pub fn with(mut self, fragment: Value) -> Self {
        merge(&mut self.0, fragment);
        self
    }

    /// Registration through `methods` issues a session (Kratos's `session` hook), e.g.
    /// `&["password"]` or `&["password", "oidc"]`.
    pub fn session_hook(self, methods: &[&str]) -> Self {
        let after: Map<String, Value> = methods
            .iter()
            .map(|m| (m.to_string(), json!({"hooks": [{"hook": "session"}]})))
            .collect();
        self.with(json!({"selfservice": {"flows": {"registration": {"after": after}}}}))
    }

    /// Enables the `oidc` method and appends one provider entry to its list.
    pub fn provider(mut self, entry: Value) -> Self {
        self = self.with(json!({"selfservice": {"methods": {"oidc": {"enabled": true}}}}));
        let providers = &mut self.0["selfservice"]["methods"]["oidc"]["config"]["providers"];
        match providers {
            Value::Array(list) => list.push(entry),
            _ => *providers = json!([entry]),
        }
        self
    }

    /// The added configuration as JSON.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

impl From<Value> for Config {
    fn from(v: Value) -> Self {
        Config::new().with(v)
    }
}

/// YAML text (what the suites wrote before [`Config`]), read by the configuration loader itself;
/// a fragment it refuses fails the test with the loader's message.
impl From<&str> for Config {
    fn from(yaml: &str) -> Self {
        if yaml.trim().is_empty() {
            return Config::new();
        }
        match tessera_config::load_str("test config", yaml, &HashMap::new()) {
            Ok(loaded) => Config::from(loaded.raw),
            Err(e) => panic!("test config invalid:\n{e}\n---\n{yaml}"),
        }
    }
}

impl From<&String> for Config {
    fn from(yaml: &String) -> Self {
        Config::from(yaml.as_str())
    }
}

impl From<String> for Config {
    fn from(yaml: String) -> Self {
        Config::from(yaml.as_str())
    }
}

impl From<&Config> for Config {
    fn from(c: &Config) -> Self {
        c.clone()
    }
}

/// Deep merge: objects key by key, everything else (arrays included) replaced by `over`.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A mapper (or any document) as the `base64://` URL a configuration refers to it by.
pub fn base64_url(source: &str) -> String {
    format!(
        "base64://{}",
        base64::engine::general_purpose::STANDARD.encode(source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep_for_objects_and_replaces_the_rest() {
        let mut base = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge(
            &mut base,
            json!({"a": {"c": [3], "e": true}, "d": {"f": 1}}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": [3], "e": true}, "d": {"f": 1}})
        );
    }

    #[test]
    fn providers_accumulate_and_enable_the_method() {
        let c = Config::new()
            .provider(json!({"id": "a"}))
            .provider(json!({"id": "b"}))
            .session_hook(&["oidc"]);
        let oidc = &c.value()["selfservice"]["methods"]["oidc"];
        assert_eq!(oidc["enabled"], true);
        assert_eq!(
            oidc["config"]["providers"],
            json!([{"id": "a"}, {"id": "b"}])
        );
        assert_eq!(
            c.value()["selfservice"]["flows"]["registration"]["after"]["oidc"]["hooks"],
            json!([{"hook": "session"}])
        );
    }

    #[test]
    fn yaml_goes_through_the_loader() {
        let c = Config::from("selfservice:\n  default_browser_return_url: https://a.example/\n");
        assert_eq!(
            c.value()["selfservice"]["default_browser_return_url"],
            "https://a.example/"
        );
    }

    #[test]
    #[should_panic(expected = "test config invalid")]
    fn yaml_with_an_unknown_key_fails_the_test() {
        let _ = Config::from("selfservise: {}\n");
    }
}
