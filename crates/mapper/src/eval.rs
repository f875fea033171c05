//! The evaluation itself, shared by the worker and [`crate::evaluate_in_process`]: parsing into a
//! cached `PreparedSnippet`, binding `claims`, evaluating, and turning the result into JSON under
//! an output cap.
//!
//! jrsonnet values are `Rc`-based, so an [`Evaluator`] lives on one thread.

use crate::error::type_phrase;
use jrsonnet_evaluator::{
    Error as JrError, ImportResolver, PreparedSnippet, SourcePath, State, Val, analyze::DiagLevel,
    error::ErrorKind, trace::PathResolver,
};
use jrsonnet_evaluator::{IStr, function::CallLocation};
use jrsonnet_gcmodule::Acyclic;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

/// The name jsonnet traces use for the mapper's source.
const SOURCE_NAME: &str = "mapper.jsonnet";

/// go-jsonnet's default (`--max-stack 500`), which is what Kratos mappers are written against.
const MAX_STACK_FRAMES: usize = 500;

/// Deeper output cannot be read back: serde_json refuses JSON nested deeper than 128, and the
/// response envelope adds levels of its own.
pub(crate) const MAX_OUTPUT_DEPTH: usize = 100;

/// Mappers with at most this many tokens (so at most this many tree levels) evaluate on the
/// caller's stack. jrsonnet grows the stack for function calls but not for nested expressions,
/// so deeper mappers evaluate on a stack of `PARSE_STACK_BYTES`.
const SHALLOW_TOKENS: usize = 2_000;

/// Longest error text sent back; a mapper can put anything into `error "…"`.
const MAX_MESSAGE_CHARS: usize = 2000;

/// How many stack frames of a jsonnet error are shown.
const MAX_TRACE_FRAMES: usize = 4;

/// Parsed mappers a worker keeps; beyond that it starts over (the parent then resends sources).
const MAX_CACHED: usize = 256;

pub(crate) const IMPORTS_REFUSED: &str = "imports are not allowed in mappers";

/// Refuses every `import`, `importstr` and `importbin`: a mapper sees only `claims`.
#[derive(Acyclic)]
struct NoImports;

impl ImportResolver for NoImports {
    fn resolve_from(
        &self,
        _from: &SourcePath,
        path: &dyn jrsonnet_evaluator::AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let path = path.as_path().to_owned();
        Err(ErrorKind::RuntimeError(
            format!("{IMPORTS_REFUSED} (`{path}`); paste the code you need into the mapper").into(),
        )
        .into())
    }

    fn load_file_contents(&self, _resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        Err(ErrorKind::RuntimeError(IMPORTS_REFUSED.into()).into())
    }
}

/// `std.trace` lines printed per evaluation, at most: they go to the worker's stderr, which is the
/// server's log (and the terminal of `tessera mapper test`).
const MAX_TRACES: usize = 20;

/// `std.trace` to stderr, bounded so that a mapper cannot flood the server's log.
#[derive(Acyclic, Default)]
struct BoundedTrace {
    printed: Cell<usize>,
}

impl jrsonnet_stdlib::TracePrinter for BoundedTrace {
    fn print_trace(&self, loc: CallLocation, value: IStr) {
        let printed = self.printed.get();
        if printed >= MAX_TRACES {
            return;
        }
        self.printed.set(printed + 1);
        let at = loc.0.map_or_else(String::new, |span| {
            let (line, column) = line_column(span.0.code(), span.1 as usize);
            format!(" (line {line} column {column})")
        });
        eprintln!("mapper trace{at}: {}", truncate(&value));
        if printed + 1 == MAX_TRACES {
            eprintln!("mapper trace: further std.trace output of this evaluation is dropped");
        }
    }
}

/// Why an evaluation failed, before the parent adds the mapper's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    Runtime(String),
    OutputTooLarge {
        bytes: usize,
        cap: usize,
    },
    /// The Jsonnet type name of what came back.
    NotAnObject(&'static str),
}

impl Failure {
    pub(crate) fn into_error(self, name: &str) -> crate::MapperError {
        let name = name.to_owned();
        match self {
            Failure::Syntax {
                line,
                column,
                message,
            } => crate::MapperError::Syntax {
                name,
                line,
                column,
                message,
            },
            Failure::Runtime(message) => crate::MapperError::Runtime { name, message },
            Failure::OutputTooLarge { bytes, cap } => {
                crate::MapperError::OutputTooLarge { name, bytes, cap }
            }
            Failure::NotAnObject(type_name) => crate::MapperError::NotAnObject {
                name,
                found: type_phrase(type_name),
            },
        }
    }
}

