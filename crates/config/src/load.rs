//! Loading: read each `--config` file (YAML or JSON), merge them (later files win), apply
//! environment overrides, set aside the Kratos keys Tessera does not implement yet (one warning
//! each), then deserialise and validate. Every error names the key and where it was set.

use crate::model::Config;
use crate::yaml;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a configuration value came from, so errors can point at it.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File { path: PathBuf, line: usize },
    Env { var: String },
    Default,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line } => write!(f, "{}:{line}", path.display()),
            Location::Env { var } => write!(f, "environment variable {var}"),
            Location::Default => write!(f, "built-in default"),
        }
    }
}

/// One or more problems with the configuration; Display prints each on its own line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted key, e.g. `serve.public.port`; empty for file-level errors.
    pub key: String,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.key.is_empty() {
                write!(f, "{}: {}", p.location, p.message)?;
            } else {
                write!(f, "`{}` ({}): {}", p.key, p.location, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn single(key: &str, location: Location, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem {
                key: key.into(),
                location,
                message: message.into(),
            }],
        }
    }
}

/// A loaded configuration plus what is needed to explain it later.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The merged document as written (before defaults), used by `identity-config get`.
    pub raw: Value,
    pub locations: HashMap<String, Location>,
    /// Kratos keys that were accepted but are not implemented, with where they were set.
    pub warnings: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl Loaded {
    pub fn location(&self, key: &str) -> Location {
        locate(&self.locations, key)
    }
}

pub(crate) fn locate(locations: &HashMap<String, Location>, key: &str) -> Location {
    let mut k = key.to_string();
    loop {
        if let Some(l) = locations.get(&k) {
            return l.clone();
        }
        match k.rfind('.') {
            Some(i) => k.truncate(i),
            None => return Location::Default,
        }
    }
}

/// Kratos configuration keys Tessera accepts without implementing them (yet), so a real
/// `kratos.yml` starts unchanged. `*` matches any one key. The second-factor methods are turned
/// off by `mfa::set_aside_unimplemented_factors`, with a warning, when enabled.
const ACCEPTED_UNIMPLEMENTED: &[&str] = &[
    "version",
    "courier.sms",
    "ciphers",
    "feature_flags",
    "oauth2_provider",
    "organizations",
    "tracing",
    "dev",
    "help",
    "sqa-opt-out",
    "watch-courier",
    "expose-metrics-port",
    "clients",
    "preview",
    "security",
    "cookies",
    "database",
    "serve.public.socket",
    "serve.admin.socket",
    "selfservice.methods.code.passwordless_login_fallback_enabled",
    "selfservice.methods.profile",
    "selfservice.methods.saml",
    "selfservice.methods.password.config.haveibeenpwned_enabled",
    "selfservice.methods.password.config.haveibeenpwned_host",
    "selfservice.methods.password.config.max_breaches",
    "selfservice.methods.password.config.ignore_network_errors",
    "selfservice.methods.oidc.config.base_redirect_uri",
    "selfservice.flows.login.style",
    "selfservice.flows.registration.login_hints",
    "selfservice.flows.registration.enable_legacy_one_step",
    "selfservice.flows.registration.after.webauthn",
    "selfservice.flows.registration.after.passkey",
    "selfservice.flows.registration.after.totp",
    "selfservice.flows.registration.after.saml",
    // Hooks run (`hooks.rs`); the return URLs after login and settings and the methods
    // Tessera does not have are still set aside.
    "selfservice.flows.login.after.default_browser_return_url",
    "selfservice.flows.login.after.*.default_browser_return_url",
    "selfservice.flows.login.after.webauthn",
    "selfservice.flows.login.after.passkey",
    "selfservice.flows.login.after.totp",
    "selfservice.flows.login.after.lookup_secret",
    "selfservice.flows.login.after.saml",
    "selfservice.flows.settings.after.default_browser_return_url",
    "selfservice.flows.settings.after.*.default_browser_return_url",
    "selfservice.flows.settings.after.totp",
    "selfservice.flows.settings.after.webauthn",
    "selfservice.flows.settings.after.passkey",
    "selfservice.flows.settings.after.lookup_secret",
    "selfservice.flows.settings.after.saml",
    "session.whoami.tokenizer",
    "session.earliest_possible_extend",
    "hashers.argon2.salt_length",
    "hashers.argon2.key_length",
    "hashers.argon2.expected_duration",
    "hashers.argon2.expected_deviation",
    "hashers.argon2.dedicated_memory",
    "hashers.bcrypt",
];

