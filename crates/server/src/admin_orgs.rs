//! `/admin/organizations`, `/admin/organization-roles`, `/admin/organization-rules`,
//! `/admin/groups`, the identity views of both, and `/admin/clients/{id}/access-rules`, in
//! Kratos's style: snake_case JSON, `Link`-header pagination, JSON Patch on PATCH, Kratos's
//! error shape. Handlers only translate; the rules are in `tessera_flows::orgs` (organizations,
//! groups, just-in-time membership) and `tessera_op::membership` (access rules).
//!
//! An organization in a path is an id or an alias path with `/` percent-encoded
//! (`/admin/organizations/acme%2Fsales`); a group is an id or a name.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Cfg, IdentityId, KratosPath, KratosQuery};
use crate::http::{self, PageQuery, read_body};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use tessera_core::Error;
use tessera_flows::orgs::{domain_json, group_json, member_json, role_json, rule_json};
use tessera_op::membership::access_rule_json;

type AdminResult = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/organizations", get(list_orgs).post(create_org))
        .route(
            "/admin/organizations/{id}",
            get(get_org)
                .put(update_org)
                .patch(patch_org)
                .delete(delete_org),
        )
        .route("/admin/organizations/{id}/members", get(list_members))
        .route(
            "/admin/organizations/{id}/members/{identity}",
            put(put_member).delete(remove_member),
        )
        .route("/admin/organizations/{id}/domains", get(list_domains))
        .route(
            "/admin/organizations/{id}/domains/{domain}",
            put(put_domain).delete(delete_domain),
        )
        .route(
            "/admin/organization-roles",
            get(list_roles).post(create_role),
        )
        .route(
            "/admin/organization-roles/{id}",
            get(get_role).put(update_role).delete(delete_role),
        )
        .route(
            "/admin/organization-rules",
            get(list_rules).post(create_rule),
        )
        .route("/admin/organization-rules/{id}", delete(delete_rule))
        .route(
            "/admin/identities/{identity}/organizations",
            get(identity_orgs),
        )
        .route("/admin/identities/{identity}/groups", get(identity_groups))
        .route("/admin/groups", get(list_groups).post(create_group))
        .route(
            "/admin/groups/{id}",
            get(get_group)
                .put(update_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/admin/groups/{id}/members", get(list_group_members))
        .route(
            "/admin/groups/{id}/members/{identity}",
            put(add_group_member).delete(remove_group_member),
        )
        .route(
            "/admin/clients/{id}/access-rules",
            get(list_access_rules)
                .post(create_access_rule)
                .put(replace_access_rules),
        )
        .route(
            "/admin/clients/{id}/access-rules/{rule}",
            delete(delete_access_rule),
        )
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct OrgsQuery {
    #[serde(flatten)]
    page: PageQuery,
    /// An id, an alias path, or `root` for top-level organizations.
    parent_id: Option<String>,
    external_id: Option<String>,
}

async fn list_orgs(cfg: Cfg, KratosQuery(q): KratosQuery<OrgsQuery>) -> AdminResult {
    let e = cfg.engine();
    let size = q.page.size()?;
    let parent = match q.parent_id.as_deref() {
        None => None,
        Some("root") | Some("") => Some(None),
        Some(p) => Some(Some(e.resolve_org(p).await?.id)),
    };
    let page = e
        .store
        .org_list(
            size,
            q.page.token(),
            parent.as_ref().map(|p| p.as_deref()),
            q.external_id.as_deref(),
        )
        .await?;
    let paths = e.store.org_paths(&page.items).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|o| {
            tessera_flows::orgs::org_json(o, paths.get(&o.id).map(String::as_str).unwrap_or(""))
        })
        .collect();
    let mut extra = vec![];
    if let Some(p) = &q.parent_id {
        extra.push(("parent_id", p.as_str()));
    }
    if let Some(x) = &q.external_id {
        extra.push(("external_id", x.as_str()));
    }
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        "admin/organizations",
        size,
        page.next.as_deref(),
        &extra,
    ))
}

async fn create_org(cfg: Cfg, headers: HeaderMap, body: Body) -> AdminResult {
    let e = cfg.engine();
    let row = e.create_org(read_body(&headers, body).await?).await?;
    Ok(created(e.org_view(&row).await?))
}

async fn get_org(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let e = cfg.engine();
    let row = e.resolve_org(&id).await?;
    Ok(Json(e.org_view(&row).await?).into_response())
}

async fn update_org(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let e = cfg.engine();
    let row = e.update_org(&id, read_body(&headers, body).await?).await?;
    Ok(Json(e.org_view(&row).await?).into_response())
}

async fn patch_org(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let e = cfg.engine();
    let row = e.patch_org(&id, &read_body(&headers, body).await?).await?;
    Ok(Json(e.org_view(&row).await?).into_response())
}

