//! The running configuration, and replacing it without a restart (`PUT /admin/identity-config`,
//! `tessera identity-config update`).
//!
//! Requests take the current [`Engine`] once, as a whole, so a request that straddles a reload
//! sees one consistent configuration. A new document is validated exactly as at start (schemas
//! fetched and compiled, providers checked, mappers fetched and compiled), written atomically
//! over the configuration file, and only then swapped in; when anything fails, nothing changes.
//! The file stays the source of truth: a restart loads what the last update wrote.

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_config::{ConfigError, Loaded, Settings, document};
use tessera_core::Error;
use tessera_flows::Engine;

/// How the server turned files and the environment into settings, kept so an update is
/// resolved the same way (`--dev`, the generated development secret, the same environment
/// overrides on top).
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub files: Vec<PathBuf>,
    pub dev: bool,
    pub generated_secret: Option<String>,
    pub env: HashMap<String, String>,
}

impl ConfigSource {
    /// Settings from a loaded document, as `tessera serve` derives them.
    pub fn resolve(&self, loaded: &Loaded) -> Result<Settings, ConfigError> {
        let mut settings =
            tessera_config::resolve(loaded, self.dev, self.generated_secret.as_deref())?;
        if self.dev && self.files.is_empty() {
            // The zero-config development server signs users in right after sign-up, like
            // Kratos's quickstart configuration does.
            settings.flows.registration.session_after_password = true;
        }
        Ok(settings)
    }
}

