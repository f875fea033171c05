//! The sign-in experience: a Tessera extension section (`experience:`) that shapes the hosted
//! pages under `/ui/` — which methods they show, social-only sign-up, provider order, brand and
//! the terms-of-service agreement. Kratos has no such section, so no Kratos key changes meaning.

use crate::load::{Loaded, Problem, problem};
use serde::{Deserialize, Serialize};
use url::Url;

/// `experience:` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExperienceConfig {
    /// Methods the hosted pages show, of `password` and `oidc`; empty means every enabled one.
    pub methods: Vec<String>,
    /// Seed 002's "sign-up identifier: not applicable": only "Continue with …" buttons.
    pub social_only: bool,
    /// Provider ids in the order their buttons appear; unlisted providers follow in config order.
    pub provider_order: Vec<String>,
    pub brand: BrandConfig,
    pub terms_of_service_url: String,
    pub privacy_policy_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrandConfig {
    pub name: String,
    pub logo_url: String,
    /// `#rrggbb`; buttons put white text on it, so it must reach 4.5:1 against white.
    pub primary_color: String,
}

impl Default for BrandConfig {
    fn default() -> Self {
        BrandConfig {
            name: "Tessera".into(),
            logo_url: String::new(),
            primary_color: DEFAULT_PRIMARY.into(),
        }
    }
}

pub const DEFAULT_PRIMARY: &str = "#4338ca";

/// The resolved sign-in experience the hosted UI renders with.
#[derive(Debug, Clone, PartialEq)]
pub struct Experience {
    pub show_password: bool,
    pub show_oidc: bool,
    pub provider_order: Vec<String>,
    pub brand_name: String,
    pub logo_url: Option<Url>,
    /// Lower-case `#rrggbb`.
    pub primary_color: String,
    pub terms_url: Option<Url>,
    pub privacy_url: Option<Url>,
}

impl Experience {
    /// Registration asks for (and the server enforces) agreement when either link is set.
    pub fn requires_agreement(&self) -> bool {
        self.terms_url.is_some() || self.privacy_url.is_some()
    }
}

impl Default for Experience {
    fn default() -> Self {
        Experience {
            show_password: true,
            show_oidc: true,
            provider_order: vec![],
            brand_name: "Tessera".into(),
            logo_url: None,
            primary_color: DEFAULT_PRIMARY.into(),
            terms_url: None,
            privacy_url: None,
        }
    }
}

/// Parses `#rgb` or `#rrggbb` into its channels.
pub fn parse_hex_color(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    let full: String = match h.len() {
        3 => h.chars().flat_map(|c| [c, c]).collect(),
        6 => h.to_string(),
        _ => return None,
    };
    let v = u32::from_str_radix(&full, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// WCAG 2 relative luminance of an sRGB colour.
pub fn relative_luminance(rgb: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])
}

/// WCAG 2 contrast ratio of white text on this colour.
pub fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    1.05 / (relative_luminance(rgb) + 0.05)
}

fn optional_url(loaded: &Loaded, key: &str, v: &str, p: &mut Vec<Problem>) -> Option<Url> {
    if v.is_empty() {
        return None;
    }
    match Url::parse(v) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(u),
        _ => {
            p.push(problem(
                loaded,
                key,
                format!("`{v}` is not an http(s) URL; write e.g. https://example.com/terms"),
            ));
            None
        }
    }
}

