//! What every page shows around its content (language links, brand, stylesheets) and a
//! flow's messages in the page language.

use crate::ui::i18n::{self, Lang};
use serde::Serialize;
use tessera_config::Experience;
use tessera_core::text::{Text, TextType};

/// What every page shows around its content.
#[derive(Debug, Clone, Serialize)]
pub struct Chrome {
    /// BCP 47 tag of the page language (`<html lang>`).
    pub lang: String,
    pub langs: Vec<LangLink>,
    pub brand: BrandView,
    pub css_href: String,
    pub theme_href: String,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LangLink {
    pub tag: String,
    pub name: String,
    pub href: String,
    pub current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrandView {
    pub name: String,
    pub logo_url: Option<String>,
    /// First letter of the brand name, shown when there is no logo.
    pub initial: String,
}

impl Chrome {
    pub fn new(lang: Lang, x: &Experience, here: &str, css_href: &str, theme_href: &str) -> Self {
        Chrome {
            lang: lang.tag().into(),
            langs: i18n::LANGS
                .iter()
                .map(|l| LangLink {
                    tag: l.tag().into(),
                    name: l.native_name().into(),
                    href: switch_href(*l, here),
                    current: *l == lang,
                })
                .collect(),
            brand: BrandView {
                name: x.brand_name.clone(),
                logo_url: x.logo_url.as_ref().map(|u| u.to_string()),
                initial: x
                    .brand_name
                    .chars()
                    .next()
                    .map(|c| c.to_uppercase().to_string())
                    .unwrap_or_default(),
            },
            css_href: css_href.into(),
            theme_href: theme_href.into(),
            terms_url: x.terms_url.as_ref().map(|u| u.to_string()),
            privacy_url: x.privacy_url.as_ref().map(|u| u.to_string()),
        }
    }
}

/// The switcher's link: `/ui/lang?set=<tag>&back=<this page without ui_locales>`. `ui_locales`
/// is dropped so the choice (a cookie) is not overruled by the parameter on the way back.
pub fn switch_href(lang: Lang, here: &str) -> String {
    let back = match here.split_once('?') {
        Some((path, q)) => {
            let kept: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k != "ui_locales")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                let q = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(kept)
                    .finish();
                format!("{path}?{q}")
            }
        }
        None => here.to_string(),
    };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("set", lang.tag())
        .append_pair("back", &back)
        .finish();
    format!("/ui/lang?{q}")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageView {
    pub id: u32,
    /// `error`, `info` or `success`.
    pub kind: &'static str,
    pub text: String,
    pub detail: Option<String>,
}

pub fn message_view(lang: Lang, m: &Text, on_field: bool) -> MessageView {
    let said = i18n::message(lang, m, on_field);
    MessageView {
        id: m.id.0,
        kind: match m.kind {
            TextType::Error => "error",
            TextType::Info => "info",
            TextType::Success => "success",
        },
        text: said.text,
        detail: said.detail,
    }
}
