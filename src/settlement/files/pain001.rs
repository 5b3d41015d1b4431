//! The ISO 20022 `pain.001.001.03` CustomerCreditTransferInitiation that
//! pays a batch's net from our settlement account (debtor) to the biller's
//! account (creditor): one payment information block with one transaction.
//!
//! Identifiers are derived from the batch id (32 lower-case hex digits), so
//! a re-render is byte-identical: MsgId `BCM<hex>`, PmtInfId `BCP<hex>`,
//! EndToEndId `BCE<hex>` (35 characters each). CreDtTm is the batch's
//! `created_at` (seconds, UTC); the requested execution date is the day
//! after the business date. Written with `quick-xml`, which escapes text
//! and attribute values.

use std::io;
use std::path::Path;

use chrono::SecondsFormat;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::{at_scale, file_names, write_atomic, BatchHeader, FileError, FileKind, WrittenFile};
use crate::domain::settlement::{pays_out, requested_execution_date, BankAccount};

pub const PAIN001_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03";
/// Longest party name and unstructured remittance (Max140Text).
const MAX_TEXT: usize = 140;
/// Longest account identification (Max34Text).
const MAX_ACCOUNT: usize = 34;
/// xs:decimal totalDigits of amounts.
const MAX_AMOUNT_DIGITS: usize = 18;

/// Renders the credit transfer of `header.totals.net()`. Refuses a batch
/// whose net is not greater than zero ([`FileError::NotPayable`]), names
/// over 140 characters, accounts that are not 1-34 letters and digits, and
/// BICs that do not match the ISO 9362 pattern of the schema.
pub fn render_pain001(header: &BatchHeader) -> Result<String, FileError> {
    let net = header.totals.net();
    if !pays_out(net) {
        return Err(FileError::NotPayable { net });
    }
    let amount = at_scale("net", net, header.currency.scale())?.to_string();
    let digits = amount.bytes().filter(u8::is_ascii_digit).count();
    if digits > MAX_AMOUNT_DIGITS {
        return Err(FileError::FieldTooLong {
            field: "net (digits)",
            len: digits,
            max: MAX_AMOUNT_DIGITS,
        });
    }
    check_party(&header.debtor, DEBTOR)?;
    check_party(&header.creditor, CREDITOR)?;
    // The day after the business date, or the day the batch was closed
    // when that is later (a date closed late, catching up): never a date
    // already past when the instruction was made. Reconciliation expects
    // the bank's debit from this date on (the same function).
    let execution =
        requested_execution_date(header.business_date, header.created_at).ok_or_else(|| {
            FileError::Invalid {
                field: "business_date",
                reason: "has no following day".into(),
            }
        })?;
    let remittance = format!(
        "billclear settlement {} {} {} payments",
        header.biller_id, header.business_date, header.totals.count
    );
    check_text("remittance information", &remittance)?;

    let hex = header.batch_id.simple().to_string();
    let created = header.created_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let date = execution.format("%Y-%m-%d").to_string();
    let ccy = header.currency.code();
    let (debtor, creditor) = (&header.debtor, &header.creditor);

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let xml = (|| -> io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("Document")
            .with_attribute(("xmlns", PAIN001_NAMESPACE))
            .write_inner_content(|w| {
                w.create_element("CstmrCdtTrfInitn")
                    .write_inner_content(|w| {
                        w.create_element("GrpHdr").write_inner_content(|w| {
                            leaf(w, "MsgId", &format!("BCM{hex}"))?;
                            leaf(w, "CreDtTm", &created)?;
                            leaf(w, "NbOfTxs", "1")?;
                            leaf(w, "CtrlSum", &amount)?;
                            w.create_element("InitgPty")
                                .write_inner_content(|w| leaf(w, "Nm", &debtor.name))?;
                            Ok(())
                        })?;
                        w.create_element("PmtInf").write_inner_content(|w| {
                            leaf(w, "PmtInfId", &format!("BCP{hex}"))?;
                            leaf(w, "PmtMtd", "TRF")?;
                            leaf(w, "BtchBookg", "false")?;
                            leaf(w, "NbOfTxs", "1")?;
                            leaf(w, "CtrlSum", &amount)?;
                            leaf(w, "ReqdExctnDt", &date)?;
                            party(w, "Dbtr", &debtor.name)?;
                            account(w, "DbtrAcct", &debtor.account)?;
                            agent(w, "DbtrAgt", &debtor.bic)?;
                            w.create_element("CdtTrfTxInf").write_inner_content(|w| {
                                w.create_element("PmtId").write_inner_content(|w| {
                                    leaf(w, "EndToEndId", &format!("BCE{hex}"))
                                })?;
                                w.create_element("Amt").write_inner_content(|w| {
                                    w.create_element("InstdAmt")
                                        .with_attribute(("Ccy", ccy))
                                        .write_text_content(BytesText::new(&amount))?;
                                    Ok(())
                                })?;
                                agent(w, "CdtrAgt", &creditor.bic)?;
                                party(w, "Cdtr", &creditor.name)?;
                                account(w, "CdtrAcct", &creditor.account)?;
                                w.create_element("RmtInf")
                                    .write_inner_content(|w| leaf(w, "Ustrd", &remittance))?;
                                Ok(())
                            })?;
                            Ok(())
                        })?;
                        Ok(())
                    })?;
                Ok(())
            })?;
        Ok(())
    })();
    xml.map_err(|e| FileError::io("render", Path::new("pain.001"), e))?;
    let mut text = String::from_utf8(w.into_inner())
        .map_err(|e| FileError::io("render", Path::new("pain.001"), io::Error::other(e)))?;
    text.push('\n');
    Ok(text)
}