struct Prepared {
    snippet: PreparedSnippet,
    /// For locating errors that jrsonnet reports without a position.
    source: String,
    /// Evaluating it may recurse deeper than a thread's ordinary stack allows.
    deep: bool,
}

/// One jsonnet state (stdlib, import ban, `claims`) with the mappers parsed so far.
pub(crate) struct Evaluator {
    state: State,
    stdlib: jrsonnet_stdlib::ContextInitializer,
    cache: HashMap<String, Rc<Prepared>>,
    trace: Rc<BoundedTrace>,
    evaluations: u64,
    poisoned: bool,
}

impl Evaluator {
    pub(crate) fn new() -> Self {
        jrsonnet_evaluator::stack::set_stack_depth_limit(MAX_STACK_FRAMES);
        let stdlib = jrsonnet_stdlib::ContextInitializer::new(PathResolver::FileName);
        let trace = Rc::new(BoundedTrace::default());
        stdlib.settings_mut().trace_printer = trace.clone();
        let mut builder = State::builder();
        builder
            .import_resolver(NoImports)
            .context_initializer(stdlib.clone());
        Evaluator {
            state: builder.build(),
            stdlib,
            cache: HashMap::new(),
            trace,
            evaluations: 0,
            poisoned: false,
        }
    }

    pub(crate) fn is_cached(&self, id: &str) -> bool {
        self.cache.contains_key(id)
    }

    /// Parses and analyses `source` (no user code runs) and caches it under `id`.
    pub(crate) fn prepare(&mut self, id: &str, source: &str) -> Result<(), Failure> {
        if self.cache.contains_key(id) {
            return Ok(());
        }
        let tokens = check_source(source)?;
        // The parser, the analyser and dropping a syntax tree recurse once per tree level without
        // growing the stack themselves; `check_source` bounded the depth, this stack fits it.
        stacker::grow(crate::mapper::PARSE_STACK_BYTES, || {
            let prepared = self
                .state
                .prepare_snippet(SOURCE_NAME, source)
                .map_err(|e| compile_failure(&e, source))?;
            if self.cache.len() >= MAX_CACHED {
                self.cache.clear();
            }
            self.cache.insert(
                id.to_owned(),
                Rc::new(Prepared {
                    snippet: prepared,
                    source: source.to_owned(),
                    deep: tokens > SHALLOW_TOKENS,
                }),
            );
            Ok(())
        })
    }

    /// Parses and analyses `source` without keeping it.
    pub(crate) fn check(&self, source: &str) -> Result<(), Failure> {
        check_source(source)?;
        stacker::grow(crate::mapper::PARSE_STACK_BYTES, || {
            self.state
                .prepare_snippet(SOURCE_NAME, source)
                .map(drop)
                .map_err(|e| compile_failure(&e, source))
        })
    }

    /// Set once an evaluation panicked inside jrsonnet: its state may be inconsistent.
    pub(crate) fn poisoned(&self) -> bool {
        self.poisoned
    }

