//! `GET /dashboard`: an operator's page served by the server itself. Plain HTML, CSS and
//! JavaScript embedded in the binary (no front-end build step, nothing fetched from outside);
//! the page reads the REST API it is served next to.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::response::ApiError;

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const STYLE_CSS: &str = include_str!("../dashboard/style.css");

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /dashboard` and `GET /dashboard/`.
pub async fn index() -> Response {
    asset_response("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/{file}`: the page's script and style sheet.
pub async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "app.js" => asset_response("text/javascript; charset=utf-8", APP_JS),
        "style.css" => asset_response("text/css; charset=utf-8", STYLE_CSS),
        "index.html" => asset_response("text/html; charset=utf-8", INDEX_HTML),
        _ => ApiError::not_found(format!("Not found: no dashboard file {file}")).into_response(),
    }
}
