//! Languages of the hosted UI: English, Simplified Chinese and Russian. Translations are data
//! (`locales/<lang>.json`, embedded), keyed by UI string id (`login.title`) and by Kratos message
//! id (`4000006`), with `{name}` placeholders filled from a message's context. A value may be an
//! object of plural forms (`one`, `few`, `many`, `other`) chosen by the `count` variable.
//!
//! The language is chosen from, in order: the `ui_locales` query parameter (a space-separated
//! BCP 47 list, as OpenID Connect passes it), the language cookie the switcher sets, on a
//! flow's page the `ui_locales` the flow was created with (`ui::flow_page_lang`),
//! `Accept-Language`, then English.

use serde_json::{Map, Value};
use std::sync::LazyLock;
use tessera_core::text::{MessageId, Text};

/// The cookie the language switcher sets (a plain link, no JavaScript).
pub const LANG_COOKIE: &str = "tessera_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
    Ru,
}

pub const LANGS: [Lang; 3] = [Lang::En, Lang::ZhCn, Lang::Ru];

impl Lang {
    /// The BCP 47 tag, used in `<html lang>`, `ui_locales` and the cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
            Lang::Ru => "ru",
        }
    }

    /// The language's name in itself, as the switcher shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::ZhCn => "简体中文",
            Lang::Ru => "Русский",
        }
    }

    /// Reads one BCP 47 tag: `en`, `en-GB`, `zh`, `zh-CN`, `zh-Hans-CN`, `ru-RU`, … Chinese in
    /// any script maps to Simplified Chinese, the only Chinese the UI has.
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::ZhCn),
            "ru" => Some(Lang::Ru),
            _ => None,
        }
    }

    fn catalogue(self) -> &'static Map<String, Value> {
        let i = match self {
            Lang::En => 0,
            Lang::ZhCn => 1,
            Lang::Ru => 2,
        };
        &CATALOGUES[i]
    }
}

/// The embedded catalogue sources, by language (same order as [`LANGS`]).
pub const SOURCES: [(&str, &str); 3] = [
    ("en", include_str!("locales/en.json")),
    ("zh-CN", include_str!("locales/zh-CN.json")),
    ("ru", include_str!("locales/ru.json")),
];

static CATALOGUES: LazyLock<Vec<Map<String, Value>>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(tag, src)| match serde_json::from_str::<Value>(src) {
            Ok(Value::Object(m)) => m,
            // The unit tests parse every catalogue, so this cannot ship broken.
            _ => panic!("the embedded {tag} catalogue is not a JSON object"),
        })
        .collect()
});

/// Picks the page language (see the module comment for the order).
pub fn negotiate(
    ui_locales: Option<&str>,
    cookie: Option<&str>,
    accept_language: Option<&str>,
) -> Lang {
    if let Some(l) = ui_locales.and_then(|s| s.split_whitespace().find_map(Lang::parse)) {
        return l;
    }
    if let Some(l) = cookie.and_then(Lang::parse) {
        return l;
    }
    if let Some(header) = accept_language {
        let mut ranges: Vec<(f32, usize, &str)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                    .unwrap_or(1.0);
                (q > 0.0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(l) = ranges.iter().find_map(|r| Lang::parse(r.2)) {
            return l;
        }
    }
    Lang::En
}

/// The plural category of `n` in a language (CLDR cardinal rules for integers).
pub fn plural_category(lang: Lang, n: u64) -> &'static str {
    match lang {
        Lang::ZhCn => "other",
        Lang::En => {
            if n == 1 {
                "one"
            } else {
                "other"
            }
        }
        Lang::Ru => {
            let (m10, m100) = (n % 10, n % 100);
            if m10 == 1 && m100 != 11 {
                "one"
            } else if (2..=4).contains(&m10) && !(12..=14).contains(&m100) {
                "few"
            } else {
                "many"
            }
        }
    }
}

/// Whether the catalogue of `lang` has `key`.
pub fn has(lang: Lang, key: &str) -> bool {
    lang.catalogue().contains_key(key)
}

/// Translates `key`, filling `{name}` placeholders from `vars`. A missing key (which the unit
/// tests rule out for every key the UI uses) shows the key itself rather than failing the page.
pub fn t(lang: Lang, key: &str, vars: &[(&str, String)]) -> String {
    let template = match lang.catalogue().get(key) {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(forms)) => {
            let n = vars
                .iter()
                .find(|(k, _)| *k == "count")
                .and_then(|(_, v)| v.parse::<u64>().ok())
                .unwrap_or(0);
            forms
                .get(plural_category(lang, n))
                .or_else(|| forms.get("other"))
                .and_then(Value::as_str)
                .unwrap_or(key)
        }
        _ => key,
    };
    let out = fill(template, vars);
    if lang == Lang::ZhCn {
        tighten_cjk(&out)
    } else {
        out
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303f}' | '\u{4e00}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}')
}

