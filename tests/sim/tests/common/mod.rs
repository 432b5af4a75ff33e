//! A small raw gateway client for the simulator's tests: it speaks the wire
//! protocol by hand (tokio-tungstenite + flate2/zstd), so tests see exactly
//! what the simulator sends.
#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use flate2::{Decompress, FlushDecompress};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use zstd::zstd_safe;

pub const TOKEN: &str = "sim-token";

/// What the client read.
#[derive(Debug)]
pub enum Incoming {
    Payload(Value),
    /// A frame that did not decode (corrupt compression or not JSON).
    Undecodable(Vec<u8>),
    /// The server closed with this code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Gone,
    /// Nothing within the wait.
    Timeout,
}

enum Decoder {
    None,
    Zlib(Box<Decompress>, Vec<u8>),
    Zstd(zstd_safe::DCtx<'static>),
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    decoder: Decoder,
    pub last_seq: Option<u64>,
}

impl Client {
    /// Connects to `{base}{path}?v=10&encoding=json[&compress=…]`.
    pub async fn connect(base: &str, path: &str, compress: Option<&str>) -> Self {
        let mut url = format!("{base}{path}?v=10&encoding=json");
        if let Some(c) = compress {
            url.push_str("&compress=");
            url.push_str(c);
        }
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let decoder = match compress {
            Some("zlib-stream") => Decoder::Zlib(Box::new(Decompress::new(true)), Vec::new()),
            Some("zstd-stream") => Decoder::Zstd(zstd_safe::DCtx::create()),
            _ => Decoder::None,
        };
        Self {
            ws,
            decoder,
            last_seq: None,
        }
    }

    pub async fn send(&mut self, payload: Value) {
        self.ws
            .send(Message::Text(payload.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn close(&mut self, code: u16) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await;
    }

    fn decode(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        match &mut self.decoder {
            Decoder::None => Some(data.to_vec()),
            Decoder::Zlib(ctx, _) => {
                let mut out = Vec::with_capacity(data.len() * 8 + 1024);
                let start = ctx.total_in();
                loop {
                    let used = (ctx.total_in() - start) as usize;
                    if out.capacity() == out.len() {
                        out.reserve(out.len());
                    }
                    ctx.decompress_vec(&data[used..], &mut out, FlushDecompress::Sync)
                        .ok()?;
                    if (ctx.total_in() - start) as usize == data.len() && out.len() < out.capacity()
                    {
                        return Some(out);
                    }
                }
            }
            Decoder::Zstd(ctx) => {
                let mut out: Vec<u8> = Vec::with_capacity(data.len() * 8 + 1024);
                let mut input = zstd_safe::InBuffer::around(data);
                loop {
                    if out.capacity() - out.len() < 1024 {
                        out.reserve(out.capacity());
                    }
                    let pos = out.len();
                    let mut output = zstd_safe::OutBuffer::around_pos(&mut out, pos);
                    ctx.decompress_stream(&mut output, &mut input).ok()?;
                    let full = output.pos() == output.capacity();
                    if input.pos() == data.len() && !full {
                        return Some(out);
                    }
                }
            }
        }
    }

    /// Next thing from the server within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Incoming {
        loop {
            let message = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Incoming::Timeout,
                Ok(None) => return Incoming::Gone,
                Ok(Some(Err(_))) => return Incoming::Gone,
                Ok(Some(Ok(m))) => m,
            };
            let bytes = match message {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => match self.decode(&b) {
                    Some(text) => text,
                    None => return Incoming::Undecodable(b.to_vec()),
                },
                Message::Close(frame) => return Incoming::Closed(frame.map(|f| u16::from(f.code))),
                _ => continue,
            };
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => {
                    if let Some(s) = v["s"].as_u64() {
                        self.last_seq = Some(s);
                    }
                    Incoming::Payload(v)
                }
                Err(_) => Incoming::Undecodable(bytes),
            };
        }
    }

    /// The next payload; panics on anything else.
    pub async fn payload(&mut self) -> Value {
        match self.next_within(Duration::from_secs(5)).await {
            Incoming::Payload(v) => v,
            other => panic!("expected a payload, got {other:?}"),
        }
    }

    /// Reads until the connection closes; the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next_within(Duration::from_secs(5)).await {
                Incoming::Payload(_) | Incoming::Undecodable(_) => continue,
                Incoming::Closed(code) => return code,
                Incoming::Gone => return None,
                Incoming::Timeout => panic!("connection did not close"),
            }
        }
    }

    /// Reads payloads until one has `op` (and `t`, if given).
    pub async fn until(&mut self, op: u64, t: Option<&str>) -> Value {
        loop {
            let v = self.payload().await;
            if v["op"] == op && t.is_none_or(|t| v["t"] == t) {
                return v;
            }
        }
    }

    pub async fn hello(&mut self) -> u64 {
        let v = self.payload().await;
        assert_eq!(v["op"], 10, "{v}");
        v["d"]["heartbeat_interval"].as_u64().unwrap()
    }

    pub async fn identify(&mut self, shard: [u32; 2], intents: u64) {
        self.identify_with(TOKEN, shard, intents).await;
    }

    pub async fn identify_with(&mut self, token: &str, shard: [u32; 2], intents: u64) {
        self.send(json!({
            "op": 2,
            "d": {
                "token": token,
                "intents": intents,
                "shard": shard,
                "properties": {"os": "linux", "browser": "test", "device": "test"},
            }
        }))
        .await;
    }

    pub async fn resume(&mut self, session_id: &str, seq: u64) {
        self.send(json!({
            "op": 6,
            "d": {"token": TOKEN, "session_id": session_id, "seq": seq}
        }))
        .await;
    }

    pub async fn heartbeat(&mut self) {
        let seq = self.last_seq;
        self.send(json!({"op": 1, "d": seq})).await;
    }
}

/// Default intents for tests: GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = 1 | (1 << 9) | (1 << 15);
