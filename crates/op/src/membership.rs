//! Organizations, groups and app roles as an app sees them: who may use an app
//! (`access: assigned` = at least one allow rule matches), which app roles the rules grant,
//! and the claims `organizations`, `organization_data`, `organization_roles` (Logto's shapes),
//! `groups` and `roles`, with Logto's `urn:logto:scope:…` names accepted as aliases.
//!
//! The same data feeds the id_token (within a size cap), userinfo (always), introspection and
//! the app's claims mapper, so the shapes are identical everywhere and at every refresh.

use crate::{Client, OpResult, Provider};
use serde_json::{Map, Value, json};
use tessera_store::orgs::{AccessRuleRow, AccessSubject};
use uuid::Uuid;

/// Logto's scope names, accepted for Tessera's own (Logto SDK apps send these).
const ALIASES: &[(&str, &str)] = &[
    ("urn:logto:scope:organizations", "organizations"),
    ("urn:logto:scope:organization_roles", "organization_roles"),
];

/// The resource Logto's SDKs add to every sign-in that asks for organizations, so the refresh
/// token can later buy "organization tokens" (`organization_id` at the token endpoint). It
/// grants nothing by itself, so Tessera accepts it at authorization and keeps it out of the
/// grant; organization tokens themselves are refused by name (apps read the same facts from
/// the `organizations` and `organization_roles` claims).
pub const LOGTO_ORGANIZATIONS_RESOURCE: &str = "urn:logto:resource:organizations";

/// The scopes this module answers.
pub const SCOPES: &[&str] = &["organizations", "organization_roles", "groups", "roles"];

/// More organizations than this and `organization_data` stays out of the id_token (userinfo
/// still has it): an id_token travels in URLs and cookies.
pub const ID_TOKEN_MAX_ORGS: usize = 20;
/// A membership claim bigger than this (serialised) stays out of the id_token.
pub const ID_TOKEN_MAX_CLAIM_BYTES: usize = 4096;

/// Tessera's name for a scope (Logto's aliases mapped; everything else unchanged).
pub fn canonical_scope(s: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == s)
        .map(|(_, own)| *own)
        .unwrap_or(s)
}

/// One organization the identity is a direct member of.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgMembership {
    pub id: String,
    pub alias: String,
    pub name: String,
    pub description: String,
    /// `/acme/sales`.
    pub path: String,
    /// Organization roles there (names).
    pub roles: Vec<String>,
}

/// What an app may learn about an identity's memberships.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memberships {
    pub organizations: Vec<OrgMembership>,
    /// Group names.
    pub groups: Vec<String>,
    /// This app's roles granted by its access rules.
    pub app_roles: Vec<String>,
}

impl Memberships {
    /// The claims of the granted `scopes`. For an id_token, large claims are left out (they stay
    /// in userinfo): `organization_data` above [`ID_TOKEN_MAX_ORGS`], any claim above
    /// [`ID_TOKEN_MAX_CLAIM_BYTES`].
    pub fn claims(&self, scopes: &[&str], id_token: bool) -> Map<String, Value> {
        let has = |s: &str| scopes.iter().any(|x| canonical_scope(x) == s);
        let mut out = Map::new();
        if has("organizations") {
            out.insert(
                "organizations".into(),
                json!(self.organizations.iter().map(|o| &o.id).collect::<Vec<_>>()),
            );
            if !id_token || self.organizations.len() <= ID_TOKEN_MAX_ORGS {
                out.insert(
                    "organization_data".into(),
                    Value::Array(
                        self.organizations
                            .iter()
                            .map(|o| {
                                json!({"id": o.id, "name": o.name, "description": o.description,
                                       "alias": o.alias, "path": o.path})
                            })
                            .collect(),
                    ),
                );
            }
        }
        if has("organization_roles") {
            out.insert(
                "organization_roles".into(),
                json!(
                    self.organizations
                        .iter()
                        .flat_map(|o| o.roles.iter().map(move |r| format!("{}:{r}", o.id)))
                        .collect::<Vec<_>>()
                ),
            );
        }
        if has("groups") {
            out.insert("groups".into(), json!(self.groups));
        }
        if has("roles") {
            out.insert("roles".into(), json!(self.app_roles));
        }
        if id_token {
            out.retain(|_, v| v.to_string().len() <= ID_TOKEN_MAX_CLAIM_BYTES);
        }
        out
    }

    /// What the app's claims mapper sees (`organizations`, `groups`, `roles` in
    /// `std.extVar('claims')`), whatever the scopes: the mapper is the app's own code.
    pub fn mapper_view(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "organizations".into(),
            Value::Array(
                self.organizations
                    .iter()
                    .map(|o| json!({"id": o.id, "alias": o.alias, "name": o.name, "path": o.path, "roles": o.roles}))
                    .collect(),
            ),
        );
        m.insert("groups".into(), json!(self.groups));
        m.insert("roles".into(), json!(self.app_roles));
        m
    }
}

