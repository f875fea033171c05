//! Outgoing HTTP requests configured the Kratos way (`web_hook`'s config, and the shape of the
//! courier's `request_config`): `url`, `method`, `headers`, `auth` (`api_key` in a header, a
//! cookie or the query, `basic_auth`) and a Jsonnet `body` evaluated with `ctx`.
//!
//! The body template is user code: it is fetched and parsed once at start ([`Request::build`])
//! and evaluated only in the mapper sandbox ([`MapperPool`]), never in this process. Kratos
//! passes `ctx` as a top-level argument (`function(ctx) {…}`); the sandbox binds
//! `std.extVar('claims')`, so the template is wrapped to call itself with it (a template that is
//! not a function is used as it is). A template that fails with `error "cancel"` cancels the
//! request, as in Kratos.
//!
//! Answers are untrusted: the whole call is time-limited, redirects are not followed, and the
//! body is read up to [`MAX_ANSWER_BYTES`] (a larger one is an error, not a truncation). Header
//! values and credentials never appear in an error's text; only the method and the URL without
//! its query do.

use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;
use tessera_config::hooks::{ApiKeyIn, RequestAuth, RequestSpec};
use tessera_config::source::SourcePolicy;
use tessera_mapper::{Mapper, MapperError, MapperPool};

/// The largest answer read from a request's target.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Whole-request time limit, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A configured request, its body template compiled.
#[derive(Clone, Debug)]
pub struct Request {
    pub spec: RequestSpec,
    body: Option<Mapper>,
}

/// A request body after its template ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Vec<u8>),
    Form(String),
}

/// The target's answer (status and at most [`MAX_ANSWER_BYTES`] of body).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request could not be made or answered. `Display` is written for the log: it names
/// the configuration key and the target without its query, never a header value or secret.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the body template of `{key}` failed: {source}")]
    Template {
        key: String,
        #[source]
        source: MapperError,
    },
    #[error(
        "the body template of `{key}` must produce an object of strings for a form-encoded body"
    )]
    FormShape { key: String },
    #[error("{method} {target} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout { method: String, target: String },
    #[error("{method} {target} failed: {reason}")]
    Transport {
        method: String,
        target: String,
        reason: String,
    },
    #[error("{method} {target} answered more than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { method: String, target: String },
}

impl Request {
    /// Fetches (file, base64 or https, under the `sources` policy) and parses the body template.
    /// The error names the configuration key.
    pub async fn build(spec: &RequestSpec, sources: &SourcePolicy) -> Result<Request, String> {
        let body = if spec.body.is_empty() {
            None
        } else {
            let bytes = crate::fetch::document(&spec.body, spec.base_dir.as_deref(), sources)
                .await
                .map_err(|e| format!("cannot read the body template: {e}"))?;
            let source = String::from_utf8(bytes)
                .map_err(|_| "the body template is not UTF-8 text".to_string())?;
            let name = format!("the body template of `{}`", spec.key);
            Some(Mapper::compile(&name, &wrap(&source)).map_err(|e| e.to_string())?)
        };
        Ok(Request {
            spec: spec.clone(),
            body,
        })
    }

    /// The URL without query or fragment, for messages and logs.
    pub fn target(&self) -> String {
        let u = &self.spec.url;
        format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + u.path()
    }