    /// Evaluates a prepared mapper with `std.extVar('claims')` = `claims`; returns the output's
    /// compact JSON size with it. `None` when `id` was never prepared (or was evicted).
    pub(crate) fn evaluate(
        &mut self,
        id: &str,
        claims: Val,
        output_cap: usize,
    ) -> Option<Result<(serde_json::Value, usize), Failure>> {
        let prepared = self.cache.get(id)?.clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            if prepared.deep {
                stacker::grow(crate::mapper::PARSE_STACK_BYTES, || {
                    self.evaluate_prepared(&prepared, claims, output_cap)
                })
            } else {
                self.evaluate_prepared(&prepared, claims, output_cap)
            }
        }))
        .unwrap_or_else(|panic| {
            self.poisoned = true;
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Failure::Runtime(format!(
                "the Jsonnet evaluator failed internally ({}); simplify the mapper around the failing expression",
                truncate(&what)
            )))
        });
        self.evaluations += 1;
        // jrsonnet's values are reference counted; self-referencing objects form cycles that
        // only this collector frees.
        if self.evaluations.is_multiple_of(16) {
            jrsonnet_gcmodule::collect_thread_cycles();
        }
        Some(result)
    }

    fn evaluate_prepared(
        &self,
        prepared: &Prepared,
        claims: Val,
        output_cap: usize,
    ) -> Result<(serde_json::Value, usize), Failure> {
        let Some(_entered) = self.state.try_enter() else {
            return Err(Failure::Runtime(
                "internal error: another Jsonnet evaluation is active on this thread".into(),
            ));
        };
        self.stdlib.add_ext_var("claims".into(), claims);
        self.trace.printed.set(0);
        let result = self.state.evaluate_prepared_snippet(&prepared.snippet);
        let source = prepared.source.as_str();
        let out = match result {
            Err(e) => Err(Failure::Runtime(runtime_message(&e, source))),
            Ok(value @ Val::Obj(_)) => {
                let mut conv = ToJson {
                    source,
                    size: 0,
                    cap: output_cap,
                    path: Vec::new(),
                };
                conv.convert(&value, 0).map(|v| (v, conv.size))
            }
            Ok(other) => Err(Failure::NotAnObject(val_type(&other))),
        };
        // Drop the claims now rather than at the next evaluation.
        self.stdlib.add_ext_var("claims".into(), Val::Null);
        out
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        // Syntax trees are dropped recursively: give them the stack they were parsed with.
        let cache = std::mem::take(&mut self.cache);
        if !cache.is_empty() {
            stacker::grow(crate::mapper::PARSE_STACK_BYTES, move || drop(cache));
        }
    }
}

/// Refuses sources the parser could recurse on deeply enough to overflow its stack (see
/// [`crate::mapper::MAX_TOKENS`]); returns the number of tokens, which bounds the tree's depth.
fn check_source(source: &str) -> Result<usize, Failure> {
    if source.len() > crate::mapper::MAX_SOURCE_BYTES {
        return Err(Failure::Syntax {
            line: 1,
            column: 1,
            message: format!(
                "the mapper is {} bytes long; at most {} bytes are accepted",
                source.len(),
                crate::mapper::MAX_SOURCE_BYTES
            ),
        });
    }
    match crate::mapper::count_tokens(source) {
        Ok(count) => Ok(count),
        Err(offset) => {
            let (line, column) = line_column(source, offset);
            Err(Failure::Syntax {
                line,
                column,
                message: format!(
                    "the mapper has more than {} tokens; a mapper should only pick claims into traits, so make it shorter",
                    crate::mapper::MAX_TOKENS
                ),
            })
        }
    }
}

fn val_type(v: &Val) -> &'static str {
    match v {
        Val::Bool(_) => "boolean",
        Val::Null => "null",
        Val::Str(_) => "string",
        Val::Num(_) => "number",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
        Val::Func(_) => "function",
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
    out.push_str("… (truncated)");
    out
}

/// Syntax and static-analysis errors (undefined variables, …) with their position.
pub(crate) fn compile_failure(e: &JrError, source: &str) -> Failure {
    match e.error() {
        ErrorKind::ImportSyntaxError { error, .. } => {
            let (line, column) = line_column(source, error.location.1 as usize);
            Failure::Syntax {
                line,
                column,
                message: truncate(&error.message),
            }
        }
        ErrorKind::StaticAnalysisError(diagnostics) => {
            let errors: Vec<_> = diagnostics
                .iter()
                .filter(|d| matches!(d.level, DiagLevel::Error))
                .collect();
            let Some(first) = errors.first() else {
                return Failure::Syntax {
                    line: 1,
                    column: 1,
                    message: truncate(&e.error().to_string()),
                };
            };
            let (line, column) = first
                .span
                .as_ref()
                .map_or((1, 1), |s| line_column(source, s.1 as usize));
            let mut message = first.message.clone();
            for other in errors.iter().skip(1) {
                message.push_str("; also ");
                if let Some(span) = &other.span {
                    let (l, c) = line_column(source, span.1 as usize);
                    message.push_str(&format!("line {l} column {c}: "));
                }
                message.push_str(&other.message);
            }
            Failure::Syntax {
                line,
                column,
                message: truncate(&message),
            }
        }
        _ => Failure::Syntax {
            line: 1,
            column: 1,
            message: truncate(&runtime_message(e, source)),
        },
    }
}

