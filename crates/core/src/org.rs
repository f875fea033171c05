//! The pure rules of organizations, groups and app access rules: which aliases, names, domains
//! and just-in-time rule expressions are valid, and why not. The store enforces what needs the
//! database (uniqueness, cycles); everything that can be decided from the input alone is here,
//! so the admin API and the CLI refuse bad input before anything is written.

use crate::Error;

/// How deep the organization tree may grow (a root is depth 1): deep enough for a company's
/// departments, shallow enough that a path fits in a token and a descendant test stays cheap.
pub const MAX_DEPTH: usize = 8;

/// Where a membership came from. Only `Rule` rows are ever removed by a rule (`prune`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSource {
    Manual,
    Import,
    Domain,
    Rule,
}

impl MemberSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberSource::Manual => "manual",
            MemberSource::Import => "import",
            MemberSource::Domain => "domain",
            MemberSource::Rule => "rule",
        }
    }
    pub fn parse(s: &str) -> Option<MemberSource> {
        Some(match s {
            "manual" => MemberSource::Manual,
            "import" => MemberSource::Import,
            "domain" => MemberSource::Domain,
            "rule" => MemberSource::Rule,
            _ => return None,
        })
    }
}

/// An organization's alias: 1–63 of `a-z`, `0-9`, `-`, `_`, so that an alias path such as
/// `acme/sales` needs no escaping in URLs, CLI arguments or claims.
pub fn check_alias(alias: &str) -> Result<(), Error> {
    let ok = !alias.is_empty()
        && alias.len() <= 63
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "`alias` `{alias}` is not valid: use 1 to 63 lowercase letters, digits, `-` or `_` (e.g. `sales-east`)."
        )))
    }
}

/// A role or group name: 1–64 printable characters without spaces, `:` or `/` (a role appears
/// in `organization_roles` as `<org id>:<role>`).
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':' && c != '/');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{what} `{name}` is not valid: use 1 to 64 characters without spaces, `:` or `/`."
        )))
    }
}

/// Normalises an e-mail domain for organization ownership: lowercase, no trailing dot, at least
/// two labels, optionally `*.` for every subdomain.
pub fn normalize_domain(domain: &str) -> Result<String, Error> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = d.strip_prefix("*.").unwrap_or(&d);
    let labels_ok = bare.split('.').count() >= 2
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok && d.len() <= 253 {
        Ok(d)
    } else {
        Err(Error::bad_request(format!(
            "domain `{domain}` is not valid: use a domain name such as `acme.com`, or `*.acme.com` for its subdomains."
        )))
    }
}

/// The domain of an e-mail address, lowercase; `None` when it is not an address.
pub fn email_domain(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && domain.contains('.')).then(|| domain.to_ascii_lowercase())
}

/// The domains an address's domain matches, most specific first: `a.b.acme.com` matches
/// `a.b.acme.com`, then `*.b.acme.com`, then `*.acme.com` (never `*.com`).
pub fn domain_candidates(domain: &str) -> Vec<String> {
    let mut out = vec![domain.to_string()];
    let labels: Vec<&str> = domain.split('.').collect();
    for i in 1..labels.len().saturating_sub(1) {
        out.push(format!("*.{}", labels[i..].join(".")));
    }
    out
}

/// What a just-in-time rule's value selects the organization by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationBy {
    ExternalId,
    AliasPath,
    Id,
}

impl OrganizationBy {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganizationBy::ExternalId => "external_id",
            OrganizationBy::AliasPath => "alias_path",
            OrganizationBy::Id => "id",
        }
    }
    pub fn parse(s: &str) -> Result<OrganizationBy, Error> {
        Ok(match s {
            "external_id" => OrganizationBy::ExternalId,
            "alias_path" => OrganizationBy::AliasPath,
            "id" => OrganizationBy::Id,
            _ => {
                return Err(Error::bad_request(format!(
                    "`organization_by` `{s}` is not valid: use `external_id`, `alias_path` or `id`."
                )));
            }
        })
    }
}

