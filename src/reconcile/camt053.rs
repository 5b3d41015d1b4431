//! The bank statement of our settlement account, ISO 20022 `camt.053`
//! (versions 001.02 and 001.08), read into entries for reconciliation.
//!
//! A file is taken whole or not at all: anything malformed or missing
//! (not XML, truncated, another message, an amount that is not an exact
//! decimal at the currency's scale, an entry without its amount or its
//! credit/debit indicator) refuses the file with the element's path and
//! the reason. Only what reconciliation needs is read; the schemas in
//! `schemas/iso20022/` describe the rest.

use chrono::NaiveDate;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use rust_decimal::Decimal;

use crate::domain::money::{Currency, Money};

/// The camt.053 versions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V02,
    V08,
}

impl Version {
    pub fn namespace(&self) -> &'static str {
        match self {
            Version::V02 => "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02",
            Version::V08 => "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
        }
    }
}

/// One statement of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub id: String,
    pub account: String,
    pub currency: Currency,
    pub entries: Vec<Entry>,
}

/// One entry (booked, pending or informational, as the bank says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the file (1-based, across statements).
    pub line: usize,
    pub amount: Money,
    /// Money into our account (CRDT) or out of it (DBIT).
    pub credit: bool,
    /// BOOK, PDNG, INFO, ...
    pub status: String,
    pub booking_date: Option<NaiveDate>,
    pub bank_reference: Option<String>,
    /// The EndToEndId of our instruction (a pain.001 we sent).
    pub end_to_end_id: Option<String>,
    pub remittance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("camt.053 refused at {path}: {reason}")]
pub struct Camt053Error {
    /// Element path, e.g. `Document/BkToCstmrStmt/Stmt[1]/Ntry[3]/Amt`.
    pub path: String,
    pub reason: String,
}

/// What has been read of the entry being parsed.
#[derive(Default)]
struct EntryDraft {
    amount: Option<(String, String)>,
    credit: Option<String>,
    status: Option<String>,
    booking_date: Option<String>,
    bank_reference: Option<String>,
    end_to_end_id: Option<String>,
    remittance: Option<String>,
}

#[derive(Default)]
struct StatementDraft {
    id: Option<String>,
    account: Option<String>,
    currency: Option<String>,
    entries: Vec<Entry>,
}

