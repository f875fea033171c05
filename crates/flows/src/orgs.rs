//! The rules behind `/admin/organizations`, `/admin/organization-roles`,
//! `/admin/organization-rules` and `/admin/groups` (input shapes, validation, JSON Patch), and
//! just-in-time membership: by verified e-mail domain and by rules over data the user cannot
//! edit (`metadata_admin`, `metadata_public`, `credentials.oidc.<provider>`).
//!
//! Organizations and groups are addressed by id or, for people, by alias path (`acme/sales`)
//! and name: [`Engine::resolve_org`] and `Store::group_get` accept both.

use crate::engine::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::Error;
use tessera_core::org::{self, MemberSource, OrganizationBy};
use tessera_core::timefmt::{now_ms, to_rfc3339};
use tessera_store::orgs::{DomainRow, GroupRow, MemberRow, OrgRow, OrgRuleRow, RoleRow};
use uuid::Uuid;

/// What the admin API accepts for an organization (POST and PUT). Read-only fields a client
/// may echo back from a GET are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgInput {
    pub alias: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// An id or an alias path; `null` for a root.
    pub parent_id: Option<String>,
    pub external_id: Option<String>,
    pub metadata_public: Option<Value>,
    pub metadata_admin: Option<Value>,
    pub id: Option<Value>,
    pub path: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub external_id: Option<String>,
    pub metadata_public: Option<Value>,
    pub metadata_admin: Option<Value>,
    pub id: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    pub id: Option<Value>,
    pub created_at: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    #[serde(default)]
    pub jit: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    pub domain: Option<Value>,
    pub organization_id: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub expression: String,
    pub organization_by: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub prune: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    #[serde(default)]
    pub roles: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v)
        .map_err(|e| Error::bad_request(format!("The {what} is not valid: {e}.")))
}

fn object_or_empty(v: Option<Value>, key: &str) -> Result<Value, Error> {
    match v {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(Error::bad_request(format!(
            "`{key}` must be a JSON object."
        ))),
    }
}

fn check_roles(roles: &[String]) -> Result<(), Error> {
    for r in roles {
        org::check_name("organization role", r)?;
    }
    Ok(())
}

/// The admin API's JSON for an organization.
pub fn org_json(o: &OrgRow, path: &str) -> Value {
    json!({
        "id": o.id, "parent_id": o.parent_id, "alias": o.alias, "name": o.name,
        "description": o.description, "path": path, "external_id": o.external_id,
        "metadata_public": o.metadata_public, "metadata_admin": o.metadata_admin,
        "created_at": to_rfc3339(o.created_at), "updated_at": to_rfc3339(o.updated_at),
    })
}

pub fn member_json(m: &MemberRow) -> Value {
    json!({
        "organization_id": m.organization_id, "identity_id": m.identity_id, "roles": m.roles,
        "source": m.source.as_str(), "created_at": to_rfc3339(m.created_at),
    })
}

pub fn group_json(g: &GroupRow) -> Value {
    json!({
        "id": g.id, "name": g.name, "description": g.description, "external_id": g.external_id,
        "metadata_public": g.metadata_public, "metadata_admin": g.metadata_admin,
        "created_at": to_rfc3339(g.created_at), "updated_at": to_rfc3339(g.updated_at),
    })
}

pub fn role_json(r: &RoleRow) -> Value {
    json!({"id": r.id, "name": r.name, "description": r.description, "created_at": to_rfc3339(r.created_at)})
}

pub fn domain_json(d: &DomainRow) -> Value {
    json!({"domain": d.domain, "organization_id": d.organization_id, "jit": d.jit, "roles": d.roles})
}

pub fn rule_json(r: &OrgRuleRow) -> Value {
    json!({"id": r.id, "expression": r.expression, "organization_by": r.organization_by,
           "roles": r.roles, "prune": r.prune, "created_at": to_rfc3339(r.created_at)})
}

