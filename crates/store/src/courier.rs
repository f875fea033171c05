//! The courier's queue (`courier_messages`, Kratos's table) and its delivery attempts
//! (`courier_message_dispatches`). A message is written whole before anything is sent; a
//! worker claims it with a conditional `UPDATE` (the status and `next_attempt_at` it read), so
//! two workers never both take it, and the claim is a lease: a worker killed mid-send leaves the
//! message `processing` until `next_attempt_at`, after which any worker takes it again. Times
//! are unix milliseconds.

use crate::identities::{decode_page_token, encode_page_token};
use crate::{Page, Store, db_err};
use sqlx::Row;
use sqlx::any::AnyRow;
use tessera_core::Error;

const PAGE_TOKEN_PREFIX: &str = "tessera/v1/courier/";
const COLS: &str = "id, status, type, channel, recipient, subject, body, html_body, template_type, send_count, next_attempt_at, created_at, updated_at, template_data";

/// A message as stored. `status` is Kratos's (`queued`, `processing`, `sent`, `abandoned`),
/// `kind` its `type` (`email`, `phone`).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: String,
    pub status: String,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    /// The plain-text body (what the admin API shows as `body`).
    pub body: String,
    /// The HTML alternative of an email (empty for other channels).
    pub html_body: String,
    pub template_type: String,
    pub send_count: i64,
    /// When the message is due (queued) or when its claim runs out (processing).
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The variables the message was rendered with (a JSON object, Kratos's `template_data`).
    pub template_data: String,
}

/// One delivery attempt: `success` or `failed` with the error.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchRow {
    pub id: String,
    pub message_id: String,
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What became of one claimed delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent,
    /// Failed; due again at the time given.
    Retry {
        error: String,
        at: i64,
    },
    /// Failed for the last time (`courier.message_retries` reached).
    Abandon {
        error: String,
    },
}

fn from_row(row: &AnyRow) -> Result<MessageRow, Error> {
    Ok(MessageRow {
        id: row.try_get("id").map_err(db_err)?,
        status: row.try_get("status").map_err(db_err)?,
        kind: row.try_get("type").map_err(db_err)?,
        channel: row.try_get("channel").map_err(db_err)?,
        recipient: row.try_get("recipient").map_err(db_err)?,
        subject: row.try_get("subject").map_err(db_err)?,
        body: row.try_get("body").map_err(db_err)?,
        html_body: row.try_get("html_body").map_err(db_err)?,
        template_type: row.try_get("template_type").map_err(db_err)?,
        send_count: row.try_get("send_count").map_err(db_err)?,
        next_attempt_at: row.try_get("next_attempt_at").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
        template_data: row.try_get("template_data").map_err(db_err)?,
    })
}

