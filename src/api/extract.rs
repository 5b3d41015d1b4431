//! axum's `Path` and `Query`, refusing as problems: axum's own extractors
//! answer a path segment that is not UTF-8, an id that is not a number or a
//! query string they cannot read (a parameter given twice, `open=maybe`) in
//! `text/plain`. These wrappers read the same way and answer 400
//! `invalid_path` or `invalid_query`, naming the parameter when axum does.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;

use super::openapi::Problems;
use super::problem::{ApiError, ProblemCode};

/// Path parameters, refused as a 400 `invalid_path` problem.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(t)) => Ok(Path(t)),
            Err(rejection) => {
                let mut error = ApiError::from(rejection);
                // A route with one parameter: axum does not name it.
                if error.field.is_none() {
                    if let Ok(raw) =
                        axum::extract::RawPathParams::from_request_parts(parts, state).await
                    {
                        let keys: Vec<&str> = raw.iter().map(|(k, _)| k).collect();
                        if let [only] = keys[..] {
                            error = error.field(only);
                        }
                    }
                }
                Err(error)
            }
        }
    }
}

/// A query string, refused as a 400 `invalid_query` problem.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// What [`Path`] answers with.
pub(crate) const PATH: Problems = &[(400, &[ProblemCode::InvalidPath])];
/// What [`Query`] answers with.
pub(crate) const QUERY: Problems = &[(400, &[ProblemCode::InvalidQuery])];
/// What reading a body with [`body`] answers with.
pub(crate) const BODY: Problems = &[
    (400, &[ProblemCode::UnreadableBody]),
    (413, &[ProblemCode::BodyTooLarge]),
];

/// A request's body, refused as 413 `body_too_large` (over
/// `http.max_body_bytes`, `limit` here) or 400 `unreadable_body`.
pub(crate) fn body(read: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    read.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status(),
                ProblemCode::BodyTooLarge,
                "Request body too large",
                format!("request bodies are limited to {limit} bytes"),
            )
        } else {
            ApiError::bad_request(ProblemCode::UnreadableBody, e.body_text())
        }
    })
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        use axum::extract::path::ErrorKind;
        let (detail, field) = match &rejection {
            PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                ErrorKind::ParseErrorAtKey {
                    key,
                    value,
                    expected_type,
                } => (
                    format!(
                        "path parameter {key} is {:?}, which is not {}",
                        value,
                        expected_in_words(expected_type)
                    ),
                    Some(key.clone()),
                ),
                ErrorKind::ParseError {
                    value,
                    expected_type,
                } => (
                    format!(
                        "the path parameter is {:?}, which is not {}",
                        value,
                        expected_in_words(expected_type)
                    ),
                    None,
                ),
                ErrorKind::InvalidUtf8InPathParam { key } => (
                    format!("path parameter {key} is not UTF-8 once percent-decoded"),
                    Some(key.clone()),
                ),
                _ => (format!("the path cannot be read: {}", e.body_text()), None),
            },
            other => (
                format!("the path cannot be read: {}", other.body_text()),
                None,
            ),
        };
        let error = ApiError::bad_request(ProblemCode::InvalidPath, detail);
        match field {
            Some(f) => error.field(f),
            None => error,
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        // axum's text says which parameter and why ("duplicate field `open`",
        // "open: provided string was not `true` or `false`"): kept as it is,
        // without axum's own prefix.
        let text = rejection.body_text();
        let why = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::bad_request(
            ProblemCode::InvalidQuery,
            format!("the query string cannot be read: {why}"),
        )
    }
}

fn expected_in_words(rust_type: &str) -> &'static str {
    match rust_type {
        "i64" | "i32" | "u64" | "u32" => "a whole number",
        "bool" => "true or false",
        _ => "of the expected form",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize)]
    struct Q {
        #[allow(dead_code)]
        open: Option<bool>,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/n/{id}",
                get(|Path(id): Path<i64>| async move { id.to_string() }),
            )
            .route("/s/{name}", get(|Path(n): Path<String>| async move { n }))
            .route("/q", get(|Query(_q): Query<Q>| async { "ok" }))
    }

    async fn problem(uri: &str) -> (StatusCode, serde_json::Value, String) {
        let resp = app()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&body).unwrap_or_default(),
            ct,
        )
    }

    #[tokio::test]
    async fn a_path_id_that_is_no_number_is_a_problem_naming_it() {
        let (status, body, ct) = problem("/n/abc").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "invalid_path");
        assert_eq!(body["field"], "id");
        assert!(body["detail"].as_str().unwrap().contains("whole number"));
    }

    #[tokio::test]
    async fn a_path_segment_that_is_not_utf8_is_a_problem() {
        let (status, body, ct) = problem("/s/%FF%FE").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["code"], "invalid_path");
        assert_eq!(body["field"], "name");
    }

    #[tokio::test]
    async fn a_query_parameter_given_twice_or_of_the_wrong_type_is_a_problem() {
        for uri in ["/q?open=true&open=false", "/q?open=maybe", "/q?open=%FF"] {
            let (status, body, ct) = problem(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(ct, "application/problem+json", "{uri}");
            assert_eq!(body["code"], "invalid_query", "{uri}");
            assert!(
                !body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("Failed to deserialize"),
                "{uri}"
            );
        }
        let (status, _, _) = problem("/q?open=true").await;
        assert_eq!(status, StatusCode::OK);
    }
}
