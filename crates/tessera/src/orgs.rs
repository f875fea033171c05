//! `tessera orgs …` and `tessera groups …`: organizations (a tree addressed by alias path such
//! as `acme/sales`), their members, roles, domains and just-in-time rules, and groups, through a
//! running server's admin API (`/admin/organizations`, `/admin/groups`, …).

use crate::admin_client::{Endpoint, client, delete_each, next_page, segment, send};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub struct OrgsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: OrgCmd,
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization; prints its id.
    Create {
        /// Short lowercase name, unique among its siblings (e.g. `sales`).
        alias: String,
        #[arg(long)]
        name: Option<String>,
        /// The parent organization (id or alias path, e.g. `acme`).
        #[arg(long)]
        parent: Option<String>,
        /// An id in another system (a DingTalk corpId, an HR code).
        #[arg(long)]
        external_id: Option<String>,
    },
    /// List organizations (JSON), optionally the children of one (`root` for the top level).
    List {
        #[arg(long)]
        parent: Option<String>,
    },
    /// Show one organization (JSON).
    Get { org: String },
    /// Move an organization and everything under it.
    Move {
        org: String,
        /// The new parent (id or alias path); leave out with --root.
        #[arg(long, required_unless_present = "root")]
        parent: Option<String>,
        /// Make it a top-level organization.
        #[arg(long, conflicts_with = "parent")]
        root: bool,
    },
    /// Delete organizations (each must have no children).
    Delete {
        #[arg(required = true)]
        orgs: Vec<String>,
    },
    /// Add identities to an organization, or set their organization roles there.
    AddMember {
        org: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
        /// An organization role (repeat for several).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Remove identities from an organization.
    RemoveMember {
        org: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
    },
    /// List members (JSON); with --descendants, members of everything under it too.
    Members {
        org: String,
        #[arg(long)]
        descendants: bool,
    },
    /// Organization roles (one shared set): `roles create <name>`, `roles list`.
    Roles {
        #[command(subcommand)]
        cmd: RoleCmd,
    },
    /// Give an e-mail domain to an organization; with --jit, identities with a verified
    /// address there join it at sign-in.
    AddDomain {
        org: String,
        domain: String,
        #[arg(long)]
        jit: bool,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// A just-in-time rule: identities whose value at EXPRESSION (metadata_admin.…,
    /// metadata_public.… or credentials.oidc.<provider>) selects an organization join it.
    AddRule {
        #[arg(long)]
        expression: String,
        /// external_id, alias_path or id.
        #[arg(long = "by", default_value = "external_id")]
        organization_by: String,
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Remove the memberships this rule made when they no longer match.
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Subcommand)]
enum RoleCmd {
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: GroupCmd,
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create a group; prints its id.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List groups (JSON).
    List,
    /// Show one group (JSON), by id or name.
    Get { group: String },
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    AddMember {
        group: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
    },
    RemoveMember {
        group: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
    },
    /// List members (JSON).
    Members { group: String },
}

/// Every item of a paged list, following the `Link` header.
async fn get_all(http: &reqwest::Client, base: &str, mut url: String) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    loop {
        let resp = send(http.get(&url), base).await?;
        let next = next_page(&resp);
        let page: Value = resp.json().await?;
        if let Value::Array(items) = page {
            all.extend(items);
        }
        match next {
            Some(n) => url = n,
            None => return Ok(all),
        }
    }
}

