//! Organizations (a tree), organization roles, memberships, e-mail domains, just-in-time
//! rules, groups, and the allow rules that say who may use an app (`op_access_rules`).
//!
//! The tree is kept as an `id_path` per node (`/<root>/…/<id>/`), so "is a member of this
//! organization or one of its descendants" is a prefix test and moving a subtree is one
//! `UPDATE` of the paths under it, inside the same transaction that checks for cycles and depth.
//! Role names are resolved to ids inside the writing transaction, so an unknown role writes
//! nothing.

use crate::identities::{decode_page_token, encode_page_token};
use crate::{Page, Store, db_err, placeholders};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::{BTreeSet, HashMap};
use tessera_core::Error;
use tessera_core::org::{MAX_DEPTH, MemberSource};
use uuid::Uuid;

const ORG_COLS: &str = "id, parent_id, alias, name, description, id_path, external_id, metadata_public, metadata_admin, created_at, updated_at";
const GROUP_COLS: &str =
    "id, name, description, external_id, metadata_public, metadata_admin, created_at, updated_at";

/// An organization as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub alias: String,
    pub name: String,
    pub description: String,
    /// `/<root id>/…/<own id>/`, maintained by the store.
    pub id_path: String,
    pub external_id: Option<String>,
    pub metadata_public: Value,
    pub metadata_admin: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

impl OrgRow {
    pub fn depth(&self) -> usize {
        self.id_path.split('/').filter(|s| !s.is_empty()).count()
    }
}

