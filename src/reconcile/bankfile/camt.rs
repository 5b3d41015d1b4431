//! ISO 20022 bank-to-customer cash management messages: camt.053 account
//! statements (`BkToCstmrStmt/Stmt`) and camt.054 debit/credit
//! notifications (`BkToCstmrDbtCdtNtfctn/Ntfctn`), versions 001.02 to
//! 001.08 of both, through ONE mapping.
//!
//! Elements are read by their local name (any namespace prefix) and by their
//! parent chain below the statement, so `Ntry/Amt` is the entry's amount and
//! `Ntry/AmtDtls/InstdAmt/Amt` or `Ntry/NtryDtls/TxDtls/Amt` never are. What
//! changed between the versions does not matter to that mapping: `Sts` as a
//! code (`<Sts>BOOK</Sts>`, up to .06) or as a choice (`<Sts><Cd>BOOK</Cd>`,
//! .07 on), `StmtPgntn`, `RptgSeq`, elements made optional or added. Only
//! what billclear needs is read; everything else, present or absent, is
//! skipped. Optional elements never refuse a file by being absent.
//!
//! A file is read whole or refused whole, with the element's path
//! (`Document/BkToCstmrStmt/Stmt[2]/Ntry[3]/Amt`) and the reason: not XML,
//! truncated, another root or another message or version, an amount that is
//! not exact at its currency's scale or in an unknown currency, an entry
//! without its amount, direction or status, a date that is not one, a
//! statement without its id or account. Whether the statement is of one of
//! our accounts, in one currency, with balances that add up, is for the
//! domain to say (`BankStatement::check_ours`, `prove_balances`).

use chrono::NaiveDate;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::PrefixDeclaration;
use quick_xml::{Reader, XmlVersion};

use crate::domain::money::Currency;
use crate::domain::recon::statement::{
    parse_minor, Balance, BankEntry, BankFormat, BankMessage, BankStatement, MessageKind,
};
use crate::domain::recon::FileRefusal;

/// The versions read, of both messages (`camt.053.001.02` to `.08`).
pub const VERSIONS: std::ops::RangeInclusive<u8> = 2..=8;

const NAMESPACE_PREFIX: &str = "urn:iso:std:iso:20022:tech:xsd:";

/// What billclear reads, for refusals.
const READ: &str = "camt.053.001.02 to camt.053.001.08 (statements) and \
                    camt.054.001.02 to camt.054.001.08 (notifications)";

/// The message and version a namespace names:
/// `urn:iso:std:iso:20022:tech:xsd:camt.053.001.08` is camt.053 version 8.
pub fn format_of(namespace: &str) -> Option<BankFormat> {
    let rest = namespace.trim().strip_prefix(NAMESPACE_PREFIX)?;
    let (message, version) = rest.strip_prefix("camt.")?.split_once(".001.")?;
    if version.len() != 2 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u8 = version.parse().ok().filter(|v| VERSIONS.contains(v))?;
    match message {
        "053" => Some(BankFormat::Camt053(v)),
        "054" => Some(BankFormat::Camt054(v)),
        _ => None,
    }
}

/// The message element under `Document` and the statement element under
/// it, per message.
fn layout(format: BankFormat) -> (&'static str, &'static str, MessageKind) {
    match format {
        BankFormat::Camt054(_) => ("BkToCstmrDbtCdtNtfctn", "Ntfctn", MessageKind::Notification),
        _ => ("BkToCstmrStmt", "Stmt", MessageKind::Statement),
    }
}

/// A value as read, with the path of the element it came from.
#[derive(Debug, Clone, Default)]
struct Read {
    text: String,
    at: String,
}

/// An amount as read: its text, its `Ccy` attribute, its element.
#[derive(Debug, Clone, Default)]
struct ReadAmount {
    text: String,
    currency: Option<String>,
    at: String,
}

#[derive(Default)]
struct EntryDraft {
    amount: Option<ReadAmount>,
    credit: Option<Read>,
    status: Option<Read>,
    booking: Option<Read>,
    value: Option<Read>,
    servicer_ref: Option<String>,
    entry_ref: Option<String>,
    end_to_end: Option<String>,
    remittance: Vec<String>,
    additional: Option<String>,
}

#[derive(Default)]
struct BalanceDraft {
    code: Option<String>,
    amount: Option<ReadAmount>,
    credit: Option<Read>,
    date: Option<Read>,
}

