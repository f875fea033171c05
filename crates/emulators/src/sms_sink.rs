//! An SMS catcher: an HTTP endpoint standing in for an SMS gateway (Twilio, SMS.ru, a signing
//! relay in front of Aliyun or Tencent Cloud). It records every request it gets (method, path,
//! query, headers, body) with the status it answered, on 127.0.0.1 and a free port. Tests read
//! what was sent; `tessera demo` lists it on its "what was sent" page ([`SmsSink::messages_html`]).
//! Faults for tests: answer the next `n` requests with a status ([`SmsSink::fail_next`]), or
//! every request ([`SmsSink::set_status`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The raw query string (empty without one).
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status the sink answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// One field of a form-encoded body or of the query.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .chain(url::form_urlencoded::parse(self.query.as_bytes()))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// What a person would read: the JSON body's or form's text field when there is one
    /// (`body`, `Body`, `msg`, `text`, `message`), else the whole body.
    pub fn text(&self) -> String {
        const FIELDS: [&str; 5] = ["body", "Body", "msg", "text", "message"];
        if let Some(v) = self.json() {
            for f in FIELDS {
                if let Some(s) = v.get(f).and_then(|x| x.as_str()) {
                    return s.to_string();
                }
            }
        }
        for f in FIELDS {
            if let Some(s) = self.form(f) {
                return s;
            }
        }
        self.body.clone()
    }

    /// Who it is for: the JSON body's or form's recipient field (`to`, `To`, `recipient`,
    /// `PhoneNumbers`), else empty.
    pub fn to(&self) -> String {
        const FIELDS: [&str; 4] = ["to", "To", "recipient", "PhoneNumbers"];
        if let Some(v) = self.json() {
            for f in FIELDS {
                if let Some(s) = v.get(f).and_then(|x| x.as_str()) {
                    return s.to_string();
                }
            }
        }
        FIELDS.iter().find_map(|f| self.form(f)).unwrap_or_default()
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answer the next this many requests with `fail_status`.
    fail_next: usize,
    fail_status: u16,
    /// Answer every request with this status (0: 200).
    status: u16,
}

/// A running SMS catcher; dropping it stops it.
pub struct SmsSink {
    port: u16,
    inner: Arc<Mutex<Inner>>,
    _task: crate::Task,
}

impl SmsSink {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start() -> SmsSink {
        SmsSink::serve(crate::free_loopback_port("SMS").await)
    }

    /// Serves on a bound listener.
    pub fn serve(listener: TcpListener) -> SmsSink {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .fallback(any(receive))
            .with_state(inner.clone());
        SmsSink {
            port,
            inner,
            _task: crate::spawn(listener, app),
        }
    }

    /// `http://127.0.0.1:<port>`; any path is accepted.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request so far, oldest first, failed ones included.
    pub fn received(&self) -> Vec<Received> {
        self.inner
            .lock()
            .map(|i| i.received.clone())
            .unwrap_or_default()
    }

    /// The requests answered with a 2xx: the messages delivered.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Answers the next `n` requests with `status` (e.g. 500), then 200 again.
    pub fn fail_next(&self, n: usize, status: u16) {
        if let Ok(mut i) = self.inner.lock() {
            i.fail_next = n;
            i.fail_status = status;
        }
    }

    /// Answers every request with `status` from now on (200 restores).
    pub fn set_status(&self, status: u16) {
        if let Ok(mut i) = self.inner.lock() {
            i.status = status;
        }
    }

    /// The delivered messages as HTML `<article>`s, newest first (for `tessera demo`).
    pub fn messages_html(&self) -> String {
        let mut html = String::new();
        for r in self.delivered().iter().rev() {
            html.push_str(&format!(
                "<article><h2>SMS</h2><p>To: {}</p><pre>{}</pre></article>",
                esc(&r.to()),
                esc(r.text().trim())
            ));
        }
        html
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Ok(mut i) = inner.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned");
    };
    let status = if i.fail_next > 0 {
        i.fail_next -= 1;
        i.fail_status
    } else if i.status != 0 {
        i.status
    } else {
        200
    };
    i.received.push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = if code.is_success() {
        "{\"status\":\"OK\"}"
    } else {
        "{\"status\":\"ERROR\",\"status_text\":\"the SMS sink was told to fail\"}"
    };
    (code, answer)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_requests_and_fails_on_demand() {
        let sink = SmsSink::start().await;
        let c = reqwest::Client::new();
        sink.fail_next(1, 500);
        let a = c
            .post(format!("{}/send?api_id=k", sink.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("to=%2B79123456789&msg=%D0%9A%D0%BE%D0%B4%3A+1")
            .send()
            .await
            .expect("send");
        assert_eq!(a.status().as_u16(), 500);
        let b = c
            .post(format!("{}/send", sink.base_url()))
            .json(&serde_json::json!({"To": "+8613800138000", "Body": "验证码 2"}))
            .send()
            .await
            .expect("send");
        assert_eq!(b.status().as_u16(), 200);
        let got = sink.received();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].form("api_id").as_deref(), Some("k"));
        assert_eq!(
            (got[0].to(), got[0].text()),
            ("+79123456789".into(), "Код: 1".into())
        );
        assert_eq!(got[0].status, 500);
        assert_eq!(sink.delivered().len(), 1);
        assert_eq!(got[1].text(), "验证码 2");
        assert!(sink.messages_html().contains("验证码 2"));
        assert!(!sink.messages_html().contains("Код: 1"));
    }
}
