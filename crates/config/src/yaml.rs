//! YAML (and therefore JSON) loading that keeps source lines.
//!
//! Config validation happens on a `serde_json::Value`, long after parsing, and at that point
//! the source positions are gone. Operators need "key `serve.public.port` at tessera.yml:12"
//! rather than "invalid type somewhere", so this module builds the value itself from
//! saphyr-parser's event stream and records, next to it, the line of every key and sequence
//! item under its dotted path.
//!
//! Why not `serde-saphyr` (same author, same parser, already in the tree through jrsonnet),
//! whose `Spanned<T>` could feed the same `LineMap`: tried with a `Spanned` node tree on
//! 0.0.25 and measured against this module's tests, its generic (`deserialize_any`) reading
//! differs where a configuration must not:
//! - merge keys: in `<<: [*base, *other]` a key of both takes `other`'s value (the YAML merge
//!   spec and go-yaml, which Kratos uses, give the earlier mapping precedence), merged keys
//!   go after the local ones instead of at the `<<`, and carry their definition's line;
//! - tags: `!include x` silently becomes the string `x`, `!!binary` is decoded, `!!seq` on a
//!   mapping is ignored, and `!!int "42"` is an error;
//! - plain scalars follow YAML 1.1 habits: `1_000` → 1000, `0b11` → 3, `tRUE` → true,
//!   `nULL` → null; an integer past u64 becomes a rounded float without a word, and `.inf` or
//!   `1e999` become the string ".inf";
//! - a `null:` or `~:` key arrives as null, not as its text (read as a string it is refused).
//!
//! Each of these is pinned by a test below, so a future version can be tried again by
//! swapping the builder and running them.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput, Tag};
use serde_json::{Map, Number, Value};

/// Dotted path of a value inside the document ("serve.public.port", "selfservice.methods.oidc.config.providers.0.id") → 1-based line where its key (for map entries) or its item (for sequence entries) starts. The root has path "".
pub type LineMap = std::collections::HashMap<String, usize>;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("line {line}: duplicate key `{key}`")]
    DuplicateKey { line: usize, key: String },
    #[error("line {line}: {message}")]
    Unsupported { line: usize, message: String },
}

/// Parses the first YAML document of `text` into a JSON value plus the line of every path.
///
/// Plain scalars are typed with the YAML 1.2 core schema (not YAML 1.1), so `yes`/`on` stay
/// strings exactly as they would in a JSON-first config; quoted and block scalars are always
/// strings so that operators can force a string by quoting.
pub fn parse(text: &str) -> Result<(Value, LineMap), YamlError> {
    // Editors on Windows like to start files with a byte-order mark; it is not part of any key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder::new(text);
    let root = builder.document()?;
    let mut lines = LineMap::new();
    lines.insert(String::new(), root.line);
    let value = flatten(root, "", &mut lines);
    Ok((value, lines))
}

/// Join helper used by callers: join_path("a.b", "c") == "a.b.c"; join_path("", "c") == "c".
pub fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Nesting beyond this is certainly not a hand-written config; the cap keeps the recursive
/// builder (and the recursive drop of the tree) far away from the thread's stack limit.
const MAX_DEPTH: usize = 128;

/// Aliases copy their target, so a few lines can expand exponentially ("billion laughs").
/// Capping the total number of nodes keeps a hostile or broken file from exhausting memory.
const MAX_NODES: usize = 1_000_000;

/// The tree is built with lines attached to every node (rather than writing straight into a
/// `LineMap`) because aliases must be re-homed to the alias's line and merge keys may discard
/// entries; both are trivial on a tree and error-prone on a flat map of paths.
#[derive(Clone, Debug)]
struct Node {
    line: usize,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    /// Line of the key, which is what a reader looks for, not the line of the value.
    line: usize,
    node: Node,
}