#[derive(Default)]
struct StatementDraft {
    id: Option<String>,
    electronic_seq: Option<String>,
    legal_seq: Option<String>,
    created: Option<Read>,
    from: Option<Read>,
    to: Option<Read>,
    account: Option<String>,
    currency: Option<String>,
    opening: Option<Balance>,
    previous_closing: Option<Balance>,
    closing: Option<Balance>,
    entries: Vec<BankEntry>,
}

/// The reader's state while it walks the document.
struct Walk {
    /// Local names of the open elements, from `Document`.
    names: Vec<String>,
    /// The same with the counted ones indexed (`Stmt[2]`, `Ntry[3]`), for
    /// locations.
    shown: Vec<String>,
    /// Whether the root element has been closed.
    root_closed: bool,
    format: Option<BankFormat>,
    message_id: Option<String>,
    header_created: Option<Read>,
    statements: Vec<BankStatement>,
    stmt: Option<StatementDraft>,
    entry: Option<EntryDraft>,
    bal: Option<BalanceDraft>,
    n_entry: u32,
    n_bal: u32,
    /// The `Ccy` attribute of the last `Amt` opened (an `Amt` has no
    /// children, so it is the one that closes next).
    amount_currency: Option<String>,
    /// The text of the element being read.
    text: String,
}

/// The depth of a statement (`Document/BkToCstmr…/Stmt`) in `names`.
const STATEMENT_DEPTH: usize = 2;

impl Walk {
    /// Where the reader is: the open elements' path, or `file` outside
    /// the root element.
    fn at(&self) -> String {
        if self.shown.is_empty() {
            "file".to_string()
        } else {
            self.shown.join("/")
        }
    }

    /// The message and version the root element named. Elements below the
    /// root are read only after it, so this is a refusal only if that
    /// order is broken.
    fn format(&self) -> Result<BankFormat, FileRefusal> {
        self.format.ok_or_else(|| {
            self.refuse(format!(
                "an element outside the Document root: not an ISO 20022 bank statement or \
                 notification ({READ} are read)"
            ))
        })
    }