impl Engine {
    /// An organization by id or alias path (`acme/sales`).
    pub async fn resolve_org(&self, id_or_path: &str) -> Result<OrgRow, Error> {
        if Uuid::parse_str(id_or_path).is_ok() {
            return self.store.org_get(id_or_path).await;
        }
        self.store
            .org_by_alias_path(id_or_path)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Organization `{id_or_path}` does not exist (give an id or an alias path such as `acme/sales`)."
                ))
            })
    }

    /// The organization's JSON with its alias path.
    pub async fn org_view(&self, o: &OrgRow) -> Result<Value, Error> {
        let paths = self.store.org_paths(std::slice::from_ref(o)).await?;
        Ok(org_json(
            o,
            paths.get(&o.id).map(String::as_str).unwrap_or(""),
        ))
    }

    async fn org_from_input(
        &self,
        input: OrgInput,
        base: Option<&OrgRow>,
    ) -> Result<OrgRow, Error> {
        let alias = input.alias.ok_or_else(|| {
            Error::bad_request(
                "`alias` is missing: give the organization a short lowercase alias such as `acme`.",
            )
        })?;
        org::check_alias(&alias)?;
        let parent_id = match input.parent_id.as_deref() {
            None | Some("") => None,
            Some(p) => Some(
                self.resolve_org(p)
                    .await
                    .map_err(|_| {
                        Error::bad_request(format!("`parent_id` `{p}` names no organization."))
                    })?
                    .id,
            ),
        };
        if let Some(x) = &input.external_id
            && x.trim().is_empty()
        {
            return Err(Error::bad_request(
                "`external_id` must not be empty: leave it out instead.",
            ));
        }
        let now = now_ms();
        Ok(OrgRow {
            id: base
                .map(|b| b.id.clone())
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            parent_id,
            name: input
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| alias.clone()),
            alias,
            description: input.description.unwrap_or_default(),
            id_path: String::new(),
            external_id: input.external_id,
            metadata_public: object_or_empty(input.metadata_public, "metadata_public")?,
            metadata_admin: object_or_empty(input.metadata_admin, "metadata_admin")?,
            created_at: base.map(|b| b.created_at).unwrap_or(now),
            updated_at: now,
        })
    }

    pub async fn create_org(&self, v: Value) -> Result<OrgRow, Error> {
        let mut row = self.org_from_input(parse(v, "organization")?, None).await?;
        self.store.org_insert(&mut row).await?;
        Ok(row)
    }

    /// Replaces an organization; a new `parent_id` moves its subtree (cycles refused).
    pub async fn update_org(&self, id: &str, v: Value) -> Result<OrgRow, Error> {
        let current = self.resolve_org(id).await?;
        let mut row = self
            .org_from_input(parse(v, "organization")?, Some(&current))
            .await?;
        self.store.org_update(&mut row).await?;
        Ok(row)
    }

    /// RFC 6902 JSON Patch on the organization's admin view, validated as a PUT.
    pub async fn patch_org(&self, id: &str, patch: &Value) -> Result<OrgRow, Error> {
        let current = self.resolve_org(id).await?;
        let mut doc = self.org_view(&current).await?;
        apply_patch(&mut doc, patch)?;
        if doc.get("id").and_then(Value::as_str) != Some(current.id.as_str()) {
            return Err(Error::bad_request("`id` cannot be changed."));
        }
        let mut row = self
            .org_from_input(parse(doc, "patched organization")?, Some(&current))
            .await?;
        self.store.org_update(&mut row).await?;
        Ok(row)
    }

    pub async fn put_member(
        &self,
        org_id: &str,
        identity: Uuid,
        v: Value,
    ) -> Result<MemberRow, Error> {
        let input: MemberInput = parse(v, "membership")?;
        check_roles(&input.roles)?;
        let o = self.resolve_org(org_id).await?;
        self.store.get_identity(identity).await?;
        self.store
            .org_put_member(
                &o.id,
                identity,
                &input.roles,
                MemberSource::Manual,
                None,
                now_ms(),
            )
            .await
    }

    pub async fn create_role(&self, v: Value) -> Result<RoleRow, Error> {
        let input: RoleInput = parse(v, "organization role")?;
        let name = input
            .name
            .ok_or_else(|| Error::bad_request("`name` is missing."))?;
        org::check_name("organization role", &name)?;
        let row = RoleRow {
            id: Uuid::new_v4().to_string(),
            name,
            description: input.description,
            created_at: now_ms(),
        };
        self.store.org_role_insert(&row).await?;
        Ok(row)
    }

    pub async fn update_role(&self, id: &str, v: Value) -> Result<RoleRow, Error> {
        let input: RoleInput = parse(v, "organization role")?;
        let current = self.store.org_role(id).await?;
        let name = input.name.unwrap_or(current.name);
        org::check_name("organization role", &name)?;
        let row = RoleRow {
            name,
            description: input.description,
            ..current
        };
        self.store.org_role_update(&row).await?;
        Ok(row)
    }

    pub async fn put_domain(
        &self,
        org_id: &str,
        domain: &str,
        v: Value,
    ) -> Result<DomainRow, Error> {
        let input: DomainInput = parse(v, "domain")?;
        check_roles(&input.roles)?;
        let o = self.resolve_org(org_id).await?;
        let row = DomainRow {
            domain: org::normalize_domain(domain)?,
            organization_id: o.id,
            jit: input.jit,
            roles: input.roles,
        };
        self.store.org_put_domain(&row).await?;
        Ok(row)
    }

    /// A just-in-time rule; an expression over traits is refused before anything is written.
    pub async fn create_org_rule(&self, v: Value) -> Result<OrgRuleRow, Error> {
        let input: RuleInput = parse(v, "organization rule")?;
        org::check_rule_expression(&input.expression)?;
        let by = OrganizationBy::parse(&input.organization_by)?;
        check_roles(&input.roles)?;
        let row = OrgRuleRow {
            id: Uuid::new_v4().to_string(),
            expression: input.expression,
            organization_by: by.as_str().into(),
            roles: input.roles,
            prune: input.prune,
            created_at: now_ms(),
        };
        self.store.org_rule_insert(&row).await?;
        Ok(row)
    }

    fn group_from_input(input: GroupInput, base: Option<&GroupRow>) -> Result<GroupRow, Error> {
        let name = input
            .name
            .ok_or_else(|| Error::bad_request("`name` is missing."))?;
        org::check_name("group name", &name)?;
        let now = now_ms();
        Ok(GroupRow {
            id: base
                .map(|b| b.id.clone())
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            name,
            description: input.description.unwrap_or_default(),
            external_id: input.external_id.filter(|x| !x.trim().is_empty()),
            metadata_public: object_or_empty(input.metadata_public, "metadata_public")?,
            metadata_admin: object_or_empty(input.metadata_admin, "metadata_admin")?,
            created_at: base.map(|b| b.created_at).unwrap_or(now),
            updated_at: now,
        })
    }

    pub async fn create_group(&self, v: Value) -> Result<GroupRow, Error> {
        let row = Self::group_from_input(parse(v, "group")?, None)?;
        self.store.group_insert(&row).await?;
        Ok(row)
    }

    pub async fn update_group(&self, id: &str, v: Value) -> Result<GroupRow, Error> {
        let current = self.store.group_get(id).await?;
        let row = Self::group_from_input(parse(v, "group")?, Some(&current))?;
        self.store.group_update(&row).await?;
        Ok(row)
    }

    pub async fn patch_group(&self, id: &str, patch: &Value) -> Result<GroupRow, Error> {
        let current = self.store.group_get(id).await?;
        let mut doc = group_json(&current);
        apply_patch(&mut doc, patch)?;
        if doc.get("id").and_then(Value::as_str) != Some(current.id.as_str()) {
            return Err(Error::bad_request("`id` cannot be changed."));
        }
        let row = Self::group_from_input(parse(doc, "patched group")?, Some(&current))?;
        self.store.group_update(&row).await?;
        Ok(row)
    }

    /// Just-in-time membership for an identity, run when it signs in or registers (after the
    /// sign-in mapper wrote its metadata). Adds memberships for its *verified* e-mail
    /// addresses' domains (jit domains only) and for every organization rule whose value
    /// selects an organization; with `prune`, removes the memberships that rule made earlier
    /// and that no longer match. Manual, import and domain memberships are never removed.
    pub async fn apply_org_jit(&self, identity: Uuid) -> Result<(), Error> {
        let ident = self.store.get_identity(identity).await?;
        let now = now_ms();
        for a in ident
            .verifiable_addresses
            .iter()
            .filter(|a| a.verified && a.via == "email")
        {
            let Some(domain) = org::email_domain(&a.value) else {
                continue;
            };
            if let Some(d) = self
                .store
                .org_domain_owner(&org::domain_candidates(&domain))
                .await?
                && d.jit
            {
                self.store
                    .org_add_member_if_absent(
                        &d.organization_id,
                        identity,
                        &d.roles,
                        MemberSource::Domain,
                        None,
                        now,
                    )
                    .await?;
            }
        }
        for rule in self.store.org_rules().await? {
            // Rules stored before a check existed are re-checked: never act on traits.
            if org::check_rule_expression(&rule.expression).is_err() {
                continue;
            }
            let by = OrganizationBy::parse(&rule.organization_by)?;
            let mut matched = Vec::new();
            for value in org::rule_values(&ident, &rule.expression) {
                let found = match by {
                    OrganizationBy::ExternalId => self.store.org_by_external_id(&value).await?,
                    OrganizationBy::AliasPath => self.store.org_by_alias_path(&value).await?,
                    OrganizationBy::Id => match Uuid::parse_str(&value) {
                        Ok(_) => self.store.org_get(&value).await.ok(),
                        Err(_) => None,
                    },
                };
                if let Some(o) = found {
                    self.store
                        .org_add_member_if_absent(
                            &o.id,
                            identity,
                            &rule.roles,
                            MemberSource::Rule,
                            Some(&rule.id),
                            now,
                        )
                        .await?;
                    matched.push(o.id);
                }
            }
            if rule.prune {
                self.store
                    .org_prune_rule_members(&rule.id, identity, &matched)
                    .await?;
            }
        }
        Ok(())
    }
}

fn apply_patch(doc: &mut Value, patch: &Value) -> Result<(), Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
        Error::bad_request(format!(
            "The body must be a JSON Patch array (RFC 6902) such as [{{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Sales\"}}]: {e}"
        ))
    })?;
    json_patch::patch(doc, &patch)
        .map_err(|e| Error::bad_request(format!("The patch cannot be applied: {e}.")))
}
