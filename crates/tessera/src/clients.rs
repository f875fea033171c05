//! `tessera clients …`: apps of the OpenID Provider, through a running server's admin API
//! (`/admin/clients`).

use crate::admin_client::{Endpoint, client, delete_each, segment, send};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Args)]
pub struct ClientsArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an app; prints its client_id and (confidential apps) its secret, shown only now.
    Create(Box<CreateArgs>),
    /// List apps (JSON).
    List,
    /// Show one app (JSON).
    Get { client_id: String },
    /// Delete apps, with every token issued to them.
    Delete {
        #[arg(required = true)]
        client_ids: Vec<String>,
    },
    /// Let identities use an app whose access is `assigned`.
    Assign {
        client_id: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
    },
    /// Take an app away from identities.
    Unassign {
        client_id: String,
        #[arg(required = true)]
        identity_ids: Vec<String>,
    },
    /// Add an access rule: members of an organization (and of everything under it), of a
    /// group, or one identity may use the app (`access: assigned`), optionally with app roles.
    Allow(Box<AllowArgs>),
    /// List an app's access rules (JSON).
    Rules { client_id: String },
    /// Delete access rules by id.
    Disallow {
        client_id: String,
        #[arg(required = true)]
        rule_ids: Vec<String>,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["organization", "group", "identity"])))]
struct AllowArgs {
    client_id: String,
    /// An organization, by id or alias path (`acme/sales`).
    #[arg(long)]
    organization: Option<String>,
    /// A group, by id or name.
    #[arg(long)]
    group: Option<String>,
    /// An identity id.
    #[arg(long)]
    identity: Option<String>,
    /// Organizations only: admit only members with this organization role (repeat).
    #[arg(long = "role", requires = "organization")]
    roles: Vec<String>,
    /// Organizations only: do not admit members of its descendants.
    #[arg(long, requires = "organization")]
    no_descendants: bool,
    /// An app role the rule grants (repeat); must be one the app declares (`--app-roles`).
    #[arg(long = "app-role")]
    app_roles: Vec<String>,
}

fn allow_body(a: &AllowArgs) -> Value {
    let subject = match (&a.organization, &a.group, &a.identity) {
        (Some(o), _, _) => json!({"type": "organization", "id": o,
            "include_descendants": !a.no_descendants, "organization_roles": a.roles}),
        (_, Some(g), _) => json!({"type": "group", "id": g}),
        (_, _, i) => json!({"type": "identity", "id": i}),
    };
    json!({"subject": subject, "app_roles": a.app_roles})
}

#[derive(Args)]
struct CreateArgs {
    /// The app's name, shown on the consent page.
    #[arg(long)]
    name: String,
    /// traditional (server-side web app), spa, native or machine.
    #[arg(long = "type", default_value = "traditional")]
    app_type: String,
    /// A redirect URI (repeat for several); matched exactly.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Grant types (repeat), e.g. authorization_code, implicit, refresh_token, client_credentials,
    /// urn:ietf:params:oauth:grant-type:device_code.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// Allow token exchange (RFC 8693): the app may trade users' access tokens addressed to it
    /// for tokens to its other APIs. Adds the grant to `--grant-type`s (or to the app type's
    /// default grants). Confidential apps only.
    #[arg(long = "token-exchange")]
    token_exchange: bool,
    /// Response types (repeat), e.g. code, id_token, "id_token token".
    #[arg(long = "response-type")]
    response_types: Vec<String>,
    /// Space-separated scopes the app may ask for.
    #[arg(long)]
    scope: Option<String>,
    /// client_secret_basic, client_secret_post, private_key_jwt (confidential apps) or none
    /// (public apps).
    #[arg(long = "token-endpoint-auth-method")]
    auth_method: Option<String>,
    /// For private_key_jwt: a file holding the public keys the app signs its client assertions
    /// with (a JWK Set, `{"keys": [...]}`).
    #[arg(long = "jwks", value_name = "FILE")]
    jwks: Option<std::path::PathBuf>,
    /// The `sub` the app sees: id, pairwise, traits.<path>, metadata_public.<path>,
    /// metadata_admin.<path> or credentials.oidc.<provider id>.
    #[arg(long)]
    subject: Option<String>,
    /// all, or assigned (only identities an access rule admits: `clients assign`, `clients
    /// allow`).
    #[arg(long)]
    access: Option<String>,
    /// First-party app: no consent step.
    #[arg(long)]
    skip_consent: bool,
    /// An API identifier the app may ask access tokens for with `resource` (repeat for
    /// several; the default API needs none).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// The app must push its authorization requests first (RFC 9126 PAR).
    #[arg(long = "require-pushed-authorization-requests")]
    require_par: bool,
    /// An app role the app declares (repeat), granted through access rules (`clients allow
    /// --app-role`) and sent in the `roles` claim.
    #[arg(long = "app-role")]
    app_roles: Vec<String>,
    /// Where Tessera POSTs a logout token when a session that signed in to the app ends (OIDC
    /// Back-Channel Logout).
    #[arg(long = "backchannel-logout-uri")]
    backchannel_logout_uri: Option<String>,
    /// A page of the app that Tessera's signed-out page loads in an iframe when a session that
    /// signed in to the app ends (OIDC Front-Channel Logout).
    #[arg(long = "frontchannel-logout-uri")]
    frontchannel_logout_uri: Option<String>,
    /// The front-channel logout URL gets `iss` and `sid` query parameters.
    #[arg(long = "frontchannel-logout-session-required")]
    frontchannel_logout_session_required: bool,
    /// Use this client_id instead of a generated one.
    #[arg(long)]
    client_id: Option<String>,
    /// Print the whole created app as JSON (with the secret) instead of two lines.
    #[arg(long)]
    json: bool,
}