    fn refuse(&self, reason: impl Into<String>) -> FileRefusal {
        FileRefusal::at(self.at(), reason)
    }

    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), FileRefusal> {
        let name = e.local_name().into_inner().to_string();
        if name.is_empty() {
            return Err(self.refuse(format!(
                "an element without a name (<{}>): not well-formed XML",
                e.name().as_ref()
            )));
        }
        let depth = self.names.len();
        let mut label = name.clone();
        match depth {
            0 => {
                if self.root_closed {
                    return Err(FileRefusal::at(
                        name,
                        "a second root element after Document: not an XML document",
                    ));
                }
                if name != "Document" {
                    return Err(FileRefusal::at(
                        name.clone(),
                        format!(
                            "the root element is {name}, not Document: not an ISO 20022 \
                             bank statement or notification ({READ} are read)"
                        ),
                    ));
                }
                let namespace = namespace_of(e);
                let format = format_of(&namespace).ok_or_else(|| {
                    FileRefusal::at(
                        "Document",
                        match namespace.as_str() {
                            "" => format!("Document has no namespace: billclear reads {READ}"),
                            ns => format!(
                                "namespace {ns:?} is not one billclear reads: it reads {READ}"
                            ),
                        },
                    )
                })?;
                self.format = Some(format);
            }
            1 => {
                let format = self.format()?;
                let (message, _, _) = layout(format);
                if name != message {
                    return Err(FileRefusal::at(
                        format!("Document/{name}"),
                        format!("a {format} Document holds {message}, not {name}"),
                    ));
                }
            }
            2 => {
                let (_, statement, _) = layout(self.format()?);
                if name == statement {
                    let n = self.statements.len() + 1;
                    label = format!("{name}[{n}]");
                    self.stmt = Some(StatementDraft::default());
                    self.n_entry = 0;
                    self.n_bal = 0;
                }
            }
            _ if depth == STATEMENT_DEPTH + 1 && self.stmt.is_some() => match name.as_str() {
                "Ntry" => {
                    self.n_entry += 1;
                    label = format!("Ntry[{}]", self.n_entry);
                    self.entry = Some(EntryDraft::default());
                }
                "Bal" => {
                    self.n_bal += 1;
                    label = format!("Bal[{}]", self.n_bal);
                    self.bal = Some(BalanceDraft::default());
                }
                _ => {}
            },
            _ => {}
        }
        if name == "Amt" {
            self.amount_currency = attribute(e, "Ccy");
        }
        self.names.push(name);
        self.shown.push(label);
        self.text.clear();
        Ok(())
    }

    fn close(&mut self) -> Result<(), FileRefusal> {
        let Some(name) = self.names.last().cloned() else {
            return Err(FileRefusal::at(
                "file",
                "an end tag without its start tag: not well-formed XML",
            ));
        };
        let value = std::mem::take(&mut self.text).trim().to_string();
        if !value.is_empty() {
            self.file(value);
        }
        let depth = self.names.len() - 1;
        if depth == STATEMENT_DEPTH + 1 && self.stmt.is_some() {
            match name.as_str() {
                "Ntry" => {
                    let draft = self.entry.take().unwrap_or_default();
                    let entry = finish_entry(draft, self.n_entry, self.at())?;
                    if let Some(stmt) = self.stmt.as_mut() {
                        stmt.entries.push(entry);
                    }
                }
                "Bal" => {
                    let draft = self.bal.take().unwrap_or_default();
                    let at = self.at();
                    let balance = finish_balance(draft, &at)?;
                    if let (Some(b), Some(stmt)) = (balance, self.stmt.as_mut()) {
                        let slot = match b.code.as_str() {
                            "OPBD" => &mut stmt.opening,
                            "PRCD" => &mut stmt.previous_closing,
                            _ => &mut stmt.closing,
                        };
                        // The first of each type counts, as stated.
                        slot.get_or_insert(b);
                    }
                }
                _ => {}
            }
        } else if depth == STATEMENT_DEPTH {
            if let Some(draft) = self.stmt.take() {
                let (_, _, kind) = layout(self.format()?);
                let index = self.statements.len() as u32 + 1;
                let statement =
                    finish_statement(draft, kind, index, self.at(), &self.header_created)?;
                self.statements.push(statement);
            }
        }
        self.names.pop();
        self.shown.pop();
        if self.names.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }

    /// Files the text of the element now closing, by its place.
    fn file(&mut self, text: String) {
        let at = self.at();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if names.len() == 4 && names[2] == "GrpHdr" {
            match names[3] {
                "MsgId" => self.message_id = Some(text),
                "CreDtTm" => self.header_created = Some(Read { text, at }),
                _ => {}
            }
            return;
        }
        if self.stmt.is_none() || names.len() <= STATEMENT_DEPTH + 1 {
            return;
        }
        let below = &names[STATEMENT_DEPTH + 1..];
        let read = Read {
            text: text.clone(),
            at: at.clone(),
        };
        let amount = ReadAmount {
            text: text.clone(),
            currency: self.amount_currency.clone(),
            at,
        };
        if let Some(e) = self.entry.as_mut() {
            match below {
                ["Ntry", "Amt"] => e.amount = Some(amount),
                ["Ntry", "CdtDbtInd"] => e.credit = Some(read),
                ["Ntry", "Sts"] | ["Ntry", "Sts", "Cd" | "Prtry"] => e.status = Some(read),
                ["Ntry", "BookgDt", "Dt" | "DtTm"] => e.booking = Some(read),
                ["Ntry", "ValDt", "Dt" | "DtTm"] => e.value = Some(read),
                ["Ntry", "AcctSvcrRef"] => e.servicer_ref = Some(text),
                ["Ntry", "NtryRef"] => e.entry_ref = Some(text),
                ["Ntry", "NtryDtls", "TxDtls", "Refs", "EndToEndId"]
                    if e.end_to_end.is_none() && !text.eq_ignore_ascii_case("NOTPROVIDED") =>
                {
                    e.end_to_end = Some(text)
                }
                ["Ntry", "NtryDtls", "TxDtls", "RmtInf", "Ustrd"]
                | ["Ntry", "NtryDtls", "TxDtls", "RmtInf", "Strd", "CdtrRefInf", "Ref"] => {
                    e.remittance.push(text)
                }
                ["Ntry", "AddtlNtryInf"] => e.additional = Some(text),
                _ => {}
            }
        } else if let Some(b) = self.bal.as_mut() {
            match below {
                ["Bal", "Tp", "CdOrPrtry", "Cd"] => b.code = Some(text),
                ["Bal", "Amt"] => b.amount = Some(amount),
                ["Bal", "CdtDbtInd"] => b.credit = Some(read),
                ["Bal", "Dt", "Dt" | "DtTm"] => b.date = Some(read),
                _ => {}
            }
        } else if let Some(s) = self.stmt.as_mut() {
            match below {
                ["Id"] => s.id = Some(text),
                ["ElctrncSeqNb"] => s.electronic_seq = Some(text),
                ["LglSeqNb"] => s.legal_seq = Some(text),
                ["CreDtTm"] => s.created = Some(read),
                ["FrToDt", "FrDtTm" | "FrDt"] => s.from = Some(read),
                ["FrToDt", "ToDtTm" | "ToDt"] => s.to = Some(read),
                ["Acct", "Id", "IBAN"] | ["Acct", "Id", "Othr", "Id"] => s.account = Some(text),
                ["Acct", "Ccy"] => s.currency = Some(text),
                _ => {}
            }
        }
    }

    fn push_text(&mut self, t: &str) -> Result<(), FileRefusal> {
        if self.names.is_empty() {
            if t.trim().is_empty() {
                return Ok(());
            }
            return Err(FileRefusal::at(
                "file",
                if self.root_closed {
                    "text after the root element: not an XML document"
                } else {
                    "text before the root element: not an XML document"
                },
            ));
        }
        self.text.push_str(t);
        Ok(())
    }
}