/// Whether any of `scopes` asks for membership claims.
pub fn wants_memberships(scopes: &[&str]) -> bool {
    scopes.iter().any(|s| SCOPES.contains(&canonical_scope(s)))
}

/// The outcome of the access check.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// May use the app, with these app roles.
    Allowed(Vec<String>),
    /// `access: assigned` and no rule admits the identity.
    Denied,
}

impl Provider {
    /// The access decision for `identity` at `client`: with `access: all` everyone is admitted
    /// (rules only grant app roles); with `access: assigned` at least one allow rule must match.
    /// One indexed query (see `store::orgs::op_access`).
    pub async fn app_access(&self, client: &Client, identity: Uuid) -> OpResult<Access> {
        let matched = self.store.op_access(&client.client_id, identity).await?;
        Ok(match matched {
            Some(roles) => Access::Allowed(
                roles
                    .into_iter()
                    .filter(|r| client.roles.contains(r))
                    .collect(),
            ),
            None if client.access == "assigned" => Access::Denied,
            None => Access::Allowed(vec![]),
        })
    }

    /// Whether `identity` may use `client`: free for `access: all` (no query), one indexed
    /// query for `access: assigned`. What authorization and refresh call.
    pub async fn may_use(&self, client: &Client, identity: Uuid) -> OpResult<bool> {
        if client.access != "assigned" {
            return Ok(true);
        }
        Ok(self.app_access(client, identity).await? != Access::Denied)
    }

    /// The app roles `identity` holds at `client` (empty when denied). Kept separate so that a
    /// scopes-from-roles mapping for JWT access tokens can call it.
    pub async fn app_roles(&self, client: &Client, identity: Uuid) -> OpResult<Vec<String>> {
        Ok(match self.app_access(client, identity).await? {
            Access::Allowed(r) => r,
            Access::Denied => vec![],
        })
    }

