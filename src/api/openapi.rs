//! The OpenAPI 3.1 document, generated from the code (utoipa): each
//! handler's `#[utoipa::path]` states its path, parameters, request body
//! and success answer; the request and response types derive `ToSchema`,
//! so a schema is what is parsed or serialised; and each handler's
//! [`Operation`] (beside it) lists the problems it answers with, by status,
//! merged here with those of the middleware and extractors it goes
//! through. `Problem.code`'s enum is [`ProblemCode`].
//!
//! The document is computed once and served at `/openapi.json`; a checked-in
//! copy (`docs/openapi.json`) is compared with it by a test, so that every
//! contract change shows in review. Regenerate the copy with
//! `cargo run -q -- openapi > docs/openapi.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::AdditionalProperties;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi};

use super::problem::{Problem, ProblemCode};
use super::{billers, complaints, health, ops, payments, recon, settlements, staff};
use crate::complaints::view::ComplaintCallbackEvent;
use crate::domain::dispatch::{CallbackEvent, CallbackPayment};

/// Problem codes by HTTP status: what one part of the service (the
/// middleware, an extractor, a handler) can answer with.
pub(crate) type Problems = &'static [(u16, &'static [ProblemCode])];

/// What one operation can answer besides its success: the problem lists
/// of every part it goes through.
pub(crate) struct Operation {
    /// The operation's `operationId` (also in its `#[utoipa::path]`).
    pub id: &'static str,
    pub problems: &'static [Problems],
}

/// Every operation, in the order of the document.
const OPERATIONS: &[&Operation] = &[
    &billers::LIST,
    &billers::BILLS,
    &ops::BILLERS,
    &ops::SWITCH_ROUTE,
    &payments::CREATE,
    &payments::FIND,
    &payments::GET_ONE,
    &complaints::CREATE,
    &complaints::LIST,
    &complaints::GET_ONE,
    &settlements::LIST,
    &settlements::DOWNLOAD,
    &settlements::STATEMENT,
    &settlements::STATEMENT_FILE,
    &staff::ME,
    &complaints::STAFF_LIST,
    &complaints::STAFF_ACT,
    &recon::RUNS,
    &recon::REPORT,
    &recon::LIST,
    &recon::SHOW,
    &recon::ACT,
    &health::HEALTHZ,
    &health::READYZ,
    &health::METRICS,
    &health::OPENAPI,
];

const DESCRIPTION: &str = "Utility bill payments for payment apps (channels), billers and finance staff.

Every /v1 request is signed (bc1), except /v1/staff (and /v1/staff/complaints), /v1/recon and /v1/breaks, which take a finance staff bearer token instead (staffBearer); the operators' /ops/v1 takes the operator token (opsBearer). A signed request carries Authorization: BC1-HMAC-SHA256 key=<key_id>,ts=<unix seconds>,nonce=<unique string>,sig=<base64 signature>, where sig = base64(HMAC-SHA256(secret, METHOD \\n PATH_AND_QUERY \\n ts \\n nonce \\n hex(SHA-256(body)) \\n)). Channels sign with a channel key; billers (settlement files) with a biller key.

Errors are application/problem+json (the Problem schema) with a stable code; each operation lists, per status, the codes it can answer with. Control characters in the path or the query are refused on every route (400 invalid_characters). A path that is no endpoint is a 404 no_such_route, a method an endpoint does not take a 405 method_not_allowed (components.responses NoSuchRoute and MethodNotAllowed). 429 and 503 answers carry Retry-After. Every answer carries X-Request-Id: the request's own when it sends a sane one (1-64 characters of A-Z a-z 0-9 . _ -), else a new UUID; quote it when reporting a problem.

Final payment states (CONFIRMED, REJECTED, RETURNED) are POSTed to the channel's callback URL as a CallbackEvent, signed the same way with the channel's newest active key (method POST, the callback URL's path and query), retried with backoff until the channel answers 2xx; deduplicate on event_id, which is also sent as the Billclear-Event-Id header. Every change of a complaint's status is POSTed the same way as a ComplaintCallbackEvent.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "billclear channel API",
        version = "1.0.0",
        description = DESCRIPTION,
    ),
    paths(
        billers::list,
        billers::bills,
        ops::billers,
        ops::switch_route,
        payments::create,
        payments::find,
        payments::get_one,
        complaints::create,
        complaints::list,
        complaints::get_one,
        settlements::list,
        settlements::download,
        settlements::statement,
        settlements::statement_file,
        staff::me,
        complaints::staff_list,
        complaints::staff_act,
        recon::runs,
        recon::report,
        recon::list,
        recon::show,
        recon::act,
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
    ),
    components(schemas(Problem, CallbackEvent, CallbackPayment, ComplaintCallbackEvent)),
    security(("bc1" = [])),
    modifiers(&Contract),
    tags(
        (name = "payments", description = "Channels pay bills"),
        (name = "billers", description = "Billers, their rules and bill inquiry"),
        (name = "complaints", description = "Payment apps' complaints about their payments, and refunds"),
        (name = "settlement", description = "Settlement files for billers, statements for channels"),
        (name = "staff", description = "Finance staff"),
        (name = "reconciliation", description = "Reconciliation runs, reports and breaks (finance staff)"),
        (name = "operators", description = "The operators' API: routes"),
        (name = "service", description = "Health, metrics and this document"),
    ),
)]
struct ApiDoc;