/// Chinese puts a space between Chinese and Latin words ("通过 GitHub 继续") but none between
/// two Chinese words: a placeholder filled with Chinese text ("钉钉") must not keep its spaces.
fn tighten_cjk(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' && i > 0 && i + 1 < chars.len() && is_cjk(chars[i - 1]) && is_cjk(chars[i + 1])
        {
            continue;
        }
        out.push(*c);
    }
    out
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A flow message in the page language: its sentence, and for messages whose English detail
/// has no translation (free text from a validator), that detail, shown marked as English.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub text: String,
    pub detail: Option<String>,
}

fn ctx_str(m: &Text, key: &str) -> String {
    match m.context.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

/// Says a Kratos message (`Text`) in `lang`. `on_field` is true for messages shown next to an
/// input, where "Property email is missing." reads better as "This field is required.".
pub fn message(lang: Lang, m: &Text, on_field: bool) -> Said {
    let plain = |text: String| Said { text, detail: None };
    let id = m.id.key();
    match m.id {
        MessageId::VALIDATION_GENERIC => {
            // The engine's English sentence is complete (it names the upstream's error code),
            // so English shows it as is; other languages get the translated sentence, plus the
            // upstream's own words where they help an administrator.
            if lang == Lang::En {
                return plain(m.text.clone());
            }
            let code = ctx_str(m, "tessera_reason");
            let key = format!("reason.{code}");
            if !code.is_empty() && has(lang, &key) {
                let text = t(lang, &key, &[("provider", ctx_str(m, "provider"))]);
                let detail = matches!(
                    code.as_str(),
                    "upstream_refused" | "upstream_failed" | "upstream_callback"
                )
                .then(|| m.text.clone());
                return Said { text, detail };
            }
            Said {
                text: t(lang, &id, &[]),
                detail: Some(m.text.clone()),
            }
        }
        MessageId::MISSING_PROPERTY if on_field => plain(t(lang, "field.required", &[])),
        MessageId::PASSWORD_POLICY => {
            // The engine's policy reasons, in the shapes `check_password_policy` writes.
            let reason = ctx_str(m, "reason");
            let number = reason
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .unwrap_or_default()
                .to_string();
            let key = if reason.contains("at least") {
                "password.too_short"
            } else if reason.contains("at most") {
                "password.too_long"
            } else if reason.contains("similar") {
                "password.too_similar"
            } else if reason.contains("breach") || reason.contains("leak") {
                "password.breached"
            } else if lang == Lang::En {
                return plain(m.text.clone());
            } else {
                return Said {
                    text: t(lang, "password.rejected", &[]),
                    detail: Some(reason),
                };
            };
            plain(t(lang, key, &[("count", number)]))
        }
        MessageId::LOGIN_EXPIRED
        | MessageId::REGISTRATION_EXPIRED
        | MessageId::SETTINGS_EXPIRED => {
            let minutes = m
                .context
                .get("expired_at_minutes_ago")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                .ceil()
                .max(1.0) as u64;
            plain(t(lang, &id, &[("count", minutes.to_string())]))
        }
        MessageId::LABEL_GENERATED => {
            let title = ctx_str(m, "title");
            let key = format!("title.{title}");
            if has(lang, &key) {
                plain(t(lang, &key, &[]))
            } else {
                // A title from the site's own identity schema: shown as the site wrote it.
                plain(title)
            }
        }
        _ if has(lang, &id) => {
            let vars: Vec<(&str, String)> = [
                "provider",
                "property",
                "min_length",
                "actual_length",
                "value",
                "format",
                "reason",
                "title",
                "name",
                // The TOTP secret of `totp_secret_key` (1050006) and a recovery code (1050009).
                "secret",
            ]
            .iter()
            .map(|k| (*k, ctx_str(m, k)))
            .chain([
                ("identifier", ctx_str(m, "duplicate_identifier")),
                ("count", ctx_str(m, "min_length")),
            ])
            .collect();
            plain(t(lang, &id, &vars))
        }
        _ => plain(m.text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn keys(lang: Lang) -> BTreeSet<String> {
        lang.catalogue().keys().cloned().collect()
    }

    /// Placeholders a translation uses, e.g. `{provider}`.
    fn placeholders(v: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let texts: Vec<&str> = match v {
            Value::String(s) => vec![s],
            Value::Object(m) => m.values().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for s in texts {
            let mut rest = s;
            while let Some(o) = rest.find('{') {
                let after = &rest[o + 1..];
                let Some(c) = after.find('}') else { break };
                out.insert(after[..c].to_string());
                rest = &after[c + 1..];
            }
        }
        out
    }

    #[test]
    fn every_language_has_exactly_the_same_keys_and_placeholders() {
        let en = keys(Lang::En);
        for lang in [Lang::ZhCn, Lang::Ru] {
            let other = keys(lang);
            let missing: Vec<_> = en.difference(&other).collect();
            let extra: Vec<_> = other.difference(&en).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, extra {extra:?}",
                lang.tag()
            );
            for k in &en {
                let (a, b) = (&Lang::En.catalogue()[k], &lang.catalogue()[k]);
                let (pa, pb) = (placeholders(a), placeholders(b));
                assert_eq!(pa, pb, "{}: placeholders of `{k}` differ", lang.tag());
                assert!(
                    b.as_str().is_none_or(|s| !s.trim().is_empty()),
                    "{}: `{k}` is empty",
                    lang.tag()
                );
            }
        }
    }

    #[test]
    fn plural_forms_cover_each_languages_categories() {
        for lang in LANGS {
            for (k, v) in lang.catalogue() {
                if let Value::Object(forms) = v {
                    for n in 0..200 {
                        let cat = plural_category(lang, n);
                        assert!(
                            forms.contains_key(cat),
                            "{}: `{k}` lacks the `{cat}` form (needed for {n})",
                            lang.tag()
                        );
                    }
                }
            }
        }
        assert_eq!(
            t(Lang::Ru, "4010001", &[("count", "1".into())]),
            "Время на вход истекло 1 минуту назад. Начните заново."
        );
        assert!(t(Lang::Ru, "4010001", &[("count", "3".into())]).contains("3 минуты"));
        assert!(t(Lang::Ru, "4010001", &[("count", "11".into())]).contains("11 минут"));
        assert!(t(Lang::Ru, "4010001", &[("count", "21".into())]).contains("21 минуту"));
    }

    #[test]
    fn every_kratos_message_id_is_translated() {
        // Every id the core message catalogue can produce: code can only name ids through
        // `MessageId`'s constants, and `ALL` is made from the same list.
        let ids: BTreeSet<String> = MessageId::ALL.iter().map(|m| m.key()).collect();
        assert!(ids.len() >= 25, "found only {ids:?}");
        for lang in LANGS {
            for id in &ids {
                assert!(
                    has(lang, id),
                    "{}: Kratos message {id} is not translated",
                    lang.tag()
                );
            }
        }
    }

    #[test]
    fn language_selection_order() {
        assert_eq!(
            negotiate(Some("fr ru"), Some("zh-CN"), Some("en")),
            Lang::Ru
        );
        assert_eq!(negotiate(None, Some("zh-CN"), Some("ru")), Lang::ZhCn);
        assert_eq!(
            negotiate(None, None, Some("de-DE,ru;q=0.5,zh-CN;q=0.8")),
            Lang::ZhCn
        );
        assert_eq!(
            negotiate(None, Some("xx"), Some("ru-RU,ru;q=0.9")),
            Lang::Ru
        );
        assert_eq!(negotiate(None, None, Some("zh;q=0,fr")), Lang::En);
        assert_eq!(negotiate(Some(""), None, None), Lang::En);
        assert_eq!(Lang::parse("zh-Hans-CN"), Some(Lang::ZhCn));
    }

    #[test]
    fn messages_use_context_and_field_wording() {
        let m = tessera_core::text::login_with("GitHub", "github");
        assert_eq!(message(Lang::Ru, &m, false).text, "Продолжить через GitHub");
        assert_eq!(
            t(Lang::ZhCn, "1010002", &[("provider", "钉钉".into())]),
            "通过钉钉继续"
        );
        assert_eq!(
            t(Lang::ZhCn, "1010002", &[("provider", "GitHub".into())]),
            "通过 GitHub 继续"
        );
        let m = tessera_core::text::missing_property("email");
        assert_eq!(message(Lang::ZhCn, &m, true).text, "此项为必填项。");
        let m = tessera_core::text::social_sign_in_failed("x", "upstream_denied", "VK", "vk");
        assert!(message(Lang::Ru, &m, false).text.contains("VK"));
        let m = tessera_core::text::validation_generic("some English detail");
        let said = message(Lang::ZhCn, &m, false);
        assert_eq!(said.detail.as_deref(), Some("some English detail"));
        assert_eq!(message(Lang::En, &m, false).text, "some English detail");
    }
}