    /// The role names an API's `role_scopes` are matched against: the app roles `identity`
    /// holds at `client` and its organization roles (in any organization).
    pub async fn user_roles(&self, client: &Client, identity: Uuid) -> OpResult<Vec<String>> {
        let mut roles = self.app_roles(client, identity).await?;
        for (_, m) in self.store.identity_orgs(identity).await? {
            roles.extend(m.roles);
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    /// Everything the membership claims are made of, read when a token or userinfo is made.
    pub async fn memberships(&self, client: &Client, identity: Uuid) -> OpResult<Memberships> {
        let orgs = self.store.identity_orgs(identity).await?;
        let rows: Vec<_> = orgs.iter().map(|(o, _)| o.clone()).collect();
        let paths = self.store.org_paths(&rows).await?;
        let organizations = orgs
            .into_iter()
            .map(|(o, m)| OrgMembership {
                path: paths.get(&o.id).cloned().unwrap_or_default(),
                id: o.id,
                alias: o.alias,
                name: o.name,
                description: o.description,
                roles: m.roles,
            })
            .collect();
        let groups = self
            .store
            .identity_groups(identity)
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        Ok(Memberships {
            organizations,
            groups,
            app_roles: self.app_roles(client, identity).await?,
        })
    }
}

/// What the admin API accepts for an access rule (Logto's app-level access control, one rule
/// per subject). Read-only fields echoed back from a GET are ignored.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleInput {
    pub subject: SubjectInput,
    #[serde(default)]
    pub app_roles: Vec<String>,
    pub id: Option<Value>,
    pub created_at: Option<Value>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectInput {
    /// `identity`, `organization` or `group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An identity id; an organization id or alias path (`acme/sales`); a group id or name.
    pub id: String,
    /// Organizations only: whether members of descendants are admitted too (default true).
    pub include_descendants: Option<bool>,
    /// Organizations only: admit only members with one of these organization roles.
    #[serde(default)]
    pub organization_roles: Vec<String>,
}

fn bad(msg: impl Into<String>) -> tessera_core::Error {
    tessera_core::Error::bad_request(msg)
}

/// The admin API's JSON for an access rule.
pub fn access_rule_json(r: &AccessRuleRow) -> Value {
    let subject = match &r.subject {
        AccessSubject::Identity(i) => json!({"type": "identity", "id": i}),
        AccessSubject::Group(g) => json!({"type": "group", "id": g}),
        AccessSubject::Organization {
            id,
            include_descendants,
            roles,
        } => json!({
            "type": "organization", "id": id, "include_descendants": include_descendants,
            "organization_roles": roles,
        }),
    };
    json!({"id": r.id, "subject": subject, "app_roles": r.app_roles,
           "created_at": tessera_core::timefmt::to_rfc3339(r.created_at)})
}

impl Provider {
    /// Turns an access rule's JSON into a row for `client`: the subject resolved to ids, the
    /// app roles checked against the roles the app declares. Nothing is written here.
    pub async fn access_rule_from(
        &self,
        client: &Client,
        v: Value,
    ) -> Result<AccessRuleRow, tessera_core::Error> {
        let input: AccessRuleInput = serde_json::from_value(v).map_err(|e| {
            bad(format!(
                "The access rule is not valid: {e}. Send {{\"subject\": {{\"type\": \"organization\", \"id\": \"acme/sales\"}}, \"app_roles\": []}}."
            ))
        })?;
        for r in &input.app_roles {
            if !client.roles.contains(r) {
                return Err(bad(format!(
                    "invalid_client_metadata: app role `{r}` is not one of the roles app `{}` declares ({}); add it to the app's `roles` first.",
                    client.client_id,
                    if client.roles.is_empty() {
                        "none".to_string()
                    } else {
                        client.roles.join(", ")
                    }
                )));
            }
        }
        let s = input.subject;
        let only_orgs = |what: &str| {
            bad(format!(
                "`subject.{what}` applies to organization rules only."
            ))
        };
        if s.kind != "organization" {
            if s.include_descendants.is_some() {
                return Err(only_orgs("include_descendants"));
            }
            if !s.organization_roles.is_empty() {
                return Err(only_orgs("organization_roles"));
            }
        }
        let subject = match s.kind.as_str() {
            "identity" => {
                let id = Uuid::parse_str(&s.id).map_err(|_| {
                    bad(format!(
                        "`subject.id` `{}` is not an identity id (a UUID).",
                        s.id
                    ))
                })?;
                AccessSubject::Identity(id)
            }
            "group" => AccessSubject::Group(
                self.store
                    .group_get(&s.id)
                    .await
                    .map_err(|_| bad(format!("`subject.id`: group `{}` does not exist.", s.id)))?
                    .id,
            ),
            "organization" => {
                let org = if Uuid::parse_str(&s.id).is_ok() {
                    self.store.org_get(&s.id).await.ok()
                } else {
                    self.store.org_by_alias_path(&s.id).await?
                };
                let org = org.ok_or_else(|| {
                    bad(format!(
                        "`subject.id`: organization `{}` does not exist.",
                        s.id
                    ))
                })?;
                for r in &s.organization_roles {
                    tessera_core::org::check_name("organization role", r)?;
                }
                AccessSubject::Organization {
                    id: org.id,
                    include_descendants: s.include_descendants.unwrap_or(true),
                    roles: s.organization_roles,
                }
            }
            other => {
                return Err(bad(format!(
                    "`subject.type` `{other}` is not valid: use `identity`, `organization` or `group`."
                )));
            }
        };
        Ok(AccessRuleRow {
            id: Uuid::new_v4().to_string(),
            client_id: client.client_id.clone(),
            subject,
            app_roles: input.app_roles,
            created_at: tessera_core::timefmt::now_ms(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Memberships {
        Memberships {
            organizations: (0..n)
                .map(|i| OrgMembership {
                    id: format!("o{i}"),
                    alias: format!("a{i}"),
                    name: format!("Org {i}"),
                    description: String::new(),
                    path: format!("/a{i}"),
                    roles: vec!["admin".into()],
                })
                .collect(),
            groups: vec!["oncall".into()],
            app_roles: vec!["editor".into()],
        }
    }

    #[test]
    fn logto_aliases_give_logto_shapes() {
        let c = sample(1).claims(
            &[
                "openid",
                "urn:logto:scope:organizations",
                "urn:logto:scope:organization_roles",
            ],
            false,
        );
        assert_eq!(c["organizations"], json!(["o0"]));
        assert_eq!(c["organization_roles"], json!(["o0:admin"]));
        assert_eq!(c["organization_data"][0]["name"], "Org 0");
        assert!(!c.contains_key("groups"));
    }

    #[test]
    fn claims_follow_scopes_only() {
        let c = sample(1).claims(&["openid", "groups", "roles"], true);
        assert_eq!(c["groups"], json!(["oncall"]));
        assert_eq!(c["roles"], json!(["editor"]));
        assert!(!c.contains_key("organizations"));
        assert!(sample(1).claims(&["openid", "profile"], false).is_empty());
    }

    #[test]
    fn big_memberships_stay_out_of_the_id_token_but_not_userinfo() {
        let m = sample(ID_TOKEN_MAX_ORGS + 1);
        let id = m.claims(&["organizations"], true);
        assert!(id.contains_key("organizations"));
        assert!(!id.contains_key("organization_data"));
        assert!(
            m.claims(&["organizations"], false)
                .contains_key("organization_data")
        );
        let huge = sample(1000);
        assert!(
            !huge
                .claims(&["organizations"], true)
                .contains_key("organizations")
        );
    }
}
