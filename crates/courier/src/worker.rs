//! The worker: claims due messages, sends them, records each attempt, and retries failures
//! with exponential backoff until `courier.message_retries` attempts, after which a message is
//! `abandoned`. It runs inside `tessera serve` and alone as `tessera courier watch`; several
//! may run against one database. A message goes out on the HTTP channel configured for its
//! channel (`courier.channels`), else, for email, over SMTP.

use crate::smtp::{SendError, SmtpSender};
use std::sync::Arc;
use std::time::Duration;
use tessera_config::courier::CourierSettings;
use tessera_social::Social;
use tessera_store::Store;
use tessera_store::courier::Delivery;

/// Where the worker reads the courier settings from before each round (they change when the
/// configuration is replaced).
pub type SettingsSource = Arc<dyn Fn() -> Arc<CourierSettings> + Send + Sync>;

/// Where the worker finds the compiled HTTP channel requests, the sandbox their bodies run in
/// and the HTTP client (`Social`, built with the configuration). Asked only when a message
/// needs an HTTP channel.
pub type HttpSource = Arc<dyn Fn() -> Option<Arc<Social>> + Send + Sync>;

/// Runs until `stop` resolves.
pub async fn run(
    store: Store,
    settings: SettingsSource,
    http: HttpSource,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut sender: Option<(Arc<CourierSettings>, Option<SmtpSender>)> = None;
    loop {
        let s = settings();
        let rebuild = sender.as_ref().is_none_or(|(old, _)| **old != *s);
        if rebuild {
            let timeout = (s.lease / 2).min(Duration::from_secs(30));
            let built = match &s.smtp {
                Some(smtp) => match SmtpSender::new(smtp, timeout) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        tracing::error!(error = %e, "the courier cannot build its SMTP client");
                        None
                    }
                },
                None => None,
            };
            sender = Some((s.clone(), built));
        }
        let smtp = sender.as_ref().and_then(|(_, x)| x.as_ref());
        let worked = match round_with(&store, &s, smtp, &*http).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "the courier could not read its queue");
                false
            }
        };
        if worked {
            continue;
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(s.pull_wait) => {}
        }
    }
}

/// One round without HTTP channels (SMTP only): see [`round_with`].
pub async fn round(
    store: &Store,
    s: &CourierSettings,
    smtp: Option<&SmtpSender>,
) -> Result<usize, tessera_core::Error> {
    round_with(store, s, smtp, &|| None).await
}

/// One round: claims up to `pull_count` due messages and tries each once. Returns how many
/// were tried.
pub async fn round_with(
    store: &Store,
    s: &CourierSettings,
    smtp: Option<&SmtpSender>,
    http: &(dyn Fn() -> Option<Arc<Social>> + Send + Sync),
) -> Result<usize, tessera_core::Error> {
    let lease = i64::try_from(s.lease.as_millis()).unwrap_or(i64::MAX);
    let claimed = store
        .courier_claim(crate::now(), lease, s.pull_count as usize)
        .await?;
    let n = claimed.len();
    let mut social: Option<Option<Arc<Social>>> = None;
    for m in claimed {
        let result = match (s.channel(&m.channel), m.channel.as_str()) {
            (Some(channel), _) => match social.get_or_insert_with(http) {
                Some(social) => crate::http::send(social, channel, &m).await,
                None => Err(SendError::Http("the HTTP sender is not running".into())),
            },
            (None, "email") => match smtp {
                Some(sender) => sender.send(&m).await,
                None => Err(SendError::NotConfigured),
            },
            (None, other) => Err(SendError::NoChannel(other.to_string())),
        };
        let now = crate::now();
        let outcome = match result {
            Ok(()) => {
                tracing::info!(message_id = %m.id, channel = %m.channel, template = %m.template_type, "courier: message sent");
                Delivery::Sent
            }
            Err(e) => {
                let attempts = m.send_count + 1;
                if attempts >= i64::from(s.message_retries.max(1)) {
                    tracing::error!(message_id = %m.id, error = %e, attempts, "courier: message abandoned");
                    Delivery::Abandon {
                        error: e.to_string(),
                    }
                } else {
                    tracing::warn!(message_id = %m.id, error = %e, attempts, "courier: send failed; will retry");
                    Delivery::Retry {
                        error: e.to_string(),
                        at: now + crate::backoff_ms(m.send_count),
                    }
                }
            }
        };
        if !store.courier_finish(&m, &outcome, now).await? {
            tracing::warn!(message_id = %m.id, "courier: the claim lapsed before the attempt was recorded");
        }
    }
    Ok(n)
}
