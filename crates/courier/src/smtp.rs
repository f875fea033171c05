//! Email over SMTP with lettre (tokio, rustls with the ring provider already in the tree),
//! configured from Kratos's `courier.smtp.*`: `smtps://` is implicit TLS, `smtp://` requires
//! STARTTLS unless `disable_starttls=true`, `skip_ssl_verify=true` accepts any certificate.

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tessera_config::courier::{SmtpSecurity, SmtpSettings};
use tessera_store::courier::MessageRow;

/// Why one send failed (kept in the dispatch row).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the message cannot be built: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("no SMTP server is configured (courier.smtp.connection_uri)")]
    NotConfigured,
    #[error("HTTP channel: {0}")]
    Http(String),
    #[error("no `{0}` channel is configured (courier.channels with id: {0}, type: http)")]
    NoChannel(String),
}

/// One SMTP server, as configured.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    headers: Vec<(String, String)>,
}

impl SmtpSender {
    /// Builds the transport; `timeout` bounds each command.
    pub fn new(s: &SmtpSettings, timeout: Duration) -> Result<SmtpSender, SendError> {
        let tls = || {
            TlsParameters::builder(s.server_name.clone())
                .dangerous_accept_invalid_certs(s.skip_ssl_verify)
                .dangerous_accept_invalid_hostnames(s.skip_ssl_verify)
                .build_rustls()
                .map_err(|e| SendError::Build(e.to_string()))
        };
        let tls = match s.security {
            SmtpSecurity::Implicit => Tls::Wrapper(tls()?),
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .hello_name(ClientId::Domain(s.local_name.clone()))
            .timeout(Some(timeout));
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        let address = s
            .from_address
            .parse()
            .map_err(|e| SendError::Build(format!("from_address `{}`: {e}", s.from_address)))?;
        let name = (!s.from_name.is_empty()).then(|| s.from_name.clone());
        Ok(SmtpSender {
            transport: b.build(),
            from: Mailbox::new(name, address),
            headers: s.headers.clone(),
        })
    }

    /// Sends one stored email (plain text and HTML alternatives, both base64 so any script
    /// arrives intact).
    pub async fn send(&self, m: &MessageRow) -> Result<(), SendError> {
        let to: Mailbox = m
            .recipient
            .parse()
            .map_err(|e| SendError::Build(format!("recipient: {e}")))?;
        let mut email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@tessera>", m.id)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .header(ContentTransferEncoding::Base64)
                            .body(m.body.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .header(ContentTransferEncoding::Base64)
                            .body(m.html_body.clone()),
                    ),
            )
            .map_err(|e| SendError::Build(e.to_string()))?;
        for (k, v) in &self.headers {
            let name = HeaderName::new_from_ascii(k.clone())
                .map_err(|e| SendError::Build(format!("header `{k}`: {e}")))?;
            email
                .headers_mut()
                .insert_raw(HeaderValue::new(name, v.clone()));
        }
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Smtp(e.to_string()))
    }
}
