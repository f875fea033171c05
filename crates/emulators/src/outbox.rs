//! `tessera demo`'s outbox: a mail catcher ([`SmtpSink`]) and an SMS catcher ([`SmsSink`]) with
//! one page listing everything the demo's server sent, newest first, so a newcomer reads the
//! verification or recovery code there.

use crate::sms_sink::SmsSink;
use crate::smtp_sink::SmtpSink;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The two catchers and their page.
pub struct Outbox {
    pub smtp: Arc<SmtpSink>,
    pub sms: Arc<SmsSink>,
    page_port: u16,
    _task: crate::Task,
}

impl Outbox {
    /// Starts both catchers and the page, each on a free port of 127.0.0.1.
    pub async fn start() -> Outbox {
        let smtp = Arc::new(SmtpSink::start(false).await);
        let sms = Arc::new(SmsSink::start().await);
        Outbox::serve(crate::free_loopback_port("outbox").await, smtp, sms)
    }

    /// Serves the page on a bound listener.
    pub fn serve(listener: TcpListener, smtp: Arc<SmtpSink>, sms: Arc<SmsSink>) -> Outbox {
        let page_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let app = Router::new()
            .route("/", get(page))
            .with_state((smtp.clone(), sms.clone()));
        Outbox {
            smtp,
            sms,
            page_port,
            _task: crate::spawn(listener, app),
        }
    }

    /// The "what was sent" page.
    pub fn page_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.page_port)
    }
}

async fn page(State((smtp, sms)): State<(Arc<SmtpSink>, Arc<SmsSink>)>) -> Html<String> {
    let mail = smtp.messages_html();
    let texts = sms.messages_html();
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tessera demo: what was sent</title><style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto}article{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}pre{white-space:pre-wrap}</style></head><body><h1>What Tessera sent</h1><p>Every email and text message the demo's server sent, caught on this machine. Reload to see new ones.</p><h2>Email</h2>",
    );
    html.push_str(if mail.is_empty() {
        "<p>Nothing yet: sign up, or ask for a recovery code.</p>"
    } else {
        &mail
    });
    html.push_str("<h2>SMS</h2>");
    html.push_str(if texts.is_empty() {
        "<p>Nothing yet: text messages go to phone numbers a schema marks <code>\"verification\": {\"via\": \"sms\"}</code>.</p>"
    } else {
        &texts
    });
    html.push_str("</body></html>");
    Html(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_lists_mail_and_texts() {
        let o = Outbox::start().await;
        let empty = reqwest::get(o.page_url())
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(empty.contains("Nothing yet: sign up"), "{empty}");
        reqwest::Client::new()
            .post(format!("{}/send", o.sms.base_url()))
            .json(&serde_json::json!({"to": "+8613800138000", "body": "您的验证码是 493027"}))
            .send()
            .await
            .expect("send");
        let page = reqwest::get(o.page_url())
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(
            page.contains("您的验证码是 493027") && page.contains("+8613800138000"),
            "{page}"
        );
    }
}
