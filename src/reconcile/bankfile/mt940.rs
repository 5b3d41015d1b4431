//! SWIFT MT940 customer statements, as banks deliver them: inside the SWIFT
//! envelope (`{1:…}{2:…}{3:…}{4:` … `-}`, a `{5:…}` trailer) or raw,
//! several messages (or pages of one statement) in a file, CRLF or LF line
//! ends, UTF-8 or Latin-1 text.
//!
//! Fields read: `:20:` (the statement's reference; the first one is the
//! file's message id), `:25:` (the account; `BIC/account` gives the
//! account), `:28C:` (statement number and page), `:60F:`/`:60M:` (opening
//! balance, read as OPBD), `:61:` (an entry) with the `:86:` following it
//! (its information), `:62F:`/`:62M:` (closing balance, read as CLBD).
//! `:21:`, `:64:`, `:65:` and a statement-level `:86:` are skipped. A field
//! runs on over the following lines until the next line starting with a
//! tag (`:NN:`, `:NNa:`) or ending the message (`-`, `-}`).
//!
//! A malformed mandatory field, or a statement without `:20:`, `:25:`, an
//! opening or a closing balance, refuses the file whole: `line 14, field
//! :61:` and the reason.

use chrono::{Datelike, NaiveDate};

use crate::domain::money::Currency;
use crate::domain::recon::statement::{
    parse_minor, Balance, BankEntry, BankFormat, BankMessage, BankStatement, MessageKind,
};
use crate::domain::recon::FileRefusal;

/// One field: its tag, its lines (the first after the tag), the line it
/// starts on (1-based).
#[derive(Debug)]
struct Field {
    tag: String,
    lines: Vec<String>,
    line: usize,
}

/// What the file holds, in order.
#[derive(Debug)]
enum Item {
    Field(Field),
    /// The end of a message (`-`, `-}`) or the start of an envelope (`{1:`):
    /// the next field must open a statement with `:20:`.
    Boundary,
}

fn refuse(line: usize, tag: &str, reason: impl Into<String>) -> FileRefusal {
    FileRefusal::field(line as u64, &format!(":{tag}:"), reason)
}

/// `:20:` … → ("20", "…"): a tag is two digits and an optional capital.
fn tag_of(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let tag = &rest[..end];
    let b = tag.as_bytes();
    let ok = (2..=3).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_digit)
        && b.get(2).is_none_or(u8::is_ascii_uppercase);
    ok.then(|| (tag, &rest[end + 1..]))
}