/// What the derive cannot say: the security schemes, the problem answers
/// of every operation, the fallback answers.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bc1",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "BC1-HMAC-SHA256 signature (see the document's description and README)",
            ))),
        );
        components.add_security_scheme(
            "opsBearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "security.ops_token (operators only; the operators' API is off without it)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "staffBearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a finance staff token (bcstaff_..., issued by `billclear staff add`); channel or biller signatures are refused on staff endpoints (channel_credentials_not_accepted), and staff tokens on channel and biller endpoints (staff_token_not_accepted)",
                    ))
                    .build(),
            ),
        );
        // Serde's deny_unknown_fields on the break action enum, which the
        // derive leaves out for enum variants.
        for name in ["BreakAction", "ComplaintAction"] {
            if let Some(RefOr::T(Schema::OneOf(actions))) = components.schemas.get_mut(name) {
                for variant in &mut actions.items {
                    if let RefOr::T(Schema::Object(o)) = variant {
                        o.additional_properties =
                            Some(Box::new(AdditionalProperties::FreeForm(false)));
                    }
                }
            }
        }
        components.responses.insert(
            "NoSuchRoute".into(),
            RefOr::T(problem_response(
                "No such endpoint (any path that is not in this document)",
                &[ProblemCode::NoSuchRoute],
                404,
            )),
        );
        components.responses.insert(
            "MethodNotAllowed".into(),
            RefOr::T(problem_response(
                "The endpoint does not take this method",
                &[ProblemCode::MethodNotAllowed],
                405,
            )),
        );

        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let id = op.operation_id.clone().unwrap_or_default();
                let known = OPERATIONS
                    .iter()
                    .find(|o| o.id == id)
                    .unwrap_or_else(|| panic!("operation {id:?} has no problem list"));
                for (status, response) in problem_responses(known) {
                    op.responses
                        .responses
                        .insert(status.to_string(), RefOr::T(response));
                }
            }
        }
    }
}

/// The problem answers of one operation, by status.
fn problem_responses(op: &Operation) -> BTreeMap<u16, Response> {
    let mut codes: BTreeMap<u16, BTreeSet<ProblemCode>> = BTreeMap::new();
    for list in op.problems {
        for (status, cs) in list.iter() {
            codes.entry(*status).or_default().extend(cs.iter().copied());
        }
    }
    codes
        .into_iter()
        .map(|(status, cs)| {
            let cs: Vec<ProblemCode> = cs.into_iter().collect();
            let title = status_title(status);
            (status, problem_response(title, &cs, status))
        })
        .collect()
}

fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Malformed request",
        401 => "Not authenticated",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Conflict",
        413 => "Request body too large",
        415 => "Unsupported media type",
        422 => "Request refused",
        429 => "Too many requests",
        500 => "Internal error",
        502 => "Bad answer from the biller",
        503 => "Unavailable for now",
        _ => "Error",
    }
}

/// One problem answer: `application/problem+json` (the Problem schema)
/// with the codes it can carry.
fn problem_response(title: &str, codes: &[ProblemCode], status: u16) -> Response {
    let mut description = title.to_string();
    if !codes.is_empty() {
        let list: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        description.push_str(&format!(": {}", list.join(", ")));
    }
    let mut builder = ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    );
    if matches!(status, 429 | 503) {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .build(),
                ))
                .description(Some("seconds to wait before trying again"))
                .build(),
        );
    }
    builder.build()
}

/// The document, computed once.
pub fn document() -> &'static str {
    static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
        let text = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises");
        let mut out = String::with_capacity(text.len() + 1);
        for line in text.lines() {
            out.push_str(&unwrap_prose(line));
            out.push('\n');
        }
        out
    });
    &DOCUMENT
}

