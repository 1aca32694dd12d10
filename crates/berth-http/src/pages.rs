//! Server-rendered pages outside the API. For now one: `/authrepoemail?code=…`, where the owner of
//! an address confirms that a repository may send it e-mail notifications. Every interpolated
//! value is escaped.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use berth_app::authorized_email::Confirmation;
use berth_app::vocab::html_escape;
use serde::Deserialize;

use crate::HttpState;

/// The page routes.
pub fn router() -> Router<HttpState> {
    Router::new().route("/authrepoemail", get(confirm_email))
}

#[derive(Debug, Deserialize)]
struct CodeQuery {
    #[serde(default)]
    code: String,
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t} · Berth</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = html_escape(title),
        m = html_escape(message),
    );
    (status, Html(body)).into_response()
}

async fn confirm_email(State(s): State<HttpState>, Query(q): Query<CodeQuery>) -> Response {
    if q.code.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "Invalid confirmation code",
            "The link has no confirmation code.",
        );
    }
    match s.app.confirm_email(&q.code).await {
        Ok(Confirmation::Confirmed { email, repository }) => page(
            StatusCode::OK,
            "E-mail address authorized",
            &format!("{email} will now receive the notifications of repository {repository} that are sent to it."),
        ),
        Ok(Confirmation::Unknown) => page(
            StatusCode::NOT_FOUND,
            "Invalid confirmation code",
            "Invalid confirmation code.",
        ),
        Ok(Confirmation::Expired) => page(
            StatusCode::GONE,
            "Confirmation code expired",
            "This link has expired. Ask a repository administrator to send a new one.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "confirming an e-mail authorization failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The confirmation could not be saved. Please open the link again in a moment.",
            )
        }
    }
}
