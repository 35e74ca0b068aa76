//! The HTTP surface: `GET /announce`, `/scrape`, `/stats` and `/metrics` on an axum router.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::{App, Origin};
use crate::conn::ClientAddr;

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The service logic.
    pub app: App,
    /// The service clock's origin (`now` is the time elapsed since it).
    pub started: Instant,
}

type St = State<Arc<Shared>>;

fn bencoded(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn query(uri: &Uri) -> &[u8] {
    uri.query().unwrap_or("").as_bytes()
}

// Takes the whole request (not `HeaderMap` and `Uri` extractors) to read headers and query in
// place instead of cloning them on every announce.
async fn announce(
    State(s): St,
    ConnectInfo(ClientAddr(source)): ConnectInfo<ClientAddr>,
    req: Request,
) -> Response {
    let origin = Origin {
        source,
        forwarded_for: req.headers().get("x-forwarded-for").map(|v| v.as_bytes()),
    };
    let now_ms = s.started.elapsed().as_millis() as u64;
    let mut out = Vec::with_capacity(512);
    s.app.announce(
        query(req.uri()),
        &origin,
        now_ms,
        &mut rand::thread_rng(),
        &mut out,
    );
    bencoded(out)
}

async fn scrape(State(s): St, req: Request) -> Response {
    let mut out = Vec::with_capacity(256);
    s.app.scrape(query(req.uri()), &mut out);
    bencoded(out)
}

async fn stats(State(s): St) -> String {
    let counts = s.app.store.counts();
    s.app.metrics.stats_page(&counts, s.started.elapsed())
}

async fn metrics(State(s): St) -> Response {
    let counts = s.app.store.counts();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.app.metrics.prometheus(&counts),
    )
        .into_response()
}

/// The router over shared state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/announce", get(announce))
        .route("/scrape", get(scrape))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(shared)
}
