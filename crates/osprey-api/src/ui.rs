//! The web UI: static files built into the binary at compile time, so it needs no network and no
//! separate web server. Every page path answers with the same shell; the JavaScript router draws the
//! page, so every view is a link (`/search?service=…` and `/trace/<id>` as in the Jaeger UI).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::ApiState;

const INDEX: &str = include_str!("../ui/index.html");

/// A JavaScript module of the UI: (`js/<file>`, content type, content).
macro_rules! js {
    ($file:literal) => {
        (
            concat!("js/", $file),
            "text/javascript",
            include_str!(concat!("../ui/js/", $file)),
        )
    };
}

/// (file name under `/ui/`, content type, content)
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", include_str!("../ui/app.css")),
    js!("app.js"),
    js!("api.js"),
    js!("format.js"),
    js!("charts.js"),
    js!("search.js"),
    js!("traceql.js"),
    js!("trace.js"),
    js!("timeline.js"),
    js!("map.js"),
    js!("services.js"),
    js!("compare.js"),
];

pub fn routes() -> Router<ApiState> {
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/search") }))
        .route("/ui/{*file}", get(asset));
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
}

/// The paths that answer with the UI's shell.
const PAGES: [&str; 5] = [
    "/search",
    "/trace/{trace_id}",
    "/map",
    "/services",
    "/compare",
];

/// Whether `path` is one of the UI's pages or static files (no trace data in either).
pub fn is_page_or_file(path: &str) -> bool {
    path == "/"
        || path.starts_with("/ui/")
        || PAGES
            .iter()
            .any(|page| match page.strip_suffix("{trace_id}") {
                Some(prefix) => path
                    .strip_prefix(prefix)
                    .is_some_and(|id| !id.is_empty() && !id.contains('/')),
                None => path == *page,
            })
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *content,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no UI file {file}")).into_response(),
    }
}
