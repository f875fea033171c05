//! The courier: messages (verification and recovery codes) are rendered from templates in the
//! flow's language, written to the queue (`courier_messages`), and sent by a worker over SMTP
//! or an HTTP channel (`courier.channels`: SMS gateways, email APIs) with retries and
//! exponential backoff.
//!
//! Architecture invariant: nothing is sent that was not first stored whole, and a message is
//! sent only by the worker that holds its claim (a conditional `UPDATE`, see
//! `tessera_store::courier`), so a process killed mid-send loses nothing: once the claim's
//! lease runs out another worker sends it. Delivery is therefore at least once: a worker killed
//! after the SMTP server accepted a message but before it recorded that may send it again. No
//! HTTP types here.

pub mod http;
pub mod smtp;
pub mod templates;
pub mod worker;

use serde_json::{Value, json};
use tessera_config::courier::CourierSettings;
use tessera_core::Error;
use tessera_core::timefmt::{now_ms, to_rfc3339};
use tessera_store::Store;
use tessera_store::courier::{DispatchRow, MessageRow};

pub use templates::{Lang, Rendered, TemplateType};

/// Renders an email and queues it; returns the message id. The message is due at once.
pub async fn queue_email(
    store: &Store,
    settings: &CourierSettings,
    to: &str,
    t: TemplateType,
    lang: Lang,
    data: &Value,
) -> Result<String, Error> {
    let r = templates::render(t, lang, data, &settings.overrides);
    enqueue(
        store, "email", "email", to, r.subject, r.text, r.html, t, data,
    )
    .await
}

/// Renders a text message and queues it on the `sms` channel (Kratos's message `type`
/// `phone`); returns the message id, or `None` when `t` is never sent by SMS. Without a
/// configured `sms` channel the message waits in the queue (and the worker logs why), as an
/// email does without SMTP.
pub async fn queue_sms(
    store: &Store,
    settings: &CourierSettings,
    to: &str,
    t: TemplateType,
    lang: Lang,
    data: &Value,
) -> Result<Option<String>, Error> {
    let Some(text) = templates::render_sms(t, lang, data, &settings.overrides) else {
        return Ok(None);
    };
    enqueue(
        store,
        "phone",
        "sms",
        to,
        String::new(),
        text,
        String::new(),
        t,
        data,
    )
    .await
    .map(Some)
}

#[allow(clippy::too_many_arguments)]
async fn enqueue(
    store: &Store,
    kind: &str,
    channel: &str,
    to: &str,
    subject: String,
    body: String,
    html_body: String,
    t: TemplateType,
    data: &Value,
) -> Result<String, Error> {
    let now = now_ms();
    // Time-ordered and monotonic within the process, so two messages queued in the same
    // millisecond still list newest first (the admin listing breaks `created_at` ties by id).
    let id = uuid::Uuid::now_v7().to_string();
    store
        .courier_enqueue(&MessageRow {
            id: id.clone(),
            status: "queued".into(),
            kind: kind.into(),
            channel: channel.into(),
            recipient: to.to_string(),
            subject,
            body,
            html_body,
            template_type: t.as_str().into(),
            send_count: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            template_data: templates::kratos_template_data(data).to_string(),
        })
        .await?;
    Ok(id)
}

/// A message in Kratos's `message` shape (`GET /admin/courier/messages…`).
pub fn message_json(m: &MessageRow, dispatches: Option<&[DispatchRow]>) -> Value {
    let mut v = json!({
        "id": m.id,
        "status": m.status,
        "type": m.kind,
        "channel": m.channel,
        "recipient": m.recipient,
        "subject": m.subject,
        "body": m.body,
        "template_type": m.template_type,
        "send_count": m.send_count,
        "created_at": to_rfc3339(m.created_at),
        "updated_at": to_rfc3339(m.updated_at),
    });
    if let Some(d) = dispatches {
        v["dispatches"] = d
            .iter()
            .map(|d| {
                let mut x = json!({
                    "id": d.id,
                    "message_id": d.message_id,
                    "status": d.status,
                    "created_at": to_rfc3339(d.created_at),
                    "updated_at": to_rfc3339(d.updated_at),
                });
                if let Some(e) = &d.error {
                    x["error"] = json!({"message": e});
                }
                x
            })
            .collect();
    }
    v
}

/// The due time of the next attempt after `send_count` failed ones: 1 s, 2 s, 4 s, … capped
/// at one hour.
pub fn backoff_ms(send_count: i64) -> i64 {
    let exp = u32::try_from(send_count.clamp(0, 12)).unwrap_or(12);
    (1000i64 << exp).min(3_600_000)
}

/// Kratos's `status` filter values.
pub fn is_status(s: &str) -> bool {
    matches!(s, "queued" | "sent" | "processing" | "abandoned")
}

/// Now, for callers that stamp rows.
pub fn now() -> i64 {
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(4), 16000);
        assert_eq!(backoff_ms(40), 3_600_000);
        assert_eq!(backoff_ms(-3), 1000);
    }
}