/// Renders and writes `dir/<biller>_<date>_<batch>_pain001.xml`. Refuses (and
/// writes nothing for) a batch whose net is not greater than zero: the
/// caller skips the pain.001 then.
pub fn write_pain001(dir: &Path, header: &BatchHeader) -> Result<WrittenFile, FileError> {
    let name = file_names(header)?.pain001;
    let text = render_pain001(header)?;
    let digest = write_atomic(dir, &name, text.as_bytes())?;
    Ok(WrittenFile {
        name,
        kind: FileKind::Pain001,
        sha256: digest.sha256,
        bytes: digest.bytes,
        count: 1,
        total: at_scale("net", header.totals.net(), header.currency.scale())?,
    })
}

fn leaf<W: io::Write>(w: &mut Writer<W>, name: &str, text: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

fn party<W: io::Write>(w: &mut Writer<W>, element: &str, name: &str) -> io::Result<()> {
    w.create_element(element)
        .write_inner_content(|w| leaf(w, "Nm", name))?;
    Ok(())
}

fn account<W: io::Write>(w: &mut Writer<W>, element: &str, id: &str) -> io::Result<()> {
    w.create_element(element).write_inner_content(|w| {
        w.create_element("Id").write_inner_content(|w| {
            w.create_element("Othr")
                .write_inner_content(|w| leaf(w, "Id", id))?;
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

fn agent<W: io::Write>(w: &mut Writer<W>, element: &str, bic: &str) -> io::Result<()> {
    w.create_element(element).write_inner_content(|w| {
        w.create_element("FinInstnId")
            .write_inner_content(|w| leaf(w, "BIC", bic))?;
        Ok(())
    })?;
    Ok(())
}

/// 1-140 characters, none a control character (XML 1.0 cannot carry most
/// of them, and none belongs in a name).
fn check_text(field: &'static str, s: &str) -> Result<(), FileError> {
    let len = s.chars().count();
    if s.trim().is_empty() {
        return Err(FileError::Invalid {
            field,
            reason: "is empty".into(),
        });
    }
    if len > MAX_TEXT {
        return Err(FileError::FieldTooLong {
            field,
            len,
            max: MAX_TEXT,
        });
    }
    if s.chars()
        .any(|c| c.is_control() || c == '\u{fffe}' || c == '\u{ffff}')
    {
        return Err(FileError::Invalid {
            field,
            reason: "contains a control character".into(),
        });
    }
    Ok(())
}

/// The field names errors give for one party: name, account, BIC.
const DEBTOR: [&str; 3] = ["debtor name", "debtor account", "debtor BIC"];
const CREDITOR: [&str; 3] = ["creditor name", "creditor account", "creditor BIC"];

fn check_party(a: &BankAccount, [name, acct, bic]: [&'static str; 3]) -> Result<(), FileError> {
    check_text(name, &a.name)?;
    if a.account.len() > MAX_ACCOUNT {
        return Err(FileError::FieldTooLong {
            field: acct,
            len: a.account.chars().count(),
            max: MAX_ACCOUNT,
        });
    }
    if a.account.is_empty() || !a.account.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FileError::Invalid {
            field: acct,
            reason: format!("{:?} must be 1 to 34 letters and digits", a.account),
        });
    }
    if !valid_bic(&a.bic) {
        return Err(FileError::Invalid {
            field: bic,
            reason: format!(
                "{:?} is not a BIC: 6 letters, a letter or digit 2-9, a letter (not O) or digit, and optionally 3 letters or digits",
                a.bic
            ),
        });
    }
    Ok(())
}

/// The schema's BICIdentifier:
/// `[A-Z]{6,6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3,3}){0,1}`.
fn valid_bic(bic: &str) -> bool {
    let b = bic.as_bytes();
    let upper_or_digit = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    matches!(b.len(), 8 | 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && (b[6].is_ascii_uppercase() || (b'2'..=b'9').contains(&b[6]))
        && ((b[7].is_ascii_uppercase() && b[7] != b'O') || b[7].is_ascii_digit())
        && b[8..].iter().all(upper_or_digit)
}
