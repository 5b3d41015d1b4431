//! SWIFT MT940 customer statements, as many banks still deliver them:
//! with or without the SWIFT envelope (`{1:…}{2:…}{4:` … `-}`), several
//! statements (or pages of one) in a file, CRLF or LF line ends.
//!
//! Fields read: `:20:` (statement reference), `:25:` (account; `BIC/account`
//! gives the account), `:28C:` (statement number and page), `:60F:`/`:60M:`
//! (opening balance), `:61:` (an entry) with the `:86:` after it (its
//! information), `:62F:`/`:62M:` (closing balance). Others (`:21:`, `:64:`,
//! `:65:`, a statement-level `:86:`) are skipped. A malformed mandatory
//! field refuses the file with its line.

use chrono::{Datelike, NaiveDate};

use crate::domain::money::Currency;
use crate::domain::recon::statement::{
    parse_minor, Balance, BankEntry, BankFormat, BankMessage, BankStatement, MessageKind,
};
use crate::domain::recon::FileRefusal;

/// One field: its tag, its text (continuation lines joined with `\n`) and
/// the line it starts on.
struct Field {
    tag: String,
    text: String,
    line: usize,
}

fn refuse(line: usize, tag: &str, reason: impl Into<String>) -> FileRefusal {
    FileRefusal::at(format!("line {line}, field :{tag}:"), reason)
}

/// `:20:` … → ("20", "…"): a tag is two digits and an optional letter.
fn tag_of(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    let ok = (2..=3).contains(&tag.len())
        && tag.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && tag.as_bytes().get(2).is_none_or(u8::is_ascii_uppercase);
    ok.then(|| (tag, &rest[end + 1..]))
}

/// The fields of the file, envelope blocks and message ends removed.
fn fields(text: &str) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut line = raw.trim_end_matches('\r');
        // `{1:…}{2:…}{4:` opens a message; what follows `{4:` on the line
        // (usually nothing) is its first line.
        if line.starts_with('{') {
            match line.find("{4:") {
                Some(p) => line = &line[p + 3..],
                None => continue,
            }
        }
        let trimmed = line.trim();
        if trimmed == "-" || trimmed.starts_with("-}") || trimmed.is_empty() {
            continue;
        }
        match tag_of(line) {
            Some((tag, value)) => out.push(Field {
                tag: tag.to_string(),
                text: value.to_string(),
                line: line_no,
            }),
            None => {
                if let Some(last) = out.last_mut() {
                    last.text.push('\n');
                    last.text.push_str(line);
                }
            }
        }
    }
    out
}

/// `YYMMDD`.
fn yymmdd(s: &str) -> Option<NaiveDate> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = s[..2].parse().ok()?;
    let year = if yy < 80 { 2000 + yy } else { 1900 + yy };
    NaiveDate::from_ymd_opt(year, s[2..4].parse().ok()?, s[4..6].parse().ok()?)
}

/// A balance field: `C261129CNY1000000,00`.
fn balance(f: &Field, code: &str) -> Result<Balance, FileRefusal> {
    let t = f.text.trim();
    let bad = |why: &str| refuse(f.line, &f.tag, format!("{t:?}: {why}"));
    if t.len() < 11 {
        return Err(bad("too short for mark, date, currency and amount"));
    }
    let credit = match &t[..1] {
        "C" => true,
        "D" => false,
        _ => return Err(bad("the mark must be C or D")),
    };
    let on = yymmdd(&t[1..7]).ok_or_else(|| bad("not a date YYMMDD"))?;
    let ccy = &t[7..10];
    let c = Currency::from_code(ccy).map_err(|e| bad(&e.to_string()))?;
    let minor = parse_minor(&t[10..], c).map_err(|e| bad(&e))?;
    Ok(Balance {
        code: code.into(),
        signed_minor: if credit { minor } else { -minor },
        currency: ccy.into(),
        date: on,
    })
}