/// Validates `experience:` against the enabled methods and configured provider ids.
pub fn resolve_experience(
    loaded: &Loaded,
    password_enabled: bool,
    oidc_enabled: bool,
    provider_ids: &[String],
    p: &mut Vec<Problem>,
) -> Experience {
    let c = &loaded.config.experience;
    let (mut show_password, mut show_oidc) = (password_enabled, oidc_enabled);
    if !c.methods.is_empty() {
        show_password = false;
        show_oidc = false;
        for (i, m) in c.methods.iter().enumerate() {
            let key = format!("experience.methods.{i}");
            match m.as_str() {
                "password" if password_enabled => show_password = true,
                "oidc" if oidc_enabled => show_oidc = true,
                "password" | "oidc" => p.push(problem(
                    loaded,
                    &key,
                    format!("`{m}` is shown but not enabled: set selfservice.methods.{m}.enabled: true, or remove it here"),
                )),
                other => p.push(problem(
                    loaded,
                    &key,
                    format!("unknown method `{other}`; the hosted pages can show `password` and `oidc`"),
                )),
            }
        }
    }
    if c.social_only {
        if !oidc_enabled || provider_ids.is_empty() {
            p.push(problem(
                loaded,
                "experience.social_only",
                "social-only sign-in needs at least one provider in selfservice.methods.oidc.config.providers",
            ));
        }
        if c.methods.iter().any(|m| m == "password") {
            p.push(problem(
                loaded,
                "experience.social_only",
                "contradicts `experience.methods`, which lists `password`; remove one of them",
            ));
        }
        show_password = false;
        show_oidc = true;
    }
    if !show_password && !show_oidc && (password_enabled || oidc_enabled) {
        p.push(problem(
            loaded,
            "experience.methods",
            "shows no method at all; list `password`, `oidc` or both",
        ));
    }
    for (i, id) in c.provider_order.iter().enumerate() {
        if !provider_ids.contains(id) {
            p.push(problem(
                loaded,
                &format!("experience.provider_order.{i}"),
                format!(
                    "`{id}` is not a configured provider id (configured: {})",
                    if provider_ids.is_empty() {
                        "none".to_string()
                    } else {
                        provider_ids.join(", ")
                    }
                ),
            ));
        }
    }
    let primary_color = match parse_hex_color(&c.brand.primary_color) {
        Some(rgb) => {
            let ratio = contrast_with_white(rgb);
            if ratio < 4.5 {
                p.push(problem(
                    loaded,
                    "experience.brand.primary_color",
                    format!(
                        "`{}` puts white button text at a contrast of {ratio:.2}:1; accessible text needs at least 4.5:1 (WCAG AA), so choose a darker colour",
                        c.brand.primary_color
                    ),
                ));
            }
            format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2])
        }
        None => {
            p.push(problem(
                loaded,
                "experience.brand.primary_color",
                format!(
                    "`{}` is not a hex colour; write e.g. \"{DEFAULT_PRIMARY}\" (quoted, as YAML reads # as a comment)",
                    c.brand.primary_color
                ),
            ));
            DEFAULT_PRIMARY.to_string()
        }
    };
    let brand_name = c.brand.name.trim().to_string();
    if brand_name.is_empty() {
        p.push(problem(
            loaded,
            "experience.brand.name",
            "must not be empty",
        ));
    }
    Experience {
        show_password,
        show_oidc,
        provider_order: c.provider_order.clone(),
        brand_name,
        logo_url: optional_url(loaded, "experience.brand.logo_url", &c.brand.logo_url, p),
        primary_color,
        terms_url: optional_url(
            loaded,
            "experience.terms_of_service_url",
            &c.terms_of_service_url,
            p,
        ),
        privacy_url: optional_url(
            loaded,
            "experience.privacy_policy_url",
            &c.privacy_policy_url,
            p,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_matches_wcag_examples() {
        // Black on white is 21:1; the default brand colour passes AA, a light one fails.
        assert!((contrast_with_white([0, 0, 0]) - 21.0).abs() < 0.01);
        assert!(contrast_with_white(parse_hex_color(DEFAULT_PRIMARY).unwrap()) >= 4.5);
        assert!(contrast_with_white(parse_hex_color("#f9ab00").unwrap()) < 4.5);
        assert_eq!(parse_hex_color("#abc"), Some([0xaa, 0xbb, 0xcc]));
        assert_eq!(parse_hex_color("abc"), None);
        assert_eq!(parse_hex_color("#12345g"), None);
    }
}