async fn delete_org(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let e = cfg.engine();
    let row = e.resolve_org(&id).await?;
    e.store.org_delete(&row.id).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct MembersQuery {
    #[serde(flatten)]
    page: PageQuery,
    include_descendants: Option<bool>,
}

async fn list_members(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    KratosQuery(q): KratosQuery<MembersQuery>,
) -> AdminResult {
    let e = cfg.engine();
    let size = q.page.size()?;
    let org = e.resolve_org(&id).await?;
    let desc = q.include_descendants.unwrap_or(false);
    let page = e
        .store
        .org_members(&org.id, desc, size, q.page.token())
        .await?;
    let items: Vec<Value> = page.items.iter().map(member_json).collect();
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        &format!("admin/organizations/{}/members", org.id),
        size,
        page.next.as_deref(),
        &[("include_descendants", if desc { "true" } else { "false" })],
    ))
}

async fn put_member(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let e = cfg.engine();
    let v = match read_body(&headers, body).await {
        Ok(v) => v,
        Err(_)
            if headers
                .get(axum::http::header::CONTENT_LENGTH)
                .is_none_or(|l| l == "0") =>
        {
            serde_json::json!({})
        }
        Err(err) => return Err(err),
    };
    let m = e.put_member(&id, identity, v).await?;
    Ok(Json(member_json(&m)).into_response())
}

async fn remove_member(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
) -> AdminResult {
    let e = cfg.engine();
    let org = e.resolve_org(&id).await?;
    if !e.store.org_remove_member(&org.id, identity).await? {
        return Err(ApiError(Error::not_found(format!(
            "Identity `{identity}` is not a member of organization `{id}`."
        ))));
    }
    Ok(no_content())
}