fn print(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run_orgs(args: OrgsArgs) -> Result<()> {
    let base = args.endpoint.base();
    let http = client(30)?;
    let org_url = |o: &str| format!("{base}/admin/organizations/{}", segment(o));
    match args.cmd {
        OrgCmd::Create {
            alias,
            name,
            parent,
            external_id,
        } => {
            let body = json!({"alias": alias, "name": name, "parent_id": parent, "external_id": external_id});
            let v: Value = send(
                http.post(format!("{base}/admin/organizations")).json(&body),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", v["id"].as_str().unwrap_or_default());
            Ok(())
        }
        OrgCmd::List { parent } => {
            let mut url = format!("{base}/admin/organizations");
            if let Some(p) = parent {
                url.push_str(&format!("?parent_id={}", segment(&p)));
            }
            print(&Value::Array(get_all(&http, &base, url).await?))
        }
        OrgCmd::Get { org } => print(&send(http.get(org_url(&org)), &base).await?.json().await?),
        OrgCmd::Move { org, parent, root } => {
            let parent = if root { Value::Null } else { json!(parent) };
            let patch = json!([{"op": "replace", "path": "/parent_id", "value": parent}]);
            let v: Value = send(http.patch(org_url(&org)).json(&patch), &base)
                .await?
                .json()
                .await?;
            println!("{}", v["path"].as_str().unwrap_or_default());
            Ok(())
        }
        OrgCmd::Delete { orgs } => {
            delete_each(
                &http,
                &base,
                "/admin/organizations",
                orgs,
                "organization(s)",
            )
            .await
        }
        OrgCmd::AddMember {
            org,
            identity_ids,
            roles,
        } => {
            for i in identity_ids {
                send(
                    http.put(format!("{}/members/{}", org_url(&org), segment(&i)))
                        .json(&json!({"roles": roles})),
                    &base,
                )
                .await?;
                println!("{i}");
            }
            Ok(())
        }
        OrgCmd::RemoveMember { org, identity_ids } => {
            for i in identity_ids {
                send(
                    http.delete(format!("{}/members/{}", org_url(&org), segment(&i))),
                    &base,
                )
                .await?;
                println!("{i}");
            }
            Ok(())
        }
        OrgCmd::Members { org, descendants } => {
            let url = format!(
                "{}/members?include_descendants={descendants}",
                org_url(&org)
            );
            print(&Value::Array(get_all(&http, &base, url).await?))
        }
        OrgCmd::Roles { cmd } => match cmd {
            RoleCmd::Create { name, description } => {
                let v: Value = send(
                    http.post(format!("{base}/admin/organization-roles"))
                        .json(&json!({"name": name, "description": description})),
                    &base,
                )
                .await?
                .json()
                .await?;
                println!("{}", v["id"].as_str().unwrap_or_default());
                Ok(())
            }
            RoleCmd::List => print(
                &send(http.get(format!("{base}/admin/organization-roles")), &base)
                    .await?
                    .json()
                    .await?,
            ),
            RoleCmd::Delete { names } => {
                delete_each(&http, &base, "/admin/organization-roles", names, "role(s)").await
            }
        },
        OrgCmd::AddDomain {
            org,
            domain,
            jit,
            roles,
        } => {
            send(
                http.put(format!("{}/domains/{}", org_url(&org), segment(&domain)))
                    .json(&json!({"jit": jit, "roles": roles})),
                &base,
            )
            .await?;
            println!("{domain}");
            Ok(())
        }
        OrgCmd::AddRule {
            expression,
            organization_by,
            roles,
            prune,
        } => {
            let body = json!({"expression": expression, "organization_by": organization_by, "roles": roles, "prune": prune});
            let v: Value = send(
                http.post(format!("{base}/admin/organization-rules"))
                    .json(&body),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", v["id"].as_str().unwrap_or_default());
            Ok(())
        }
    }
}

pub async fn run_groups(args: GroupsArgs) -> Result<()> {
    let base = args.endpoint.base();
    let http = client(30)?;
    let group_url = |g: &str| format!("{base}/admin/groups/{}", segment(g));
    match args.cmd {
        GroupCmd::Create { name, description } => {
            let v: Value = send(
                http.post(format!("{base}/admin/groups"))
                    .json(&json!({"name": name, "description": description})),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", v["id"].as_str().unwrap_or_default());
            Ok(())
        }
        GroupCmd::List => print(&Value::Array(
            get_all(&http, &base, format!("{base}/admin/groups")).await?,
        )),
        GroupCmd::Get { group } => print(
            &send(http.get(group_url(&group)), &base)
                .await?
                .json()
                .await?,
        ),
        GroupCmd::Delete { groups } => {
            delete_each(&http, &base, "/admin/groups", groups, "group(s)").await
        }
        GroupCmd::AddMember {
            group,
            identity_ids,
        } => {
            for i in identity_ids {
                send(
                    http.put(format!("{}/members/{}", group_url(&group), segment(&i))),
                    &base,
                )
                .await?;
                println!("{i}");
            }
            Ok(())
        }
        GroupCmd::RemoveMember {
            group,
            identity_ids,
        } => {
            for i in identity_ids {
                send(
                    http.delete(format!("{}/members/{}", group_url(&group), segment(&i))),
                    &base,
                )
                .await?;
                println!("{i}");
            }
            Ok(())
        }
        GroupCmd::Members { group } => print(&Value::Array(
            get_all(&http, &base, format!("{}/members", group_url(&group))).await?,
        )),
    }
}
