//! The finance console: server-rendered pages under `/console/` for
//! finance staff and operators, served by `billclear serve` itself.
//!
//! An edge like `api`: it reads through the store and acts through the
//! same functions the JSON staff API uses (the break workflow, the route
//! switch, the file import), so the console never does what the API
//! refuses. Pages are maud templates (every value escaped); there is no
//! inline script or style, so the Content-Security-Policy allows only the
//! console's own static files.
//!
//! - `session`: signing in and out, the session cookie, CSRF tokens
//! - `i18n`: every label in English and Chinese
//! - `layout`: the page chrome, amounts, times and ages
//! - `days`: the day overview (and the home page: today and yesterday)
//! - `breaks`: the breaks queue, a break's page and its actions
//! - `complaints`: the apps' complaints beside the breaks (time left,
//!   evidence, actions, maker-checker refunds) and their monthly report
//! - `payments`: finding a payment, and a payment's whole story
//! - `settlement`: a date's batches, their files and payouts
//! - `routes`: billers' routes, their circuits, and planned switches
//! - `bulk`: the queue as a sheet, uploaded sheets of proposals, their decisions
//! - `files`: imported counterparty files and bank statements, and importing one

mod breaks;
mod bulk;
mod complaints;
mod days;
mod files;
pub mod i18n;
mod layout;
mod payments;
mod routes;
pub mod session;
mod settlement;
pub mod words;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::state::AppState;
use crate::store::StoreError;
use i18n::{Lang, L};

/// The largest sheet or file the console takes in one form.
const UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

/// The console's routes (merged into the API's router).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { layout::see_other("/console/") }))
        .route("/console/", get(days::home))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route(
            "/console/sign-in/link",
            get(session::link_page).post(session::use_link),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/lang/{code}", get(session::switch_lang))
        .route("/console/days/{date}", get(days::day))
        .route("/console/breaks", get(breaks::queue))
        .route("/console/breaks/{id}", get(breaks::detail))
        .route("/console/breaks/{id}/act", post(breaks::act))
        .route("/console/complaints", get(complaints::queue))
        .route("/console/complaints/report", get(complaints::report))
        .route("/console/complaints/{id}", get(complaints::detail))
        .route("/console/complaints/{id}/act", post(complaints::act))
        // pages: payments, settlement, routes
        .route("/console/payments", get(payments::search))
        .route("/console/payments/{id}", get(payments::detail))
        .route("/console/settlement", get(settlement::today))
        .route("/console/settlement/{date}", get(settlement::day))
        .route(
            "/console/settlement/{batch}/files/{name}",
            get(settlement::file),
        )
        .route("/console/routes", get(routes::list))
        .route("/console/routes/{biller}/switch", post(routes::switch))
        .route(
            "/console/routes/{biller}/switch/confirm",
            post(routes::confirm),
        )
        // bulk work and files: the queue as a sheet and back, uploads and
        // their decisions, imported files (the export's path is not under
        // /console/breaks/ so it is never taken for a break's id)
        .route("/console/breaks-export.xlsx", get(bulk::export))
        .route(
            "/console/breaks-upload",
            post(bulk::upload).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/console/uploads", get(bulk::uploads))
        .route("/console/uploads/{id}", get(bulk::upload_page))
        .route("/console/uploads/{id}/decide", post(bulk::decide_upload))
        .route(
            "/console/files",
            get(files::list)
                .post(files::import)
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
        .route("/console/files/{id}", get(files::detail))
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .layer(axum::middleware::map_response(security_headers))
}

/// What every console answer carries: no framing, no inline script, no
/// referrer leaving the console, nothing cached.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("static/console.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("static/console.js"),
    )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    resp
}

/// A refused or failed console request, as a page (or, for a page that
/// needs a session, a redirect to sign in).
#[derive(Debug)]
pub struct ConsoleError {
    lang: Lang,
    status: StatusCode,
    title: L,
    detail: String,
    /// Sign in first, then come back here.
    sign_in_then: Option<String>,
}

