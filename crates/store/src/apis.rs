//! Storage for the OpenID Provider's APIs (resource servers, RFC 8707): one row per API, its
//! audience URI unique, at most one marked default (a partial unique index, so two instances
//! racing to make two defaults cannot both win). Listing is keyset-paged by id.

use crate::identities::{decode_page_token, encode_page_token};
use crate::{Page, Store, db_err};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use tessera_core::Error;

const PAGE_TOKEN_PREFIX: &str = "tessera/v1/apis/";
const COLS: &str = "id, identifier, metadata, is_default, created_at, updated_at";

/// An API as stored; `metadata` (name, scopes, lifetime, algorithm) is owned by the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRow {
    pub id: String,
    pub identifier: String,
    pub metadata: Value,
    pub is_default: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

fn from_row(row: &AnyRow) -> Result<ApiRow, Error> {
    let metadata: String = row.try_get("metadata").map_err(db_err)?;
    Ok(ApiRow {
        id: row.try_get("id").map_err(db_err)?,
        identifier: row.try_get("identifier").map_err(db_err)?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::internal(format!("corrupt API metadata: {e}")))?,
        is_default: row.try_get::<i64, _>("is_default").map_err(db_err)? != 0,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

/// A uniqueness violation on `op_apis`: the identifier or the default flag is taken.
fn conflict(e: sqlx::Error, a: &ApiRow) -> Error {
    match db_err(e) {
        e if e.kind == tessera_core::ErrorKind::Conflict => Error::conflict(format!(
            "Another API already has the identifier `{}`{}.",
            a.identifier,
            if a.is_default {
                " or is the default API (there is at most one: unset `default` on it first)"
            } else {
                ""
            }
        )),
        e => e,
    }
}

impl Store {
    pub async fn op_insert_api(&self, a: &ApiRow) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO op_apis (id, identifier, metadata, is_default, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&a.id)
        .bind(&a.identifier)
        .bind(a.metadata.to_string())
        .bind(i64::from(a.is_default))
        .bind(a.created_at)
        .bind(a.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, a))?;
        Ok(())
    }

    /// Replaces an API's identifier, metadata and default flag; false when it does not exist.
    pub async fn op_update_api(&self, a: &ApiRow) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE op_apis SET identifier = $1, metadata = $2, is_default = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&a.identifier)
        .bind(a.metadata.to_string())
        .bind(i64::from(a.is_default))
        .bind(a.updated_at)
        .bind(&a.id)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, a))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn op_get_api(&self, id: &str) -> Result<Option<ApiRow>, Error> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM op_apis WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// The API whose audience URI is `identifier` (exact match).
    pub async fn op_api_by_identifier(&self, identifier: &str) -> Result<Option<ApiRow>, Error> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM op_apis WHERE identifier = $1"))
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// The default API, if one is marked.
    pub async fn op_default_api(&self) -> Result<Option<ApiRow>, Error> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM op_apis WHERE is_default = 1"))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of APIs ordered by id.
    pub async fn op_list_apis(
        &self,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<ApiRow>, Error> {
        let after = match page_token {
            Some(t) => decode_page_token(PAGE_TOKEN_PREFIX, t)?,
            None => String::new(),
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM op_apis WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(&after)
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
            items
                .last()
                .map(|a| encode_page_token(PAGE_TOKEN_PREFIX, &a.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    pub async fn op_delete_api(&self, id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM op_apis WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
