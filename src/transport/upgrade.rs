//! Turning an accepted WebSocket upgrade request into a running connection: the handshake
//! response whose body is the connection's outbox, and the connection's task.
//!
//! Whoever decided to accept the request (the endpoint: origin, version, connect hook) calls
//! [`upgrade`] with a function that builds the connection's [`Handler`] around its outbox.
//! This module must never decide who may connect.

use actix_web::{HttpRequest, HttpResponse, body::BodyStream, web::Payload};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    body::OutboxBody,
    connection::{self, Handler, Limits},
    outbox::Outbox,
};
use crate::metrics::counted_task;

/// Everything a connection runs under, shared by the connections of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    /// Per-connection limits (a route may lower the message size: see [`upgrade`]).
    pub(crate) limits: Limits,
    /// Most bytes queued for one connection.
    pub(crate) max_outbound_bytes: usize,
    /// Cancelled when the server shuts down: every connection closes with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Tracks every connection's task.
    pub(crate) connections: TaskTracker,
}

/// Answers the handshake of `req` and spawns the connection's task (on the current actix
/// worker) under `limits`, whose handler `make_handler` builds around the connection's
/// outbox. A request that is not a valid WebSocket upgrade gets HTTP 400 and nothing is
/// spawned.
pub(crate) fn upgrade<H: Handler + 'static>(
    req: &HttpRequest,
    payload: Payload,
    runtime: &Runtime,
    limits: Limits,
    make_handler: impl FnOnce(Outbox) -> H,
) -> Result<HttpResponse, actix_web::Error> {
    let mut handshake = actix_http::ws::handshake(req.head())
        .map_err(|err| actix_web::error::ErrorBadRequest(err.to_string()))?;
    let outbox = Outbox::new(runtime.max_outbound_bytes);
    let body = BodyStream::new(OutboxBody::new(outbox.shared().clone()));
    let response =
        HttpResponse::from(handshake.message_body(actix_web::body::MessageBody::boxed(body))?);
    let handler = make_handler(outbox.clone());
    let connection = connection::run(payload, outbox, handler, limits, runtime.shutdown.clone());
    actix_web::rt::spawn(runtime.connections.track_future(counted_task(connection)));
    Ok(response)
}