/// A just-in-time rule's expression. Only data the user cannot edit may decide a membership:
/// `metadata_admin.<path>`, `metadata_public.<path>` (both written by administrators or the
/// sign-in mapper) and `credentials.oidc.<provider>` (the upstream subject). `traits.…` is
/// refused: users edit their traits in the settings flow, so a rule over traits would let
/// anyone join any organization.
pub fn check_rule_expression(expr: &str) -> Result<(), Error> {
    let refuse = |why: &str| {
        Err(Error::bad_request(format!(
            "`expression` `{expr}` is not valid: {why}. Use `metadata_admin.<path>`, `metadata_public.<path>` or `credentials.oidc.<provider id>`."
        )))
    };
    if expr.starts_with("traits.") || expr == "traits" {
        return refuse(
            "traits are edited by the users themselves, so a rule over traits would let anyone join any organization",
        );
    }
    let rest = expr
        .strip_prefix("metadata_admin.")
        .or_else(|| expr.strip_prefix("metadata_public."))
        .or_else(|| expr.strip_prefix("credentials.oidc."));
    match rest {
        Some(path) if !path.is_empty() && path.split('.').all(|k| !k.is_empty()) => Ok(()),
        _ => refuse("it names no value"),
    }
}

/// The value(s) a rule expression reads from an identity: strings and numbers, or each string
/// or number of an array (a person may belong to several corps).
pub fn rule_values(identity: &crate::identity::Identity, expr: &str) -> Vec<String> {
    use serde_json::Value;
    if let Some(provider) = expr.strip_prefix("credentials.oidc.") {
        let prefix = format!("{provider}:");
        return identity
            .credential(crate::identity::CREDENTIAL_OIDC)
            .map(|c| {
                c.identifiers
                    .iter()
                    .filter_map(|i| i.strip_prefix(&prefix).map(str::to_string))
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
    }
    let (root, path) = if let Some(p) = expr.strip_prefix("metadata_admin.") {
        (&identity.metadata_admin, p)
    } else if let Some(p) = expr.strip_prefix("metadata_public.") {
        (&identity.metadata_public, p)
    } else {
        return vec![];
    };
    let scalar = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match path.split('.').try_fold(root, |v, k| v.get(k)) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
        Some(v) => scalar(v).into_iter().collect(),
        None => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_url_safe_and_bounded() {
        assert!(check_alias("sales-east_2").is_ok());
        for bad in ["", "Sales", "a/b", "a b", &"x".repeat(64)] {
            let e = check_alias(bad).expect_err(bad);
            assert!(e.reason.contains("alias"), "{}", e.reason);
        }
    }

    #[test]
    fn role_names_cannot_break_the_org_roles_claim() {
        assert!(check_name("role", "billing-admin").is_ok());
        assert!(check_name("role", "a:b").is_err());
        assert!(check_name("role", "a b").is_err());
        assert!(check_name("role", "").is_err());
    }

    #[test]
    fn domains_normalise_and_wildcards_match_most_specific_first() {
        assert_eq!(normalize_domain(" Acme.COM. ").unwrap(), "acme.com");
        assert_eq!(normalize_domain("*.acme.com").unwrap(), "*.acme.com");
        for bad in ["com", "acme..com", "-a.com", "a@b.com", "*.com.", "*"] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(
            domain_candidates("a.b.acme.com"),
            vec!["a.b.acme.com", "*.b.acme.com", "*.acme.com"]
        );
        assert_eq!(email_domain("Ann@Acme.com").as_deref(), Some("acme.com"));
        assert_eq!(email_domain("nobody"), None);
    }

    #[test]
    fn rules_over_traits_are_refused_with_the_reason() {
        let e = check_rule_expression("traits.company").unwrap_err();
        assert!(e.reason.contains("edited by the users"), "{}", e.reason);
        assert!(check_rule_expression("metadata_admin.dingtalk.corp_id").is_ok());
        assert!(check_rule_expression("metadata_public.team").is_ok());
        assert!(check_rule_expression("credentials.oidc.dingtalk").is_ok());
        assert!(check_rule_expression("metadata_admin.").is_err());
        assert!(check_rule_expression("identity.id").is_err());
    }

    #[test]
    fn rule_values_read_scalars_and_arrays_but_never_traits() {
        let i: crate::identity::Identity = serde_json::from_value(serde_json::json!({
            "id": "5b0f8c1e-0000-4000-8000-000000000001", "schema_id": "default",
            "state": "active", "state_changed_at": "2026-01-01T00:00:00Z",
            "traits": {"corp": "evil"}, "verifiable_addresses": [], "recovery_addresses": [],
            "metadata_public": null,
            "metadata_admin": {"d": {"corp": "c1", "many": ["a", 2, null]}},
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "organization_id": null
        }))
        .expect("identity");
        assert_eq!(rule_values(&i, "metadata_admin.d.corp"), vec!["c1"]);
        assert_eq!(rule_values(&i, "metadata_admin.d.many"), vec!["a", "2"]);
        assert!(rule_values(&i, "traits.corp").is_empty());
    }
}