/// An anchored node, kept with its measurements so that each alias can be checked against
/// the limits before the (possibly huge) copy is made.
struct Anchored {
    node: Node,
    /// Source text when the anchor is on a scalar, because an alias used as a mapping key must
    /// produce the key text, not the resolved value (`&k 1` as a key is "1", not 1).
    scalar_text: Option<String>,
    size: usize,
    height: usize,
}

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    anchors: HashMap<usize, Anchored>,
    nodes: usize,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            parser: Parser::new_from_str(text),
            anchors: HashMap::new(),
            nodes: 0,
        }
    }

    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next() {
            Some(Ok(event)) => Ok(event),
            Some(Err(err)) => Err(syntax_from_scan(&err)),
            None => Err(YamlError::Syntax {
                line: 1,
                column: 1,
                message: "unexpected end of the event stream".to_owned(),
            }),
        }
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let (event, span) = self.next()?;
        if event != Event::StreamStart {
            return Err(unexpected(&event, span));
        }
        let (event, span) = self.next()?;
        let root = match event {
            // A file holding only comments (or nothing) is a valid "no settings" config.
            Event::StreamEnd => return Ok(empty_root()),
            Event::DocumentStart(_) => {
                let (event, span) = self.next()?;
                let root = if is_empty_scalar(&event) {
                    empty_root()
                } else {
                    self.node(event, span, 0)?
                };
                self.expect_document_end()?;
                root
            }
            other => return Err(unexpected(&other, span)),
        };
        self.rest_of_stream()?;
        Ok(root)
    }

    /// Later documents are rejected rather than ignored: silently dropping settings that an
    /// operator wrote after a stray `---` would be a nasty surprise. Empty trailing documents
    /// (a lone `---` or `...`) are harmless and allowed.
    fn rest_of_stream(&mut self) -> Result<(), YamlError> {
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamEnd => return Ok(()),
                Event::DocumentStart(_) => {
                    let (event, span) = self.next()?;
                    if !is_empty_scalar(&event) {
                        return Err(YamlError::Unsupported {
                            line: span.start.line(),
                            message: "multiple YAML documents in one file are not supported"
                                .to_owned(),
                        });
                    }
                    self.expect_document_end()?;
                }
                other => return Err(unexpected(&other, span)),
            }
        }
    }

    fn expect_document_end(&mut self) -> Result<(), YamlError> {
        match self.next()? {
            (Event::DocumentEnd, _) => Ok(()),
            (other, span) => Err(unexpected(&other, span)),
        }
    }

    fn count_nodes(&mut self, n: usize, line: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError::Unsupported {
                line,
                message: format!("document expands to more than {MAX_NODES} values"),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        let line = span.start.line();
        if depth > MAX_DEPTH {
            return Err(YamlError::Unsupported {
                line,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count_nodes(1, line)?;
                let value = resolve_scalar(&text, style, tag.as_deref(), line)?;
                let node = Node {
                    line,
                    kind: Kind::Scalar(value),
                };
                self.remember(anchor, &node, Some(text.into_owned()));
                Ok(node)
            }
            Event::SequenceStart(anchor, tag) => {
                self.count_nodes(1, line)?;
                check_collection_tag(tag.as_deref(), "seq", line)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                let node = Node {
                    line,
                    kind: Kind::Seq(items),
                };
                self.remember(anchor, &node, None);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                self.count_nodes(1, line)?;
                check_collection_tag(tag.as_deref(), "map", line)?;
                let entries = self.mapping_entries(depth)?;
                let node = Node {
                    line,
                    kind: Kind::Map(entries),
                };
                self.remember(anchor, &node, None);
                Ok(node)
            }
            Event::Alias(id) => {
                let anchored = self
                    .anchors
                    .get(&id)
                    .ok_or_else(|| YamlError::Unsupported {
                        line,
                        message: "alias refers to a node that contains it (recursive alias)"
                            .to_owned(),
                    })?;
                if depth + anchored.height > MAX_DEPTH {
                    return Err(YamlError::Unsupported {
                        line,
                        message: format!("alias expands to nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                let size = anchored.size;
                let mut node = anchored.node.clone();
                self.count_nodes(size, line)?;
                // The copy has no source lines of its own; pointing at the alias is the only
                // place in the file where the reader can see that these values apply here.
                relocate(&mut node, line);
                Ok(node)
            }
            other => Err(unexpected(&other, span)),
        }
    }

    fn mapping_entries(&mut self, depth: usize) -> Result<Vec<Entry>, YamlError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut explicit: HashSet<String> = HashSet::new();
        let mut merged: Option<(usize, Vec<Entry>)> = None;
        loop {
            let (event, span) = self.next()?;
            if event == Event::MappingEnd {
                break;
            }
            let key_line = span.start.line();
            let is_merge = matches!(
                &event,
                Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<"
            );
            let key = self.key(event, span)?;
            if !explicit.insert(key.clone()) {
                return Err(YamlError::DuplicateKey {
                    line: key_line,
                    key,
                });
            }
            let (event, span) = self.next()?;
            let value = self.node(event, span, depth + 1)?;
            if is_merge {
                merged = Some((entries.len(), merge_sources(value, key_line)?));
            } else {
                entries.push(Entry {
                    key,
                    line: key_line,
                    node: value,
                });
            }
        }
        if let Some((position, sources)) = merged {
            // Keys written in this mapping win over merged ones wherever they appear, which is
            // what YAML merge keys mean and what go-yaml (used by Kratos) does.
            let extra: Vec<Entry> = sources
                .into_iter()
                .filter(|entry| !explicit.contains(&entry.key))
                .collect();
            entries.splice(position..position, extra);
        }
        Ok(entries)
    }

    /// JSON objects need string keys, so a scalar key is used verbatim (`1:` → "1",
    /// `true:` → "true") instead of being typed; collection keys have no sensible string form.
    fn key(&mut self, event: Event<'a>, span: Span) -> Result<String, YamlError> {
        let line = span.start.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    // Validates the tag and gives an alias to this key its typed value.
                    let value = resolve_scalar(&text, style, tag.as_deref(), line)?;
                    let node = Node {
                        line,
                        kind: Kind::Scalar(value),
                    };
                    self.remember(anchor, &node, Some(text.to_string()));
                }
                Ok(text.into_owned())
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(Anchored {
                    scalar_text: Some(text),
                    ..
                }) => Ok(text.clone()),
                _ => Err(YamlError::Unsupported {
                    line,
                    message: "mapping keys must be scalars".to_owned(),
                }),
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => Err(YamlError::Unsupported {
                line,
                message: "mapping keys must be scalars".to_owned(),
            }),
            other => Err(unexpected(&other, span)),
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node, scalar_text: Option<String>) {
        if anchor == 0 {
            return;
        }
        let (size, height) = measure(node);
        self.anchors.insert(
            anchor,
            Anchored {
                node: node.clone(),
                scalar_text,
                size,
                height,
            },
        );
    }
}

fn empty_root() -> Node {
    Node {
        line: 1,
        kind: Kind::Map(Vec::new()),
    }
}

/// An untagged, unanchored, empty plain scalar is what the parser emits for a document with no
/// content (`---` alone), which we treat as "no settings" rather than as `null`.
fn is_empty_scalar(event: &Event<'_>) -> bool {
    // The parser reports an empty document's content as a plain `~` (older versions: "").
    matches!(event, Event::Scalar(text, ScalarStyle::Plain, 0, None) if text.is_empty() || text == "~")
}

fn syntax_from_scan(err: &ScanError) -> YamlError {
    let marker = err.marker();
    YamlError::Syntax {
        line: marker.line(),
        // saphyr's columns are 0-based; editors and humans count from 1.
        column: marker.col() + 1,
        message: err.info().to_owned(),
    }
}

/// The parser only emits well-formed event sequences, so this is a safety net that reports a
/// position instead of panicking should that ever not hold.
fn unexpected(event: &Event<'_>, span: Span) -> YamlError {
    YamlError::Syntax {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: format!("unexpected YAML event {event:?}"),
    }
}

fn measure(node: &Node) -> (usize, usize) {
    match &node.kind {
        Kind::Scalar(_) => (1, 0),
        Kind::Seq(items) => items.iter().map(measure).fold((1, 0), |(s, h), (is, ih)| {
            (s.saturating_add(is), h.max(ih + 1))
        }),
        Kind::Map(entries) => entries
            .iter()
            .map(|entry| measure(&entry.node))
            .fold((1, 0), |(s, h), (is, ih)| {
                (s.saturating_add(is), h.max(ih + 1))
            }),
    }
}

fn relocate(node: &mut Node, line: usize) {
    node.line = line;
    match &mut node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq(items) => items.iter_mut().for_each(|item| relocate(item, line)),
        Kind::Map(entries) => entries.iter_mut().for_each(|entry| {
            entry.line = line;
            relocate(&mut entry.node, line);
        }),
    }
}

/// With a sequence of mappings, earlier mappings take precedence over later ones (YAML merge
/// key semantics), so only the first occurrence of a key is kept.
fn merge_sources(value: Node, line: usize) -> Result<Vec<Entry>, YamlError> {
    let invalid = || YamlError::Unsupported {
        line,
        message: "merge key `<<` needs a mapping or a sequence of mappings".to_owned(),
    };
    match value.kind {
        Kind::Map(entries) => Ok(entries),
        Kind::Seq(items) => {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for item in items {
                let Kind::Map(entries) = item.kind else {
                    return Err(invalid());
                };
                for entry in entries {
                    if seen.insert(entry.key.clone()) {
                        out.push(entry);
                    }
                }
            }
            Ok(out)
        }
        Kind::Scalar(_) => Err(invalid()),
    }
}

fn flatten(node: Node, path: &str, lines: &mut LineMap) -> Value {
    match node.kind {
        Kind::Scalar(value) => value,
        Kind::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    let item_path = join_path(path, &index.to_string());
                    lines.insert(item_path.clone(), item.line);
                    flatten(item, &item_path, lines)
                })
                .collect(),
        ),
        Kind::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for entry in entries {
                let entry_path = join_path(path, &entry.key);
                lines.insert(entry_path.clone(), entry.line);
                let value = flatten(entry.node, &entry_path, lines);
                map.insert(entry.key, value);
            }
            Value::Object(map)
        }
    }
}