impl ConsoleError {
    pub fn new(lang: Lang, status: StatusCode, title: L, detail: impl Into<String>) -> Self {
        ConsoleError {
            lang,
            status,
            title,
            detail: detail.into(),
            sign_in_then: None,
        }
    }

    /// No session (or it ended): a GET goes to sign in and comes back; a
    /// form is refused with 401.
    pub fn sign_in(lang: Lang, next: &str, redirect: bool) -> Self {
        ConsoleError {
            lang,
            status: StatusCode::UNAUTHORIZED,
            title: L::SessionEnded,
            detail: String::new(),
            sign_in_then: redirect.then(|| next.to_string()),
        }
    }

    /// What is wrong, in words (shown on the page).
    pub fn detail(&self) -> String {
        if self.detail.is_empty() {
            self.lang.t(self.title).to_string()
        } else {
            self.detail.clone()
        }
    }

    pub fn not_found(lang: Lang, what: impl Into<String>) -> Self {
        ConsoleError::new(lang, StatusCode::NOT_FOUND, L::NotFound, what)
    }

    pub fn bad_request(lang: Lang, detail: impl Into<String>) -> Self {
        ConsoleError::new(lang, StatusCode::BAD_REQUEST, L::BadRequest, detail)
    }

    pub fn store(lang: Lang, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(w) => ConsoleError::not_found(lang, format!("{w} not found")),
            StoreError::Conflict(w) => ConsoleError::new(lang, StatusCode::CONFLICT, L::Refused, w),
            StoreError::Rejected(w) => {
                ConsoleError::new(lang, StatusCode::UNPROCESSABLE_ENTITY, L::Refused, w)
            }
            StoreError::Unavailable(w) => {
                tracing::warn!(error = %w, "console: store unavailable");
                ConsoleError::new(
                    lang,
                    StatusCode::SERVICE_UNAVAILABLE,
                    L::ServerError,
                    "the database is not reachable right now",
                )
            }
        }
    }
}

/// An optional date field (`YYYY-MM-DD`; empty: none), named in the
/// refusal.
pub fn optional_date(
    lang: Lang,
    field: &str,
    s: &str,
) -> Result<Option<chrono::NaiveDate>, ConsoleError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            ConsoleError::bad_request(lang, format!("{field}: {s:?} is not a date (YYYY-MM-DD)"))
        })
}

/// A date in a path.
pub fn path_date(lang: Lang, s: &str) -> Result<chrono::NaiveDate, ConsoleError> {
    optional_date(lang, "date", s)?
        .ok_or_else(|| ConsoleError::bad_request(lang, "date: missing (YYYY-MM-DD)"))
}

/// A numeric id in a path: anything else is not found.
pub fn path_id(lang: Lang, what: &str, s: &str) -> Result<i64, ConsoleError> {
    s.parse()
        .map_err(|_| ConsoleError::not_found(lang, format!("{what} {s:?}")))
}

/// `?done=1` after a form: the page says it was done.
#[derive(serde::Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: Option<String>,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let Some(next) = &self.sign_in_then {
            return layout::see_other(&format!(
                "/console/sign-in?m=ended&next={}",
                layout::urlencode(next)
            ));
        }
        let lang = self.lang;
        let signed_out = self.status == StatusCode::UNAUTHORIZED;
        let body = html! {
            main class="error-page" {
                h1 { (lang.t(self.title)) }
                @if !self.detail.is_empty() { p class="error" role="alert" id="error-detail" { (self.detail) } }
                p {
                    @if signed_out { a href="/console/sign-in" { (lang.t(L::SignIn)) } }
                    @else { a href="/console/" { (lang.t(L::Home)) } }
                }
            }
        };
        (self.status, layout::bare(lang, lang.t(self.title), body)).into_response()
    }
}