/// Hooks that Kratos configs commonly carry and Tessera does not run yet; they are skipped with a
/// warning instead of failing the start.
const ACCEPTED_UNIMPLEMENTED_HOOKS: &[&str] = &["two_step_registration"];

/// Every hook list Tessera reads (see `hooks.rs`).
pub(crate) const HOOK_LISTS: &[&str] = &[
    "selfservice.flows.registration.before.hooks",
    "selfservice.flows.registration.after.hooks",
    "selfservice.flows.registration.after.password.hooks",
    "selfservice.flows.registration.after.oidc.hooks",
    "selfservice.flows.registration.after.code.hooks",
    "selfservice.flows.login.before.hooks",
    "selfservice.flows.login.after.hooks",
    "selfservice.flows.login.after.password.hooks",
    "selfservice.flows.login.after.oidc.hooks",
    "selfservice.flows.login.after.code.hooks",
    "selfservice.flows.settings.before.hooks",
    "selfservice.flows.settings.after.hooks",
    "selfservice.flows.settings.after.password.hooks",
    "selfservice.flows.settings.after.profile.hooks",
    "selfservice.flows.settings.after.oidc.hooks",
];

/// Loads and validates configuration from files and the given environment.
pub fn load(files: &[PathBuf], env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::single(
                "",
                Location::File {
                    path: path.clone(),
                    line: 0,
                },
                format!("cannot read the configuration file: {e}"),
            )
        })?;
        docs.push((path.clone(), text));
    }
    load_docs(&docs, env, &mut |_| Ok(()))
}

/// Loads from in-memory documents; `name` stands in for the file path in messages.
pub fn load_str(
    name: &str,
    text: &str,
    env: &HashMap<String, String>,
) -> Result<Loaded, ConfigError> {
    load_docs(&[(PathBuf::from(name), text.to_string())], env, &mut |_| {
        Ok(())
    })
}

/// Loads a document that is about to become the configuration file at `path` (an upload
/// through `identity-config update`): messages point at `path` and the lines of `text`, and
/// `prepare` may change the parsed document first (put back redacted secrets).
pub fn load_document(
    path: &Path,
    text: &str,
    env: &HashMap<String, String>,
    prepare: &mut dyn FnMut(&mut Value) -> Result<(), ConfigError>,
) -> Result<Loaded, ConfigError> {
    load_docs(&[(path.to_path_buf(), text.to_string())], env, prepare)
}

fn load_docs(
    docs: &[(PathBuf, String)],
    env: &HashMap<String, String>,
    prepare: &mut dyn FnMut(&mut Value) -> Result<(), ConfigError>,
) -> Result<Loaded, ConfigError> {
    let mut merged = Value::Object(Map::new());
    let mut locations: HashMap<String, Location> = HashMap::new();
    for (path, text) in docs {
        let (value, lines) = yaml::parse(text).map_err(|e| {
            let line = match &e {
                yaml::YamlError::Syntax { line, .. }
                | yaml::YamlError::DuplicateKey { line, .. }
                | yaml::YamlError::Unsupported { line, .. } => *line,
            };
            ConfigError::single(
                "",
                Location::File {
                    path: path.clone(),
                    line,
                },
                e.to_string(),
            )
        })?;
        let mut value = match value {
            Value::Null => Value::Object(Map::new()),
            v @ Value::Object(_) => v,
            _ => {
                return Err(ConfigError::single(
                    "",
                    Location::File {
                        path: path.clone(),
                        line: 1,
                    },
                    "the configuration must be a mapping of keys (YAML) or an object (JSON)",
                ));
            }
        };
        // A later file replaces whole subtrees it sets, so drop stale locations below them.
        for (key, line) in lines {
            locations.insert(
                key,
                Location::File {
                    path: path.clone(),
                    line,
                },
            );
        }
        prepare(&mut value)?;
        deep_merge(&mut merged, value);
    }

    let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    apply_env(&mut merged, &mut locations, &defaults, env)?;

    // As written (with environment overrides), Kratos keys Tessera sets aside included, so a
    // downloaded document uploaded again loses nothing.
    let raw = merged.clone();
    let mut warnings = Vec::new();
    crate::mfa::set_aside_unimplemented_factors(&mut merged, &locations, &mut warnings);
    strip_unimplemented(&mut merged, "", &locations, &mut warnings);
    strip_unimplemented_hooks(&mut merged, &locations, &mut warnings);

    let mut problems = Vec::new();
    find_unknown_keys(&merged, &defaults, "", &locations, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }

    let config: Config = serde_path_to_error::deserialize(merged.clone()).map_err(|e| {
        let key = path_to_key(e.path());
        let location = locate(&locations, &key);
        ConfigError::single(&key, location, explain_serde(&e.inner().to_string()))
    })?;

    Ok(Loaded {
        config,
        raw,
        locations,
        warnings,
        files: docs.iter().map(|d| d.0.clone()).collect(),
    })
}