/// What an update changed that only a restart applies (listeners, database, logging).
fn restart_required(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let (o, n) = (&old.edge, &new.edge);
    [
        ("dsn", old.dsn != new.dsn),
        (
            "serve.public",
            old.serve.public_bind != new.serve.public_bind,
        ),
        ("serve.admin", old.serve.admin_bind != new.serve.admin_bind),
        ("serve.public.tls", o.public.tls != n.public.tls),
        ("serve.admin.tls", o.admin.tls != n.admin.tls),
        ("serve.public.cors", o.public.cors != n.public.cors),
        (
            "serve.*.request_log",
            o.public.log_health != n.public.log_health || o.admin.log_health != n.admin.log_health,
        ),
        (
            "limits.header_read_timeout",
            old.limits.header_read_timeout != new.limits.header_read_timeout,
        ),
        (
            "limits.write_stall_timeout",
            old.limits.write_stall_timeout != new.limits.write_stall_timeout,
        ),
        (
            "limits.max_connections",
            old.limits.max_connections != new.limits.max_connections,
        ),
        (
            "limits.max_connections_per_address",
            old.limits.max_connections_per_address != new.limits.max_connections_per_address,
        ),
        (
            "session.cache_ttl",
            old.session.cache_ttl != new.session.cache_ttl,
        ),
        (
            "log",
            old.log.level != new.log.level || old.log.json != new.log.json,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// What one configuration runs: the self-service engine, the OpenID Provider over it, and the
/// document they were built from. Swapped as one value, so a request never sees parts of two
/// configurations.
pub struct Running {
    pub engine: Arc<Engine>,
    pub op: tessera_op::Provider,
    document: Arc<Value>,
}

impl Running {
    pub fn new(engine: Engine) -> Running {
        Running::with_document(engine, Value::Null)
    }

    fn with_document(engine: Engine, document: Value) -> Running {
        let op = crate::provider(&engine);
        Running {
            engine: Arc::new(engine),
            op,
            document: Arc::new(document),
        }
    }
}

/// The configuration requests use, replaced atomically by an update.
pub struct Live {
    current: ArcSwap<Running>,
    source: Option<ConfigSource>,
    /// One update at a time: each validates against, and replaces, the one before.
    updating: tokio::sync::Mutex<()>,
}

/// A successful update.
#[derive(Debug)]
pub struct Applied {
    pub warnings: Vec<String>,
    pub restart_required: Vec<&'static str>,
}

impl Live {
    /// `source` is `None` for servers assembled in code (tests): they have no file to update.
    pub fn new(engine: Engine, document: Value, source: Option<ConfigSource>) -> Live {
        Live {
            current: ArcSwap::from_pointee(Running::with_document(engine, document)),
            source,
            updating: tokio::sync::Mutex::new(()),
        }
    }

    /// The configuration in force, lock-free.
    pub fn running(&self) -> Arc<Running> {
        self.current.load_full()
    }

    /// The running document with its secrets replaced by placeholders.
    pub fn redacted_document(&self) -> Result<Value, Error> {
        if self.source.is_none() {
            return Err(Error::conflict(
                "This server was assembled without a configuration document, so there is none to show.",
            ));
        }
        Ok(document::redact(&self.running().document))
    }

    fn config_file(&self) -> Result<(&ConfigSource, &Path), Error> {
        let Some(source) = &self.source else {
            return Err(Error::conflict(
                "This server was not started from a configuration file, so there is no file to update.",
            ));
        };
        match source.files.as_slice() {
            [one] => Ok((source, one.as_path())),
            [] => Err(Error::conflict(
                "This server was started without --config, so there is no file to update. Start it with `tessera serve --config FILE` to manage its configuration with `tessera identity-config`.",
            )),
            many => Err(Error::conflict(format!(
                "This server was started with {} configuration files ({}); an update replaces one whole file, so it needs exactly one. Merge them into one file and start with that.",
                many.len(),
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Validates `text` (YAML or JSON) as the new configuration file, writes it and swaps it
    /// in.
    pub async fn update(&self, text: &str) -> Result<Applied, Error> {
        let _one_at_a_time = self.updating.lock().await;
        let (source, path) = self.config_file()?;
        let current = self.running();
        let running = current.document.clone();

        let mut restored: Option<Value> = None;
        let loaded = tessera_config::load_document(path, text, &source.env, &mut |doc| {
            let changed = document::restore(doc, &running).map_err(|unknown| ConfigError {
                problems: unknown
                    .into_iter()
                    .map(|u| tessera_config::load::Problem {
                        key: u.key,
                        location: tessera_config::Location::File {
                            path: path.to_path_buf(),
                            line: 0,
                        },
                        message: format!(
                            "`{}` matches none of the running configuration's secrets; write the secret itself (placeholders only stand for secrets the server already has)",
                            u.placeholder
                        ),
                    })
                    .collect(),
            })?;
            if changed {
                restored = Some(doc.clone());
            }
            Ok(())
        })
        .map_err(invalid)?;
        let mut settings = source.resolve(&loaded).map_err(invalid)?;
        // The upload comes over the network: its documents stay in the configuration's folder
        // and its errors never show what a fetched document contains (security model).
        settings.sources.confine_files_to = path.parent().map(|d| {
            if d.as_os_str().is_empty() {
                std::path::PathBuf::from(".")
            } else {
                d.to_path_buf()
            }
        });
        settings.sources.hide_content_in_errors = true;

        let engine = crate::app::rebuild_engine(settings, &current.engine)
            .await
            .map_err(|e| refused(e, path))?;

        // What goes to disk: the upload as written (comments and all), unless secrets had to
        // be put back, in which case the restored document is written in the file's format.
        let content = match &restored {
            Some(doc) => render_for(path, doc),
            None => text.to_string(),
        };
        write_atomically(path, &content).map_err(|e| {
            Error::internal(format!(
                "The new configuration is valid but could not be written to {}: {e}. Nothing was changed.",
                path.display()
            ))
        })?;

        let applied = Applied {
            warnings: loaded.warnings.clone(),
            restart_required: restart_required(&current.engine.settings, &engine.settings),
        };
        self.current
            .store(Arc::new(Running::with_document(engine, loaded.raw)));
        tracing::info!(file = %path.display(), restart_required = ?applied.restart_required, "configuration updated");
        Ok(applied)
    }
}

fn invalid(e: ConfigError) -> Error {
    let problems: Vec<Value> = e
        .problems
        .iter()
        .map(|p| json!({ "key": p.key, "location": p.location.to_string(), "message": p.message }))
        .collect();
    Error::bad_request(format!(
        "The configuration is invalid; nothing was changed:\n{e}"
    ))
    .with_details(json!({ "problems": problems }))
}

/// An update refused while building its engine: provider problems keep their keys and lines, a
/// schema's problem its key; anything else is one problem of the file.
fn refused(e: crate::app::BuildError, path: &Path) -> Error {
    use crate::app::BuildError;
    match e {
        BuildError::Config(e) => invalid(e),
        BuildError::Schema { key, id, message } => {
            let reason = format!("`{key}` (schema `{id}`): {message}");
            Error::bad_request(format!(
                "The configuration is invalid; nothing was changed:\n{reason}"
            ))
            .with_details(json!({ "problems": [{ "key": key, "location": path.display().to_string(), "message": format!("schema `{id}`: {message}") }] }))
        }
        BuildError::Setup(reason) => Error::bad_request(format!(
            "The configuration is invalid; nothing was changed:\n{reason}"
        ))
        .with_details(json!({ "problems": [{ "key": "", "location": path.display().to_string(), "message": reason }] })),
    }
}

fn render_for(path: &Path, doc: &Value) -> String {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if json {
        let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
        s.push('\n');
        s
    } else {
        format!(
            "# Written by `tessera identity-config update`.\n{}",
            document::to_yaml(doc)
        )
    }
}

/// Write to a temporary file beside `path`, flush it to disk, then rename it over `path`: a
/// reader (or a crash) sees the old file or the new one, never half of one. The new file keeps
/// the old one's permissions, since configuration files hold secrets.
fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(
        ".{name}.tessera-{}.tmp",
        tessera_core::crypto::random_token()
            .chars()
            .take(12)
            .collect::<String>()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::BuildError;
    use tessera_config::Location;
    use tessera_config::load::Problem;

    /// Review §5: a bad provider in an upload used to become one problem with an empty key and
    /// no line. Each problem now keeps its key and `file:line`.
    #[test]
    fn a_refused_update_keeps_each_problems_key_and_line() {
        let path = Path::new("/etc/tessera/tessera.yml");
        let e = BuildError::Config(ConfigError {
            problems: vec![
                Problem {
                    key: "selfservice.methods.oidc.config.providers.0.client_secret".into(),
                    location: Location::File {
                        path: path.to_path_buf(),
                        line: 21,
                    },
                    message: "client_secret is required".into(),
                },
                Problem {
                    key: "selfservice.methods.oidc.config.providers.1.scope".into(),
                    location: Location::File {
                        path: path.to_path_buf(),
                        line: 30,
                    },
                    message: "unknown scope".into(),
                },
            ],
        });
        let err = refused(e, path);
        let problems = &err.details["problems"];
        assert_eq!(problems.as_array().map(Vec::len), Some(2), "{problems}");
        assert_eq!(
            problems[0]["key"],
            "selfservice.methods.oidc.config.providers.0.client_secret"
        );
        assert_eq!(problems[0]["location"], "/etc/tessera/tessera.yml:21");
        assert_eq!(problems[1]["location"], "/etc/tessera/tessera.yml:30");
        assert!(
            err.reason.starts_with("The configuration is invalid; nothing was changed:\n`selfservice.methods.oidc.config.providers.0.client_secret` (/etc/tessera/tessera.yml:21): client_secret is required"),
            "{}",
            err.reason
        );

        let e = BuildError::Schema {
            key: "identity.schemas.0.url".into(),
            id: "customer".into(),
            message: "not valid JSON at line 1, column 2".into(),
        };
        let err = refused(e, path);
        assert_eq!(err.details["problems"][0]["key"], "identity.schemas.0.url");
        assert!(
            err.reason.ends_with(
                "`identity.schemas.0.url` (schema `customer`): not valid JSON at line 1, column 2"
            ),
            "{}",
            err.reason
        );
    }
}
