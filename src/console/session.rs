//! Signing in and out, the session cookie and CSRF tokens.
//!
//! A staff user signs in with their bearer token once (or with a one-time
//! link); the console keeps a server-side session: the cookie `bc_session`
//! (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` over TLS)
//! holds 256 random bits of which the store keeps only the SHA-256. Every
//! request checks the session again: ended, idle, too old, its user
//! disabled or its token rotated, and it is refused at once.
//!
//! Every state-changing form carries the session's CSRF token (`csrf`);
//! the sign-in form, before any session, a token that must equal the
//! `bc_signin` cookie it came with (double submit).

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::Utc;
use maud::html;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::i18n::{Lang, L};
use super::layout;
use super::ConsoleError;
use crate::auth::staff_token;
use crate::domain::staff::{StaffRole, StaffUser};
use crate::state::AppState;
use crate::store::console::AuditEntry;

pub const SESSION_COOKIE: &str = "bc_session";
const SIGN_IN_COOKIE: &str = "bc_signin";

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    B64URL.encode(raw)
}

pub fn hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Equal without telling how much of it is (CSRF tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (hash(a), hash(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim().to_string())
        })
}

/// Whether the request came over TLS (directly, or through a proxy that
/// says so), or the configuration asks for `Secure` cookies anyway.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.console.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub fn set_cookie(name: &str, value: &str, max_age_s: Option<u64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age_s {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are base64url")
}

/// A signed-in staff user, as every console page and form sees them.
#[derive(Debug, Clone)]
pub struct Staff {
    pub user: StaffUser,
    pub csrf: String,
    pub lang: Lang,
    session_hash: [u8; 32],
}

impl Staff {
    /// The user, when their role allows `needed` (checked on the server
    /// for every action, whatever the page showed).
    pub fn require(&self, needed: StaffRole) -> Result<&StaffUser, ConsoleError> {
        self.user.require(needed).map(|_| &self.user).map_err(|e| {
            ConsoleError::new(
                self.lang,
                StatusCode::FORBIDDEN,
                L::Forbidden,
                e.to_string(),
            )
        })
    }

    /// A state-changing form's CSRF token must be this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), ConsoleError> {
        if same_secret(token, &self.csrf) {
            Ok(())
        } else {
            Err(ConsoleError::new(
                self.lang,
                StatusCode::FORBIDDEN,
                L::Forbidden,
                "the form's CSRF token is missing or not this session's: reload the page and try again",
            ))
        }
    }

    pub fn can(&self, role: StaffRole) -> bool {
        !self.user.disabled && self.user.role.allows(role)
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Staff, ConsoleError> {
        let lang = Lang::from_headers(&parts.headers);
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let sign_in =
            || ConsoleError::sign_in(lang, &next, parts.method == axum::http::Method::GET);
        let Some(value) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(sign_in());
        };
        let session_hash = hash(&value);
        let now = Utc::now();
        let cfg = &state.config.console;
        let idle_since = now - chrono::Duration::seconds(cfg.idle_timeout_s as i64);
        let Some(session) = state
            .store
            .session(&session_hash, idle_since, now)
            .await
            .map_err(|e| ConsoleError::store(lang, e))?
        else {
            return Err(sign_in());
        };
        if now - session.created_at > chrono::Duration::seconds(cfg.max_session_s as i64) {
            state
                .store
                .end_session(&session_hash, "too old", now)
                .await
                .map_err(|e| ConsoleError::store(lang, e))?;
            return Err(sign_in());
        }
        Ok(Staff {
            user: session.user,
            csrf: session.csrf,
            lang,
            session_hash,
        })
    }
}

#[derive(Deserialize, Default)]
pub struct SignInQuery {
    next: Option<String>,
    /// `out`: just signed out; `ended`: the session ended.
    m: Option<String>,
}

/// Where to go after signing in: a console path only.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("/console/sign-")
                && !n.contains("//")
                && !n.contains('\\')
                && n.len() < 2000 =>
        {
            n.to_string()
        }
        _ => "/console/".to_string(),
    }
}

pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    sign_in_form(
        &state,
        &headers,
        lang,
        q.m.as_deref(),
        None,
        &safe_next(q.next.as_deref()),
    )
}

fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
    message: Option<&str>,
    error: Option<L>,
    next: &str,
) -> Response {
    let token = random_token();
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let body = html! {
        main class="signin" {
            h1 { (lang.t(L::Console)) }
            @match message {
                Some("out") => p class="notice" { (lang.t(L::SignedOut)) },
                Some("ended") => p class="notice" { (lang.t(L::SessionEnded)) },
                _ => {}
            }
            @if let Some(e) = error { p class="error" role="alert" { (lang.t(e)) } }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="token" { (lang.t(L::StaffToken)) }
                input id="token" type="password" name="token" autocomplete="off" required;
                p class="help" { (lang.t(L::SignInHelp)) }
                button type="submit" id="sign-in" { (lang.t(L::SignIn)) }
            }
            p { a href=(format!("/console/lang/{}?next=/console/sign-in", lang.other().code())) { (lang.t(L::Language)) } }
        }
    };
    let mut resp = (status, layout::bare(lang, lang.t(L::SignIn), body)).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &token, Some(3600), secure(state, headers)),
    );
    resp
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let lang = Lang::from_headers(&headers);
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&form.csrf, &expected) {
        return Err(ConsoleError::new(
            lang,
            StatusCode::FORBIDDEN,
            L::Forbidden,
            "the sign-in form's CSRF token is missing or does not match its cookie: open the sign-in page again",
        ));
    }
    let next = safe_next(Some(&form.next));
    let token = form.token.trim();
    if !staff_token::is_well_formed(token) {
        return Ok(sign_in_form(
            &state,
            &headers,
            lang,
            None,
            Some(L::BadToken),
            &next,
        ));
    }
    let token_hash = staff_token::staff_token_hash(token);
    let user = state
        .store
        .staff_by_token_hash(&token_hash)
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(sign_in_form(
            &state,
            &headers,
            lang,
            None,
            Some(L::BadToken),
            &next,
        ));
    };
    open(&state, &headers, &user, &token_hash, "sign-in", &next).await
}

