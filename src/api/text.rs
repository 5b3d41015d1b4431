//! Control characters are refused at the edge, before anything reaches
//! the store: in the path and the query (a middleware over every route)
//! and in JSON bodies ([`check_json`], called where a body is parsed).
//! The answer names the field: a 400 `invalid_characters` problem for the
//! path and the query, and for a JSON body the 422 `invalid_field` that
//! every other invalid field of a body gets (as before this guard).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::problem::{ApiError, ProblemCode};
use crate::domain::text::{describe, first_control};

/// What the middleware answers, on every route.
pub(super) const PROBLEMS: super::openapi::Problems = &[(400, &[ProblemCode::InvalidCharacters])];

/// The longest field name echoed back in a refusal.
const NAME_MAX: usize = 64;

fn refused(field: &str, at: usize, c: char) -> ApiError {
    let field: String = field.chars().take(NAME_MAX).collect();
    ApiError::bad_request(
        ProblemCode::InvalidCharacters,
        format!(
            "{field} holds the control character {} at position {}; remove it (control characters are never valid here)",
            describe(c),
            at + 1
        ),
    )
    .field(field)
}

/// Refuses a request whose decoded path or query holds a control
/// character.
pub async fn refuse_control_characters(req: Request, next: Next) -> Response {
    if let Err(e) = check_uri(req.uri()) {
        return e.into_response();
    }
    next.run(req).await
}

fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    for segment in uri.path().split('/') {
        // Bytes that are not UTF-8 are the path extractor's to refuse.
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        if let Some((at, c)) = first_control(&decoded, false) {
            return Err(refused("path", at, c));
        }
    }
    if let Some(query) = uri.query() {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if let Some((at, c)) = first_control(&name, false) {
                return Err(refused("query parameter name", at, c));
            }
            if let Some((at, c)) = first_control(&value, false) {
                return Err(refused(&name, at, c));
            }
        }
    }
    Ok(())
}

/// Refuses a JSON body with a control character in any string (a key or
/// a value). Values under a key in `free_text` may break lines (LF, CR,
/// tab); nothing may hold NUL.
pub fn check_json(value: &Value, free_text: &[&str]) -> Result<(), ApiError> {
    walk(value, "body", false, free_text)
}

/// A JSON field holding a control character: as any other invalid field.
fn refused_field(field: &str, at: usize, c: char) -> ApiError {
    let e = refused(field, at, c);
    ApiError::unprocessable(ProblemCode::InvalidField, e.detail).field(e.field.unwrap_or_default())
}

fn walk(value: &Value, at: &str, free: bool, free_text: &[&str]) -> Result<(), ApiError> {
    match value {
        Value::String(s) => match first_control(s, free) {
            Some((i, c)) => Err(refused_field(at, i, c)),
            None => Ok(()),
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| walk(v, &format!("{at}[{i}]"), free, free_text)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if let Some((i, c)) = first_control(k, false) {
                return Err(refused_field("a field name", i, c));
            }
            let path = if at == "body" {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            walk(v, &path, free_text.contains(&k.as_str()), free_text)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn uri(s: &str) -> axum::http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn a_nul_in_the_query_is_refused_naming_the_parameter() {
        let e = check_uri(&uri("/v1/payments?channel_reference=%00")).unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.code, "invalid_characters");
        assert_eq!(e.field.as_deref(), Some("channel_reference"));
        assert!(e.detail.contains("U+0000 (NUL)"), "{}", e.detail);
        let e = check_uri(&uri("/v1/breaks?status=open&owner=a%0Ab")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("owner"));
        let e = check_uri(&uri("/v1/breaks?a%01=1")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("query parameter name"));
    }

    #[test]
    fn a_control_character_in_the_path_is_refused() {
        let e = check_uri(&uri("/v1/payments/abc%7F")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("path"));
        assert!(check_uri(&uri("/v1/billers/sh-water/bills?account_number=123%20456")).is_ok());
        assert!(check_uri(&uri("/v1/payments?channel_reference=%E6%B0%B4")).is_ok());
    }

    #[test]
    fn json_strings_and_keys_are_checked_free_text_may_break_lines() {
        let body =
            json!({"note": "line one\nline two", "items": [{"name": "ok"}, {"name": "x\u{0}"}]});
        let e = check_json(&body, &["note"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("items[1].name"));
        assert!(check_json(&json!({"note": "a\nb"}), &["note"]).is_ok());
        let e = check_json(&json!({"note": "a\u{0}b"}), &["note"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("note"));
        let e = check_json(&json!({"reason": "a\nb"}), &["note"]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("reason"));
        let e = check_json(&json!({"k\u{1}": 1}), &[]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("a field name"));
    }
}
