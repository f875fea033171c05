//! A web hook target for tests: a small HTTP server on a free loopback port that records every
//! call (method, path, headers, body) and answers each path as the test scripted it, so the
//! `web_hook` suites can refuse, rewrite, fail, hang and answer garbage.
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_testkit::webhook_sink::{Reply, WebhookSink};
//! let sink = WebhookSink::start().await;
//! sink.answer("/refuse", Reply::json(400, serde_json::json!({"messages": []})));
//! // config url: sink.url("/refuse")
//! let calls = sink.wait_for("/refuse", 1).await;
//! # }
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Call {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// How a path answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status with a body and content type.
    Body {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Never answers within any sane time limit (answers 200 after five minutes).
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Body {
            status,
            content_type: "application/json".into(),
            body: body.to_string(),
        }
    }
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Body {
            status,
            content_type: "text/html".into(),
            body: body.into(),
        }
    }
}

#[derive(Default)]
struct Shared {
    calls: Mutex<Vec<Call>>,
    replies: Mutex<HashMap<String, Reply>>,
    arrived: tokio::sync::Notify,
}

/// The running sink; it stops when dropped.
pub struct WebhookSink {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookSink {
    /// Binds a free loopback port and serves. Unscripted paths answer 200 `{}`.
    pub async fn start() -> WebhookSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the web hook sink");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookSink { base, shared, task }
    }

    /// The URL of `path` on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Scripts `path`'s answer (replacing an earlier one).
    pub fn answer(&self, path: &str, reply: Reply) {
        self.shared
            .replies
            .lock()
            .expect("lock")
            .insert(path.into(), reply);
    }

    /// The calls to `path` so far.
    pub fn calls(&self, path: &str) -> Vec<Call> {
        self.shared
            .calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` received at least `n` calls (panics after 60 s: a bound, not a
    /// timing assertion).
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.shared.arrived.notified();
            let calls = self.calls(path);
            if calls.len() >= n {
                return calls;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "the web hook sink got {} of {n} calls to {path} within 60 s",
                    calls.len()
                );
            }
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let call = Call {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    shared.calls.lock().expect("lock").push(call);
    shared.arrived.notify_waiters();
    let reply = shared.replies.lock().expect("lock").get(&path).cloned();
    match reply {
        None => (StatusCode::OK, [("content-type", "application/json")], "{}").into_response(),
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            StatusCode::OK.into_response()
        }
        Some(Reply::Body {
            status,
            content_type,
            body,
        }) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
    }
}