/// Reads a whole camt.053 document.
pub fn parse(xml: &[u8]) -> Result<(Version, Vec<Statement>), Camt053Error> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    // Indexed path for errors: Stmt[n], Ntry[n].
    let mut shown: Vec<String> = Vec::new();
    let mut version = None;
    let mut statements: Vec<Statement> = Vec::new();
    let mut stmt: Option<StatementDraft> = None;
    let mut entry: Option<EntryDraft> = None;
    let (mut n_stmt, mut n_entry, mut line) = (0usize, 0usize, 0usize);
    let mut amount_ccy: Option<String> = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    let err = |shown: &[String], reason: String| Camt053Error {
        path: if shown.is_empty() {
            "(document)".into()
        } else {
            shown.join("/")
        },
        reason,
    };
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| err(&shown, format!("not well-formed XML: {e}")))?;
        match ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    if name != "Document" {
                        return Err(err(&[name], "the root element must be Document".into()));
                    }
                    let ns = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == "xmlns")
                        .and_then(|a| {
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                        .unwrap_or_default();
                    version = Some(match ns.as_str() {
                        n if n == Version::V02.namespace() => Version::V02,
                        n if n == Version::V08.namespace() => Version::V08,
                        other => {
                            return Err(err(
                                &["Document".into()],
                                format!(
                                    "namespace {other:?} is not camt.053.001.02 or camt.053.001.08"
                                ),
                            ))
                        }
                    });
                }
                let mut label = name.clone();
                match (path.last().map(String::as_str), name.as_str()) {
                    (Some("BkToCstmrStmt"), "Stmt") => {
                        n_stmt += 1;
                        label = format!("Stmt[{n_stmt}]");
                        stmt = Some(StatementDraft::default());
                        n_entry = 0;
                    }
                    (Some("Stmt"), "Ntry") => {
                        n_entry += 1;
                        line += 1;
                        label = format!("Ntry[{n_entry}]");
                        entry = Some(EntryDraft::default());
                    }
                    (Some("Ntry"), "Amt") => {
                        amount_ccy = e
                            .attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == "Ccy")
                            .and_then(|a| {
                                a.normalized_value(XmlVersion::Implicit1_0)
                                    .ok()
                                    .map(|v| v.into_owned())
                            });
                    }
                    _ => {}
                }
                path.push(name);
                shown.push(label);
                text.clear();
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                if path.is_empty() {
                    return Err(err(&[name], "empty document".into()));
                }
                if path.last().map(String::as_str) == Some("Stmt") && name == "Ntry" {
                    n_entry += 1;
                    let mut at = shown.clone();
                    at.push(format!("Ntry[{n_entry}]"));
                    return Err(err(&at, "an entry without Amt and CdtDbtInd".into()));
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                Ok(None) => match resolve_predefined_entity(&r) {
                    Some(v) => text.push_str(v),
                    None => return Err(err(&shown, format!("unknown entity &{};", &*r))),
                },
                Err(e) => return Err(err(&shown, format!("bad character reference: {e}"))),
            },
            Event::End(_) => {
                let value = std::mem::take(&mut text).trim().to_string();
                if !value.is_empty() {
                    take_text(&path, value, &mut stmt, &mut entry, &amount_ccy);
                }
                let name = path.pop().unwrap_or_default();
                match name.as_str() {
                    "Ntry" => {
                        let d = entry.take().unwrap_or_default();
                        let st = stmt.as_mut().expect("an entry is inside a statement");
                        let e = finish_entry(d, line, st.currency.as_deref()).map_err(
                            |(field, reason)| {
                                let mut at = shown.clone();
                                at.push(field.to_string());
                                err(&at, reason)
                            },
                        )?;
                        st.entries.push(e);
                    }
                    "Stmt" => {
                        let d = stmt.take().unwrap_or_default();
                        let missing =
                            |what: &str| err(&shown, format!("the statement has no {what}"));
                        let currency = d.currency.ok_or_else(|| missing("Acct/Ccy"))?;
                        statements.push(Statement {
                            id: d.id.ok_or_else(|| missing("Id"))?,
                            account: d.account.ok_or_else(|| missing("Acct/Id"))?,
                            currency: Currency::from_code(&currency)
                                .map_err(|e| err(&shown, format!("Acct/Ccy {currency:?}: {e}")))?,
                            entries: d.entries,
                        });
                    }
                    _ => {}
                }
                shown.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(err(
            &shown,
            "the file ends before this element is closed (truncated)".into(),
        ));
    }
    let version = version.ok_or_else(|| err(&[], "no Document element".into()))?;
    if statements.is_empty() {
        return Err(err(
            &["Document".into(), "BkToCstmrStmt".into()],
            "no Stmt".into(),
        ));
    }
    Ok((version, statements))
}

/// Files the text of the element closing at the end of `path`.
fn take_text(
    path: &[String],
    text: String,
    stmt: &mut Option<StatementDraft>,
    entry: &mut Option<EntryDraft>,
    amount_ccy: &Option<String>,
) {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let tail = &p[p.len().saturating_sub(2)..];
    if let Some(en) = entry.as_mut() {
        match tail {
            ["Ntry", "Amt"] => en.amount = Some((text, amount_ccy.clone().unwrap_or_default())),
            ["Ntry", "CdtDbtInd"] => en.credit = Some(text),
            ["Ntry", "Sts"] | ["Sts", "Cd"] => en.status = Some(text),
            ["BookgDt", "Dt"] | ["BookgDt", "DtTm"] => en.booking_date = Some(text),
            ["Ntry", "AcctSvcrRef"] => en.bank_reference = Some(text),
            ["Refs", "EndToEndId"] => en.end_to_end_id = Some(text),
            ["RmtInf", "Ustrd"] => en.remittance = Some(text),
            _ => {}
        }
    } else if let Some(st) = stmt.as_mut() {
        match tail {
            ["Stmt", "Id"] => st.id = Some(text),
            ["Othr", "Id"] | ["Id", "IBAN"] if p.contains(&"Acct") => st.account = Some(text),
            ["Acct", "Ccy"] => st.currency = Some(text),
            _ => {}
        }
    }
}

