//! The parent ↔ worker protocol: frames of a u32 big-endian length followed by that many bytes of
//! JSON, one request then one response, over the worker's stdin and stdout.

use crate::eval::Failure;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request (claims and source) the worker reads. Claims come from upstream responses,
/// which are capped at 1 MiB, and sources at 1 MiB.
pub(crate) const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Room in a response frame beyond the output cap: the envelope and error messages (which the
/// worker truncates).
pub(crate) const RESPONSE_SLACK: usize = 64 * 1024;

/// A request frame's body: `{"id": …, "source"?: …, "claims": …}`, assembled around claims that
/// were serialised once per evaluation. `source` is sent only the first time a worker sees `id`.
pub(crate) fn request_body(id: &str, source: Option<&str>, claims_json: &[u8]) -> Vec<u8> {
    let mut body =
        Vec::with_capacity(claims_json.len() + id.len() + source.map_or(0, |s| s.len() + 16) + 32);
    body.extend_from_slice(b"{\"id\":");
    // Neither can fail: strings always serialise, and a Vec never refuses bytes.
    let _ = serde_json::to_writer(&mut body, id);
    if let Some(source) = source {
        body.extend_from_slice(b",\"source\":");
        let _ = serde_json::to_writer(&mut body, source);
    }
    body.extend_from_slice(b",\"claims\":");
    body.extend_from_slice(claims_json);
    body.push(b'}');
    body
}

#[derive(Deserialize)]
pub(crate) struct RequestIn {
    pub id: String,
    #[serde(default)]
    pub source: Option<String>,
    /// Decoded straight into a jsonnet value: claims are data, never parsed as Jsonnet.
    pub claims: jrsonnet_evaluator::Val,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub(crate) struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The worker has no parsed mapper under this id: send the source.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_id: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<WireFailure>,
    /// The worker will exit after this response (its state can no longer be trusted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retire: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum WireFailure {
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    Runtime {
        message: String,
    },
    OutputTooLarge {
        bytes: usize,
        cap: usize,
    },
    NotAnObject {
        found: String,
    },
}

impl From<Failure> for WireFailure {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Syntax {
                line,
                column,
                message,
            } => WireFailure::Syntax {
                line,
                column,
                message,
            },
            Failure::Runtime(message) => WireFailure::Runtime { message },
            Failure::OutputTooLarge { bytes, cap } => WireFailure::OutputTooLarge { bytes, cap },
            Failure::NotAnObject(found) => WireFailure::NotAnObject {
                found: found.to_owned(),
            },
        }
    }
}

impl WireFailure {
    pub(crate) fn into_failure(self) -> Failure {
        match self {
            WireFailure::Syntax {
                line,
                column,
                message,
            } => Failure::Syntax {
                line,
                column,
                message,
            },
            WireFailure::Runtime { message } => Failure::Runtime(message),
            WireFailure::OutputTooLarge { bytes, cap } => Failure::OutputTooLarge { bytes, cap },
            WireFailure::NotAnObject { found } => {
                Failure::NotAnObject(crate::error::type_name(&found))
            }
        }
    }
}

fn frame(body: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Reads one frame; `Ok(None)` on a clean end of input before a frame starts.
pub(crate) fn read_frame_sync(r: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

pub(crate) fn write_frame_sync(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    w.write_all(&frame(body)?)?;
    w.flush()
}

pub(crate) async fn write_frame(w: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> io::Result<()> {
    w.write_all(&frame(body)?).await?;
    w.flush().await
}

/// A frame that was announced longer than allowed; the stream cannot be resynchronised.
pub(crate) struct FrameTooLarge(pub usize);

pub(crate) async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> io::Result<Result<Vec<u8>, FrameTooLarge>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Ok(Err(FrameTooLarge(len)));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Ok(body))
}