/// Custom tags (`!include`, `!env`, ...) would silently become plain strings if ignored, which
/// hides a config mistake; rejecting them makes the problem visible at load time.
fn check_collection_tag(tag: Option<&Tag>, expected: &str, line: usize) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(tag) if tag.is_yaml_core_schema() && tag.suffix == expected => Ok(()),
        Some(tag) => Err(YamlError::Unsupported {
            line,
            message: format!("unsupported tag `{tag}`"),
        }),
    }
}

fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Value, YamlError> {
    let Some(tag) = tag else {
        return if style == ScalarStyle::Plain {
            resolve_plain(text, line)
        } else {
            Ok(Value::String(text.to_owned()))
        };
    };
    let mismatch = || YamlError::Unsupported {
        line,
        message: format!("`{text}` is not a valid `{tag}` value"),
    };
    if !tag.is_yaml_core_schema() {
        return Err(YamlError::Unsupported {
            line,
            message: format!("unsupported tag `{tag}`"),
        });
    }
    // An explicit core tag overrides the quoting style, as the YAML spec says.
    match tag.suffix.as_str() {
        "str" => Ok(Value::String(text.to_owned())),
        "null" => core_null(text).then_some(Value::Null).ok_or_else(mismatch),
        "bool" => core_bool(text).map(Value::Bool).ok_or_else(mismatch),
        "int" => core_int(text, line)?
            .map(Value::Number)
            .ok_or_else(mismatch),
        "float" => {
            let float = match core_float(text, line)? {
                Some(f) => Some(f),
                None => core_int(text, line)?.and_then(|n| n.as_f64()),
            };
            match float {
                Some(f) => finite_number(f, line).map(Value::Number),
                None => Err(mismatch()),
            }
        }
        _ => Err(YamlError::Unsupported {
            line,
            message: format!("unsupported tag `{tag}`"),
        }),
    }
}