async fn list_domains(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let e = cfg.engine();
    let org = e.resolve_org(&id).await?;
    let items: Vec<Value> = e
        .store
        .org_domains(&org.id)
        .await?
        .iter()
        .map(domain_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn put_domain(
    cfg: Cfg,
    KratosPath((id, domain)): KratosPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let e = cfg.engine();
    let d = e
        .put_domain(&id, &domain, read_body(&headers, body).await?)
        .await?;
    Ok(Json(domain_json(&d)).into_response())
}

async fn delete_domain(
    cfg: Cfg,
    KratosPath((id, domain)): KratosPath<(String, String)>,
) -> AdminResult {
    let e = cfg.engine();
    let org = e.resolve_org(&id).await?;
    let d = tessera_core::org::normalize_domain(&domain)?;
    if !e.store.org_delete_domain(&org.id, &d).await? {
        return Err(ApiError(Error::not_found(format!(
            "Organization `{id}` does not own domain `{d}`."
        ))));
    }
    Ok(no_content())
}

async fn list_roles(cfg: Cfg) -> AdminResult {
    let items: Vec<Value> = cfg
        .engine()
        .store
        .org_roles()
        .await?
        .iter()
        .map(role_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn create_role(cfg: Cfg, headers: HeaderMap, body: Body) -> AdminResult {
    let r = cfg
        .engine()
        .create_role(read_body(&headers, body).await?)
        .await?;
    Ok(created(role_json(&r)))
}

async fn get_role(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    Ok(Json(role_json(&cfg.engine().store.org_role(&id).await?)).into_response())
}

async fn update_role(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let r = cfg
        .engine()
        .update_role(&id, read_body(&headers, body).await?)
        .await?;
    Ok(Json(role_json(&r)).into_response())
}

async fn delete_role(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    cfg.engine().store.org_role_delete(&id).await?;
    Ok(no_content())
}

async fn list_rules(cfg: Cfg) -> AdminResult {
    let items: Vec<Value> = cfg
        .engine()
        .store
        .org_rules()
        .await?
        .iter()
        .map(rule_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn create_rule(cfg: Cfg, headers: HeaderMap, body: Body) -> AdminResult {
    let r = cfg
        .engine()
        .create_org_rule(read_body(&headers, body).await?)
        .await?;
    Ok(created(rule_json(&r)))
}

async fn delete_rule(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    if !cfg.engine().store.org_rule_delete(&id).await? {
        return Err(ApiError(Error::not_found(format!(
            "Organization rule `{id}` does not exist."
        ))));
    }
    Ok(no_content())
}

async fn identity_orgs(
    cfg: Cfg,
    KratosPath(IdentityId(identity)): KratosPath<IdentityId>,
) -> AdminResult {
    let e = cfg.engine();
    e.store.get_identity(identity).await?;
    let rows = e.store.identity_orgs(identity).await?;
    let orgs: Vec<_> = rows.iter().map(|(o, _)| o.clone()).collect();
    let paths = e.store.org_paths(&orgs).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(o, m)| {
            serde_json::json!({
                "organization": tessera_flows::orgs::org_json(o, paths.get(&o.id).map(String::as_str).unwrap_or("")),
                "roles": m.roles, "source": m.source.as_str(),
                "created_at": tessera_core::timefmt::to_rfc3339(m.created_at),
            })
        })
        .collect();
    Ok(Json(items).into_response())
}

async fn identity_groups(
    cfg: Cfg,
    KratosPath(IdentityId(identity)): KratosPath<IdentityId>,
) -> AdminResult {
    let e = cfg.engine();
    e.store.get_identity(identity).await?;
    let items: Vec<Value> = e
        .store
        .identity_groups(identity)
        .await?
        .iter()
        .map(group_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn list_groups(cfg: Cfg, KratosQuery(q): KratosQuery<PageQuery>) -> AdminResult {
    let e = cfg.engine();
    let size = q.size()?;
    let page = e.store.group_list(size, q.token()).await?;
    let items: Vec<Value> = page.items.iter().map(group_json).collect();
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        "admin/groups",
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn create_group(cfg: Cfg, headers: HeaderMap, body: Body) -> AdminResult {
    let g = cfg
        .engine()
        .create_group(read_body(&headers, body).await?)
        .await?;
    Ok(created(group_json(&g)))
}

async fn get_group(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    Ok(Json(group_json(&cfg.engine().store.group_get(&id).await?)).into_response())
}

async fn update_group(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let g = cfg
        .engine()
        .update_group(&id, read_body(&headers, body).await?)
        .await?;
    Ok(Json(group_json(&g)).into_response())
}

async fn patch_group(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let g = cfg
        .engine()
        .patch_group(&id, &read_body(&headers, body).await?)
        .await?;
    Ok(Json(group_json(&g)).into_response())
}

async fn delete_group(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let e = cfg.engine();
    let g = e.store.group_get(&id).await?;
    e.store.group_delete(&g.id).await?;
    Ok(no_content())
}

async fn list_group_members(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    KratosQuery(q): KratosQuery<PageQuery>,
) -> AdminResult {
    let e = cfg.engine();
    let size = q.size()?;
    let g = e.store.group_get(&id).await?;
    let page = e.store.group_members(&g.id, size, q.token()).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|i| serde_json::json!({"group_id": g.id, "identity_id": i}))
        .collect();
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        &format!("admin/groups/{}/members", g.id),
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn add_group_member(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
) -> AdminResult {
    let e = cfg.engine();
    let g = e.store.group_get(&id).await?;
    e.store.get_identity(identity).await?;
    e.store
        .group_add_member(&g.id, identity, tessera_core::timefmt::now_ms())
        .await?;
    Ok(no_content())
}

async fn remove_group_member(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
) -> AdminResult {
    let e = cfg.engine();
    let g = e.store.group_get(&id).await?;
    if !e.store.group_remove_member(&g.id, identity).await? {
        return Err(ApiError(Error::not_found(format!(
            "Identity `{identity}` is not a member of group `{id}`."
        ))));
    }
    Ok(no_content())
}

async fn list_access_rules(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    cfg.op().client_row(&id).await?;
    let items: Vec<Value> = cfg
        .engine()
        .store
        .op_access_rules(&id)
        .await?
        .iter()
        .map(access_rule_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn create_access_rule(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let (client, _) = cfg.op().client_row(&id).await?;
    let rule = cfg
        .op()
        .access_rule_from(&client, read_body(&headers, body).await?)
        .await?;
    cfg.engine().store.op_insert_access_rule(&rule).await?;
    let stored = cfg
        .engine()
        .store
        .op_access_rules(&id)
        .await?
        .into_iter()
        .find(|r| r.id == rule.id)
        .unwrap_or(rule);
    Ok(created(access_rule_json(&stored)))
}

/// Replaces every rule of the app at once (Logto's `PUT …/access-control`): all or nothing.
async fn replace_access_rules(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let (client, _) = cfg.op().client_row(&id).await?;
    let Value::Array(items) = read_body(&headers, body).await? else {
        return Err(ApiError(Error::bad_request(
            "The body must be a JSON array of access rules.",
        )));
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        let r = cfg
            .op()
            .access_rule_from(&client, v)
            .await
            .map_err(|mut e| {
                e.reason = format!("rule [{i}]: {}", e.reason);
                e
            })?;
        rules.push(r);
    }
    cfg.engine()
        .store
        .op_replace_access_rules(&id, &rules)
        .await?;
    let items: Vec<Value> = cfg
        .engine()
        .store
        .op_access_rules(&id)
        .await?
        .iter()
        .map(access_rule_json)
        .collect();
    Ok(Json(items).into_response())
}

async fn delete_access_rule(
    cfg: Cfg,
    KratosPath((id, rule)): KratosPath<(String, String)>,
) -> AdminResult {
    if !cfg.engine().store.op_delete_access_rule(&id, &rule).await? {
        return Err(ApiError(Error::not_found(format!(
            "App `{id}` has no access rule `{rule}`."
        ))));
    }
    Ok(no_content())
}
