//! Self-service flow persistence: the whole flow object is stored so any instance can continue a
//! flow another instance started.

use crate::{Store, db_err};
use serde_json::Value;
use sqlx::Row;
use tessera_core::flow::{Flow, FlowInternal, FlowKind, FlowState, FlowType};
use tessera_core::{Error, crypto};
use uuid::Uuid;

impl Store {
    pub async fn insert_flow(&self, f: &Flow) -> Result<(), Error> {
        sqlx::query("INSERT INTO selfservice_flows (id, kind, flow_type, state, request_url, return_to, csrf_hash, identity_id, ui, extra, issued_at, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
            .bind(f.id.to_string())
            .bind(f.kind.as_str())
            .bind(f.flow_type.as_str())
            .bind(f.state.as_str())
            .bind(&f.request_url)
            .bind(f.return_to.clone())
            .bind(csrf_hash(&f.csrf_token))
            .bind(f.identity_id.map(|i| i.to_string()))
            .bind(serde_json::to_string(&f.ui).unwrap_or_default())
            .bind(extra(f))
            .bind(f.issued_at)
            .bind(f.expires_at)
            .bind(f.created_at)
            .bind(f.updated_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub async fn update_flow(&self, f: &Flow) -> Result<(), Error> {
        sqlx::query("UPDATE selfservice_flows SET state = $1, ui = $2, extra = $3, updated_at = $4 WHERE id = $5")
            .bind(f.state.as_str())
            .bind(serde_json::to_string(&f.ui).unwrap_or_default())
            .bind(extra(f))
            .bind(f.updated_at)
            .bind(f.id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Marks a flow used so it cannot be submitted again; returns false if another request won
    /// the race (the flow was already completed).
    pub async fn complete_flow(&self, id: Uuid, now: i64) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE selfservice_flows SET state = 'passed_challenge', updated_at = $1 WHERE id = $2 AND state <> 'passed_challenge' AND state <> 'success'")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Loads a flow; `csrf_hash` is returned separately since the flow only knows the raw token
    /// when it is created.
    pub async fn get_flow(&self, id: Uuid) -> Result<(Flow, String), Error> {
        let row = sqlx::query("SELECT * FROM selfservice_flows WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::flow_not_found(&id.to_string()))?;
        let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
        let ui: String = get_s("ui")?;
        let extra: Value = serde_json::from_str(&get_s("extra")?).unwrap_or(Value::Null);
        let identity_id: Option<String> = row.try_get("identity_id").map_err(db_err)?;
        let flow = Flow {
            id,
            flow_type: FlowType::parse(&get_s("flow_type")?).unwrap_or(FlowType::Api),
            kind: FlowKind::parse(&get_s("kind")?).unwrap_or_default(),
            expires_at: row.try_get("expires_at").map_err(db_err)?,
            issued_at: row.try_get("issued_at").map_err(db_err)?,
            request_url: get_s("request_url")?,
            return_to: row.try_get("return_to").map_err(db_err)?,
            ui: serde_json::from_str(&ui)
                .map_err(|e| Error::internal(format!("corrupt flow ui: {e}")))?,
            state: {
                let state = get_s("state")?;
                FlowState::parse(&state)
                    .ok_or_else(|| Error::internal(format!("corrupt flow state `{state}`")))?
            },
            refresh: extra.get("refresh").and_then(Value::as_bool),
            requested_aal: extra
                .get("requested_aal")
                .and_then(Value::as_str)
                .map(String::from),
            identity: Value::Null,
            created_at: row.try_get("created_at").map_err(db_err)?,
            updated_at: row.try_get("updated_at").map_err(db_err)?,
            csrf_token: String::new(),
            identity_id: identity_id.and_then(|s| Uuid::parse_str(&s).ok()),
            internal: internal_of(&extra, id),
            session_token_exchange_code: None,
            active: extra
                .get("active")
                .and_then(Value::as_str)
                .map(String::from),
            continue_with: Vec::new(),
        };
        Ok((flow, get_s("csrf_hash")?))
    }

    /// Removes flows that expired more than a day ago (housekeeping).
    pub async fn delete_expired_flows(&self, before: i64) -> Result<u64, Error> {
        let done = sqlx::query("DELETE FROM selfservice_flows WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// Hash of a CSRF token as stored; empty tokens (API flows) stay empty.
pub fn csrf_hash(token: &str) -> String {
    if token.is_empty() {
        String::new()
    } else {
        crypto::token_hash(token)
    }
}

/// The `extra` column: `{"internal", "refresh", "requested_aal"}` (keys sorted, as written
/// since the first release), with `internal` `null` when the flow keeps nothing.
fn extra(f: &Flow) -> String {
    let internal = if f.internal.is_empty() {
        Value::Null
    } else {
        serde_json::to_value(&f.internal).unwrap_or(Value::Null)
    };
    let mut v = serde_json::json!({ "refresh": f.refresh, "requested_aal": f.requested_aal, "internal": internal });
    if let Some(a) = &f.active {
        v["active"] = Value::String(a.clone());
    }
    v.to_string()
}

/// Reads `extra.internal`. A value this version cannot read (a row written by a future one,
/// say) loses only the flow's pending method state, as the old untyped reader ignored what it
/// did not know; the flow itself still loads.
fn internal_of(extra: &Value, id: Uuid) -> FlowInternal {
    match extra.get("internal") {
        None | Some(Value::Null) => FlowInternal::default(),
        Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
            tracing::warn!(flow = %id, error = %e, "flow internal state unreadable; dropped");
            FlowInternal::default()
        }),
    }
}