/// The namespace the root element is in: the `xmlns` (or `xmlns:p` for a
/// `p:Document`) declared on it.
fn namespace_of(e: &BytesStart<'_>) -> String {
    let name = e.name();
    let prefix = name.prefix().map(|p| p.into_inner().to_string());
    e.attributes()
        .flatten()
        .find(|a| match (a.key.as_namespace_binding(), &prefix) {
            (Some(PrefixDeclaration::Default), None) => true,
            (Some(PrefixDeclaration::Named(p)), Some(q)) => p == q,
            _ => false,
        })
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().into_inner() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
        .map(|v| v.trim().to_string())
}

/// An ISO date (`2026-11-30`, possibly with a zone) or the date part of an
/// ISO date-time (`2026-11-30T09:15:00+08:00`), as written: no zone
/// conversion.
fn date(text: &str) -> Result<NaiveDate, String> {
    let bad = || format!("{text:?} is not a date (YYYY-MM-DD or an ISO date-time)");
    let (day, rest) = (text.get(..10).ok_or_else(bad)?, &text[10..]);
    let rest_ok = rest.is_empty()
        || rest == "Z"
        || ((rest.starts_with('+') || rest.starts_with('-')) && rest.len() == 6)
        || (rest.starts_with('T')
            && rest.len() >= 9
            && rest[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b':' | b'.' | b'Z' | b'+' | b'-')));
    if !rest_ok || day.as_bytes()[4] != b'-' || day.as_bytes()[7] != b'-' {
        return Err(bad());
    }
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad())
}

fn read_date(r: &Read) -> Result<NaiveDate, FileRefusal> {
    date(&r.text).map_err(|e| FileRefusal::at(r.at.clone(), e))
}

/// Minor units and currency code of an amount, at its own `Ccy`'s scale.
fn read_amount(a: &ReadAmount) -> Result<(i64, String), FileRefusal> {
    let refuse = |reason: String| FileRefusal::at(a.at.clone(), reason);
    let code = a
        .currency
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| refuse(format!("amount {:?} has no Ccy attribute", a.text)))?;
    let currency = Currency::from_code(code)
        .map_err(|e| refuse(format!("currency Ccy={code:?} of amount {:?}: {e}", a.text)))?;
    let minor = parse_minor(&a.text, currency).map_err(refuse)?;
    Ok((minor, code.to_string()))
}

/// CRDT (true) or DBIT (false).
fn read_direction(r: &Option<Read>, owner: &str) -> Result<bool, FileRefusal> {
    let r = r.as_ref().ok_or_else(|| {
        FileRefusal::at(
            format!("{owner}/CdtDbtInd"),
            "missing: CdtDbtInd (CRDT or DBIT) is mandatory",
        )
    })?;
    match r.text.as_str() {
        "CRDT" => Ok(true),
        "DBIT" => Ok(false),
        other => Err(FileRefusal::at(
            r.at.clone(),
            format!("{other:?} is not CRDT or DBIT"),
        )),
    }
}