fn body(a: &CreateArgs) -> Result<Value> {
    let mut m = Map::new();
    if let Some(path) = &a.jwks {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the JWK Set {}", path.display()))?;
        let set: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not JSON; it must hold a JWK Set such as {{\"keys\": [{{\"kty\": \"EC\", ...}}]}}",
                path.display()
            )
        })?;
        m.insert("jwks".into(), set);
    }
    m.insert("client_name".into(), json!(a.name));
    m.insert("app_type".into(), json!(a.app_type));
    m.insert("redirect_uris".into(), json!(a.redirect_uris));
    m.insert(
        "post_logout_redirect_uris".into(),
        json!(a.post_logout_redirect_uris),
    );
    if let Some(u) = &a.backchannel_logout_uri {
        m.insert("backchannel_logout_uri".into(), json!(u));
    }
    if let Some(u) = &a.frontchannel_logout_uri {
        m.insert("frontchannel_logout_uri".into(), json!(u));
    }
    if a.frontchannel_logout_session_required {
        m.insert("frontchannel_logout_session_required".into(), json!(true));
    }
    let mut grant_types = a.grant_types.clone();
    if a.token_exchange {
        if grant_types.is_empty() {
            let defaults: &[&str] = if a.app_type == "machine" {
                &["client_credentials"]
            } else {
                &["authorization_code", "refresh_token"]
            };
            grant_types.extend(defaults.iter().map(|g| (*g).to_string()));
        }
        let te = tessera_op::GrantType::TokenExchange.as_str();
        if !grant_types.iter().any(|g| g == te) {
            grant_types.push(te.to_string());
        }
    }
    if !grant_types.is_empty() {
        m.insert("grant_types".into(), json!(grant_types));
    }
    if !a.response_types.is_empty() {
        m.insert("response_types".into(), json!(a.response_types));
    }
    for (k, v) in [
        ("scope", &a.scope),
        ("token_endpoint_auth_method", &a.auth_method),
        ("subject", &a.subject),
        ("access", &a.access),
        ("client_id", &a.client_id),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if !a.resources.is_empty() {
        m.insert("resources".into(), json!(a.resources));
    }
    if !a.app_roles.is_empty() {
        m.insert("roles".into(), json!(a.app_roles));
    }
    if a.require_par {
        m.insert("require_pushed_authorization_requests".into(), json!(true));
    }
    m.insert("skip_consent".into(), json!(a.skip_consent));
    Ok(Value::Object(m))
}

pub async fn run(args: ClientsArgs) -> Result<()> {
    let base = args.endpoint.base();
    let http = client(30)?;
    match args.cmd {
        Cmd::Create(a) => {
            let resp = send(
                http.post(format!("{base}/admin/clients")).json(&body(&a)?),
                &base,
            )
            .await?;
            let v: Value = resp.json().await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("client_id: {}", v["client_id"].as_str().unwrap_or_default());
                if let Some(s) = v["client_secret"].as_str() {
                    println!("client_secret: {s}");
                    eprintln!(
                        "Keep the secret now: it is stored hashed and cannot be shown again."
                    );
                }
            }
            Ok(())
        }
        Cmd::List => {
            let v: Value = send(http.get(format!("{base}/admin/clients")), &base)
                .await?
                .json()
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Get { client_id } => {
            let v: Value = send(
                http.get(format!("{base}/admin/clients/{}", segment(&client_id))),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Delete { client_ids } => {
            delete_each(&http, &base, "/admin/clients", client_ids, "app(s)").await
        }
        Cmd::Assign {
            client_id,
            identity_ids,
        } => {
            for i in identity_ids {
                send(
                    http.put(format!(
                        "{base}/admin/clients/{}/assignments/{}",
                        segment(&client_id),
                        segment(&i)
                    )),
                    &base,
                )
                .await
                .with_context(|| format!("assigning {i}"))?;
                println!("{i}");
            }
            Ok(())
        }
        Cmd::Unassign {
            client_id,
            identity_ids,
        } => {
            for i in identity_ids {
                send(
                    http.delete(format!(
                        "{base}/admin/clients/{}/assignments/{}",
                        segment(&client_id),
                        segment(&i)
                    )),
                    &base,
                )
                .await
                .with_context(|| format!("unassigning {i}"))?;
                println!("{i}");
            }
            Ok(())
        }
        Cmd::Allow(a) => {
            let v: Value = send(
                http.post(format!(
                    "{base}/admin/clients/{}/access-rules",
                    segment(&a.client_id)
                ))
                .json(&allow_body(&a)),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", v["id"].as_str().unwrap_or_default());
            Ok(())
        }
        Cmd::Rules { client_id } => {
            let v: Value = send(
                http.get(format!(
                    "{base}/admin/clients/{}/access-rules",
                    segment(&client_id)
                )),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Disallow {
            client_id,
            rule_ids,
        } => {
            let collection = format!("/admin/clients/{}/access-rules", segment(&client_id));
            delete_each(&http, &base, &collection, rule_ids, "rule(s)").await
        }
    }
}