/// "boom, at line 3 column 5 (…)": the error, then where it happened, innermost first.
pub(crate) fn runtime_message(e: &JrError, mapper_source: &str) -> String {
    let mut out = match e.error() {
        ErrorKind::RuntimeError(msg) => msg.to_string(),
        other => other.to_string(),
    };
    // Multi-line messages (type errors list alternatives) read better on one line in logs.
    if out.contains('\n') {
        let mut joined = String::new();
        for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !joined.is_empty() {
                joined.push_str(if joined.ends_with(':') { " " } else { "; " });
            }
            joined.push_str(line);
        }
        out = joined;
    }
    let mut shown = 0;
    for frame in &e.trace().0 {
        let Some(span) = &frame.location else {
            continue;
        };
        let (line, column) = line_column(span.0.code(), span.1 as usize);
        out.push_str(if shown == 0 { ", at " } else { ", from " });
        out.push_str(&format!("line {line} column {column}"));
        if !frame.desc.is_empty() {
            out.push_str(&format!(" ({})", frame.desc));
        }
        shown += 1;
        if shown == MAX_TRACE_FRAMES {
            break;
        }
    }
    if shown == 0 {
        out.push_str(&locate_unpositioned(e.error(), mapper_source));
    }
    truncate(&out)
}

/// jrsonnet reports some errors (a missing field, a refused import) without a position; find
/// the tokens that can raise them instead.
fn locate_unpositioned(error: &ErrorKind, source: &str) -> String {
    use jrsonnet_lexer::{Lexer, SyntaxKind};
    let tokens: Vec<_> = Lexer::new(source)
        .filter(|l| {
            !matches!(
                l.kind,
                SyntaxKind::WHITESPACE
                    | SyntaxKind::SINGLE_LINE_SLASH_COMMENT
                    | SyntaxKind::SINGLE_LINE_HASH_COMMENT
                    | SyntaxKind::MULTI_LINE_COMMENT
            )
        })
        .collect();
    let positions = |offsets: Vec<usize>| -> String {
        let shown: Vec<String> = offsets
            .iter()
            .take(3)
            .map(|&o| {
                let (line, column) = line_column(source, o);
                format!("line {line} column {column}")
            })
            .collect();
        let more = if offsets.len() > 3 { " and more" } else { "" };
        shown.join(", ") + more
    };
    match error {
        ErrorKind::NoSuchField(field, _) => {
            let reads: Vec<usize> = tokens
                .windows(2)
                .filter(|w| {
                    w[0].kind == SyntaxKind::DOT
                        && w[1].kind == SyntaxKind::IDENT
                        && w[1].text == field.as_str()
                })
                .map(|w| w[0].range.0 as usize)
                .collect();
            let hint = format!("; if it may be absent, test for it first: `'{field}' in claims`");
            if reads.is_empty() {
                hint
            } else {
                format!(", read as `.{field}` at {}{hint}", positions(reads))
            }
        }
        ErrorKind::RuntimeError(msg) if msg.starts_with(IMPORTS_REFUSED) => {
            let imports: Vec<usize> = tokens
                .iter()
                .filter(|t| {
                    matches!(
                        t.kind,
                        SyntaxKind::IMPORT_KW | SyntaxKind::IMPORTSTR_KW | SyntaxKind::IMPORTBIN_KW
                    )
                })
                .map(|t| t.range.0 as usize)
                .collect();
            if imports.is_empty() {
                String::new()
            } else {
                format!(", at {}", positions(imports))
            }
        }
        _ => String::new(),
    }
}

/// Converts an evaluated value to JSON, counting the exact size of its compact serialisation
/// (as `serde_json::to_vec` writes it) and stopping as soon as it passes the cap.
struct ToJson<'s> {
    source: &'s str,
    size: usize,
    cap: usize,
    path: Vec<String>,
}

