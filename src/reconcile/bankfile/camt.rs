//! ISO 20022 bank-to-customer messages: camt.053 statements (`Stmt`) and
//! camt.054 debit/credit notifications (`Ntfctn`), versions 001.02 to
//! 001.08, through ONE mapping: elements are read by their local name and
//! their place under the statement, so what differs between versions
//! (`Sts` as a code or as `Sts/Cd`, `StmtPgntn`, new optional elements,
//! namespace prefixes) does not matter, and optional elements absent never
//! do. Only what reconciliation needs is read; the rest is skipped.
//!
//! A file is taken whole or not at all: not XML, truncated, another
//! message or version, an amount that is not exact at its currency's
//! scale, an entry without its amount, direction or status, a statement
//! without its id or account: refused with the element's path.

use chrono::NaiveDate;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::domain::money::Currency;
use crate::domain::recon::statement::{
    parse_minor, Balance, BankEntry, BankFormat, BankMessage, BankStatement, MessageKind,
};
use crate::domain::recon::FileRefusal;

/// The versions read (both message families).
pub const VERSIONS: std::ops::RangeInclusive<u8> = 2..=8;

/// The family and version a namespace names, e.g.
/// `urn:iso:std:iso:20022:tech:xsd:camt.053.001.08`.
fn family(ns: &str) -> Option<BankFormat> {
    let rest = ns.strip_prefix("urn:iso:std:iso:20022:tech:xsd:camt.")?;
    let (msg, version) = rest.split_once(".001.")?;
    let v: u8 = version.parse().ok().filter(|v| VERSIONS.contains(v))?;
    if version.len() != 2 {
        return None;
    }
    match msg {
        "053" => Some(BankFormat::Camt053(v)),
        "054" => Some(BankFormat::Camt054(v)),
        _ => None,
    }
}

#[derive(Default)]
struct EntryDraft {
    amount: Option<(String, String)>,
    credit: Option<String>,
    status: Option<String>,
    booking: Option<String>,
    value: Option<String>,
    servicer_ref: Option<String>,
    entry_ref: Option<String>,
    end_to_end: Option<String>,
    remittance: Vec<String>,
    additional: Option<String>,
}

#[derive(Default)]
struct BalanceDraft {
    code: Option<String>,
    amount: Option<(String, String)>,
    credit: Option<String>,
    date: Option<String>,
}

#[derive(Default)]
struct StatementDraft {
    id: Option<String>,
    electronic_seq: Option<String>,
    legal_seq: Option<String>,
    created: Option<String>,
    from: Option<String>,
    to: Option<String>,
    account: Option<String>,
    currency: Option<String>,
    balances: Vec<Balance>,
    entries: Vec<BankEntry>,
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// `2026-11-30` or the date part of `2026-11-30T09:15:00+08:00`.
fn date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date"))
}

fn amount(pair: &(String, String)) -> Result<(i64, String), String> {
    let (text, ccy) = pair;
    let c = Currency::from_code(ccy).map_err(|e| format!("Ccy {ccy:?}: {e}"))?;
    Ok((parse_minor(text, c)?, ccy.clone()))
}

fn direction(text: Option<&str>) -> Result<bool, (&'static str, String)> {
    match text {
        Some("CRDT") => Ok(true),
        Some("DBIT") => Ok(false),
        Some(other) => Err(("CdtDbtInd", format!("{other:?} is not CRDT or DBIT"))),
        None => Err(("CdtDbtInd", "missing".into())),
    }
}

