//! The part of Go's `text/template` that Kratos's courier templates use: text with
//! `{{ .Field }}` and `{{ .Identity.traits.email }}` actions (with `{{-`/`-}}` trimming and
//! `{{/* comments */}}`). Tessera's built-in courier templates are written in it, and a
//! Kratos template override (`courier.templates.*`) is parsed with it at start: one that uses
//! anything else (`if`, `range`, pipelines, functions) is refused then, naming the action and
//! its line, rather than sent half-rendered.

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// A field path such as `["Identity", "traits", "email"]`.
    Field(Vec<String>),
}

/// Why a template cannot be used, with the 1-based line of the action.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

impl Template {
    /// A template that is `text` as it is, with no actions.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_string())],
        }
    }

    /// Parses `text`; every action must be a field reference or a comment.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut consumed = 0usize;
        while let Some(start) = rest.find("{{") {
            let line = text[..consumed + start].matches('\n').count() + 1;
            let mut before = &rest[..start];
            let after_open = &rest[start + 2..];
            let Some(end) = after_open.find("}}") else {
                return Err(TemplateError {
                    line,
                    message: "an action `{{` is never closed with `}}`".into(),
                });
            };
            let mut inner = &after_open[..end];
            if let Some(s) = inner.strip_prefix("- ") {
                before = before.trim_end();
                inner = s;
            } else if inner == "-" || inner.starts_with("-\n") || inner.starts_with("-\t") {
                before = before.trim_end();
                inner = &inner[1..];
            }
            let mut trim_after = false;
            if let Some(s) = inner.strip_suffix(" -") {
                trim_after = true;
                inner = s;
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_string()));
            }
            let action = inner.trim();
            if action.starts_with("/*") && action.ends_with("*/") {
                // A comment renders nothing.
            } else if let Some(path) = field_path(action) {
                parts.push(Part::Field(path));
            } else {
                return Err(TemplateError {
                    line,
                    message: format!(
                        "`{{{{{}}}}}` is not supported: Tessera renders field references such as `{{{{ .VerificationCode }}}}` or `{{{{ .Identity.traits.email }}}}` only (no if, range, with, pipelines or functions)",
                        inner
                    ),
                });
            }
            let skip = start + 2 + end + 2;
            consumed += skip;
            rest = &rest[skip..];
            if trim_after {
                let trimmed = rest.trim_start();
                consumed += rest.len() - trimmed.len();
                rest = trimmed;
            }
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Renders with `data` (an object whose keys are the template's field names); a missing
    /// field renders as nothing. With `html`, values are HTML-escaped (Go's `html/template`
    /// escapes them too).
    pub fn render(&self, data: &Value, html: bool) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(path) => {
                    let mut v = data;
                    for seg in path {
                        v = v.get(seg).unwrap_or(&Value::Null);
                    }
                    let text = match v {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if html {
                        out.push_str(&escape_html(&text));
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        out
    }
}

/// `.A.b.c` → `["A", "b", "c"]`; `None` for anything that is not a plain field path.
fn field_path(action: &str) -> Option<Vec<String>> {
    let rest = action.strip_prefix('.')?;
    let segs: Vec<String> = rest.split('.').map(str::to_string).collect();
    let ok = segs.iter().all(|s| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    });
    ok.then_some(segs)
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_nested_fields_trimming_and_comments_render() {
        let t = Template::parse(
            "Hi {{ .Identity.traits.email }},\n{{/* a note */}}your code: {{- .VerificationCode -}} \n.",
        )
        .expect("parses");
        let data = json!({"Identity": {"traits": {"email": "a@example.org"}}, "VerificationCode": "123456"});
        assert_eq!(
            t.render(&data, false),
            "Hi a@example.org,\nyour code:123456."
        );
    }

    #[test]
    fn html_rendering_escapes_values_but_not_the_template() {
        let t = Template::parse("<p>{{ .To }}</p>").expect("parses");
        assert_eq!(
            t.render(&json!({"To": "<script>x</script>"}), true),
            "<p>&lt;script&gt;x&lt;/script&gt;</p>"
        );
        assert_eq!(t.render(&json!({}), true), "<p></p>", "missing is empty");
    }

    #[test]
    fn control_structures_and_functions_are_refused_with_their_line() {
        for (src, line) in [
            ("a\n{{ if .To }}x{{ end }}", 2),
            ("{{ range .Identity }}{{ end }}", 1),
            ("a\nb\n{{ .To | upper }}", 3),
            ("{{ printf \"%s\" .To }}", 1),
            ("{{ .To ", 1),
        ] {
            let e = Template::parse(src).expect_err(src);
            assert_eq!(e.line, line, "{src}: {e}");
        }
    }
}