/// Opens a session and answers with its cookie and a 303 to `next`.
async fn open(
    state: &AppState,
    headers: &HeaderMap,
    user: &StaffUser,
    token_hash: &[u8],
    how: &str,
    next: &str,
) -> Result<Response, ConsoleError> {
    let lang = Lang::from_headers(headers);
    let value = random_token();
    let now = Utc::now();
    let store = |e| ConsoleError::store(lang, e);
    state
        .store
        .open_session(&hash(&value), &user.id, token_hash, &random_token(), now)
        .await
        .map_err(store)?;
    state
        .store
        .audit_staff(&AuditEntry {
            at: now,
            actor: user.id.clone(),
            action: how.to_string(),
            subject_kind: "staff".into(),
            subject: user.id.clone(),
            detail: None,
        })
        .await
        .map_err(store)?;
    tracing::info!(staff = %user.id, how, "console session opened");
    let mut resp = layout::see_other(next);
    let h = resp.headers_mut();
    let secure = secure(state, headers);
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &value, None, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", Some(0), secure),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: Staff,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    staff.check_csrf(&form.csrf)?;
    let now = Utc::now();
    let store = |e| ConsoleError::store(staff.lang, e);
    state
        .store
        .end_session(&staff.session_hash, "signed out", now)
        .await
        .map_err(store)?;
    state
        .store
        .audit_staff(&AuditEntry {
            at: now,
            actor: staff.user.id.clone(),
            action: "sign-out".into(),
            subject_kind: "staff".into(),
            subject: staff.user.id.clone(),
            detail: None,
        })
        .await
        .map_err(store)?;
    let mut resp = layout::see_other("/console/sign-in?m=out");
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), secure(&state, &headers)),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    code: String,
}

/// `GET /console/sign-in/link?code=…` shows a button; the POST uses the
/// link. (A GET that signs in would be used up by link previews, and a
/// cookie set on a navigation from another site is not sent back under
/// `SameSite=Strict` until the next same-site request.)
pub async fn link_page(headers: HeaderMap, Query(q): Query<LinkQuery>) -> Response {
    let lang = Lang::from_headers(&headers);
    let body = html! {
        main class="signin" {
            h1 { (lang.t(L::Console)) }
            form method="post" action="/console/sign-in/link" {
                input type="hidden" name="code" value=(q.code);
                button type="submit" id="sign-in" { (lang.t(L::SignIn)) }
            }
        }
    };
    layout::bare(lang, lang.t(L::SignIn), body).into_response()
}

pub async fn use_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(q): Form<LinkQuery>,
) -> Result<Response, ConsoleError> {
    let lang = Lang::from_headers(&headers);
    let used = state
        .store
        .use_sign_in_link(&hash(q.code.trim()), Utc::now())
        .await
        .map_err(|e| ConsoleError::store(lang, e))?;
    match used {
        Some((user, token_hash)) => {
            open(
                &state,
                &headers,
                &user,
                &token_hash,
                "sign-in-link",
                "/console/",
            )
            .await
        }
        None => Err(ConsoleError::new(
            lang,
            StatusCode::UNAUTHORIZED,
            L::LinkUsed,
            "ask for a new link (billclear staff sign-in-link)",
        )),
    }
}

/// Makes a one-time sign-in link's code for an enabled staff user.
pub async fn make_link(
    store: &dyn crate::store::Store,
    staff_id: &str,
    ttl: std::time::Duration,
) -> crate::store::StoreResult<String> {
    let code = random_token();
    let now = Utc::now();
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15));
    store
        .add_sign_in_link(&hash(&code), staff_id, expires, now)
        .await?;
    Ok(code)
}

#[derive(Deserialize)]
pub struct LangQuery {
    next: Option<String>,
}

/// The language switch: remembers the choice in a cookie and goes back.
pub async fn switch_lang(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(code): axum::extract::Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    let next = match q.next.as_deref() {
        Some("/console/sign-in") => "/console/sign-in".to_string(),
        other => safe_next(other),
    };
    let mut resp = layout::see_other(&next);
    let cookie = format!(
        "{}={}; Path=/console; SameSite=Strict; Max-Age=31536000{}",
        super::i18n::LANG_COOKIE,
        lang.code(),
        if secure(&state, &headers) {
            "; Secure"
        } else {
            ""
        }
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/console/breaks?x=1")),
            "/console/breaks?x=1"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/console/");
        assert_eq!(safe_next(Some("//evil.example/console/")), "/console/");
        assert_eq!(safe_next(Some("/console//evil")), "/console/");
        assert_eq!(safe_next(Some("/console/sign-out")), "/console/");
        assert_eq!(safe_next(None), "/console/");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; bc_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("bc_lang=zh"));
        assert_eq!(cookie(&h, "bc_session").as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "bc_lang").as_deref(), Some("zh"));
        assert_eq!(cookie(&h, "nope"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", "abc"));
    }
}