fn resolve_plain(text: &str, line: usize) -> Result<Value, YamlError> {
    if core_null(text) {
        return Ok(Value::Null);
    }
    if let Some(b) = core_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(n) = core_int(text, line)? {
        return Ok(Value::Number(n));
    }
    if let Some(f) = core_float(text, line)? {
        return finite_number(f, line).map(Value::Number);
    }
    Ok(Value::String(text.to_owned()))
}

fn core_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn core_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn all_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_digit(radix))
}

/// `Ok(None)` means "not an integer literal"; an integer literal that does not fit is an error
/// because serde_json cannot hold it and rounding a config value through f64 would be silent.
fn core_int(text: &str, line: usize) -> Result<Option<Number>, YamlError> {
    let out_of_range = || YamlError::Unsupported {
        line,
        message: format!("integer `{text}` is out of range"),
    };
    let radix_literal = text
        .strip_prefix("0x")
        .map(|digits| (digits, 16))
        .or_else(|| text.strip_prefix("0o").map(|digits| (digits, 8)));
    if let Some((digits, radix)) = radix_literal {
        if !all_digits(digits, radix) {
            return Ok(None);
        }
        let n = u64::from_str_radix(digits, radix).map_err(|_| out_of_range())?;
        return Ok(Some(match i64::try_from(n) {
            Ok(signed) => Number::from(signed),
            Err(_) => Number::from(n),
        }));
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !all_digits(unsigned, 10) {
        return Ok(None);
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Some(Number::from(n)));
    }
    // Only non-negative literals can be in u64 range once they overflow i64.
    match unsigned.parse::<u64>() {
        Ok(n) if !text.starts_with('-') => Ok(Some(Number::from(n))),
        _ => Err(out_of_range()),
    }
}

/// Matches the core schema float syntax by hand because Rust's `f64::from_str` also accepts
/// spellings YAML treats as strings (`inf`, `NaN`, `infinity`).
fn core_float(text: &str, line: usize) -> Result<Option<f64>, YamlError> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let special =
        matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN");
    if special {
        return Err(YamlError::Unsupported {
            line,
            message: format!("`{text}` cannot be represented in JSON; quote it to keep a string"),
        });
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => all_digits(fraction, 10),
        Some((whole, fraction)) => {
            all_digits(whole, 10) && (fraction.is_empty() || all_digits(fraction, 10))
        }
        None => all_digits(mantissa, 10),
    };
    let exponent_ok =
        exponent.is_none_or(|e| all_digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    if !mantissa_ok || !exponent_ok {
        return Ok(None);
    }
    Ok(text.parse::<f64>().ok())
}