/// A membership with its organization roles (names).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub organization_id: String,
    pub identity_id: Uuid,
    pub roles: Vec<String>,
    pub source: MemberSource,
    pub rule_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainRow {
    pub domain: String,
    pub organization_id: String,
    pub jit: bool,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrgRuleRow {
    pub id: String,
    pub expression: String,
    pub organization_by: String,
    pub roles: Vec<String>,
    pub prune: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub external_id: Option<String>,
    pub metadata_public: Value,
    pub metadata_admin: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who an access rule admits.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessSubject {
    Identity(Uuid),
    Group(String),
    Organization {
        id: String,
        include_descendants: bool,
        /// Role names; empty means every member.
        roles: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessRuleRow {
    pub id: String,
    pub client_id: String,
    pub subject: AccessSubject,
    pub app_roles: Vec<String>,
    pub created_at: i64,
}

fn json_text(row: &AnyRow, col: &str) -> Result<Value, Error> {
    let s: String = row.try_get(col).map_err(db_err)?;
    serde_json::from_str(&s).map_err(|e| Error::internal(format!("corrupt {col}: {e}")))
}

fn names_text(row: &AnyRow, col: &str) -> Result<Vec<String>, Error> {
    serde_json::from_value(json_text(row, col)?)
        .map_err(|e| Error::internal(format!("corrupt {col}: {e}")))
}

fn org_from_row(row: &AnyRow) -> Result<OrgRow, Error> {
    Ok(OrgRow {
        id: row.try_get("id").map_err(db_err)?,
        parent_id: row.try_get("parent_id").map_err(db_err)?,
        alias: row.try_get("alias").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        description: row.try_get("description").map_err(db_err)?,
        id_path: row.try_get("id_path").map_err(db_err)?,
        external_id: row.try_get("external_id").map_err(db_err)?,
        metadata_public: json_text(row, "metadata_public")?,
        metadata_admin: json_text(row, "metadata_admin")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

fn group_from_row(row: &AnyRow) -> Result<GroupRow, Error> {
    Ok(GroupRow {
        id: row.try_get("id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        description: row.try_get("description").map_err(db_err)?,
        external_id: row.try_get("external_id").map_err(db_err)?,
        metadata_public: json_text(row, "metadata_public")?,
        metadata_admin: json_text(row, "metadata_admin")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

fn role_from_row(row: &AnyRow) -> Result<RoleRow, Error> {
    Ok(RoleRow {
        id: row.try_get("id").map_err(db_err)?,
        name: row.try_get("name").map_err(db_err)?,
        description: row.try_get("description").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
    })
}

fn uuid_of(s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|_| Error::internal("corrupt identity id"))
}

/// A uniqueness violation becomes `conflict` with this message; anything else as usual.
fn or_conflict(e: sqlx::Error, msg: impl FnOnce() -> String) -> Error {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return Error::conflict(msg());
    }
    db_err(e)
}

fn org_missing(id: &str) -> Error {
    Error::not_found(format!("Organization `{id}` does not exist."))
}

fn group_missing(id: &str) -> Error {
    Error::not_found(format!("Group `{id}` does not exist."))
}

fn page_of<T>(mut items: Vec<T>, size: usize, prefix: &str, key: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > size {
        items.truncate(size);
        items.last().map(|i| encode_page_token(prefix, &key(i)))
    } else {
        None
    };
    Page { items, next }
}

/// Resolves role names to ids inside `tx`; an unknown name is the caller's mistake.
async fn role_ids(tx: &mut Transaction<'_, Any>, names: &[String]) -> Result<Vec<String>, Error> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names.iter().collect::<BTreeSet<_>>() {
        let row = sqlx::query("SELECT id FROM organization_roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => ids.push(r.try_get::<String, _>("id").map_err(db_err)?),
            None => {
                return Err(Error::bad_request(format!(
                    "Organization role `{name}` does not exist: create it first (POST /admin/organization-roles or `tessera orgs roles create {name}`)."
                )));
            }
        }
    }
    Ok(ids)
}

async fn org_in(tx: &mut Transaction<'_, Any>, id: &str) -> Result<OrgRow, Error> {
    let row = sqlx::query(&format!(
        "SELECT {ORG_COLS} FROM organizations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    .ok_or_else(|| org_missing(id))?;
    org_from_row(&row)
}

/// Organizations.
impl Store {
    /// Creates an organization under `parent_id` (or as a root); fills in `id_path`.
    pub async fn org_insert(&self, org: &mut OrgRow) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        org.id_path = match &org.parent_id {
            None => format!("/{}/", org.id),
            Some(p) => {
                let parent = org_in(&mut tx, p).await.map_err(|_| {
                    Error::bad_request(format!(
                        "`parent_id` `{p}` names no organization: create the parent first."
                    ))
                })?;
                if parent.depth() >= MAX_DEPTH {
                    return Err(Error::bad_request(format!(
                        "The organization tree may be at most {MAX_DEPTH} levels deep; `{}` is already at level {}.",
                        parent.alias,
                        parent.depth()
                    )));
                }
                format!("{}{}/", parent.id_path, org.id)
            }
        };
        sqlx::query(&format!(
            "INSERT INTO organizations ({ORG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&org.id)
        .bind(org.parent_id.as_deref())
        .bind(&org.alias)
        .bind(&org.name)
        .bind(&org.description)
        .bind(&org.id_path)
        .bind(org.external_id.as_deref())
        .bind(org.metadata_public.to_string())
        .bind(org.metadata_admin.to_string())
        .bind(org.created_at)
        .bind(org.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| or_conflict(e, || org_conflict(org)))?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Replaces an organization's fields; a new `parent_id` moves the whole subtree in the same
    /// transaction. Moving under itself or a descendant (a cycle) or beyond [`MAX_DEPTH`] is
    /// refused and writes nothing.
    pub async fn org_update(&self, org: &mut OrgRow) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let current = org_in(&mut tx, &org.id).await?;
        org.id_path = current.id_path.clone();
        if org.parent_id != current.parent_id {
            let new_path = match &org.parent_id {
                None => format!("/{}/", org.id),
                Some(p) => {
                    let parent = org_in(&mut tx, p).await.map_err(|_| {
                        Error::bad_request(format!("`parent_id` `{p}` names no organization."))
                    })?;
                    if parent.id_path.starts_with(&current.id_path) {
                        return Err(Error::bad_request(format!(
                            "Moving `{}` under `{}` would make a cycle: `{}` is `{}` itself or one of its descendants. Move it under an organization outside its own subtree.",
                            current.alias, parent.alias, parent.alias, current.alias
                        )));
                    }
                    format!("{}{}/", parent.id_path, org.id)
                }
            };
            // The deepest node below moves with it.
            let deepest: Vec<String> =
                sqlx::query("SELECT id_path FROM organizations WHERE id_path LIKE $1")
                    .bind(format!("{}%", current.id_path))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .iter()
                    .map(|r| r.try_get::<String, _>("id_path"))
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?;
            let below = deepest
                .iter()
                .map(|p| p.split('/').filter(|s| !s.is_empty()).count())
                .max()
                .unwrap_or(0)
                .saturating_sub(current.depth());
            let new_depth = new_path.split('/').filter(|s| !s.is_empty()).count();
            if new_depth + below > MAX_DEPTH {
                return Err(Error::bad_request(format!(
                    "Moving `{}` there would make the tree {} levels deep; at most {MAX_DEPTH} are allowed.",
                    current.alias,
                    new_depth + below
                )));
            }
            sqlx::query(
                "UPDATE organizations SET id_path = $1 || substr(id_path, CAST($2 AS INTEGER)) WHERE id_path LIKE $3",
            )
            .bind(&new_path)
            .bind(current.id_path.len() as i64 + 1)
            .bind(format!("{}%", current.id_path))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            org.id_path = new_path;
        }
        sqlx::query(
            "UPDATE organizations SET parent_id = $1, alias = $2, name = $3, description = $4, external_id = $5, metadata_public = $6, metadata_admin = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(org.parent_id.as_deref())
        .bind(&org.alias)
        .bind(&org.name)
        .bind(&org.description)
        .bind(org.external_id.as_deref())
        .bind(org.metadata_public.to_string())
        .bind(org.metadata_admin.to_string())
        .bind(org.updated_at)
        .bind(&org.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| or_conflict(e, || org_conflict(org)))?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Deletes a leaf organization (memberships, domains and access rules go with it); one with
    /// children is a conflict, so a subtree is never deleted by accident.
    pub async fn org_delete(&self, id: &str) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let org = org_in(&mut tx, id).await?;
        let child = sqlx::query("SELECT alias FROM organizations WHERE parent_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(c) = child {
            let alias: String = c.try_get("alias").map_err(db_err)?;
            return Err(Error::conflict(format!(
                "Organization `{}` still has children (e.g. `{alias}`): delete or move them first.",
                org.alias
            )));
        }
        sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub async fn org_get(&self, id: &str) -> Result<OrgRow, Error> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLS} FROM organizations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| org_missing(id))?;
        org_from_row(&row)
    }

    pub async fn org_by_external_id(&self, external_id: &str) -> Result<Option<OrgRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLS} FROM organizations WHERE external_id = $1"
        ))
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(org_from_row).transpose()
    }

    /// Finds an organization by its alias path (`acme/sales`).
    pub async fn org_by_alias_path(&self, path: &str) -> Result<Option<OrgRow>, Error> {
        let mut parent: Option<OrgRow> = None;
        for alias in path.trim_matches('/').split('/') {
            let row = match &parent {
                None => sqlx::query(&format!(
                    "SELECT {ORG_COLS} FROM organizations WHERE parent_id IS NULL AND alias = $1"
                ))
                .bind(alias)
                .fetch_optional(&self.pool)
                .await,
                Some(p) => {
                    sqlx::query(&format!(
                        "SELECT {ORG_COLS} FROM organizations WHERE parent_id = $1 AND alias = $2"
                    ))
                    .bind(&p.id)
                    .bind(alias)
                    .fetch_optional(&self.pool)
                    .await
                }
            }
            .map_err(db_err)?;
            match row {
                Some(r) => parent = Some(org_from_row(&r)?),
                None => return Ok(None),
            }
        }
        Ok(parent)
    }

    /// Lists organizations by id. `parent`: `None` all, `Some(None)` roots, `Some(Some(id))`
    /// that node's children.
    pub async fn org_list(
        &self,
        size: usize,
        token: Option<&str>,
        parent: Option<Option<&str>>,
        external_id: Option<&str>,
    ) -> Result<Page<OrgRow>, Error> {
        const PREFIX: &str = "tessera/v1/organizations/";
        let after = token
            .map(|t| decode_page_token(PREFIX, t))
            .transpose()?
            .unwrap_or_default();
        let mut sql = format!("SELECT {ORG_COLS} FROM organizations WHERE id > $1");
        let mut binds: Vec<String> = vec![after];
        match parent {
            Some(None) => sql.push_str(" AND parent_id IS NULL"),
            Some(Some(p)) => {
                binds.push(p.to_string());
                sql.push_str(&format!(" AND parent_id = ${}", binds.len()));
            }
            None => {}
        }
        if let Some(x) = external_id {
            binds.push(x.to_string());
            sql.push_str(&format!(" AND external_id = ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", size + 1));
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        let items = rows
            .iter()
            .map(org_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, size, PREFIX, |o| o.id.clone()))
    }

    /// The alias path (`/acme/sales`) of each organization given, in one query.
    pub async fn org_paths(&self, orgs: &[OrgRow]) -> Result<HashMap<String, String>, Error> {
        let ids: BTreeSet<&str> = orgs
            .iter()
            .flat_map(|o| o.id_path.split('/').filter(|s| !s.is_empty()))
            .collect();
        let mut aliases = HashMap::new();
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, alias FROM organizations WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await.map_err(db_err)? {
                aliases.insert(
                    r.try_get::<String, _>("id").map_err(db_err)?,
                    r.try_get::<String, _>("alias").map_err(db_err)?,
                );
            }
        }
        Ok(orgs
            .iter()
            .map(|o| {
                let path: Vec<&str> = o
                    .id_path
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|id| aliases.get(id).map(String::as_str).unwrap_or("?"))
                    .collect();
                (o.id.clone(), format!("/{}", path.join("/")))
            })
            .collect())
    }
}

fn org_conflict(org: &OrgRow) -> String {
    format!(
        "Another organization already uses alias `{}` under the same parent{}: aliases are unique among siblings and external ids are unique.",
        org.alias,
        org.external_id
            .as_deref()
            .map(|x| format!(", or external_id `{x}`"))
            .unwrap_or_default()
    )
}

/// Memberships.
impl Store {
    /// Adds or updates a membership and replaces its roles (names). A rule-made row that an
    /// administrator touches becomes `manual`, so pruning never removes it afterwards; a rule
    /// or domain never downgrades an existing manual row.
    pub async fn org_put_member(
        &self,
        organization_id: &str,
        identity: Uuid,
        roles: &[String],
        source: MemberSource,
        rule_id: Option<&str>,
        now: i64,
    ) -> Result<MemberRow, Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        org_in(&mut tx, organization_id).await?;
        let ids = role_ids(&mut tx, roles).await?;
        let existing = sqlx::query(
            "SELECT source FROM organization_members WHERE organization_id = $1 AND identity_id = $2",
        )
        .bind(organization_id)
        .bind(identity.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        match existing {
            None => {
                sqlx::query("INSERT INTO organization_members (organization_id, identity_id, source, rule_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(organization_id)
                    .bind(identity.to_string())
                    .bind(source.as_str())
                    .bind(rule_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            Some(_) if source == MemberSource::Manual => {
                sqlx::query("UPDATE organization_members SET source = 'manual', rule_id = NULL WHERE organization_id = $1 AND identity_id = $2")
                    .bind(organization_id)
                    .bind(identity.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            Some(_) => {}
        }
        sqlx::query(
            "DELETE FROM organization_member_roles WHERE organization_id = $1 AND identity_id = $2",
        )
        .bind(organization_id)
        .bind(identity.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for id in &ids {
            sqlx::query("INSERT INTO organization_member_roles (organization_id, identity_id, role_id) VALUES ($1, $2, $3)")
                .bind(organization_id)
                .bind(identity.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.org_member(organization_id, identity)
            .await?
            .ok_or_else(|| Error::internal("membership vanished after it was written"))
    }

    /// Adds a membership only when there is none (just-in-time paths: never touch what an
    /// administrator set).
    pub async fn org_add_member_if_absent(
        &self,
        organization_id: &str,
        identity: Uuid,
        roles: &[String],
        source: MemberSource,
        rule_id: Option<&str>,
        now: i64,
    ) -> Result<bool, Error> {
        if self.org_member(organization_id, identity).await?.is_some() {
            return Ok(false);
        }
        // Roles that were deleted since the rule was written are skipped, not fatal.
        let known: Vec<String> = {
            let all = self.org_roles().await?;
            roles
                .iter()
                .filter(|r| all.iter().any(|a| &a.name == *r))
                .cloned()
                .collect()
        };
        self.org_put_member(organization_id, identity, &known, source, rule_id, now)
            .await?;
        Ok(true)
    }

    pub async fn org_remove_member(
        &self,
        organization_id: &str,
        identity: Uuid,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "DELETE FROM organization_members WHERE organization_id = $1 AND identity_id = $2",
        )
        .bind(organization_id)
        .bind(identity.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the memberships `rule_id` made for this identity except in `keep`; returns how
    /// many went. Manual, import and domain rows are never touched.
    pub async fn org_prune_rule_members(
        &self,
        rule_id: &str,
        identity: Uuid,
        keep: &[String],
    ) -> Result<u64, Error> {
        let mut sql = "DELETE FROM organization_members WHERE source = 'rule' AND rule_id = $1 AND identity_id = $2".to_string();
        if !keep.is_empty() {
            sql.push_str(&format!(
                " AND organization_id NOT IN ({})",
                placeholders(3, keep.len())
            ));
        }
        let mut q = sqlx::query(&sql).bind(rule_id).bind(identity.to_string());
        for k in keep {
            q = q.bind(k);
        }
        Ok(q.execute(&self.pool).await.map_err(db_err)?.rows_affected())
    }

    async fn member_roles(
        &self,
        organization_id: &str,
        identity: Uuid,
    ) -> Result<Vec<String>, Error> {
        let rows = sqlx::query("SELECT r.name FROM organization_member_roles m JOIN organization_roles r ON r.id = m.role_id WHERE m.organization_id = $1 AND m.identity_id = $2 ORDER BY r.name")
            .bind(organization_id)
            .bind(identity.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("name").map_err(db_err))
            .collect()
    }

    fn member_from_row(
        row: &AnyRow,
    ) -> Result<(String, Uuid, MemberSource, Option<String>, i64), Error> {
        let source: String = row.try_get("source").map_err(db_err)?;
        Ok((
            row.try_get("organization_id").map_err(db_err)?,
            uuid_of(&row.try_get::<String, _>("identity_id").map_err(db_err)?)?,
            MemberSource::parse(&source).ok_or_else(|| Error::internal("corrupt member source"))?,
            row.try_get("rule_id").map_err(db_err)?,
            row.try_get("created_at").map_err(db_err)?,
        ))
    }

    pub async fn org_member(
        &self,
        organization_id: &str,
        identity: Uuid,
    ) -> Result<Option<MemberRow>, Error> {
        let row = sqlx::query("SELECT organization_id, identity_id, source, rule_id, created_at FROM organization_members WHERE organization_id = $1 AND identity_id = $2")
            .bind(organization_id)
            .bind(identity.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let (organization_id, identity_id, source, rule_id, created_at) =
            Self::member_from_row(&row)?;
        let roles = self.member_roles(&organization_id, identity_id).await?;
        Ok(Some(MemberRow {
            organization_id,
            identity_id,
            roles,
            source,
            rule_id,
            created_at,
        }))
    }

    /// An organization's members (with its descendants' when asked), paged by identity id
    /// then organization id.
    pub async fn org_members(
        &self,
        organization_id: &str,
        include_descendants: bool,
        size: usize,
        token: Option<&str>,
    ) -> Result<Page<MemberRow>, Error> {
        const PREFIX: &str = "tessera/v1/organization-members/";
        let org = self.org_get(organization_id).await?;
        let after = token
            .map(|t| decode_page_token(PREFIX, t))
            .transpose()?
            .unwrap_or_default();
        let (a_ident, a_org) = after.split_once(' ').unwrap_or((after.as_str(), ""));
        let scope = if include_descendants {
            "o.id_path LIKE $1"
        } else {
            "o.id = $1"
        };
        let sql = format!(
            "SELECT m.organization_id, m.identity_id, m.source, m.rule_id, m.created_at FROM organization_members m JOIN organizations o ON o.id = m.organization_id WHERE {scope} AND (m.identity_id > $2 OR (m.identity_id = $2 AND m.organization_id > $3)) ORDER BY m.identity_id, m.organization_id LIMIT {}",
            size + 1
        );
        let rows = sqlx::query(&sql)
            .bind(if include_descendants {
                format!("{}%", org.id_path)
            } else {
                org.id.clone()
            })
            .bind(a_ident)
            .bind(a_org)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let (organization_id, identity_id, source, rule_id, created_at) =
                Self::member_from_row(row)?;
            let roles = self.member_roles(&organization_id, identity_id).await?;
            items.push(MemberRow {
                organization_id,
                identity_id,
                roles,
                source,
                rule_id,
                created_at,
            });
        }
        Ok(page_of(items, size, PREFIX, |m| {
            format!("{} {}", m.identity_id, m.organization_id)
        }))
    }

    /// Every organization the identity is a direct member of, with its roles there, by path.
    pub async fn identity_orgs(&self, identity: Uuid) -> Result<Vec<(OrgRow, MemberRow)>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {}, m.source, m.rule_id, m.created_at AS member_since FROM organization_members m JOIN organizations o ON o.id = m.organization_id WHERE m.identity_id = $1 ORDER BY o.id_path",
            ORG_COLS.split(", ").map(|c| format!("o.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(identity.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let role_rows = sqlx::query("SELECT m.organization_id, r.name FROM organization_member_roles m JOIN organization_roles r ON r.id = m.role_id WHERE m.identity_id = $1 ORDER BY r.name")
            .bind(identity.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut roles: HashMap<String, Vec<String>> = HashMap::new();
        for r in &role_rows {
            roles
                .entry(r.try_get("organization_id").map_err(db_err)?)
                .or_default()
                .push(r.try_get("name").map_err(db_err)?);
        }
        rows.iter()
            .map(|row| {
                let org = org_from_row(row)?;
                let source: String = row.try_get("source").map_err(db_err)?;
                let member = MemberRow {
                    organization_id: org.id.clone(),
                    identity_id: identity,
                    roles: roles.get(&org.id).cloned().unwrap_or_default(),
                    source: MemberSource::parse(&source)
                        .ok_or_else(|| Error::internal("corrupt member source"))?,
                    rule_id: row.try_get("rule_id").map_err(db_err)?,
                    created_at: row.try_get("member_since").map_err(db_err)?,
                };
                Ok((org, member))
            })
            .collect()
    }

    /// Identities that are direct members of an organization (Kratos's
    /// `GET /admin/identities?organization_id=`), as ids paged by id.
    pub async fn org_member_ids(
        &self,
        organization_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Uuid>, Error> {
        let rows = sqlx::query("SELECT identity_id FROM organization_members WHERE organization_id = $1 AND identity_id > $2 ORDER BY identity_id LIMIT $3")
            .bind(organization_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| uuid_of(&r.try_get::<String, _>("identity_id").map_err(db_err)?))
            .collect()
    }
}

/// Organization roles.
impl Store {
    pub async fn org_role_insert(&self, r: &RoleRow) -> Result<(), Error> {
        sqlx::query("INSERT INTO organization_roles (id, name, description, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(r.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                or_conflict(e, || format!("Organization role `{}` already exists.", r.name))
            })?;
        Ok(())
    }

    pub async fn org_role_update(&self, r: &RoleRow) -> Result<bool, Error> {
        let done =
            sqlx::query("UPDATE organization_roles SET name = $1, description = $2 WHERE id = $3")
                .bind(&r.name)
                .bind(&r.description)
                .bind(&r.id)
                .execute(&self.pool)
                .await
                .map_err(|e| {
                    or_conflict(e, || {
                        format!("Organization role `{}` already exists.", r.name)
                    })
                })?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn org_roles(&self) -> Result<Vec<RoleRow>, Error> {
        let rows = sqlx::query(
            "SELECT id, name, description, created_at FROM organization_roles ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(role_from_row).collect()
    }

    /// A role by id or by name.
    pub async fn org_role(&self, id_or_name: &str) -> Result<RoleRow, Error> {
        let row = sqlx::query("SELECT id, name, description, created_at FROM organization_roles WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found(format!("Organization role `{id_or_name}` does not exist.")))?;
        role_from_row(&row)
    }

    /// Deletes a role (it leaves every membership that had it). A role that an app's access
    /// rule requires is a conflict: deleting it would silently open the rule to every member.
    pub async fn org_role_delete(&self, id: &str) -> Result<(), Error> {
        let role = self.org_role(id).await?;
        let used = sqlx::query("SELECT a.client_id FROM op_access_rule_roles rr JOIN op_access_rules a ON a.id = rr.rule_id WHERE rr.role_id = $1 LIMIT 1")
            .bind(&role.id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        if let Some(u) = used {
            let client: String = u.try_get("client_id").map_err(db_err)?;
            return Err(Error::conflict(format!(
                "Organization role `{}` is required by an access rule of app `{client}`: change or delete that rule first.",
                role.name
            )));
        }
        sqlx::query("DELETE FROM organization_roles WHERE id = $1")
            .bind(&role.id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Domains and just-in-time rules.
impl Store {
    /// Claims a domain for an organization (or updates its settings there). A domain another
    /// organization owns is a conflict; nothing is written.
    pub async fn org_put_domain(&self, d: &DomainRow) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        org_in(&mut tx, &d.organization_id).await?;
        role_ids(&mut tx, &d.roles).await?;
        let owner =
            sqlx::query("SELECT organization_id FROM organization_domains WHERE domain = $1")
                .bind(&d.domain)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let roles = serde_json::to_string(&d.roles).unwrap_or_else(|_| "[]".into());
        match owner {
            Some(o) => {
                let other: String = o.try_get("organization_id").map_err(db_err)?;
                if other != d.organization_id {
                    return Err(Error::conflict(format!(
                        "Domain `{}` already belongs to organization `{other}`: a domain belongs to one organization. Remove it there first.",
                        d.domain
                    )));
                }
                sqlx::query(
                    "UPDATE organization_domains SET jit = $1, roles = $2 WHERE domain = $3",
                )
                .bind(i64::from(d.jit))
                .bind(roles)
                .bind(&d.domain)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            None => {
                sqlx::query("INSERT INTO organization_domains (domain, organization_id, jit, roles) VALUES ($1, $2, $3, $4)")
                    .bind(&d.domain)
                    .bind(&d.organization_id)
                    .bind(i64::from(d.jit))
                    .bind(roles)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        or_conflict(e, || {
                            format!("Domain `{}` already belongs to another organization.", d.domain)
                        })
                    })?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub async fn org_delete_domain(
        &self,
        organization_id: &str,
        domain: &str,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "DELETE FROM organization_domains WHERE organization_id = $1 AND domain = $2",
        )
        .bind(organization_id)
        .bind(domain)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    fn domain_from_row(r: &AnyRow) -> Result<DomainRow, Error> {
        Ok(DomainRow {
            domain: r.try_get("domain").map_err(db_err)?,
            organization_id: r.try_get("organization_id").map_err(db_err)?,
            jit: r.try_get::<i64, _>("jit").map_err(db_err)? != 0,
            roles: names_text(r, "roles")?,
        })
    }

    pub async fn org_domains(&self, organization_id: &str) -> Result<Vec<DomainRow>, Error> {
        let rows = sqlx::query("SELECT domain, organization_id, jit, roles FROM organization_domains WHERE organization_id = $1 ORDER BY domain")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(Self::domain_from_row).collect()
    }

    /// The first of `candidates` (most specific first) that an organization owns.
    pub async fn org_domain_owner(
        &self,
        candidates: &[String],
    ) -> Result<Option<DomainRow>, Error> {
        for c in candidates {
            let row = sqlx::query("SELECT domain, organization_id, jit, roles FROM organization_domains WHERE domain = $1")
                .bind(c)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            if let Some(r) = row {
                return Self::domain_from_row(&r).map(Some);
            }
        }
        Ok(None)
    }

    pub async fn org_rule_insert(&self, r: &OrgRuleRow) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        role_ids(&mut tx, &r.roles).await?;
        sqlx::query("INSERT INTO organization_rules (id, expression, organization_by, roles, prune, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&r.id)
            .bind(&r.expression)
            .bind(&r.organization_by)
            .bind(serde_json::to_string(&r.roles).unwrap_or_else(|_| "[]".into()))
            .bind(i64::from(r.prune))
            .bind(r.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub async fn org_rules(&self) -> Result<Vec<OrgRuleRow>, Error> {
        let rows = sqlx::query("SELECT id, expression, organization_by, roles, prune, created_at FROM organization_rules ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(OrgRuleRow {
                    id: r.try_get("id").map_err(db_err)?,
                    expression: r.try_get("expression").map_err(db_err)?,
                    organization_by: r.try_get("organization_by").map_err(db_err)?,
                    roles: names_text(r, "roles")?,
                    prune: r.try_get::<i64, _>("prune").map_err(db_err)? != 0,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                })
            })
            .collect()
    }

    pub async fn org_rule_delete(&self, id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM organization_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

/// Groups.
impl Store {
    pub async fn group_insert(&self, g: &GroupRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO groups ({GROUP_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(g.external_id.as_deref())
        .bind(g.metadata_public.to_string())
        .bind(g.metadata_admin.to_string())
        .bind(g.created_at)
        .bind(g.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| or_conflict(e, || group_conflict(g)))?;
        Ok(())
    }

    pub async fn group_update(&self, g: &GroupRow) -> Result<(), Error> {
        let done = sqlx::query("UPDATE groups SET name = $1, description = $2, external_id = $3, metadata_public = $4, metadata_admin = $5, updated_at = $6 WHERE id = $7")
            .bind(&g.name)
            .bind(&g.description)
            .bind(g.external_id.as_deref())
            .bind(g.metadata_public.to_string())
            .bind(g.metadata_admin.to_string())
            .bind(g.updated_at)
            .bind(&g.id)
            .execute(&self.pool)
            .await
            .map_err(|e| or_conflict(e, || group_conflict(g)))?;
        if done.rows_affected() == 0 {
            return Err(group_missing(&g.id));
        }
        Ok(())
    }

    /// A group by id or by name.
    pub async fn group_get(&self, id_or_name: &str) -> Result<GroupRow, Error> {
        let row = sqlx::query(&format!(
            "SELECT {GROUP_COLS} FROM groups WHERE id = $1 OR name = $1"
        ))
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or_else(|| group_missing(id_or_name))?;
        group_from_row(&row)
    }

    pub async fn group_list(
        &self,
        size: usize,
        token: Option<&str>,
    ) -> Result<Page<GroupRow>, Error> {
        const PREFIX: &str = "tessera/v1/groups/";
        let after = token
            .map(|t| decode_page_token(PREFIX, t))
            .transpose()?
            .unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLS} FROM groups WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(size as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let items = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, size, PREFIX, |g| g.id.clone()))
    }

    pub async fn group_delete(&self, id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn group_add_member(
        &self,
        group_id: &str,
        identity: Uuid,
        now: i64,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO group_members (group_id, identity_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (group_id, identity_id) DO NOTHING")
            .bind(group_id)
            .bind(identity.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub async fn group_remove_member(&self, group_id: &str, identity: Uuid) -> Result<bool, Error> {
        let done =
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND identity_id = $2")
                .bind(group_id)
                .bind(identity.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn group_members(
        &self,
        group_id: &str,
        size: usize,
        token: Option<&str>,
    ) -> Result<Page<Uuid>, Error> {
        const PREFIX: &str = "tessera/v1/group-members/";
        let after = token
            .map(|t| decode_page_token(PREFIX, t))
            .transpose()?
            .unwrap_or_default();
        let rows = sqlx::query("SELECT identity_id FROM group_members WHERE group_id = $1 AND identity_id > $2 ORDER BY identity_id LIMIT $3")
            .bind(group_id)
            .bind(after)
            .bind(size as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows
            .iter()
            .map(|r| uuid_of(&r.try_get::<String, _>("identity_id").map_err(db_err)?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, size, PREFIX, |u| u.to_string()))
    }

    pub async fn identity_groups(&self, identity: Uuid) -> Result<Vec<GroupRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.identity_id = $1 ORDER BY g.name",
            GROUP_COLS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(identity.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(group_from_row).collect()
    }
}

fn group_conflict(g: &GroupRow) -> String {
    format!(
        "Another group already has the name `{}`{}.",
        g.name,
        g.external_id
            .as_deref()
            .map(|x| format!(" or the external_id `{x}`"))
            .unwrap_or_default()
    )
}

/// The subject's identity, organization and group columns, exactly one set.
fn subject_cols(
    s: &AccessSubject,
) -> (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
) {
    match s {
        AccessSubject::Identity(id) => ("identity", Some(id.to_string()), None, None, true),
        AccessSubject::Group(g) => ("group", None, None, Some(g.clone()), true),
        AccessSubject::Organization {
            id,
            include_descendants,
            ..
        } => (
            "organization",
            None,
            Some(id.clone()),
            None,
            *include_descendants,
        ),
    }
}

async fn insert_rule(tx: &mut Transaction<'_, Any>, r: &AccessRuleRow) -> Result<(), Error> {
    let (kind, identity, org, group, desc) = subject_cols(&r.subject);
    let ids = match &r.subject {
        AccessSubject::Organization { id, roles, .. } => {
            org_in(tx, id).await.map_err(|_| {
                Error::bad_request(format!(
                    "The rule names organization `{id}`, which does not exist."
                ))
            })?;
            role_ids(tx, roles).await?
        }
        AccessSubject::Group(g) => {
            let found = sqlx::query("SELECT 1 AS one FROM groups WHERE id = $1")
                .bind(g)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
            if found.is_none() {
                return Err(Error::bad_request(format!(
                    "The rule names group `{g}`, which does not exist."
                )));
            }
            vec![]
        }
        AccessSubject::Identity(i) => {
            let found = sqlx::query("SELECT 1 AS one FROM identities WHERE id = $1")
                .bind(i.to_string())
                .fetch_optional(&mut **tx)
                .await
                .map_err(db_err)?;
            if found.is_none() {
                return Err(Error::not_found(format!(
                    "The rule names identity `{i}`, which does not exist."
                )));
            }
            vec![]
        }
    };
    sqlx::query("INSERT INTO op_access_rules (id, client_id, subject_type, identity_id, organization_id, group_id, include_descendants, app_roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&r.id)
        .bind(&r.client_id)
        .bind(kind)
        .bind(identity)
        .bind(org)
        .bind(group)
        .bind(i64::from(desc))
        .bind(serde_json::to_string(&r.app_roles).unwrap_or_else(|_| "[]".into()))
        .bind(r.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| {
            or_conflict(e, || {
                "The app already has a rule for this subject: change or delete that rule instead.".into()
            })
        })?;
    for id in ids {
        sqlx::query("INSERT INTO op_access_rule_roles (rule_id, role_id) VALUES ($1, $2)")
            .bind(&r.id)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// App access rules.
impl Store {
    pub async fn op_insert_access_rule(&self, r: &AccessRuleRow) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_rule(&mut tx, r).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Replaces every rule of an app at once (all or nothing).
    pub async fn op_replace_access_rules(
        &self,
        client_id: &str,
        rules: &[AccessRuleRow],
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM op_access_rules WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for r in rules {
            insert_rule(&mut tx, r).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub async fn op_delete_access_rule(&self, client_id: &str, id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM op_access_rules WHERE client_id = $1 AND id = $2")
            .bind(client_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn op_access_rules(&self, client_id: &str) -> Result<Vec<AccessRuleRow>, Error> {
        let rows = sqlx::query("SELECT id, client_id, subject_type, identity_id, organization_id, group_id, include_descendants, app_roles, created_at FROM op_access_rules WHERE client_id = $1 ORDER BY created_at, id")
            .bind(client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let role_rows = sqlx::query("SELECT rr.rule_id, r.name FROM op_access_rule_roles rr JOIN organization_roles r ON r.id = rr.role_id JOIN op_access_rules a ON a.id = rr.rule_id WHERE a.client_id = $1 ORDER BY r.name")
            .bind(client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut roles: HashMap<String, Vec<String>> = HashMap::new();
        for r in &role_rows {
            roles
                .entry(r.try_get("rule_id").map_err(db_err)?)
                .or_default()
                .push(r.try_get("name").map_err(db_err)?);
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id").map_err(db_err)?;
                let kind: String = r.try_get("subject_type").map_err(db_err)?;
                let col = |c: &str| r.try_get::<Option<String>, _>(c).map_err(db_err);
                let subject = match kind.as_str() {
                    "identity" => {
                        AccessSubject::Identity(uuid_of(&col("identity_id")?.unwrap_or_default())?)
                    }
                    "group" => AccessSubject::Group(col("group_id")?.unwrap_or_default()),
                    _ => AccessSubject::Organization {
                        id: col("organization_id")?.unwrap_or_default(),
                        include_descendants: r
                            .try_get::<i64, _>("include_descendants")
                            .map_err(db_err)?
                            != 0,
                        roles: roles.remove(&id).unwrap_or_default(),
                    },
                };
                Ok(AccessRuleRow {
                    client_id: r.try_get("client_id").map_err(db_err)?,
                    subject,
                    app_roles: names_text(r, "app_roles")?,
                    created_at: r.try_get("created_at").map_err(db_err)?,
                    id,
                })
            })
            .collect()
    }

    /// The access decision, one query (Logto's `hasUserApplicationAccess` shape): the app roles
    /// of every rule of `client_id` that admits `identity` — an identity rule naming it, a group
    /// rule of one of its groups, or an organization rule of an organization it is a member of
    /// (or of an ancestor, unless the rule excludes descendants), limited to members with one of
    /// the rule's roles when it lists any. `None` when no rule matches.
    pub async fn op_access(
        &self,
        client_id: &str,
        identity: Uuid,
    ) -> Result<Option<Vec<String>>, Error> {
        let rows = sqlx::query(
            "SELECT r.app_roles FROM op_access_rules r WHERE r.client_id = $1 AND (
                r.identity_id = $2
             OR (r.group_id IS NOT NULL AND EXISTS (SELECT 1 FROM group_members g
                    WHERE g.group_id = r.group_id AND g.identity_id = $2))
             OR (r.organization_id IS NOT NULL AND EXISTS (
                    SELECT 1 FROM organization_members m
                    JOIN organizations mo ON mo.id = m.organization_id
                    JOIN organizations ro ON ro.id = r.organization_id
                    WHERE m.identity_id = $2
                      AND (mo.id = ro.id OR (r.include_descendants = 1 AND mo.id_path LIKE ro.id_path || '%'))
                      AND (NOT EXISTS (SELECT 1 FROM op_access_rule_roles rr WHERE rr.rule_id = r.id)
                           OR EXISTS (SELECT 1 FROM op_access_rule_roles rr
                                JOIN organization_member_roles mr ON mr.role_id = rr.role_id
                                WHERE rr.rule_id = r.id AND mr.organization_id = m.organization_id
                                  AND mr.identity_id = $2)))))",
        )
        .bind(client_id)
        .bind(identity.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut roles = BTreeSet::new();
        for r in &rows {
            roles.extend(names_text(r, "app_roles")?);
        }
        Ok(Some(roles.into_iter().collect()))
    }

    /// Today's per-identity assignments are identity rules without app roles.
    pub async fn op_assign(&self, client_id: &str, identity: Uuid, now: i64) -> Result<(), Error> {
        sqlx::query("INSERT INTO op_access_rules (id, client_id, subject_type, identity_id, include_descendants, app_roles, created_at) VALUES ($1, $2, 'identity', $3, 1, '[]', $4) ON CONFLICT DO NOTHING")
            .bind(Uuid::new_v4().to_string())
            .bind(client_id)
            .bind(identity.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub async fn op_unassign(&self, client_id: &str, identity: Uuid) -> Result<bool, Error> {
        let done =
            sqlx::query("DELETE FROM op_access_rules WHERE client_id = $1 AND identity_id = $2")
                .bind(client_id)
                .bind(identity.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether an identity rule names this identity (the assignments endpoints' view).
    pub async fn op_is_assigned(&self, client_id: &str, identity: Uuid) -> Result<bool, Error> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM op_access_rules WHERE client_id = $1 AND identity_id = $2",
        )
        .bind(client_id)
        .bind(identity.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    /// The identities named by identity rules (`GET …/assignments`: a bare array of ids).
    pub async fn op_assignments(&self, client_id: &str) -> Result<Vec<Uuid>, Error> {
        let rows = sqlx::query("SELECT identity_id FROM op_access_rules WHERE client_id = $1 AND identity_id IS NOT NULL ORDER BY identity_id")
            .bind(client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| uuid_of(&r.try_get::<String, _>("identity_id").map_err(db_err)?))
            .collect()
    }
}

/// Kratos's `GET /admin/identities?organization_id=`.
impl Store {
    /// The identities that are direct members of an organization, paged by id.
    pub async fn list_identities_in_org(
        &self,
        organization_id: &str,
        size: usize,
        token: Option<&str>,
    ) -> Result<Page<tessera_core::identity::Identity>, Error> {
        const PREFIX: &str = "tessera/v1/organization-identities/";
        let after = token
            .map(|t| decode_page_token(PREFIX, t))
            .transpose()?
            .unwrap_or_default();
        let rows = sqlx::query("SELECT i.* FROM identities i WHERE (i.organization_id = $1 OR i.id IN (SELECT identity_id FROM organization_members WHERE organization_id = $1)) AND i.id > $2 ORDER BY i.id LIMIT $3")
            .bind(organization_id)
            .bind(after)
            .bind(size as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let items = rows
            .iter()
            .map(crate::identities::identity_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page_of(items, size, PREFIX, |i| i.id.to_string()))
    }
}