fn finish_entry(
    d: EntryDraft,
    line: usize,
    account_currency: Option<&str>,
) -> Result<Entry, (&'static str, String)> {
    let (text, ccy) = d.amount.ok_or(("Amt", "missing".to_string()))?;
    let currency = Currency::from_code(&ccy).map_err(|e| ("Amt", format!("Ccy {ccy:?}: {e}")))?;
    if account_currency.is_some_and(|a| a != ccy) {
        return Err((
            "Amt",
            format!(
                "in {ccy}, the account is in {}",
                account_currency.unwrap_or("")
            ),
        ));
    }
    let amount = Money::parse(&text, currency).map_err(|e| ("Amt", format!("{text:?}: {e}")))?;
    let credit = match d.credit.as_deref() {
        Some("CRDT") => true,
        Some("DBIT") => false,
        Some(other) => return Err(("CdtDbtInd", format!("{other:?} is not CRDT or DBIT"))),
        None => return Err(("CdtDbtInd", "missing".into())),
    };
    let booking_date = d
        .booking_date
        .map(|t| {
            NaiveDate::parse_from_str(&t[..t.len().min(10)], "%Y-%m-%d")
                .map_err(|_| ("BookgDt", format!("{t:?} is not a date")))
        })
        .transpose()?;
    Ok(Entry {
        line,
        amount,
        credit,
        status: d.status.ok_or(("Sts", "missing".to_string()))?,
        booking_date,
        bank_reference: d.bank_reference,
        end_to_end_id: d.end_to_end_id,
        remittance: d.remittance,
    })
}

/// The signed amount of an entry: positive into our account.
pub fn signed(e: &Entry) -> Decimal {
    if e.credit {
        e.amount.amount()
    } else {
        -e.amount.amount()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(v: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/camt053/statement_{v}.xml"));
        std::fs::read(p).unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// The fixtures are valid against the ISO 20022 schemas (xmllint).
    #[test]
    fn fixtures_are_schema_valid() {
        for v in ["02", "08"] {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out = std::process::Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(root.join(format!("schemas/iso20022/camt.053.001.{v}.xsd")))
                .arg(root.join(format!("tests/fixtures/camt053/statement_v{v}.xml")))
                .output()
                .expect("xmllint runs (install libxml2-utils: ops/ensure-xmllint.sh)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn both_versions_read_the_same_entries() {
        let (v2, s2) = parse(&fixture("v02")).unwrap();
        let (v8, s8) = parse(&fixture("v08")).unwrap();
        assert_eq!((v2, v8), (Version::V02, Version::V08));
        assert_eq!(s2, s8);
        let s = &s2[0];
        assert_eq!(s.account, "31050161373600000001");
        assert_eq!(s.currency, Currency::CNY);
        assert_eq!(s.entries.len(), 3);
        let e = &s.entries[0];
        assert_eq!(signed(e), d("-17165.04"));
        assert_eq!(e.status, "BOOK");
        assert_eq!(e.booking_date, NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(e.bank_reference.as_deref(), Some("BANKREF0001"));
        assert_eq!(
            e.end_to_end_id.as_deref(),
            Some("BCE01a227b7d62077af9deb9cd539c11085")
        );
        // A date-time booking date, a credit, no end-to-end id.
        let f = &s.entries[1];
        assert_eq!(signed(f), d("14699.95"));
        assert_eq!(f.booking_date, NaiveDate::from_ymd_opt(2026, 11, 30));
        assert_eq!(f.end_to_end_id, None);
        assert_eq!(s.entries[2].status, "PDNG");
        assert_eq!(s.entries[2].line, 3);
    }

    #[test]
    fn malformed_files_are_refused_whole_with_the_place_and_the_reason() {
        let good = String::from_utf8(fixture("v08")).unwrap();
        let cut = &good[..good.len() / 2];
        let e = parse(cut.as_bytes()).unwrap_err();
        assert!(
            e.reason.contains("truncated") || e.reason.contains("well-formed"),
            "{e}"
        );
        let cases = [
            (
                good.replace(">17165.04<", ">17165.045<"),
                "Ntry[1]/Amt",
                "decimal",
            ),
            (good.replace(">17165.04<", ">1.7e4<"), "Ntry[1]/Amt", ""),
            (
                good.replacen("<CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts>", "<Sts>", 1),
                "Ntry[1]/CdtDbtInd",
                "missing",
            ),
            (
                good.replace(
                    "<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>",
                    "<CdtDbtInd>CREDIT</CdtDbtInd>\n        <Sts>",
                ),
                "Ntry[2]/CdtDbtInd",
                "CREDIT",
            ),
            (
                good.replace("<Amt Ccy=\"CNY\">14699.95", "<Amt Ccy=\"USD\">14699.95"),
                "Ntry[2]/Amt",
                "USD",
            ),
            (
                good.replace("camt.053.001.08", "camt.054.001.08"),
                "Document",
                "namespace",
            ),
            (good.replace("<Ccy>CNY</Ccy>", ""), "Stmt[1]", "Acct/Ccy"),
        ];
        for (text, at, why) in cases {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.path.ends_with(at), "{at}: {e}");
            assert!(e.reason.contains(why), "{why}: {e}");
        }
        assert!(parse(b"not xml at all").is_err());
        assert!(parse(b"").is_err());
    }
}