/// The file's fields and message boundaries; envelope blocks other than the
/// text block `{4:` are dropped.
fn items(text: &str) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed == "-" || trimmed.starts_with("-}") {
            // `-}{5:…}` or even `-}{1:…}{2:…}{4:` on one line.
            out.push(Item::Boundary);
            match trimmed.find("{4:") {
                Some(p) => line = &trimmed[p + 3..],
                None => continue,
            }
        } else if trimmed.starts_with('{') {
            out.push(Item::Boundary);
            // `{1:…}{2:…}{3:{108:…}}{4:` opens a message; what follows
            // `{4:` on the line (usually nothing) is its first line.
            match trimmed.find("{4:") {
                Some(p) => line = &trimmed[p + 3..],
                None => continue,
            }
        }
        if line.trim().is_empty() {
            continue;
        }
        match tag_of(line.trim_start()) {
            Some((tag, value)) => out.push(Item::Field(Field {
                tag: tag.to_string(),
                lines: vec![value.to_string()],
                line: line_no,
            })),
            None => {
                if let Some(Item::Field(last)) = out.last_mut() {
                    last.lines.push(line.to_string());
                }
                // Anything before the first field (a bank's file header)
                // is not part of a statement.
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

/// A balance field, `C261129CNY1000000,00`: mark, date, currency, amount.
fn balance(f: &Field, code: &str) -> Result<Balance, FileRefusal> {
    let t = f.lines[0].trim();
    let bad = |why: String| refuse(f.line, &f.tag, format!("{t:?}: {why}"));
    let (mark, date, ccy, amount) = match (t.get(..1), t.get(1..7), t.get(7..10), t.get(10..)) {
        (Some(m), Some(d), Some(c), Some(a)) if !a.is_empty() => (m, d, c, a),
        _ => {
            return Err(bad(
                "not a balance (C or D, date YYMMDD, currency, amount)".into()
            ))
        }
    };
    let credit = match mark {
        "C" => true,
        "D" => false,
        _ => return Err(bad(format!("the mark {mark:?} is not C or D"))),
    };
    let date = yymmdd(date).ok_or_else(|| bad(format!("{date:?} is not a date YYMMDD")))?;
    let currency = Currency::from_code(ccy).map_err(|e| bad(format!("currency {ccy:?}: {e}")))?;
    let minor = parse_minor(amount, currency).map_err(bad)?;
    Ok(Balance {
        code: code.into(),
        signed_minor: if credit { minor } else { -minor },
        currency: ccy.into(),
        date,
    })
}

/// The entry date `MMDD` of a `:61:` in the year that puts it nearest its
/// value date: December entries of January values are of the year before,
/// January entries of December values of the year after.
fn entry_date(value: NaiveDate, mmdd: &str) -> Option<NaiveDate> {
    let (m, d): (u32, u32) = (mmdd.get(..2)?.parse().ok()?, mmdd.get(2..4)?.parse().ok()?);
    let year = match (m, value.month()) {
        (12, 1) => value.year() - 1,
        (1, 12) => value.year() + 1,
        _ => value.year(),
    };
    NaiveDate::from_ymd_opt(year, m, d)
}

/// `BCE` + 32 hex digits: the EndToEndId of our pain.001 instructions.
fn is_our_end_to_end(s: &str) -> bool {
    s.len() == 35 && s.starts_with("BCE") && s.bytes().skip(3).all(|b| b.is_ascii_hexdigit())
}

/// A `:61:` statement line: value date YYMMDD, optional entry date MMDD,
/// mark (C, D, RC, RD), optional funds code, amount, transaction type
/// (N/F/S and three characters), customer reference, `//` bank reference.
/// Its second line (supplementary details) is not read.
fn statement_line(f: &Field, currency: &str, position: u32) -> Result<BankEntry, FileRefusal> {
    let first = f.lines[0].trim();
    let bad = |why: &str| refuse(f.line, "61", format!("{first:?}: {why}"));
    let value = first
        .get(..6)
        .and_then(yymmdd)
        .ok_or_else(|| bad("no value date YYMMDD"))?;
    let mut rest = &first[6..];
    let mut booking = value;
    if rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        booking = entry_date(value, &rest[..4])
            .ok_or_else(|| bad("the entry date MMDD is not a date"))?;
        rest = &rest[4..];
    }
    let (credit, after) = if let Some(r) = rest.strip_prefix("RC") {
        // The reversal of a credit takes the money out again.
        (false, r)
    } else if let Some(r) = rest.strip_prefix("RD") {
        // The reversal of a debit brings it back.
        (true, r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (true, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (false, r)
    } else {
        return Err(bad("no debit/credit mark (C, D, RC or RD) after the dates"));
    };
    rest = after;
    // The funds code: the third letter of the currency code, when given.
    if rest.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        rest = &rest[1..];
    }
    let amount_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b',')
        .count();
    if amount_len == 0 {
        return Err(bad("no amount after the mark"));
    }
    let c = Currency::from_code(currency).map_err(|e| {
        bad(&format!(
            "currency {currency:?} of the opening balance: {e}"
        ))
    })?;
    let amount_minor = parse_minor(&rest[..amount_len], c).map_err(|e| bad(&e))?;
    rest = &rest[amount_len..];
    let kind_ok = rest.len() >= 4
        && matches!(rest.as_bytes()[0], b'N' | b'F' | b'S')
        && rest.as_bytes()[1..4].iter().all(u8::is_ascii_alphanumeric);
    if !kind_ok {
        return Err(bad(
            "no transaction type (N, F or S and three characters) after the amount",
        ));
    }
    rest = &rest[4..];
    let (customer, bank) = match rest.split_once("//") {
        Some((c, b)) => (c.trim(), Some(b.trim()).filter(|b| !b.is_empty())),
        None => (rest.trim(), None),
    };
    Ok(BankEntry {
        position,
        location: format!("line {}", f.line),
        amount_minor,
        currency: currency.into(),
        credit,
        status: "BOOK".into(),
        booking_date: Some(booking),
        value_date: Some(value),
        account_servicer_ref: bank.map(str::to_string),
        entry_ref: None,
        end_to_end_id: is_our_end_to_end(customer).then(|| customer.to_string()),
        remittance: None,
    })
}

/// The EndToEndId an `:86:` carries: `/EREF/…` (up to the next `/CODE/`),
/// `EREF+…` (German structured `:86:`, up to the next `?`), else a token
/// that is one of our own.
fn end_to_end_of(lines: &[String]) -> Option<String> {
    // A value may be broken over lines: look at the lines joined as sent.
    let joined: String = lines.iter().map(|l| l.trim_end()).collect();
    let found = if let Some(p) = joined.find("/EREF/") {
        joined[p + 6..].split('/').next()
    } else if let Some(p) = joined.find("EREF+") {
        joined[p + 5..].split('?').next()
    } else {
        None
    };
    if let Some(v) = found.map(str::trim).filter(|v| !v.is_empty()) {
        if !v.eq_ignore_ascii_case("NOTPROVIDED") {
            return Some(v.to_string());
        }
    }
    lines
        .iter()
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '/' || c == '?' || c == '+'))
        .find(|t| is_our_end_to_end(t))
        .map(str::to_string)
}

