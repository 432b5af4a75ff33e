//! Transport compression, one context per connection: zlib-stream (each
//! message sync-flushed, ending in `00 00 ff ff`) and zstd-stream (each
//! message a flushed chunk of one streaming frame).

use flate2::{Compress as Deflate, Compression, FlushCompress};
use serde::{Deserialize, Serialize};
use zstd::zstd_safe;

/// The `compress` query parameter of a gateway connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    /// Text frames of JSON.
    None,
    /// `zlib-stream`.
    ZlibStream,
    /// `zstd-stream`.
    ZstdStream,
}

impl Compress {
    /// Reads the query value; `None` for an unknown one.
    pub(crate) fn from_query(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("") => Some(Self::None),
            Some("zlib-stream") => Some(Self::ZlibStream),
            Some("zstd-stream") => Some(Self::ZstdStream),
            Some(_) => None,
        }
    }
}

/// The per-connection encoder.
pub(crate) enum Encoder {
    None,
    Zlib(Box<Deflate>),
    Zstd(zstd_safe::CCtx<'static>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "Encoder::None",
            Self::Zlib(_) => "Encoder::Zlib",
            Self::Zstd(_) => "Encoder::Zstd",
        })
    }
}

/// A compression library refused to work.
#[derive(Debug, thiserror::Error)]
#[error("compression failed: {0}")]
pub(crate) struct CompressError(String);

impl Encoder {
    pub(crate) fn new(mode: Compress) -> Result<Self, CompressError> {
        Ok(match mode {
            Compress::None => Self::None,
            Compress::ZlibStream => Self::Zlib(Box::new(Deflate::new(Compression::fast(), true))),
            Compress::ZstdStream => {
                let mut ctx = zstd_safe::CCtx::create();
                ctx.set_parameter(zstd_safe::CParameter::CompressionLevel(1))
                    .map_err(|code| CompressError(zstd_safe::get_error_name(code).into()))?;
                Self::Zstd(ctx)
            }
        })
    }

    /// Compresses one gateway message; `None` when the connection is
    /// uncompressed (send the text as is).
    pub(crate) fn encode(&mut self, text: &[u8]) -> Result<Option<Vec<u8>>, CompressError> {
        match self {
            Self::None => Ok(None),
            Self::Zlib(ctx) => {
                let mut out = Vec::with_capacity(text.len() / 2 + 64);
                let start_in = ctx.total_in();
                loop {
                    let consumed = usize::try_from(ctx.total_in() - start_in)
                        .expect("consumed bytes fit in memory");
                    if out.capacity() - out.len() < 64 {
                        out.reserve(out.capacity().max(256));
                    }
                    ctx.compress_vec(&text[consumed..], &mut out, FlushCompress::Sync)
                        .map_err(|e| CompressError(e.to_string()))?;
                    let done = ctx.total_in() - start_in == text.len() as u64;
                    // A sync flush is complete when input is consumed and the
                    // output buffer was not filled to the brim.
                    if done && out.len() < out.capacity() {
                        return Ok(Some(out));
                    }
                }
            }
            Self::Zstd(ctx) => {
                let mut out: Vec<u8> = Vec::with_capacity(text.len() / 2 + 64);
                let mut input = zstd_safe::InBuffer::around(text);
                loop {
                    if out.capacity() - out.len() < 64 {
                        out.reserve(out.capacity().max(256));
                    }
                    let pos = out.len();
                    let mut output = zstd_safe::OutBuffer::around_pos(&mut out, pos);
                    let remaining = ctx
                        .compress_stream2(
                            &mut output,
                            &mut input,
                            zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush,
                        )
                        .map_err(|code| CompressError(zstd_safe::get_error_name(code).into()))?;
                    if remaining == 0 && input.pos() == text.len() {
                        return Ok(Some(out));
                    }
                }
            }
        }
    }
}