fn finish_balance(d: BalanceDraft, at: &str) -> Result<Option<Balance>, FileRefusal> {
    // Other types (CLAV, FWAV, ITBD, ...) and proprietary ones are not the
    // ones the balance proof uses: skipped whatever they hold.
    let Some(code) = d
        .code
        .filter(|c| matches!(c.as_str(), "OPBD" | "PRCD" | "CLBD"))
    else {
        return Ok(None);
    };
    let amount = d.amount.ok_or_else(|| {
        FileRefusal::at(
            format!("{at}/Amt"),
            format!("missing: the {code} balance has no Amt"),
        )
    })?;
    let (minor, currency) = read_amount(&amount)?;
    let credit = read_direction(&d.credit, at)?;
    let date = d.date.ok_or_else(|| {
        FileRefusal::at(
            format!("{at}/Dt"),
            format!("missing: the {code} balance has no date"),
        )
    })?;
    Ok(Some(Balance {
        code,
        signed_minor: if credit { minor } else { -minor },
        currency,
        date: read_date(&date)?,
    }))
}

fn finish_entry(d: EntryDraft, position: u32, at: String) -> Result<BankEntry, FileRefusal> {
    let amount = d.amount.ok_or_else(|| {
        FileRefusal::at(
            format!("{at}/Amt"),
            "missing: an entry without its amount (Amt)",
        )
    })?;
    let (amount_minor, currency) = read_amount(&amount)?;
    let credit = read_direction(&d.credit, &at)?;
    let status = d.status.ok_or_else(|| {
        FileRefusal::at(
            format!("{at}/Sts"),
            "missing: an entry without its status (Sts)",
        )
    })?;
    let booking_date = d.booking.as_ref().map(read_date).transpose()?;
    let value_date = d.value.as_ref().map(read_date).transpose()?;
    let remittance = if d.remittance.is_empty() {
        d.additional
    } else {
        Some(d.remittance.join(" "))
    };
    Ok(BankEntry {
        position,
        location: at,
        amount_minor,
        currency,
        credit,
        status: status.text,
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
    at: String,
    header_created: &Option<Read>,
) -> Result<BankStatement, FileRefusal> {
    let what = match kind {
        MessageKind::Statement => "statement",
        MessageKind::Notification => "notification",
    };
    let id = d.id.ok_or_else(|| {
        FileRefusal::at(format!("{at}/Id"), format!("missing: the {what} has no Id"))
    })?;
    let account = d.account.ok_or_else(|| {
        FileRefusal::at(
            format!("{at}/Acct/Id"),
            format!("missing: the {what} has no account (Acct/Id/IBAN or Acct/Id/Othr/Id)"),
        )
    })?;
    let created = d.created.as_ref().or(header_created.as_ref());
    Ok(BankStatement {
        kind,
        index,
        location: at,
        id,
        electronic_seq: d.electronic_seq,
        legal_seq: d.legal_seq,
        page: None,
        account,
        account_currency: d.currency,
        opening: d.opening.or(d.previous_closing),
        closing: d.closing,
        from_date: d.from.as_ref().map(read_date).transpose()?,
        to_date: d.to.as_ref().map(read_date).transpose()?,
        created: created.map(read_date).transpose()?,
        entries: d.entries,
    })
}

/// Reads a whole camt.053 or camt.054 document (versions 001.02 to .08);
/// `expect` refuses the other message (a notification given as a statement).
pub fn read(bytes: &[u8], expect: Option<MessageKind>) -> Result<BankMessage, FileRefusal> {
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    let bytes = as_utf8(bytes)?;
    let mut reader = Reader::from_reader(bytes.as_ref());
    let mut w = Walk {
        names: Vec::new(),
        shown: Vec::new(),
        root_closed: false,
        format: None,
        message_id: None,
        header_created: None,
        statements: Vec::new(),
        stmt: None,
        entry: None,
        bal: None,
        n_entry: 0,
        n_bal: 0,
        amount_currency: None,
        text: String::new(),
    };
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            let at = if w.shown.is_empty() {
                "file".to_string()
            } else {
                w.at()
            };
            FileRefusal::at(
                at,
                format!(
                    "not well-formed XML at byte {}: {e} (a truncated or damaged file?)",
                    reader.error_position()
                ),
            )
        })?;
        match event {
            Event::Start(e) => {
                w.open(&e)?;
                if let (Some(format), Some(expect)) = (w.format, expect) {
                    check_kind(format, expect)?;
                }
            }
            Event::Empty(e) => {
                w.open(&e)?;
                if let (Some(format), Some(expect)) = (w.format, expect) {
                    check_kind(format, expect)?;
                }
                w.close()?;
            }
            Event::End(_) => w.close()?,
            Event::Text(t) => w.push_text(&t.xml10_content())?,
            Event::CData(t) => w.push_text(&t.xml10_content())?,
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(v) => v.to_string(),
                        None => return Err(w.refuse(format!("unknown entity &{};", &*r))),
                    },
                    Err(e) => {
                        return Err(w.refuse(format!("bad character reference &{};: {e}", &*r)))
                    }
                };
                w.push_text(&c)?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !w.names.is_empty() {
        return Err(
            w.refuse("the file ends before this element is closed: truncated, refused whole")
        );
    }
    let Some(format) = w.format else {
        return Err(FileRefusal::at(
            "file",
            "no XML element in the file: not an XML document",
        ));
    };
    if w.statements.is_empty() {
        let (message, statement, _) = layout(format);
        return Err(FileRefusal::at(
            format!("Document/{message}"),
            format!("no {statement} in the {format} message"),
        ));
    }
    Ok(BankMessage {
        format,
        message_id: w.message_id.unwrap_or_default(),
        statements: w.statements,
    })
}