/// A summary or a description taken from doc comments keeps their line
/// breaks: inside a paragraph they become spaces (a blank line still
/// separates paragraphs). `line` is one line of the pretty-printed
/// document; anything else is left as it is.
fn unwrap_prose(line: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = line.trim_start();
    let indent = &line[..line.len() - trimmed.len()];
    for key in ["\"summary\": ", "\"description\": "] {
        let Some(rest) = trimmed.strip_prefix(key) else {
            continue;
        };
        let (value, comma) = match rest.strip_suffix(',') {
            Some(v) => (v, ","),
            None => (rest, ""),
        };
        let Ok(text) = serde_json::from_str::<String>(value) else {
            continue;
        };
        let unwrapped = text
            .split("\n\n")
            .map(|p| p.replace('\n', " "))
            .collect::<Vec<_>>()
            .join("\n\n");
        let value = serde_json::to_string(&unwrapped).expect("a string serialises");
        return format!("{indent}{key}{value}{comma}").into();
    }
    line.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations of the document, with their ids.
    fn operations(doc: &serde_json::Value) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((
                    op["operationId"].as_str().unwrap_or_default().to_string(),
                    method.clone(),
                    path.clone(),
                ));
            }
        }
        out
    }

    fn doc() -> serde_json::Value {
        serde_json::from_str(document()).unwrap()
    }

    #[test]
    fn the_document_is_openapi_3_1() {
        assert_eq!(doc()["openapi"], "3.1.0");
    }

    #[test]
    fn the_document_lists_every_problem_code_the_service_returns() {
        let doc = doc();
        let listed: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]
            ["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let codes: Vec<&str> = ProblemCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, codes);
    }

    #[test]
    fn every_route_is_an_operation_with_a_stable_id() {
        let mut ops = operations(&doc());
        ops.sort();
        let mut expected: Vec<(String, String, String)> = [
            ("createPayment", "post", "/v1/payments"),
            ("getPayment", "get", "/v1/payments/{id}"),
            ("listPayments", "get", "/v1/payments"),
            ("listBillers", "get", "/v1/billers"),
            ("inquireBill", "get", "/v1/billers/{biller_id}/bills"),
            ("listSettlements", "get", "/v1/settlements"),
            (
                "downloadSettlementFile",
                "get",
                "/v1/settlements/{batch_id}/files/{name}",
            ),
            ("getStatement", "get", "/v1/statements"),
            ("downloadStatementFile", "get", "/v1/statements/{date}/file"),
            ("getStaffMe", "get", "/v1/staff/me"),
            ("listReconRuns", "get", "/v1/recon/runs"),
            (
                "downloadReconReport",
                "get",
                "/v1/recon/reports/{date}/{name}",
            ),
            ("createComplaint", "post", "/v1/complaints"),
            ("listComplaints", "get", "/v1/complaints"),
            ("getComplaint", "get", "/v1/complaints/{id}"),
            ("listComplaintsForStaff", "get", "/v1/staff/complaints"),
            (
                "actOnComplaint",
                "post",
                "/v1/staff/complaints/{id}/actions",
            ),
            ("listBreaks", "get", "/v1/breaks"),
            ("getBreak", "get", "/v1/breaks/{id}"),
            ("actOnBreak", "post", "/v1/breaks/{id}/actions"),
            ("listOpsBillers", "get", "/ops/v1/billers"),
            ("switchRoute", "put", "/ops/v1/billers/{biller_id}/route"),
            ("healthz", "get", "/healthz"),
            ("readyz", "get", "/readyz"),
            ("getMetrics", "get", "/metrics"),
            ("getOpenApi", "get", "/openapi.json"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        expected.sort();
        assert_eq!(ops, expected);
        // Each operation's problem list is used exactly once.
        let ids: BTreeSet<&str> = OPERATIONS.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), OPERATIONS.len());
        assert_eq!(ids.len(), expected.len());
    }

    #[test]
    fn every_problem_answer_is_a_problem_and_names_its_codes() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                // Control characters are refused on every route.
                assert!(
                    responses["400"]["description"]
                        .as_str()
                        .unwrap()
                        .contains("invalid_characters"),
                    "{method} {path}"
                );
                for (status, r) in responses {
                    if status.starts_with('2') {
                        continue;
                    }
                    let content = &r["content"];
                    // A problem, never the framework's own text/plain.
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                    assert!(content["text/plain"].is_null(), "{method} {path} {status}");
                    if status == "429" || status == "503" {
                        assert!(r["headers"]["Retry-After"].is_object());
                    }
                }
                let secured = op["security"].as_array().unwrap();
                assert_eq!(secured.len(), 1, "{method} {path}");
            }
        }
    }

    #[test]
    fn the_checked_in_copy_is_the_served_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == document(),
            "docs/openapi.json is not the document the service serves: the API's contract \
             changed. Regenerate it with `cargo run -q -- openapi > docs/openapi.json` and \
             review the diff."
        );
    }
}
