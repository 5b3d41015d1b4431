//! The console's page chrome and the ways it shows values: amounts with
//! their currency at its scale, times in the business time zone, ages.
//! Every value goes through maud, which escapes it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};
use rust_decimal::Decimal;

use super::i18n::{Lang, L};
use super::session::Staff;
use crate::domain::staff::StaffRole;

/// The navigation entries: (path, label, role needed).
const NAV: &[(&str, L, StaffRole)] = &[
    ("/console/", L::Home, StaffRole::Viewer),
    ("/console/breaks", L::Breaks, StaffRole::Viewer),
    ("/console/complaints", L::Complaints, StaffRole::Viewer),
    ("/console/payments", L::Payments, StaffRole::Viewer),
    ("/console/files", L::Files, StaffRole::Viewer),
    ("/console/settlement", L::Settlement, StaffRole::Viewer),
    ("/console/routes", L::Routes, StaffRole::Viewer),
];

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (lang.t(L::Console)) }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// A page without navigation (sign-in).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.html()) {
                (head(lang, title))
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// A signed-in page: navigation, the language switch, who is signed in
/// and the sign-out form, then `body`. `here` is the page's own path (the
/// language switch comes back to it).
pub fn page(staff: &Staff, here: &str, title: &str, body: Markup) -> Html<String> {
    let lang = staff.lang;
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.html()) {
                (head(lang, title))
                body {
                    header class="top" {
                        a class="brand" href="/console/" { (lang.t(L::Console)) }
                        nav {
                            @for (path, label, role) in NAV {
                                @if staff.can(*role) {
                                    @let active = if *path == "/console/" { here == "/console/" } else { here.starts_with(path) };
                                    a href=(path) class=[active.then_some("active")] { (lang.t(*label)) }
                                }
                            }
                        }
                        div class="who" {
                            a id="lang-switch" href=(format!("/console/lang/{}?next={}", lang.other().code(), urlencode(here))) { (lang.t(L::Language)) }
                            span { (lang.t(L::SignedInAs)) " " strong id="whoami" { (staff.user.id) } " (" (super::i18n::role(lang, staff.user.role)) ")" }
                            form method="post" action="/console/sign-out" class="inline" {
                                input type="hidden" name="csrf" value=(staff.csrf);
                                button type="submit" id="sign-out" { (lang.t(L::SignOut)) }
                            }
                        }
                    }
                    main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A value as one path segment: only what a segment cannot hold as it is
/// is escaped (ids like `sh-water` and file names stay readable).
pub fn segment(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// 303 See Other to `to` (after a form, and to sign in).
pub fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// An amount in minor units of `currency`, at its scale, with its code.
pub fn minor(amount: i64, currency: &str) -> String {
    format!(
        "{} {}",
        crate::domain::recon::matching::minor_in(amount, currency),
        currency.trim()
    )
}

/// An amount at its currency's scale, with its code (never rounded: a
/// value with more places than the currency has is shown as it is).
pub fn money(amount: Decimal, currency: &str) -> String {
    format!(
        "{} {}",
        crate::domain::money::at_currency_scale(amount, currency),
        currency.trim()
    )
}

/// A time in the business zone, to the second.
pub fn time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// How long ago, coarse: "3 d 4 h", "5 h 12 min", "40 s".
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>, lang: Lang) -> String {
    let s = (now - since).num_seconds().max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    match lang {
        Lang::En if d > 0 => format!("{d} d {h} h"),
        Lang::En if h > 0 => format!("{h} h {m} min"),
        Lang::En if m > 0 => format!("{m} min"),
        Lang::En => format!("{s} s"),
        Lang::Zh if d > 0 => format!("{d}天{h}小时"),
        Lang::Zh if h > 0 => format!("{h}小时{m}分"),
        Lang::Zh if m > 0 => format!("{m}分钟"),
        Lang::Zh => format!("{s}秒"),
    }
}

/// A JSON value shown as indented text (escaped by maud).
pub fn json(v: &serde_json::Value) -> Markup {
    html! { pre class="json" { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// A flash message carried in the query string after a form (`?done=1`).
pub fn flash(lang: Lang, done: bool) -> Markup {
    html! { @if done { p class="notice" role="status" { (lang.t(L::Done)) } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_at_the_currency_scale() {
        assert_eq!(minor(8850, "CNY"), "88.50 CNY");
        assert_eq!(minor(-5, "CNY"), "-0.05 CNY");
        assert_eq!(minor(1200, "JPY"), "1200 JPY");
        assert_eq!(money(Decimal::new(885, 1), "CNY"), "88.50 CNY");
        assert_eq!(money(Decimal::new(88500, 3), "CNY"), "88.50 CNY");
        assert_eq!(money(Decimal::new(88505, 3), "CNY"), "88.505 CNY");
    }

    #[test]
    fn ages_are_coarse() {
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(10);
        let since = now - chrono::Duration::seconds(3 * 86_400 + 4 * 3600 + 7);
        assert_eq!(age(since, now, Lang::En), "3 d 4 h");
        assert_eq!(age(since, now, Lang::Zh), "3天4小时");
        assert_eq!(
            age(now - chrono::Duration::seconds(40), now, Lang::En),
            "40 s"
        );
    }

    #[test]
    fn markup_escapes_data() {
        let evil = "<script>alert(1)</script>";
        let m = html! { p { (evil) } }.into_string();
        assert!(!m.contains("<script>"), "{m}");
        assert!(m.contains("&lt;script&gt;"), "{m}");
    }
}
