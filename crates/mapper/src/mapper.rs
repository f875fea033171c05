use crate::MapperError;
use crate::eval::Evaluator;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The same cap the configuration puts on any URL-addressed document.
pub(crate) const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// jrsonnet's parser and analyser recurse once per level of the syntax tree without growing
/// their stack, and a tree can be as deep as the mapper has tokens (`1+1+1+…` is a left-deep
/// chain). Bounding the tokens bounds the depth, and [`PARSE_STACK_BYTES`] is sized for it.
/// Real mappers have a few hundred tokens.
pub(crate) const MAX_TOKENS: usize = 20_000;

/// Stack (grown on demand, see `Evaluator::prepare`) for parsing and analysing a mapper of
/// [`MAX_TOKENS`] tokens of the deepest shape: measured at under 32 MiB for a debug build, so
/// this leaves a 2× margin (the `deepest_accepted_mappers_compile` test holds it to that).
pub(crate) const PARSE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A mapper whose source parsed successfully; cheap to clone (Arc inside). `id()` = sha256 hex of
/// the source.
#[derive(Clone, Debug)]
pub struct Mapper(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: String,
    source: String,
    id: String,
}

impl Mapper {
    /// Parse-only check, done in the calling process (parsing runs no user code). `name` is used
    /// in messages (e.g. "provider `github` mapper").
    ///
    /// Undefined variables are found here too, so a typo fails at configuration load rather than
    /// at the first sign-in.
    pub fn compile(name: &str, source: &str) -> Result<Mapper, MapperError> {
        let owned = source.to_owned();
        // A short-lived thread: jrsonnet keeps per-thread state (string interner, stack depth),
        // which should not accumulate on the caller's threads.
        let parsed = std::thread::Builder::new()
            .name("mapper-compile".into())
            .spawn(move || Evaluator::new().check(&owned))
            .map_err(|e| {
                MapperError::Unavailable(format!("cannot start a thread to parse {name}: {e}"))
            })?
            .join();
        match parsed {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => return Err(failure.into_error(name)),
            Err(_) => {
                return Err(MapperError::Syntax {
                    name: name.to_owned(),
                    line: 1,
                    column: 1,
                    message:
                        "the Jsonnet parser failed internally on this source; simplify the mapper"
                            .into(),
                });
            }
        }
        let id = Sha256::digest(source.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Mapper(Arc::new(Inner {
            name: name.to_owned(),
            source: source.to_owned(),
            id,
        })))
    }

    /// Identifies the source across processes: workers cache parsed mappers by it.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The description given to [`Mapper::compile`], used in every error about this mapper.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

/// Counts the mapper's tokens (comments and whitespace aside). `Err` holds the byte offset of the
/// first token past [`MAX_TOKENS`].
pub(crate) fn count_tokens(source: &str) -> Result<usize, usize> {
    use jrsonnet_lexer::{Lexer, SyntaxKind};
    let mut count = 0;
    for lexeme in Lexer::new(source) {
        if matches!(
            lexeme.kind,
            SyntaxKind::WHITESPACE
                | SyntaxKind::SINGLE_LINE_SLASH_COMMENT
                | SyntaxKind::SINGLE_LINE_HASH_COMMENT
                | SyntaxKind::MULTI_LINE_COMMENT
        ) {
            continue;
        }
        if count == MAX_TOKENS {
            return Err(lexeme.range.0 as usize);
        }
        count += 1;
    }
    Ok(count)
}