/// Reads a whole camt.053 or camt.054 document.
pub fn read(xml: &[u8]) -> Result<BankMessage, FileRefusal> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    let mut format: Option<BankFormat> = None;
    let mut message_id = String::new();
    let mut header_created: Option<String> = None;
    // Index in `path` of the statement (or notification) element.
    let mut container: Option<usize> = None;
    let mut statements: Vec<BankStatement> = Vec::new();
    let mut stmt: Option<StatementDraft> = None;
    let mut entry: Option<EntryDraft> = None;
    let mut bal: Option<BalanceDraft> = None;
    let (mut n_stmt, mut n_entry, mut n_bal) = (0u32, 0u32, 0u32);
    let mut ccy: Option<String> = None;
    let mut text = String::new();
    let mut buf = Vec::new();
    let at = |shown: &[String]| {
        if shown.is_empty() {
            "(document)".to_string()
        } else {
            shown.join("/")
        }
    };
    let err = |shown: &[String], reason: String| FileRefusal::at(at(shown), reason);
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
                        .filter(|a| {
                            let k = a.key.as_ref();
                            k == "xmlns" || k.starts_with("xmlns:")
                        })
                        .filter_map(|a| {
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                        .find(|v| v.contains("camt."))
                        .unwrap_or_default();
                    format = Some(family(&ns).ok_or_else(|| {
                        err(
                            &["Document".into()],
                            format!("namespace {ns:?} is not a bank statement or notification billclear reads (camt.053.001.02 to .08, camt.054.001.02 to .08)"),
                        )
                    })?);
                }
                let mut label = name.clone();
                let parent = path.last().map(String::as_str);
                match (parent, name.as_str()) {
                    (Some("BkToCstmrStmt"), "Stmt") | (Some("BkToCstmrDbtCdtNtfctn"), "Ntfctn") => {
                        n_stmt += 1;
                        label = format!("{name}[{n_stmt}]");
                        stmt = Some(StatementDraft::default());
                        container = Some(path.len());
                        n_entry = 0;
                        n_bal = 0;
                    }
                    (Some("Stmt") | Some("Ntfctn"), "Ntry")
                        if container.map(|c| c + 1) == Some(path.len()) =>
                    {
                        n_entry += 1;
                        label = format!("Ntry[{n_entry}]");
                        entry = Some(EntryDraft::default());
                    }
                    (Some("Stmt"), "Bal") if container.map(|c| c + 1) == Some(path.len()) => {
                        n_bal += 1;
                        label = format!("Bal[{n_bal}]");
                        bal = Some(BalanceDraft::default());
                    }
                    (Some("Ntry") | Some("Bal"), "Amt") => ccy = attr(&e, "Ccy"),
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
                if name == "Ntry" && container.map(|c| c + 1) == Some(path.len()) {
                    let mut here = shown.clone();
                    here.push(format!("Ntry[{}]", n_entry + 1));
                    return Err(err(&here, "an entry without Amt and CdtDbtInd".into()));
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
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    if p.len() >= 3 && p[1].starts_with("BkToCstmr") && p[2] == "GrpHdr" {
                        match &p[3..] {
                            ["MsgId"] => message_id = value,
                            ["CreDtTm"] => header_created = Some(value),
                            _ => {}
                        }
                    } else if let Some(ci) = container.filter(|ci| *ci < p.len()) {
                        let rel = &p[ci + 1..];
                        file_text(rel, value, &mut stmt, &mut entry, &mut bal, &ccy);
                    }
                }
                let name = path.pop().unwrap_or_default();
                let depth = path.len();
                match name.as_str() {
                    "Ntry" if container.map(|c| c + 1) == Some(depth) => {
                        let d = entry.take().unwrap_or_default();
                        let st = stmt.as_mut().expect("an entry is inside a statement");
                        let location = at(&shown);
                        let e = finish_entry(d, n_entry, location).map_err(|(field, reason)| {
                            let mut here = shown.clone();
                            here.push(field.to_string());
                            err(&here, reason)
                        })?;
                        st.entries.push(e);
                    }
                    "Bal" if container.map(|c| c + 1) == Some(depth) => {
                        let d = bal.take().unwrap_or_default();
                        let st = stmt.as_mut().expect("a balance is inside a statement");
                        if let Some(b) = finish_balance(d).map_err(|(field, reason)| {
                            let mut here = shown.clone();
                            here.push(field.to_string());
                            err(&here, reason)
                        })? {
                            st.balances.push(b);
                        }
                    }
                    "Stmt" | "Ntfctn" if container == Some(depth) => {
                        let d = stmt.take().unwrap_or_default();
                        let kind = if name == "Stmt" {
                            MessageKind::Statement
                        } else {
                            MessageKind::Notification
                        };
                        statements.push(
                            finish_statement(d, kind, n_stmt, at(&shown), &header_created)
                                .map_err(|reason| err(&shown, reason))?,
                        );
                        container = None;
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
    let format = format.ok_or_else(|| err(&[], "no Document element".into()))?;
    if statements.is_empty() {
        return Err(err(
            &["Document".into()],
            "no Stmt (camt.053) or Ntfctn (camt.054)".into(),
        ));
    }
    let wrong_family = statements
        .iter()
        .any(|s| (s.kind == MessageKind::Statement) != matches!(format, BankFormat::Camt053(_)));
    if wrong_family {
        return Err(err(
            &["Document".into()],
            format!("a {format} document holds statements of the other message"),
        ));
    }
    Ok(BankMessage {
        format,
        message_id,
        statements,
    })
}

/// Files the text of the element closing at `rel` (its path below the
/// statement).
fn file_text(
    rel: &[&str],
    text: String,
    stmt: &mut Option<StatementDraft>,
    entry: &mut Option<EntryDraft>,
    bal: &mut Option<BalanceDraft>,
    ccy: &Option<String>,
) {
    if let Some(en) = entry.as_mut() {
        match rel {
            ["Ntry", "Amt"] => en.amount = Some((text, ccy.clone().unwrap_or_default())),
            ["Ntry", "CdtDbtInd"] => en.credit = Some(text),
            ["Ntry", "Sts"] | ["Ntry", "Sts", "Cd"] => en.status = Some(text),
            ["Ntry", "BookgDt", "Dt" | "DtTm"] => en.booking = Some(text),
            ["Ntry", "ValDt", "Dt" | "DtTm"] => en.value = Some(text),
            ["Ntry", "AcctSvcrRef"] => en.servicer_ref = Some(text),
            ["Ntry", "NtryRef"] => en.entry_ref = Some(text),
            ["Ntry", "NtryDtls", "TxDtls", "Refs", "EndToEndId"]
                if en.end_to_end.is_none() && text != "NOTPROVIDED" =>
            {
                en.end_to_end = Some(text)
            }
            ["Ntry", "NtryDtls", "TxDtls", "RmtInf", "Ustrd"]
            | ["Ntry", "NtryDtls", "TxDtls", "RmtInf", "Strd", "CdtrRefInf", "Ref"] => {
                en.remittance.push(text)
            }
            ["Ntry", "AddtlNtryInf"] => en.additional = Some(text),
            _ => {}
        }
    } else if let Some(b) = bal.as_mut() {
        match rel {
            ["Bal", "Tp", "CdOrPrtry", "Cd"] => b.code = Some(text),
            ["Bal", "Amt"] => b.amount = Some((text, ccy.clone().unwrap_or_default())),
            ["Bal", "CdtDbtInd"] => b.credit = Some(text),
            ["Bal", "Dt", "Dt" | "DtTm"] => b.date = Some(text),
            _ => {}
        }
    } else if let Some(st) = stmt.as_mut() {
        match rel {
            ["Id"] => st.id = Some(text),
            ["ElctrncSeqNb"] => st.electronic_seq = Some(text),
            ["LglSeqNb"] => st.legal_seq = Some(text),
            ["CreDtTm"] => st.created = Some(text),
            ["FrToDt", "FrDtTm" | "FrDt"] => st.from = Some(text),
            ["FrToDt", "ToDtTm" | "ToDt"] => st.to = Some(text),
            ["Acct", "Id", "IBAN"] | ["Acct", "Id", "Othr", "Id"] => st.account = Some(text),
            ["Acct", "Ccy"] => st.currency = Some(text),
            _ => {}
        }
    }
}

fn finish_balance(d: BalanceDraft) -> Result<Option<Balance>, (&'static str, String)> {
    let Some(code) = d.code else {
        // A proprietary balance type: not one billclear proves.
        return Ok(None);
    };
    if !matches!(code.as_str(), "OPBD" | "PRCD" | "CLBD") {
        return Ok(None);
    }
    let (minor, currency) =
        amount(&d.amount.ok_or(("Amt", "missing".to_string()))?).map_err(|e| ("Amt", e))?;
    let credit = direction(d.credit.as_deref())?;
    let on = date(&d.date.ok_or(("Dt", "missing".to_string()))?).map_err(|e| ("Dt", e))?;
    Ok(Some(Balance {
        code,
        signed_minor: if credit { minor } else { -minor },
        currency,
        date: on,
    }))
}

fn finish_entry(
    d: EntryDraft,
    position: u32,
    location: String,
) -> Result<BankEntry, (&'static str, String)> {
    let (amount_minor, currency) =
        amount(&d.amount.ok_or(("Amt", "missing".to_string()))?).map_err(|e| ("Amt", e))?;
    let credit = direction(d.credit.as_deref())?;
    let status = d.status.ok_or(("Sts", "missing".to_string()))?;
    let booking_date = d
        .booking
        .map(|t| date(&t).map_err(|e| ("BookgDt", e)))
        .transpose()?;
    let value_date = d
        .value
        .map(|t| date(&t).map_err(|e| ("ValDt", e)))
        .transpose()?;
    let remittance = if d.remittance.is_empty() {
        d.additional
    } else {
        Some(d.remittance.join(" "))
    };
    Ok(BankEntry {
        position,
        location,
        amount_minor,
        currency,
        credit,
        status,
        booking_date,
        value_date,
        account_servicer_ref: d.servicer_ref,
        entry_ref: d.entry_ref,
        end_to_end_id: d.end_to_end,
        remittance,
    })
}

fn finish_statement(
    d: StatementDraft,
    kind: MessageKind,
    index: u32,
    location: String,
    header_created: &Option<String>,
) -> Result<BankStatement, String> {
    let id = d.id.ok_or("the statement has no Id")?;
    let account = d
        .account
        .ok_or("the statement has no Acct/Id (IBAN or Othr/Id)")?;
    let when = |t: Option<String>, what: &str| {
        t.map(|t| date(&t).map_err(|e| format!("{what}: {e}")))
            .transpose()
    };
    let pick = |codes: &[&str]| {
        codes
            .iter()
            .find_map(|c| d.balances.iter().find(|b| b.code == *c))
            .cloned()
    };
    Ok(BankStatement {
        kind,
        index,
        location,
        id,
        electronic_seq: d.electronic_seq,
        legal_seq: d.legal_seq,
        page: None,
        account,
        account_currency: d.currency,
        opening: pick(&["OPBD", "PRCD"]),
        closing: pick(&["CLBD"]),
        from_date: when(d.from, "FrToDt")?,
        to_date: when(d.to, "FrToDt")?,
        created: when(d.created.or_else(|| header_created.clone()), "CreDtTm")?,
        entries: d.entries,
    })
}