fn deep_merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn path_to_key(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut parts = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => parts.push(index.to_string()),
            Segment::Map { key } => parts.push(key.clone()),
            Segment::Enum { variant } => parts.push(variant.clone()),
            Segment::Unknown => {}
        }
    }
    parts.join(".")
}

/// serde's messages name Rust types (`u16`, `a sequence`); say it in configuration terms.
fn explain_serde(msg: &str) -> String {
    let msg = msg
        .replace("expected u16", "expected a port number (0-65535)")
        .replace("expected u32", "expected a whole number")
        .replace("expected usize", "expected a whole number")
        .replace("expected a boolean", "expected true or false")
        .replace("expected a sequence", "expected a list");
    format!("{msg}; fix the value or remove the key to use the default")
}

/// Environment overrides, Kratos style: `SERVE_PUBLIC_PORT` sets `serve.public.port`. Lists and
/// objects are JSON (`IDENTITY_SCHEMAS='[{"id":"x","url":"file://x.json"}]'`); a plain string
/// where a list of strings is expected becomes a one-element list (`SECRETS_COOKIE=...`).
fn apply_env(
    doc: &mut Value,
    locations: &mut HashMap<String, Location>,
    defaults: &Value,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let mut keys = Vec::new();
    collect_keys(defaults, "", &mut keys);
    for (key, default) in keys {
        let var = key.replace('.', "_").to_uppercase();
        let Some(raw) = env.get(&var) else { continue };
        let location = Location::Env { var: var.clone() };
        let value = match default {
            Value::Array(_) => match serde_json::from_str::<Value>(raw) {
                Ok(v @ Value::Array(_)) => v,
                _ if raw.trim_start().starts_with('[') => {
                    return Err(ConfigError::single(
                        &key,
                        location,
                        "is not a valid JSON list",
                    ));
                }
                _ => Value::Array(
                    raw.split(',')
                        .map(|s| Value::String(s.trim().to_string()))
                        .collect(),
                ),
            },
            Value::Number(_) | Value::Bool(_) => {
                serde_json::from_str(raw.trim()).map_err(|_| {
                    ConfigError::single(
                        &key,
                        location.clone(),
                        format!("`{raw}` is not a valid value here"),
                    )
                })?
            }
            Value::Object(_) => serde_json::from_str(raw).map_err(|e| {
                ConfigError::single(
                    &key,
                    location.clone(),
                    format!("is not a valid JSON object: {e}"),
                )
            })?,
            _ => Value::String(raw.clone()),
        };
        crate_set(doc, &key, value);
        locations.retain(|k, _| !(k == &key || k.starts_with(&format!("{key}."))));
        locations.insert(key, location);
    }
    Ok(())
}

fn collect_keys<'a>(v: &'a Value, prefix: &str, out: &mut Vec<(String, &'a Value)>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let key = yaml::join_path(prefix, k);
            out.push((key.clone(), child));
            collect_keys(child, &key, out);
        }
    }
}