    fn form(&self) -> bool {
        self.spec.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("content-type")
                && v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
        })
    }

    /// Runs the body template with `ctx` in the sandbox. `Ok(None)`: the template cancelled
    /// the request (`error "cancel"`).
    pub async fn render(
        &self,
        pool: &MapperPool,
        ctx: &Value,
    ) -> Result<Option<Body>, RequestError> {
        let Some(mapper) = &self.body else {
            return Ok(Some(Body::None));
        };
        if self.spec.method == "GET" || self.spec.method == "HEAD" {
            return Ok(Some(Body::None));
        }
        let out = match pool.evaluate(mapper, ctx).await {
            Ok(v) => v,
            Err(MapperError::Runtime { message, .. }) if is_cancel(&message) => return Ok(None),
            Err(source) => {
                return Err(RequestError::Template {
                    key: self.spec.key.clone(),
                    source,
                });
            }
        };
        if self.form() {
            let Value::Object(map) = out else {
                return Err(RequestError::FormShape {
                    key: self.spec.key.clone(),
                });
            };
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in map {
                let Value::String(s) = v else {
                    return Err(RequestError::FormShape {
                        key: self.spec.key.clone(),
                    });
                };
                ser.append_pair(&k, &s);
            }
            return Ok(Some(Body::Form(ser.finish())));
        }
        Ok(Some(Body::Json(
            serde_json::to_vec(&out).unwrap_or_default(),
        )))
    }

    /// Sends the request with `body` and reads the answer (any status).
    pub async fn send(&self, client: &reqwest::Client, body: Body) -> Result<Answer, RequestError> {
        let method = self.spec.method.clone();
        let target = self.target();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                RequestError::Timeout {
                    method: method.clone(),
                    target: target.clone(),
                }
            } else {
                RequestError::Transport {
                    method: method.clone(),
                    target: target.clone(),
                    // Without the URL: reqwest's text would repeat it with its query.
                    reason: reason_of(&e),
                }
            }
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            RequestError::Transport {
                method: method.clone(),
                target: target.clone(),
                reason: "invalid method".into(),
            }
        })?;
        let mut req = client.request(m, self.spec.url.clone()).timeout(TIMEOUT);
        let mut has_type = false;
        for (n, v) in &self.spec.headers {
            has_type |= n.eq_ignore_ascii_case("content-type");
            req = req.header(n.as_str(), v.as_str());
        }
        match &self.spec.auth {
            None => {}
            Some(RequestAuth::ApiKey {
                name,
                value,
                in_: ApiKeyIn::Header,
            }) => req = req.header(name.as_str(), value.as_str()),
            Some(RequestAuth::ApiKey {
                name,
                value,
                in_: ApiKeyIn::Cookie,
            }) => req = req.header(reqwest::header::COOKIE, format!("{name}={value}")),
            Some(RequestAuth::ApiKey {
                name,
                value,
                in_: ApiKeyIn::Query,
            }) => req = req.query(&[(name.as_str(), value.as_str())]),
            Some(RequestAuth::BasicAuth { user, password }) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {token}"));
            }
        }
        req = match body {
            Body::None => req,
            Body::Json(b) => {
                if !has_type {
                    req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
                }
                req.body(b)
            }
            Body::Form(f) => req.body(f),
        };
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_ANSWER_BYTES as u64)
        {
            return Err(RequestError::TooLarge { method, target });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(RequestError::TooLarge { method, target });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

/// The client requests are sent with: no redirects (a redirect could lead anywhere), no proxy
/// from the environment surprises beyond reqwest's defaults, a connection time limit.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Calls a `function(ctx)` template with the sandbox's `claims`; line numbers stay the
/// template's own (only line 1's columns shift).
fn wrap(source: &str) -> String {
    format!(
        "local tessera_template = ({source}\n); if std.type(tessera_template) == 'function' then tessera_template(std.extVar('claims')) else tessera_template"
    )
}

/// Kratos's convention: a template that fails with the message `cancel` cancels the request.
fn is_cancel(message: &str) -> bool {
    // The sandbox reports `error 'cancel'` as "cancel, at line … (error statement), …".
    let m = message.trim();
    m == "cancel" || m.starts_with("cancel, at ") || m.starts_with("cancel\n")
}

fn reason_of(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer's body could not be read"
    } else if e.is_request() {
        "the request could not be sent"
    } else {
        "transport error"
    };
    // The source chain, which (unlike reqwest's own text) does not repeat the URL.
    match std::error::Error::source(e) {
        Some(s) => format!("{what}: {s}"),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(template: &str, ctx: Value) -> Result<Value, MapperError> {
        let m = Mapper::compile("t", &wrap(template))?;
        tessera_mapper::evaluate_in_process(&m, &ctx)
    }

    #[test]
    fn a_function_template_is_called_with_ctx() {
        let out = eval(
            "function(ctx) { email: ctx.identity.traits.email }",
            json!({"identity": {"traits": {"email": "a@b.c"}}}),
        );
        assert_eq!(out, Ok(json!({"email": "a@b.c"})));
    }

    #[test]
    fn a_plain_object_template_is_used_as_it_is() {
        assert_eq!(eval("{ a: 1 }", json!({})), Ok(json!({"a": 1})));
    }

    #[test]
    fn error_cancel_is_recognised_and_other_errors_are_not() {
        match eval("function(ctx) error 'cancel'", json!({})) {
            Err(MapperError::Runtime { message, .. }) => assert!(is_cancel(&message), "{message}"),
            other => panic!("{other:?}"),
        }
        for other in ["something else", "cancelled", "do not cancel"] {
            match eval(&format!("function(ctx) error '{other}'"), json!({})) {
                Err(MapperError::Runtime { message, .. }) => {
                    assert!(!is_cancel(&message), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        match eval("function(ctx) error 'something else'", json!({})) {
            Err(MapperError::Runtime { message, .. }) => assert!(!is_cancel(&message), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_keep_the_template_line() {
        match Mapper::compile("t", &wrap("function(ctx)\n{\n a: ,\n}")) {
            Err(MapperError::Syntax { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }
}