fn finite_number(f: f64, line: usize) -> Result<Number, YamlError> {
    Number::from_f64(f).ok_or_else(|| YamlError::Unsupported {
        line,
        message: format!("number {f} cannot be represented in JSON"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> (Value, LineMap) {
        match parse(text) {
            Ok(parsed) => parsed,
            Err(err) => panic!("unexpected error for {text:?}: {err}"),
        }
    }

    fn value(text: &str) -> Value {
        ok(text).0
    }

    fn line(lines: &LineMap, path: &str) -> usize {
        *lines
            .get(path)
            .unwrap_or_else(|| panic!("no line for `{path}` in {lines:?}"))
    }

    #[test]
    fn nested_maps_record_key_lines() {
        let text = "\
serve:
  public:
    port: 4433
    host: localhost
  admin:
    port: 4434
log:
  level: debug
";
        let (v, lines) = ok(text);
        assert_eq!(
            v,
            json!({
                "serve": {
                    "public": {"port": 4433, "host": "localhost"},
                    "admin": {"port": 4434}
                },
                "log": {"level": "debug"}
            })
        );
        assert_eq!(line(&lines, ""), 1);
        assert_eq!(line(&lines, "serve"), 1);
        assert_eq!(line(&lines, "serve.public"), 2);
        assert_eq!(line(&lines, "serve.public.port"), 3);
        assert_eq!(line(&lines, "serve.public.host"), 4);
        assert_eq!(line(&lines, "serve.admin"), 5);
        assert_eq!(line(&lines, "serve.admin.port"), 6);
        assert_eq!(line(&lines, "log.level"), 8);
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn sequences_of_maps_record_item_and_key_lines() {
        let text = "\
selfservice:
  methods:
    oidc:
      config:
        providers:
          - id: google
            provider: google
          - id: github
            provider: github
            scope:
              - email
              - profile
";
        let (v, lines) = ok(text);
        let providers = "selfservice.methods.oidc.config.providers";
        assert_eq!(
            v["selfservice"]["methods"]["oidc"]["config"]["providers"][1]["scope"],
            json!(["email", "profile"])
        );
        assert_eq!(line(&lines, providers), 5);
        assert_eq!(line(&lines, &format!("{providers}.0")), 6);
        assert_eq!(line(&lines, &format!("{providers}.0.id")), 6);
        assert_eq!(line(&lines, &format!("{providers}.0.provider")), 7);
        assert_eq!(line(&lines, &format!("{providers}.1")), 8);
        assert_eq!(line(&lines, &format!("{providers}.1.id")), 8);
        assert_eq!(line(&lines, &format!("{providers}.1.scope.0")), 11);
        assert_eq!(line(&lines, &format!("{providers}.1.scope.1")), 12);
    }

    #[test]
    fn indentless_sequences_and_flow_sequences() {
        let text = "a:\n- 1\n- two\nb: [x, {y: 3}]\n";
        let (v, lines) = ok(text);
        assert_eq!(v, json!({"a": [1, "two"], "b": ["x", {"y": 3}]}));
        assert_eq!(line(&lines, "a.0"), 2);
        assert_eq!(line(&lines, "a.1"), 3);
        assert_eq!(line(&lines, "b.1.y"), 4);
    }

    #[test]
    fn json_input_on_several_lines() {
        let text = "{\n  \"a\": {\n    \"b\": 1,\n    \"c\": [true, null, \"x\", 2.5]\n  },\n  \"d\": \"e\"\n}\n";
        let (v, lines) = ok(text);
        assert_eq!(
            v,
            json!({"a": {"b": 1, "c": [true, null, "x", 2.5]}, "d": "e"})
        );
        assert_eq!(line(&lines, "a"), 2);
        assert_eq!(line(&lines, "a.b"), 3);
        assert_eq!(line(&lines, "a.c"), 4);
        assert_eq!(line(&lines, "a.c.3"), 4);
        assert_eq!(line(&lines, "d"), 6);
    }

    #[test]
    fn quoted_and_block_scalars_stay_strings() {
        let text = "\
a: '1'
b: \"true\"
c: \"null\"
d: '~'
e: |
  42
f: >
  3.5
g: \"0x10\"
";
        assert_eq!(
            value(text),
            json!({
                "a": "1", "b": "true", "c": "null", "d": "~",
                "e": "42\n", "f": "3.5\n", "g": "0x10"
            })
        );
    }

    #[test]
    fn booleans_follow_the_core_schema() {
        let text = "[true, True, TRUE, false, False, FALSE, yes, no, on, off, tRUE]";
        assert_eq!(
            value(text),
            json!([
                true, true, true, false, false, false, "yes", "no", "on", "off", "tRUE"
            ])
        );
    }

    #[test]
    fn nulls_follow_the_core_schema() {
        let text = "a: null\nb: Null\nc: NULL\nd: ~\ne:\nf: nULL\n";
        let (v, lines) = ok(text);
        assert_eq!(
            v,
            json!({"a": null, "b": null, "c": null, "d": null, "e": null, "f": "nULL"})
        );
        assert_eq!(line(&lines, "e"), 5);
    }

    #[test]
    fn integers_follow_the_core_schema() {
        let text = "[0, -17, +5, 007, 0x1F, 0o17, 9223372036854775807, 9223372036854775808, 0xFFFFFFFFFFFFFFFF, 1_000, 0b11, -0x1, 0x]";
        assert_eq!(
            value(text),
            json!([
                0,
                -17,
                5,
                7,
                31,
                15,
                i64::MAX,
                9_223_372_036_854_775_808_u64,
                u64::MAX,
                "1_000",
                "0b11",
                "-0x1",
                "0x"
            ])
        );
        assert!(value("a: 1").pointer("/a").is_some_and(Value::is_i64));
        assert!(
            value("a: 18446744073709551615")
                .pointer("/a")
                .is_some_and(Value::is_u64)
        );
    }

    #[test]
    fn integers_out_of_range_are_rejected() {
        for text in [
            "a: 18446744073709551616",
            "a: -9223372036854775809",
            "a: 0x10000000000000000",
        ] {
            let err = parse(text).expect_err(text);
            assert!(
                matches!(&err, YamlError::Unsupported { line: 1, message } if message.contains("out of range")),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn floats_follow_the_core_schema() {
        let text = "[1.5, -2.25, +.5, 1., 1e3, 2.5E-1, 1.2.3, 1e, e3, .]";
        assert_eq!(
            value(text),
            json!([1.5, -2.25, 0.5, 1.0, 1000.0, 0.25, "1.2.3", "1e", "e3", "."])
        );
        assert!(value("a: 1e3").pointer("/a").is_some_and(Value::is_f64));
    }

    #[test]
    fn infinity_and_nan_are_rejected() {
        for text in [
            "a: .inf",
            "a: -.Inf",
            "a: +.INF",
            "a: .nan",
            "a: .NaN",
            "\n\na: 1e999",
        ] {
            let err = parse(text).expect_err(text);
            let expected_line = if text.starts_with('\n') { 3 } else { 1 };
            assert!(
                matches!(err, YamlError::Unsupported { line, .. } if line == expected_line),
                "{text}: {err:?}"
            );
        }
        // Quoting is the escape hatch.
        assert_eq!(value("a: '.inf'"), json!({"a": ".inf"}));
        // Not the core spelling, so just a string.
        assert_eq!(value("a: inf"), json!({"a": "inf"}));
    }

    #[test]
    fn core_tags_override_resolution() {
        let text = "\
a: !!str 42
b: !!str true
c: !!int \"42\"
d: !!float 1
e: !!bool 'false'
f: !!null ''
g: !!map {x: 1}
h: !!seq [1]
";
        assert_eq!(
            value(text),
            json!({
                "a": "42", "b": "true", "c": 42, "d": 1.0, "e": false,
                "f": null, "g": {"x": 1}, "h": [1]
            })
        );
    }

    #[test]
    fn bad_or_unknown_tags_are_rejected() {
        let cases = [
            ("a: 1\nb: !!int abc\n", 2),
            ("a: !include other.yml\n", 1),
            ("a: !!binary aGVsbG8=\n", 1),
            ("a: !!seq {x: 1}\n", 1),
            // The parser places a tag on a block mapping at the mapping's first key.
            ("a:\n  !custom\n  x: 1\n", 3),
        ];
        for (text, expected_line) in cases {
            let err = parse(text).expect_err(text);
            assert!(
                matches!(err, YamlError::Unsupported { line, .. } if line == expected_line),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn non_string_keys_become_their_text() {
        let (v, lines) = ok("1: one\ntrue: yes\nnull: n\n~: tilde\n0x10: hex\n'q': quoted\n");
        assert_eq!(
            v,
            json!({"1": "one", "true": "yes", "null": "n", "~": "tilde", "0x10": "hex", "q": "quoted"})
        );
        assert_eq!(line(&lines, "0x10"), 5);
    }

    #[test]
    fn collection_keys_are_rejected() {
        for (text, expected_line) in [("a: 1\n[x, y]: 2\n", 2), ("? {a: 1}\n: v\n", 1)] {
            let err = parse(text).expect_err(text);
            assert!(
                matches!(&err, YamlError::Unsupported { line, message } if *line == expected_line && message.contains("keys must be scalars")),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn anchors_and_aliases_copy_values_with_alias_lines() {
        let text = "\
defaults: &defaults
  timeout: 5s
  retry:
    count: 3
scalar: &name hello
service:
  settings: *defaults
  greeting: *name
list:
  - *defaults
";
        let (v, lines) = ok(text);
        let defaults = json!({"timeout": "5s", "retry": {"count": 3}});
        assert_eq!(v["defaults"], defaults);
        assert_eq!(v["service"]["settings"], defaults);
        assert_eq!(v["service"]["greeting"], json!("hello"));
        assert_eq!(v["list"][0], defaults);
        // Originals keep their own lines.
        assert_eq!(line(&lines, "defaults.timeout"), 2);
        assert_eq!(line(&lines, "defaults.retry.count"), 4);
        // The map entry holding the alias is at its key's line; everything copied is at the alias.
        assert_eq!(line(&lines, "service.settings"), 7);
        assert_eq!(line(&lines, "service.settings.timeout"), 7);
        assert_eq!(line(&lines, "service.settings.retry.count"), 7);
        assert_eq!(line(&lines, "service.greeting"), 8);
        assert_eq!(line(&lines, "list.0"), 10);
        assert_eq!(line(&lines, "list.0.retry.count"), 10);
    }

    #[test]
    fn alias_can_be_used_as_a_key_and_anchors_can_be_redefined() {
        let (v, _) = ok("k: &key name\n*key : value\nx: &a 1\ny: &a 2\nz: *a\n");
        assert_eq!(
            v,
            json!({"k": "name", "name": "value", "x": 1, "y": 2, "z": 2})
        );
    }

    #[test]
    fn merge_keys_merge_with_local_keys_winning() {
        let text = "\
base: &base
  a: 1
  b:
    deep: true
other: &other
  a: 10
  c: 3
child:
  b: local
  <<: [*base, *other]
  d: 4
quoted:
  '<<': literal
";
        let (v, lines) = ok(text);
        assert_eq!(v["child"], json!({"b": "local", "a": 1, "c": 3, "d": 4}));
        let keys: Vec<&str> = v["child"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["b", "a", "c", "d"]);
        assert_eq!(line(&lines, "child.b"), 9);
        assert_eq!(line(&lines, "child.a"), 10);
        assert_eq!(line(&lines, "child.d"), 11);
        // The overridden merged value must not leave stale paths behind.
        assert!(!lines.contains_key("child.b.deep"));
        assert_eq!(v["quoted"], json!({"<<": "literal"}));
    }

    #[test]
    fn merge_key_needs_mappings() {
        let err = parse("a:\n  <<: 1\n").expect_err("scalar merge");
        assert!(
            matches!(err, YamlError::Unsupported { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn duplicate_keys_report_the_second_line() {
        let err = parse("a: 1\nb:\n  c: 2\n  c: 3\n").expect_err("duplicate");
        assert!(
            matches!(&err, YamlError::DuplicateKey { line: 4, key } if key == "c"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 4: duplicate key `c`");

        let err = parse("{\"a\": 1,\n \"a\": 2}").expect_err("json duplicate");
        assert!(
            matches!(&err, YamlError::DuplicateKey { line: 2, key } if key == "a"),
            "{err:?}"
        );

        // Key text is what counts, not its style.
        let err = parse("x: 1\n'x': 2\n").expect_err("quoted duplicate");
        assert!(
            matches!(err, YamlError::DuplicateKey { line: 2, .. }),
            "{err:?}"
        );

        // The same key in different mappings is fine.
        assert_eq!(
            value("a: {c: 1}\nb: {c: 2}\n"),
            json!({"a": {"c": 1}, "b": {"c": 2}})
        );
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").expect_err("unclosed flow");
        let YamlError::Syntax { line, column, .. } = err else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert!(line >= 2, "line {line}");
        assert!(column >= 1);

        let err = parse("a: 1\n  b: 2\n").expect_err("bad indentation");
        assert!(
            matches!(err, YamlError::Syntax { line: 2, column, .. } if column >= 1),
            "{err:?}"
        );

        let err = parse("a: \"unterminated\n").expect_err("unterminated quote");
        assert!(matches!(err, YamlError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().starts_with("line "), "{err}");

        let err = parse("a: *missing\n").expect_err("unknown alias");
        assert!(
            matches!(
                err,
                YamlError::Syntax {
                    line: 1,
                    column: 4,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn empty_documents_are_empty_objects() {
        for text in [
            "",
            "\n\n",
            "# only a comment\n  # another\n",
            "---\n",
            "---\n...\n",
        ] {
            let (v, lines) = ok(text);
            assert_eq!(v, json!({}), "{text:?}");
            assert_eq!(lines.get(""), Some(&1), "{text:?}");
            assert_eq!(lines.len(), 1, "{text:?}");
        }
        // An explicit null is not "empty"; the caller's validation should see it.
        assert_eq!(value("null"), Value::Null);
    }

    #[test]
    fn comments_are_ignored_and_do_not_shift_lines() {
        let text = "\
# header comment
a: 1 # trailing
# between
b:
  # inside
  c: 'x # not a comment'
";
        let (v, lines) = ok(text);
        assert_eq!(v, json!({"a": 1, "b": {"c": "x # not a comment"}}));
        assert_eq!(line(&lines, "a"), 2);
        assert_eq!(line(&lines, "b"), 4);
        assert_eq!(line(&lines, "b.c"), 6);
    }

    #[test]
    fn key_order_is_preserved() {
        let v = value("zeta: 1\nalpha: 2\nmid: 3\n");
        let keys: Vec<&str> = v
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["zeta", "alpha", "mid"]);
    }

    #[test]
    fn multiple_documents() {
        let (v, _) = ok("---\na: 1\n---\n");
        assert_eq!(v, json!({"a": 1}));
        let (v, _) = ok("a: 1\n...\n---\n...\n");
        assert_eq!(v, json!({"a": 1}));

        let err = parse("a: 1\n---\nb: 2\n").expect_err("second document");
        assert!(
            matches!(&err, YamlError::Unsupported { line: 3, message } if message.contains("multiple")),
            "{err:?}"
        );
    }

    #[test]
    fn root_can_be_a_sequence_or_scalar() {
        let (v, lines) = ok("\n- a\n- b\n");
        assert_eq!(v, json!(["a", "b"]));
        assert_eq!(line(&lines, ""), 2);
        assert_eq!(line(&lines, "1"), 3);
        assert_eq!(value("42"), json!(42));
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = level - 1;
            let refs = vec![format!("*l{prev}"); 10].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
        }
        let err = parse(&text).expect_err("billion laughs");
        assert!(
            matches!(&err, YamlError::Unsupported { message, .. } if message.contains("expands")),
            "{err:?}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        let err = parse(&deep).expect_err("deep nesting");
        assert!(
            matches!(&err, YamlError::Unsupported { message, .. } if message.contains("nesting")),
            "{err:?}"
        );
        let fine = format!("{}{}", "[".repeat(50), "]".repeat(50));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn recursive_alias_is_rejected() {
        let err = parse("a: &a [1, *a]\n").expect_err("recursive");
        assert!(
            matches!(&err, YamlError::Unsupported { line: 1, message } if message.contains("recursive")),
            "{err:?}"
        );
    }

    #[test]
    fn byte_order_mark_and_unicode() {
        let (v, lines) = ok("\u{feff}name: \"Zoë\"\nemoji: 🎉\n");
        assert_eq!(v, json!({"name": "Zoë", "emoji": "🎉"}));
        assert_eq!(line(&lines, "emoji"), 2);
    }

    #[test]
    fn error_messages_format() {
        let syntax = YamlError::Syntax {
            line: 3,
            column: 7,
            message: "boom".to_owned(),
        };
        assert_eq!(syntax.to_string(), "line 3, column 7: boom");
        let unsupported = YamlError::Unsupported {
            line: 2,
            message: "nope".to_owned(),
        };
        assert_eq!(unsupported.to_string(), "line 2: nope");
    }

    #[test]
    fn empty_sequence_items_are_null_at_their_dash_line() {
        let (v, lines) = ok("a:\n-\n- b\n-\nc: 1\n");
        assert_eq!(v, json!({"a": [null, "b", null], "c": 1}));
        assert_eq!(line(&lines, "a.0"), 2);
        assert_eq!(line(&lines, "a.1"), 3);
        assert_eq!(line(&lines, "a.2"), 4);
        assert_eq!(line(&lines, "c"), 5);
    }

    #[test]
    fn join_path_joins_with_dots() {
        assert_eq!(join_path("a.b", "c"), "a.b.c");
        assert_eq!(join_path("", "c"), "c");
        assert_eq!(join_path("providers", "0"), "providers.0");
    }
}