impl ToJson<'_> {
    fn add(&mut self, n: usize) -> Result<(), Failure> {
        self.size = self.size.saturating_add(n);
        if self.size > self.cap {
            return Err(Failure::OutputTooLarge {
                bytes: self.size,
                cap: self.cap,
            });
        }
        Ok(())
    }

    fn where_(&self) -> String {
        if self.path.is_empty() {
            "the output".to_owned()
        } else {
            format!("output field `{}`", self.path.join("."))
        }
    }

    fn convert(&mut self, v: &Val, depth: usize) -> Result<serde_json::Value, Failure> {
        use serde_json::Value;
        if depth > MAX_OUTPUT_DEPTH {
            return Err(Failure::Runtime(format!(
                "{} is nested more than {MAX_OUTPUT_DEPTH} levels deep; flatten the output",
                self.where_()
            )));
        }
        Ok(match v {
            Val::Null => {
                self.add(4)?;
                Value::Null
            }
            Val::Bool(b) => {
                self.add(if *b { 4 } else { 5 })?;
                Value::Bool(*b)
            }
            Val::Num(n) => {
                let n = json_number(n.get());
                self.add(n.to_string().len())?;
                Value::Number(n)
            }
            Val::Str(s) => {
                let s = s.clone().into_flat().to_string();
                self.add(json_string_len(&s))?;
                Value::String(s)
            }
            Val::Arr(arr) => {
                self.add(2 + (arr.len() as usize).saturating_sub(1))?;
                let mut out = Vec::with_capacity((arr.len() as usize).min(1024));
                for (i, item) in arr.iter().enumerate() {
                    self.path.push(i.to_string());
                    let item = item.map_err(|e| self.field_error(&e))?;
                    out.push(self.convert(&item, depth + 1)?);
                    self.path.pop();
                }
                Value::Array(out)
            }
            Val::Obj(obj) => {
                obj.run_assertions().map_err(|e| self.field_error(&e))?;
                let fields = obj.fields();
                self.add(2 + fields.len().saturating_sub(1))?;
                let mut out = serde_json::Map::new();
                for field in fields {
                    let key = field.to_string();
                    self.add(json_string_len(&key) + 1)?;
                    self.path.push(key.clone());
                    let value = obj
                        .get(field)
                        .map_err(|e| self.field_error(&e))?
                        .unwrap_or(Val::Null);
                    let value = self.convert(&value, depth + 1)?;
                    self.path.pop();
                    out.insert(key, value);
                }
                Value::Object(out)
            }
            Val::Func(_) => {
                return Err(Failure::Runtime(format!(
                    "{} is a function, which has no JSON form; call it or remove it",
                    self.where_()
                )));
            }
        })
    }

    fn field_error(&self, e: &JrError) -> Failure {
        Failure::Runtime(format!(
            "{} (in {})",
            runtime_message(e, self.source),
            self.where_()
        ))
    }
}

/// Whole numbers print as integers (as jsonnet prints them) while they are exact in an f64.
fn json_number(n: f64) -> serde_json::Number {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return serde_json::Number::from(n as i64);
    }
    serde_json::Number::from_f64(n).unwrap_or_else(|| serde_json::Number::from(0))
}

/// Length of `s` as a JSON string literal, escaped the way serde_json escapes.
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

thread_local! {
    static IN_PROCESS: RefCell<Option<Evaluator>> = const { RefCell::new(None) };
}

pub(crate) fn evaluate_in_process(
    mapper: &crate::Mapper,
    claims: &serde_json::Value,
) -> Result<serde_json::Value, crate::MapperError> {
    let claims: Val =
        serde_json::from_value(claims.clone()).map_err(|e| crate::MapperError::Runtime {
            name: mapper.name().to_owned(),
            message: format!("the claims cannot be passed to Jsonnet: {e}"),
        })?;
    IN_PROCESS.with_borrow_mut(|slot| {
        let evaluator = slot.get_or_insert_with(Evaluator::new);
        evaluator
            .prepare(mapper.id(), mapper.source())
            .map_err(|f| f.into_error(mapper.name()))?;
        match evaluator.evaluate(mapper.id(), claims, usize::MAX) {
            Some(Ok((value, _))) => Ok(value),
            Some(Err(f)) => Err(f.into_error(mapper.name())),
            None => Err(crate::MapperError::Runtime {
                name: mapper.name().to_owned(),
                message: "internal error: the prepared mapper vanished from the cache".into(),
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_size_matches_serde_json() {
        let mut ev = Evaluator::new();
        let src = r#"{ a: [1, 2.5, -3, 1e300, null, true, false], "q\"\\\n\u0001é": "x\ty", o: {}, e: [] }"#;
        ev.prepare("t", src).expect("parses");
        let (value, size) = ev
            .evaluate("t", Val::Null, usize::MAX)
            .expect("cached")
            .expect("evaluates");
        let bytes = serde_json::to_vec(&value).expect("serialises");
        assert_eq!(size, bytes.len(), "{}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn line_column_counts_characters() {
        let src = "a\nbé c";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 2), (2, 1));
        assert_eq!(line_column(src, 5), (2, 3));
        assert_eq!(line_column(src, 99), (2, 5));
        // Inside a multi-byte character: clamps to its start.
        assert_eq!(line_column(src, 4), (2, 2));
    }
}