/// The year of an entry date `MMDD` given its value date: the nearest.
fn entry_date(value: NaiveDate, mmdd: &str) -> Option<NaiveDate> {
    let (m, d): (u32, u32) = (mmdd[..2].parse().ok()?, mmdd[2..].parse().ok()?);
    let year = match (m, value.month()) {
        (12, 1) => value.year() - 1,
        (1, 12) => value.year() + 1,
        _ => value.year(),
    };
    NaiveDate::from_ymd_opt(year, m, d)
}

/// A `:61:` line: value date, entry date, mark, funds code, amount,
/// transaction type, customer reference, `//` bank reference.
fn statement_line(f: &Field, currency: &str, position: u32) -> Result<BankEntry, FileRefusal> {
    let first = f.text.lines().next().unwrap_or("").trim();
    let bad = |why: &str| refuse(f.line, "61", format!("{first:?}: {why}"));
    let value = yymmdd(first.get(..6).unwrap_or("")).ok_or_else(|| bad("no value date YYMMDD"))?;
    let mut rest = &first[6..];
    let mut booking = value;
    if rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        booking = entry_date(value, &rest[..4]).ok_or_else(|| bad("not an entry date MMDD"))?;
        rest = &rest[4..];
    }
    let (credit, after) = if let Some(r) = rest.strip_prefix("RC") {
        (false, r)
    } else if let Some(r) = rest.strip_prefix("RD") {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (false, r)
    } else {
        return Err(bad("the mark must be C, D, RC or RD"));
    };
    rest = after;
    // An optional funds code (a letter) before the amount.
    if rest.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        rest = &rest[1..];
    }
    let amount_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b',')
        .count();
    if amount_len == 0 {
        return Err(bad("no amount"));
    }
    let c = Currency::from_code(currency).map_err(|e| bad(&e.to_string()))?;
    let amount_minor = parse_minor(&rest[..amount_len], c).map_err(|e| bad(&e))?;
    rest = &rest[amount_len..];
    if rest.len() < 4 || !matches!(rest.as_bytes()[0], b'N' | b'F' | b'S') {
        return Err(bad("no transaction type (N, F or S and three characters)"));
    }
    rest = &rest[4..];
    let (customer, bank) = match rest.split_once("//") {
        Some((c, b)) => (c.trim(), Some(b.trim())),
        None => (rest.trim(), None),
    };
    let end_to_end_id = is_batch_reference(customer).then(|| customer.to_string());
    Ok(BankEntry {
        position,
        location: format!("line {}", f.line),
        amount_minor,
        currency: currency.into(),
        credit,
        status: "BOOK".into(),
        booking_date: Some(booking),
        value_date: Some(value),
        account_servicer_ref: bank.filter(|b| !b.is_empty()).map(str::to_string),
        entry_ref: None,
        end_to_end_id,
        remittance: None,
    })
}