#[derive(Default)]
struct Draft {
    id: String,
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
            format!("statement {:?} has no {what}: refused", d.id),
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
        id: d.id,
        electronic_seq: d.number,
        legal_seq: None,
        page: d.page,
        account,
        account_currency: Some(opening.currency.clone()),
        opening: Some(opening),
        closing: Some(closing),
        from_date: None,
        to_date: None,
        created: None,
        entries: d.entries,
    })
}

/// The file as text: UTF-8, else Latin-1 (byte for character), which is
/// what banks outside the SWIFT character set send.
fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => bytes.iter().map(|&b| b as char).collect::<String>().into(),
    }
}

/// Reads a whole MT940 file.
pub fn read(bytes: &[u8]) -> Result<BankMessage, FileRefusal> {
    let text = text_of(bytes);
    let mut statements = Vec::new();
    let mut draft: Option<Draft> = None;
    let mut message_id: Option<String> = None;
    // After a message boundary, the next field must be a `:20:`.
    let mut open = false;
    for item in items(&text) {
        let f = match item {
            Item::Boundary => {
                open = false;
                continue;
            }
            Item::Field(f) => f,
        };
        if f.tag == "20" {
            if let Some(d) = draft.take() {
                statements.push(finish(d, statements.len() as u32 + 1)?);
            }
            let id = f.lines[0].trim().to_string();
            if id.is_empty() {
                return Err(refuse(f.line, "20", "no statement reference"));
            }
            message_id.get_or_insert_with(|| id.clone());
            draft = Some(Draft {
                id,
                line: f.line,
                ..Default::default()
            });
            open = true;
            continue;
        }
        let Some(d) = draft.as_mut().filter(|_| open) else {
            return Err(refuse(
                f.line,
                &f.tag,
                "a field outside a statement: each statement starts with :20:",
            ));
        };
        let was_entry = std::mem::replace(&mut d.after_entry, false);
        match f.tag.as_str() {
            "25" => {
                let a = f.lines[0].trim();
                let a = a.rsplit('/').next().unwrap_or(a).trim();
                if a.is_empty() {
                    return Err(refuse(f.line, "25", "no account"));
                }
                d.account = Some(a.to_string());
            }
            "28C" | "28" => {
                let t = f.lines[0].trim();
                let (n, p) = match t.split_once('/') {
                    Some((n, p)) => (n.trim(), Some(p.trim())),
                    None => (t, None),
                };
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if !digits(n) || p.is_some_and(|p| !digits(p)) {
                    return Err(refuse(
                        f.line,
                        &f.tag,
                        format!("{t:?} is not a statement number (and /page)"),
                    ));
                }
                d.number = Some(n.to_string());
                d.page = p.map(str::to_string);
            }
            "60F" | "60M" => d.opening = Some(balance(&f, "OPBD")?),
            "62F" | "62M" => d.closing = Some(balance(&f, "CLBD")?),
            "61" => {
                let currency = d.opening.as_ref().map(|b| b.currency.clone()).ok_or_else(|| {
                    refuse(
                        f.line,
                        "61",
                        "an entry before the opening balance :60F:/:60M: (which gives its currency)",
                    )
                })?;
                let position = d.entries.len() as u32 + 1;
                d.entries.push(statement_line(&f, &currency, position)?);
                d.after_entry = true;
            }
            "86" if was_entry => {
                // `was_entry`: the field before was this statement's last
                // `:61:`, so there is an entry to inform.
                let Some(e) = d.entries.last_mut() else {
                    continue;
                };
                let info = f
                    .lines
                    .iter()
                    .flat_map(|l| l.split_whitespace())
                    .collect::<Vec<_>>()
                    .join(" ");
                if e.end_to_end_id.is_none() {
                    e.end_to_end_id = end_to_end_of(&f.lines);
                }
                e.remittance = (!info.is_empty()).then_some(info);
            }
            _ => {}
        }
    }
    if let Some(d) = draft.take() {
        statements.push(finish(d, statements.len() as u32 + 1)?);
    }
    if statements.is_empty() {
        return Err(FileRefusal::at(
            "file",
            "no statement (:20:) in the file: not an MT940 statement",
        ));
    }
    Ok(BankMessage {
        format: BankFormat::Mt940,
        message_id: message_id.unwrap_or_default(),
        statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn entry_dates_take_the_year_nearest_the_value_date() {
        assert_eq!(
            entry_date(day(2026, 11, 30), "1130"),
            Some(day(2026, 11, 30))
        );
        assert_eq!(entry_date(day(2027, 1, 2), "1231"), Some(day(2026, 12, 31)));
        assert_eq!(entry_date(day(2026, 12, 31), "0102"), Some(day(2027, 1, 2)));
        assert_eq!(entry_date(day(2026, 11, 30), "1131"), None);
    }

    #[test]
    fn end_to_end_ids_are_found_in_the_information() {
        let e = "BCE01a227b7d62077af9deb9cd539c11085";
        let of = |lines: &[&str]| {
            end_to_end_of(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(of(&[&format!("/EREF/{e}/REMI/x")]).as_deref(), Some(e));
        // Broken over two lines as SWIFT's 65 characters make it.
        assert_eq!(
            of(&[
                "/TRTP/SEPA/EREF/BCE01a227b7d6",
                "2077af9deb9cd539c11085/REMI/x"
            ])
            .as_deref(),
            Some(e)
        );
        assert_eq!(
            of(&["166?00GUTSCHRIFT?20EREF+ABC-123?21SVWZ+Rechnung"]).as_deref(),
            Some("ABC-123")
        );
        assert_eq!(of(&[&format!("payout {e} thanks")]).as_deref(), Some(e));
        assert_eq!(of(&["/EREF/NOTPROVIDED/REMI/x"]), None);
        assert_eq!(of(&["/REMI/BCF-alipay-20261129"]), None);
    }

    #[test]
    fn statement_lines_are_read_field_by_field() {
        let f = |t: &str| Field {
            tag: "61".into(),
            lines: vec![t.into()],
            line: 7,
        };
        let e = statement_line(&f("2611301130D17165,04NTRFNONREF//BANKREF0001"), "CNY", 1).unwrap();
        assert_eq!((e.amount_minor, e.credit), (1_716_504, false));
        assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0001"));
        assert_eq!(e.location, "line 7");
        // No entry date; a funds code; a reversal of a debit is money in.
        let r = statement_line(&f("261130RDY5,NCHGNONREF"), "CNY", 2).unwrap();
        assert_eq!(
            (r.amount_minor, r.credit, r.booking_date),
            (500, true, Some(day(2026, 11, 30)))
        );
        assert_eq!(r.account_servicer_ref, None);
        let rc = statement_line(&f("2611301130RC1,00NTRFX"), "CNY", 3).unwrap();
        assert!(!rc.credit);
        // Our own EndToEndId as the customer reference.
        let ours = statement_line(
            &f("261130C1,00NTRFBCE01a227b7d62077af9deb9cd539c11085"),
            "CNY",
            4,
        )
        .unwrap();
        assert_eq!(
            ours.end_to_end_id.as_deref(),
            Some("BCE01a227b7d62077af9deb9cd539c11085")
        );
        for (bad, why) in [
            ("2613301130D1,00NTRFX", "value date"),
            ("2611301131D1,00NTRFX", "entry date"),
            ("2611301130X1,00NTRFX", "mark"),
            ("2611301130DNTRFX", "amount"),
            ("2611301130D1,001NTRFX", "more decimals"),
            ("2611301130D1,00XTRFX", "transaction type"),
            ("2611301130D1,00N€€", "transaction type"),
        ] {
            let e = statement_line(&f(bad), "CNY", 1).unwrap_err();
            assert_eq!(e.location, "line 7, field :61:");
            assert!(e.reason.contains(why), "{bad}: {e}");
        }
    }
}
