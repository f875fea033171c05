//! Messages over an HTTP channel (`courier.channels`, Kratos's `type: http`): the channel's
//! Jsonnet body runs in the mapper sandbox with Kratos's `ctx` (`recipient`, `subject`, `body`,
//! `template_type`, `template_data`, `message_type`; plus `to` and `request_url` of Kratos's
//! older SMS channel), and the request goes out through `tessera_social::request`, the sender
//! web hooks use (no redirects, 10 s, answers capped). A 2xx answer is a delivery; anything
//! else is a failed attempt the worker retries.

use crate::smtp::SendError;
use serde_json::{Value, json};
use tessera_config::channels::HttpChannel;
use tessera_social::Social;
use tessera_social::request::RequestError;
use tessera_store::courier::MessageRow;

/// The `ctx` a channel's body template receives for one message.
pub fn ctx(m: &MessageRow) -> Value {
    let data: Value = serde_json::from_str(&m.template_data).unwrap_or_else(|_| json!({}));
    let request_url = data
        .get("request_url")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    json!({
        "recipient": m.recipient,
        "to": m.recipient,
        "subject": m.subject,
        "body": m.body,
        "template_type": m.template_type,
        "template_data": data,
        "message_type": if m.kind == "phone" { "sms" } else { "email" },
        "request_url": request_url,
    })
}

/// Sends one stored message on `channel`. `social` holds the channel's compiled request, the
/// sandbox and the HTTP client.
pub async fn send(social: &Social, channel: &HttpChannel, m: &MessageRow) -> Result<(), SendError> {
    let Some(request) = social.request(&channel.request.key) else {
        return Err(SendError::Http(format!(
            "the request of `{}` is not ready (the configuration is being replaced); will retry",
            channel.request.key
        )));
    };
    let body = match request.render(social.pool(), &ctx(m)).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::info!(message_id = %m.id, channel = %channel.id, "courier: the body template cancelled this message");
            return Ok(());
        }
        Err(e) => return Err(SendError::Http(e.to_string())),
    };
    let answer = request
        .send(social.http(), body)
        .await
        .map_err(|e: RequestError| SendError::Http(e.to_string()))?;
    if (200..300).contains(&answer.status) {
        return Ok(());
    }
    // The answer's start helps whoever reads the dispatch (a gateway's error text); it is the
    // gateway's own text, never our credentials.
    let head: String = String::from_utf8_lossy(&answer.body)
        .chars()
        .take(200)
        .collect();
    Err(SendError::Http(format!(
        "{} {} answered {}: {}",
        request.spec.method,
        request.target(),
        answer.status,
        head.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_has_kratos_fields_and_the_template_data() {
        let m = MessageRow {
            id: "m".into(),
            status: "queued".into(),
            kind: "phone".into(),
            channel: "sms".into(),
            recipient: "+79123456789".into(),
            subject: String::new(),
            body: "Код: 123456".into(),
            html_body: String::new(),
            template_type: "verification_code_valid".into(),
            send_count: 0,
            next_attempt_at: 0,
            created_at: 0,
            updated_at: 0,
            template_data: r#"{"to":"+79123456789","verification_code":"123456"}"#.into(),
        };
        let c = ctx(&m);
        assert_eq!(c["recipient"], "+79123456789");
        assert_eq!(c["to"], "+79123456789");
        assert_eq!(c["message_type"], "sms");
        assert_eq!(c["template_data"]["verification_code"], "123456");
        assert_eq!(c["body"], "Код: 123456");
        assert_eq!(c["request_url"], "");
    }
}