/// `BCE` + 32 hex digits: our pain.001's EndToEndId.
fn is_batch_reference(s: &str) -> bool {
    s.len() == 35 && s.starts_with("BCE") && s[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The EndToEndId an `:86:` carries: `/EREF/…`, `EREF+…`, or a token of ours.
fn end_to_end_of(info: &str) -> Option<String> {
    let compact: String = info.lines().map(str::trim_end).collect::<Vec<_>>().join("");
    if let Some(p) = compact.find("/EREF/") {
        let v = &compact[p + 6..];
        let v = v.split('/').next().unwrap_or("").trim();
        if !v.is_empty() && v != "NOTPROVIDED" {
            return Some(v.to_string());
        }
    }
    if let Some(p) = compact.find("EREF+") {
        let v = compact[p + 5..].split('?').next().unwrap_or("").trim();
        if !v.is_empty() {
            return Some(v.to_string());
        }
    }
    info.split(|c: char| c.is_whitespace() || c == '/')
        .find(|t| is_batch_reference(t))
        .map(str::to_string)
}

#[derive(Default)]
struct Draft {
    id: Option<String>,
    line: usize,
    account: Option<String>,
    number: Option<String>,
    page: Option<String>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    entries: Vec<BankEntry>,
    /// Whether the last field was a `:61:` (an `:86:` then belongs to it).
    after_entry: bool,
}

fn finish(d: Draft, index: u32) -> Result<BankStatement, FileRefusal> {
    let at = format!("line {}", d.line);
    let missing = |what: &str| {
        FileRefusal::at(
            at.clone(),
            format!(
                "statement {:?} has no {what}",
                d.id.clone().unwrap_or_default()
            ),
        )
    };
    let account = d.account.clone().ok_or_else(|| missing(":25: account"))?;
    let opening = d
        .opening
        .clone()
        .ok_or_else(|| missing(":60F:/:60M: opening balance"))?;
    let closing = d
        .closing
        .clone()
        .ok_or_else(|| missing(":62F:/:62M: closing balance"))?;
    Ok(BankStatement {
        kind: MessageKind::Statement,
        index,
        location: at.clone(),
        id: d.id.unwrap_or_default(),
        electronic_seq: d.number,
        legal_seq: None,
        page: d.page,
        account,
        account_currency: Some(opening.currency.clone()),
        from_date: None,
        to_date: None,
        created: None,
        opening: Some(opening),
        closing: Some(closing),
        entries: d.entries,
    })
}

/// Reads a whole MT940 file.
pub fn read(bytes: &[u8]) -> Result<BankMessage, FileRefusal> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FileRefusal::at(
            "file",
            format!(
                "not text (UTF-8 or ASCII): invalid byte at offset {}",
                e.valid_up_to()
            ),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut statements = Vec::new();
    let mut draft: Option<Draft> = None;
    let mut message_id = None;
    for f in fields(text) {
        if f.tag == "20" {
            if let Some(d) = draft.take() {
                statements.push(finish(d, statements.len() as u32 + 1)?);
            }
            let id = f.text.trim().to_string();
            message_id.get_or_insert_with(|| id.clone());
            draft = Some(Draft {
                id: Some(id),
                line: f.line,
                ..Default::default()
            });
            continue;
        }
        let Some(d) = draft.as_mut() else {
            return Err(refuse(
                f.line,
                &f.tag,
                "a field before the statement's :20:",
            ));
        };
        let was_entry = std::mem::replace(&mut d.after_entry, false);
        match f.tag.as_str() {
            "25" => {
                let a = f.text.trim();
                let a = a.rsplit('/').next().unwrap_or(a).trim();
                if a.is_empty() {
                    return Err(refuse(f.line, "25", "no account"));
                }
                d.account = Some(a.to_string());
            }
            "28C" | "28" => {
                let t = f.text.trim();
                let (n, p) = match t.split_once('/') {
                    Some((n, p)) => (n, Some(p)),
                    None => (t, None),
                };
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse(
                        f.line,
                        &f.tag,
                        format!("{t:?}: not a statement number"),
                    ));
                }
                d.number = Some(n.to_string());
                d.page = p.map(str::to_string);
            }
            "60F" | "60M" => d.opening = Some(balance(&f, "OPBD")?),
            "62F" | "62M" => d.closing = Some(balance(&f, "CLBD")?),
            "61" => {
                let currency = d
                    .opening
                    .as_ref()
                    .map(|b| b.currency.clone())
                    .ok_or_else(|| {
                        refuse(
                            f.line,
                            "61",
                            "an entry before the opening balance :60F:/:60M: (its currency)",
                        )
                    })?;
                let position = d.entries.len() as u32 + 1;
                d.entries.push(statement_line(&f, &currency, position)?);
                d.after_entry = true;
            }
            "86" if was_entry => {
                let info = f.text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
                let e = d.entries.last_mut().expect("an entry before");
                if e.end_to_end_id.is_none() {
                    e.end_to_end_id = end_to_end_of(&f.text);
                }
                e.remittance = Some(info.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            _ => {}
        }
    }
    if let Some(d) = draft.take() {
        statements.push(finish(d, statements.len() as u32 + 1)?);
    }
    if statements.is_empty() {
        return Err(FileRefusal::at("line 1", "no statement (:20:) in the file"));
    }
    Ok(BankMessage {
        format: BankFormat::Mt940,
        message_id: message_id.unwrap_or_default(),
        statements,
    })
}