fn crate_set(doc: &mut Value, key: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert((*p).to_string(), value);
            return;
        }
        cur = map
            .entry((*p).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn matches_pattern(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    p.len() == k.len() && p.iter().zip(&k).all(|(a, b)| *a == "*" || a == b)
}

fn strip_unimplemented(
    v: &mut Value,
    prefix: &str,
    locations: &HashMap<String, Location>,
    warnings: &mut Vec<String>,
) {
    let Value::Object(map) = v else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let key = yaml::join_path(prefix, &k);
        if ACCEPTED_UNIMPLEMENTED
            .iter()
            .any(|p| matches_pattern(p, &key))
        {
            map.remove(&k);
            warnings.push(format!(
                "`{key}` ({}) is a Kratos setting that Tessera does not implement yet; it is ignored",
                locate(locations, &key)
            ));
        } else if let Some(child) = map.get_mut(&k) {
            strip_unimplemented(child, &key, locations, warnings);
        }
    }
}

fn strip_unimplemented_hooks(
    doc: &mut Value,
    locations: &HashMap<String, Location>,
    warnings: &mut Vec<String>,
) {
    // Kratos's quickstart hashes new passwords with bcrypt; Tessera always uses argon2id for new
    // hashes and still verifies (and upgrades) bcrypt ones, so the setting is only a warning.
    if let Some(h) = doc.pointer_mut("/hashers")
        && let Some(map) = h.as_object_mut()
        && map.get("algorithm").and_then(Value::as_str) == Some("bcrypt")
    {
        map.remove("algorithm");
        warnings.push(format!(
            "`hashers.algorithm: bcrypt` ({}) is ignored: Tessera hashes new passwords with argon2id; existing bcrypt hashes still verify and are upgraded on login",
            locate(locations, "hashers.algorithm")
        ));
    }
    for key in HOOK_LISTS {
        let Some(Value::Array(hooks)) = doc.pointer_mut(&format!("/{}", key.replace('.', "/")))
        else {
            continue;
        };
        let mut i = 0;
        hooks.retain(|h| {
            let idx = i;
            i += 1;
            let name = h.get("hook").and_then(Value::as_str).unwrap_or_default();
            if ACCEPTED_UNIMPLEMENTED_HOOKS.contains(&name) {
                warnings.push(format!(
                    "hook `{name}` in `{key}` ({}) is not implemented by Tessera yet; it is skipped",
                    locate(locations, &format!("{key}.{idx}"))
                ));
                false
            } else {
                true
            }
        });
    }
}

/// Reports every unknown key at once (serde would stop at the first), with a suggestion when a
/// known key is one typo away.
fn find_unknown_keys(
    v: &Value,
    known: &Value,
    prefix: &str,
    locations: &HashMap<String, Location>,
    out: &mut Vec<Problem>,
) {
    let (Value::Object(map), Value::Object(known_map)) = (v, known) else {
        return;
    };
    for (k, child) in map {
        let key = yaml::join_path(prefix, k);
        match known_map.get(k) {
            Some(known_child) => find_unknown_keys(child, known_child, &key, locations, out),
            None => {
                let suggestion = known_map
                    .keys()
                    .map(|cand| (strsim::levenshtein(k, cand), cand))
                    .filter(|(d, _)| *d <= 2)
                    .min()
                    .map(|(_, c)| format!(" Did you mean `{}`?", yaml::join_path(prefix, c)))
                    .unwrap_or_default();
                let expected: Vec<&str> = known_map.keys().map(String::as_str).collect();
                out.push(Problem {
                    key: key.clone(),
                    location: locate(locations, &key),
                    message: format!(
                        "unknown key.{suggestion} Known keys here: {}. Remove or rename it.",
                        expected.join(", ")
                    ),
                });
            }
        }
    }
}

/// Helper for callers that validate semantic rules after loading.
pub fn problem(loaded: &Loaded, key: &str, message: impl Into<String>) -> Problem {
    Problem {
        key: key.to_string(),
        location: loaded.location(key),
        message: message.into(),
    }
}

/// Resolves a relative `file://` path against the directory of the config file that set it.
pub fn base_dir(loaded: &Loaded, key: &str) -> Option<PathBuf> {
    match loaded.location(key) {
        Location::File { path, .. } => path.parent().map(Path::to_path_buf),
        _ => None,
    }
}
