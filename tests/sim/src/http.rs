//! The HTTP side of the one listener: the gateway WebSocket upgrade, the
//! REST endpoints a gateway and a bot use, and the `/sim` control endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::compress::Compress;
use crate::events::{BOT_USER_ID, object_id};
use crate::fault::FaultRequest;
use crate::gateway;
use crate::ledger::RestCall;
use crate::state::Shared;

type Sim = State<Arc<Shared>>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(ws_gateway))
        .route("/gateway", get(ws_gateway))
        .route("/resume", get(ws_gateway))
        .route("/resume/", get(ws_gateway))
        .route("/api/v10/gateway", get(gateway_info))
        .route("/api/v10/gateway/bot", get(gateway_bot))
        .route(
            "/api/v10/channels/{channel_id}/messages",
            post(create_message),
        )
        .route(
            "/api/v10/interactions/{id}/{token}/callback",
            post(interaction_callback),
        )
        .route("/sim/stats", get(stats))
        .route("/sim/fault", post(fault))
        .fallback(not_found)
        .with_state(shared)
}

async fn ws_gateway(
    State(shared): Sim,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let version_ok = query.get("v").is_none_or(|v| v == "10");
    let encoding_ok = query.get("encoding").is_none_or(|e| e == "json");
    let compress = Compress::from_query(query.get("compress").map(String::as_str));
    let upgrade = upgrade
        .read_buffer_size(8 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(1 << 20);
    match (version_ok, encoding_ok, compress) {
        (true, true, Some(compress)) => {
            upgrade.on_upgrade(move |socket| gateway::serve(socket, shared, compress))
        }
        (false, _, _) => upgrade.on_upgrade(|socket| refuse(socket, 4012, "invalid API version")),
        _ => upgrade.on_upgrade(|socket| refuse(socket, 4002, "unsupported encoding")),
    }
}

async fn refuse(mut socket: axum::extract::ws::WebSocket, code: u16, reason: &'static str) {
    use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Bot {}", shared.config.token.expose());
    !shared.revoked.load(std::sync::atomic::Ordering::SeqCst)
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected)
}

fn record(shared: &Shared, method: &Method, uri: &Uri, status: StatusCode, body: &[u8]) {
    shared.rest_call(RestCall {
        at_ms: shared.at_ms(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        status: status.as_u16(),
        body: serde_json::from_slice(body).ok(),
    });
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
    )
        .into_response()
}

async fn gateway_info(State(shared): Sim, method: Method, uri: Uri) -> Response {
    record(&shared, &method, &uri, StatusCode::OK, &[]);
    axum::Json(json!({"url": shared.ws_url})).into_response()
}

async fn gateway_bot(State(shared): Sim, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        record(&shared, &method, &uri, StatusCode::UNAUTHORIZED, &[]);
        return unauthorized();
    }
    record(&shared, &method, &uri, StatusCode::OK, &[]);
    let guilds = shared.guild_count.load(std::sync::atomic::Ordering::SeqCst);
    axum::Json(json!({
        "url": shared.ws_url,
        "shards": shared.config.recommended_shards(guilds),
        "session_start_limit": shared.session_start_limit(),
    }))
    .into_response()
}

async fn create_message(
    State(shared): Sim,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        record(&shared, &method, &uri, StatusCode::UNAUTHORIZED, &body);
        return unauthorized();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        record(&shared, &method, &uri, StatusCode::BAD_REQUEST, &body);
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "Cannot send an empty message", "code": 50006})),
        )
            .into_response();
    };
    record(&shared, &method, &uri, StatusCode::OK, &body);
    let serial = shared
        .serial
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    axum::Json(json!({
        "id": object_id(serial).to_string(),
        "channel_id": channel_id,
        "author": {
            "id": BOT_USER_ID.to_string(),
            "username": "shardline-sim",
            "discriminator": "0",
            "avatar": null,
            "bot": true,
        },
        "content": request.get("content").cloned().unwrap_or(json!("")),
        "embeds": request.get("embeds").cloned().unwrap_or(json!([])),
        "timestamp": "2024-06-01T12:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "pinned": false,
        "type": 0,
    }))
    .into_response()
}

async fn interaction_callback(
    State(shared): Sim,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    if serde_json::from_slice::<Value>(&body).is_err() {
        record(&shared, &method, &uri, StatusCode::BAD_REQUEST, &body);
        return StatusCode::BAD_REQUEST.into_response();
    }
    record(&shared, &method, &uri, StatusCode::NO_CONTENT, &body);
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(shared): Sim) -> Response {
    axum::Json(shared.stats()).into_response()
}

async fn fault(State(shared): Sim, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRequest>(&body) {
        Ok(request) => {
            let connections = shared.apply_fault(request);
            axum::Json(json!({"connections": connections})).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": error.to_string()})),
        )
            .into_response(),
    }
}

async fn not_found(State(shared): Sim, method: Method, uri: Uri, body: Bytes) -> Response {
    record(&shared, &method, &uri, StatusCode::NOT_FOUND, &body);
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "404: Not Found", "code": 0})),
    )
        .into_response()
}