fn dispatch_from_row(row: &AnyRow) -> Result<DispatchRow, Error> {
    Ok(DispatchRow {
        id: row.try_get("id").map_err(db_err)?,
        message_id: row.try_get("message_id").map_err(db_err)?,
        status: row.try_get("status").map_err(db_err)?,
        error: row.try_get("error").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

impl Store {
    /// Queues a rendered message.
    pub async fn courier_enqueue(&self, m: &MessageRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO courier_messages ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&m.id)
        .bind(&m.status)
        .bind(&m.kind)
        .bind(&m.channel)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.html_body)
        .bind(&m.template_type)
        .bind(m.send_count)
        .bind(m.next_attempt_at)
        .bind(m.created_at)
        .bind(m.updated_at)
        .bind(&m.template_data)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Claims up to `limit` due messages (queued and due, or processing with a lapsed claim)
    /// for `lease_ms`. Each is taken by a conditional `UPDATE` on the status and due time that
    /// were read, so of two workers racing for one message exactly one gets it. The returned
    /// rows carry the claim (`status` processing, `next_attempt_at` the lease's end), which
    /// [`Store::courier_finish`] must present.
    pub async fn courier_claim(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<MessageRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM courier_messages WHERE status IN ('queued', 'processing') AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut claimed = Vec::new();
        for row in &rows {
            let mut m = from_row(row)?;
            let lease = now.saturating_add(lease_ms);
            let done = crate::retry_busy(|| {
                sqlx::query(
                    "UPDATE courier_messages SET status = 'processing', next_attempt_at = $1, updated_at = $2 \
                     WHERE id = $3 AND status = $4 AND next_attempt_at = $5",
                )
                .bind(lease)
                .bind(now)
                .bind(&m.id)
                .bind(&m.status)
                .bind(m.next_attempt_at)
                .execute(&self.pool)
            })
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                m.status = "processing".into();
                m.next_attempt_at = lease;
                m.updated_at = now;
                claimed.push(m);
            }
        }
        Ok(claimed)
    }

    /// Records the outcome of an attempt on a message claimed as `claimed` (its lease), with
    /// its dispatch row, in one transaction. False when the claim had lapsed and another worker
    /// took the message (nothing is written then).
    pub async fn courier_finish(
        &self,
        claimed: &MessageRow,
        outcome: &Delivery,
        now: i64,
    ) -> Result<bool, Error> {
        let (status, next, error, dispatch) = match outcome {
            Delivery::Sent => ("sent", claimed.next_attempt_at, None, "success"),
            Delivery::Retry { error, at } => ("queued", *at, Some(error.clone()), "failed"),
            Delivery::Abandon { error } => (
                "abandoned",
                claimed.next_attempt_at,
                Some(error.clone()),
                "failed",
            ),
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE courier_messages SET status = $1, next_attempt_at = $2, send_count = send_count + 1, updated_at = $3 \
             WHERE id = $4 AND status = 'processing' AND next_attempt_at = $5",
        )
        .bind(status)
        .bind(next)
        .bind(now)
        .bind(&claimed.id)
        .bind(claimed.next_attempt_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO courier_message_dispatches (id, message_id, status, error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&claimed.id)
        .bind(dispatch)
        .bind(error)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// A page of messages, newest first, optionally only those with `status` or `recipient`.
    pub async fn courier_list(
        &self,
        status: Option<&str>,
        recipient: Option<&str>,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<MessageRow>, Error> {
        let (before_at, before_id) = match page_token {
            Some(t) => {
                let raw = decode_page_token(PAGE_TOKEN_PREFIX, t)?;
                let bad = || {
                    Error::bad_request(format!(
                        "The page_token `{t}` is invalid: use the page_token from the Link header of the previous response, unmodified."
                    ))
                    .with_id(tessera_core::error::ErrorId::InvalidPageToken)
                };
                let (at, id) = raw.split_once('|').ok_or_else(bad)?;
                (at.parse::<i64>().map_err(|_| bad())?, id.to_string())
            }
            None => (i64::MAX, String::new()),
        };
        let mut sql = format!(
            "SELECT {COLS} FROM courier_messages WHERE (created_at < $1 OR (created_at = $1 AND id < $2))"
        );
        let mut n = 3;
        if status.is_some() {
            sql.push_str(&format!(" AND status = ${n}"));
            n += 1;
        }
        if recipient.is_some() {
            sql.push_str(&format!(" AND recipient = ${n}"));
            n += 1;
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${n}"));
        let first_page = page_token.is_none();
        let mut q = sqlx::query(&sql).bind(before_at).bind(if first_page {
            // Any id compares below this one: the first page starts at the newest message.
            "\u{10FFFF}".to_string()
        } else {
            before_id
        });
        if let Some(s) = status {
            q = q.bind(s);
        }
        if let Some(r) = recipient {
            q = q.bind(r);
        }
        let rows = q
            .bind(
                i64::try_from(page_size)
                    .unwrap_or(i64::MAX)
                    .saturating_add(1),
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > page_size {
            items.truncate(page_size);
            items.last().map(|m| {
                encode_page_token(PAGE_TOKEN_PREFIX, &format!("{}|{}", m.created_at, m.id))
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub async fn courier_get(&self, id: &str) -> Result<Option<MessageRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM courier_messages WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// The delivery attempts of `message_id`, oldest first.
    pub async fn courier_dispatches(&self, message_id: &str) -> Result<Vec<DispatchRow>, Error> {
        let rows = sqlx::query(
            "SELECT id, message_id, status, error, created_at, updated_at FROM courier_message_dispatches WHERE message_id = $1 ORDER BY created_at, id",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(dispatch_from_row).collect()
    }
}