/// The document as UTF-8: as it is, or from ISO-8859-1 when its XML
/// declaration says so (byte for character); any other encoding is refused.
fn as_utf8(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, FileRefusal> {
    let Err(e) = std::str::from_utf8(bytes) else {
        return Ok(bytes.into());
    };
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_ascii_lowercase();
    let declaration = head
        .strip_prefix("<?xml")
        .and_then(|d| d.split("?>").next())
        .unwrap_or("");
    let latin1 = ["iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1"]
        .iter()
        .any(|name| {
            declaration.contains(&format!("encoding=\"{name}\""))
                || declaration.contains(&format!("encoding='{name}'"))
        });
    if !latin1 {
        return Err(FileRefusal::at(
            "file",
            format!(
                "not UTF-8 text (invalid byte at offset {}) and not declared ISO-8859-1: \
                 not an XML document billclear reads",
                e.valid_up_to()
            ),
        ));
    }
    Ok(bytes
        .iter()
        .map(|&b| b as char)
        .collect::<String>()
        .into_bytes()
        .into())
}

fn check_kind(format: BankFormat, expect: MessageKind) -> Result<(), FileRefusal> {
    let (_, _, kind) = layout(format);
    if kind == expect {
        return Ok(());
    }
    let wanted = match expect {
        MessageKind::Statement => "a camt.053 statement",
        MessageKind::Notification => "a camt.054 notification",
    };
    Err(FileRefusal::at(
        "Document",
        format!("the file is a {format} {}, not {wanted}", kind.as_str()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_name_the_message_and_version() {
        let ns = |s: &str| format!("{NAMESPACE_PREFIX}{s}");
        assert_eq!(
            format_of(&ns("camt.053.001.02")),
            Some(BankFormat::Camt053(2))
        );
        assert_eq!(
            format_of(&ns("camt.053.001.08")),
            Some(BankFormat::Camt053(8))
        );
        assert_eq!(
            format_of(&ns("camt.054.001.05")),
            Some(BankFormat::Camt054(5))
        );
        for other in [
            "camt.053.001.01",
            "camt.053.001.09",
            "camt.052.001.08",
            "camt.053.001.8",
            "camt.053.001.+8",
            "pain.001.001.03",
        ] {
            assert_eq!(format_of(&ns(other)), None, "{other}");
        }
        assert_eq!(format_of(""), None);
    }

    #[test]
    fn dates_are_taken_as_written() {
        let d = |s: &str| date(s).ok();
        let nov30 = NaiveDate::from_ymd_opt(2026, 11, 30);
        assert_eq!(d("2026-11-30"), nov30);
        assert_eq!(d("2026-11-30+08:00"), nov30);
        assert_eq!(d("2026-11-30Z"), nov30);
        assert_eq!(d("2026-11-30T23:59:59-05:00"), nov30);
        assert_eq!(d("2026-11-30T09:15:00"), nov30);
        assert_eq!(d("2026-11-30T09:15:00.123Z"), nov30);
        for bad in [
            "",
            "2026-11-31",
            "20261130",
            "2026-11-30 09:15",
            "2026-11-30garbage",
            "30.11.2026",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }
}
