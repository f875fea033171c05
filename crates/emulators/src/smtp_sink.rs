//! A mail catcher: a small SMTP server (RFC 5321's commands a client needs: EHLO/HELO, AUTH
//! PLAIN/LOGIN accepting any credentials, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that keeps what it
//! receives in memory, over plain TCP or implicit TLS (`smtps://`, a self-signed certificate, as
//! Kratos's quickstart's mailslurper). Tests read the mail; `tessera demo` shows it on a page
//! (`page`). Faults for tests: refuse every connection (`Mode::Down`) or never answer DATA
//! (`Mode::Stall`, a server that hangs mid-send).

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA as sent (headers and MIME body), dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// The `Subject:` header, decoded when it is an RFC 2047 base64 word.
    pub fn subject(&self) -> String {
        let raw = header(&self.data, "subject").unwrap_or_default();
        decode_words(&raw)
    }

    /// The text of every base64 body part, decoded and joined (Tessera sends both parts base64).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut rest = self.data.as_str();
        while let Some(i) = rest
            .to_ascii_lowercase()
            .find("content-transfer-encoding: base64")
        {
            rest = &rest[i..];
            let Some(body_start) = rest.find("\r\n\r\n") else {
                break;
            };
            let body = &rest[body_start + 4..];
            let end = body.find("\r\n--").unwrap_or(body.len());
            let b64: String = body[..end].split_whitespace().collect();
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
            rest = &body[end..];
        }
        if out.is_empty() {
            self.data.clone()
        } else {
            out
        }
    }
}

fn header(data: &str, name: &str) -> Option<String> {
    let head = data.split("\r\n\r\n").next().unwrap_or_default();
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push_str(line.trim_start());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

/// RFC 2047 `=?utf-8?b?…?=` words decoded (adjacent words joined before decoding, since a
/// character may be split between two); other text as it is.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(start) = lower.find("=?utf-8?b?") else {
            break;
        };
        let between = &rest[..start];
        if !between.trim().is_empty() {
            out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
            out.push_str(between);
        }
        let after = &rest[start + 10..];
        let Some(end) = after.find("?=") else {
            break;
        };
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(&after[..end]) {
            bytes.extend(b);
        }
        rest = &after[end + 2..];
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    out.push_str(rest);
    out.trim().to_string()
}

/// How the sink answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Every connection gets `421` and is closed (the server is down).
    Down,
    /// DATA is read but never answered (the server hangs mid-send).
    Stall,
}

struct Inner {
    mails: Vec<Mail>,
    mode: Mode,
    connections: usize,
    stalled: usize,
}

/// A running mail catcher; dropping it stops it.
pub struct SmtpSink {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    _task: crate::Task,
}

impl SmtpSink {
    /// Starts on a free loopback port; `tls` for implicit TLS (`smtps://`).
    pub async fn start(tls: bool) -> SmtpSink {
        let listener = crate::free_loopback_port("SMTP").await;
        SmtpSink::serve(listener, tls)
    }

    /// Serves on a bound listener.
    pub fn serve(listener: TcpListener, tls: bool) -> SmtpSink {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let inner = Arc::new(Mutex::new(Inner {
            mails: Vec::new(),
            mode: Mode::Accept,
            connections: 0,
            stalled: 0,
        }));
        let acceptor = if tls { tls_acceptor() } else { None };
        let state = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(stream).await {
                                session(s, state).await;
                            }
                        }
                        None => session(stream, state).await,
                    }
                });
            }
        });
        SmtpSink {
            port,
            inner,
            _task: crate::Task(task),
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.inner
            .lock()
            .map(|i| i.mails.clone())
            .unwrap_or_default()
    }

    /// Connections accepted so far (also those refused or stalled).
    pub fn connections(&self) -> usize {
        self.inner.lock().map(|i| i.connections).unwrap_or_default()
    }

    /// Sessions that received a whole message in `Mode::Stall` and are holding it unanswered.
    pub fn stalled(&self) -> usize {
        self.inner.lock().map(|i| i.stalled).unwrap_or_default()
    }

    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut i) = self.inner.lock() {
            i.mode = mode;
        }
    }

    /// The received mails as HTML `<article>`s, newest first (for `tessera demo`'s outbox).
    pub fn messages_html(&self) -> String {
        articles(&self.mails())
    }

    /// A page listing what was received, newest first (for `tessera demo`).
    pub fn page(&self) -> Router {
        Router::new()
            .route("/", get(list_page))
            .with_state(self.inner.clone())
    }
}

async fn list_page(State(inner): State<Arc<Mutex<Inner>>>) -> Html<String> {
    let mails = inner.lock().map(|i| i.mails.clone()).unwrap_or_default();
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tessera demo: sent email</title><style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto}article{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}pre{white-space:pre-wrap}</style></head><body><h1>Email sent by Tessera</h1><p>Every message the demo's server sent. Reload to see new ones.</p>",
    );
    if mails.is_empty() {
        html.push_str("<p>Nothing yet: register or ask for a recovery code.</p>");
    }
    html.push_str(&articles(&mails));
    html.push_str("</body></html>");
    Html(html)
}

fn articles(mails: &[Mail]) -> String {
    let mut html = String::new();
    for m in mails.iter().rev() {
        let text = m.text();
        let plain = text.split("<!DOCTYPE").next().unwrap_or_default();
        html.push_str(&format!(
            "<article><h2>{}</h2><p>To: {}</p><pre>{}</pre></article>",
            esc(&m.subject()),
            esc(&m.to.join(", ")),
            esc(plain.trim())
        ));
    }
    html
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn tls_acceptor() -> Option<tokio_rustls::TlsAcceptor> {
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).ok()?;
    let cert = key.cert.der().clone();
    let pk = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).ok()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], pk)
        .ok()?;
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: Arc<Mutex<Inner>>) {
    let mode = match state.lock() {
        Ok(mut i) => {
            i.connections += 1;
            i.mode
        }
        Err(_) => return,
    };
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    if mode == Mode::Down {
        let _ = w.write_all(b"421 sink down: try again later\r\n").await;
        return;
    }
    if w.write_all(b"220 tessera-smtp-sink ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-tessera-smtp-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 tessera-smtp-sink\r\n"
        } else if upper.starts_with("AUTH LOGIN") {
            // Username and password prompts; anything is accepted.
            if w.write_all(b"334 VXNlcm5hbWU6\r\n").await.is_err() {
                return;
            }
            line.clear();
            let _ = r.read_line(&mut line).await;
            if w.write_all(b"334 UGFzc3dvcmQ6\r\n").await.is_err() {
                return;
            }
            line.clear();
            let _ = r.read_line(&mut line).await;
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("AUTH") {
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim().trim_matches(['<', '>']).to_string();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            if w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(l);
            }
            let stall = state
                .lock()
                .map(|mut i| {
                    let stall = i.mode == Mode::Stall;
                    if stall {
                        i.stalled += 1;
                    }
                    stall
                })
                .unwrap_or(false);
            if stall {
                // Hold the connection open without an answer until the client gives up.
                std::future::pending::<()>().await;
            }
            if let Ok(mut i) = state.lock() {
                i.mails.push(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
            }
            b"250 OK: queued\r\n"
        } else if upper == "QUIT" {
            let _ = w.write_all(b"221 Bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 Command not implemented\r\n"
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}
