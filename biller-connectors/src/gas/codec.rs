//! The gas company's wire format: fixed-layout text records, each framed by
//! a 4-digit length prefix, MAC-protected. The connector and the simulator
//! both use this module, so the two sides cannot drift apart.
//!
//! # Framing
//!
//! `LLLL` + record: `LLLL` is the length of the record in bytes, 4 ASCII
//! decimal digits (`"0157"`). A record is exactly as long as its layout;
//! the layout is chosen by the record's first 4 bytes, the message type.
//!
//! # Field kinds
//!
//! * `A` ([`Kind::Alpha`]): printable ASCII (0x20..=0x7E), left-justified,
//!   padded with spaces; the value is the field with trailing spaces
//!   removed (so a value may not end with a space).
//! * `N` ([`Kind::Numeric`]): ASCII digits, right-justified, padded with
//!   zeros. Amounts are integer minor units (hundredths: CNY fen), times
//!   are `YYYYMMDDhhmmss` in UTC (all zeros: absent), dates `YYYYMMDD`.
//! * `T` ([`Kind::Text`]): UTF-8 text, left-justified, padded with spaces,
//!   the width counted in bytes (a character is never split). Only the
//!   customer name is `T`: the gas company's customers have Chinese names.
//!
//! # The MAC
//!
//! Every record ends with `mac` (16 bytes): the first 8 bytes of
//! HMAC-SHA256(secret, every byte of the record before the MAC), in
//! uppercase hex. The length prefix is not covered.
//!
//! # Layouts
//!
//! Every message starts with the same header:
//!
//! | field         | offset | width | kind | content                                   |
//! |---------------|-------:|------:|------|-------------------------------------------|
//! | `msg_type`    |      0 |     4 | N    | `0200`, `0210`, `0300`, ...               |
//! | `terminal_id` |      4 |    16 | A    | our terminal id (`key_id` in the settings)|
//! | `reference`   |     20 |    36 | A    | OUR reference (a UUID; fresh for bill inquiries and echoes) |
//! | `trace`       |     56 |    10 | N    | our trace number, unique per request      |
//!
//! An answer repeats the header of its request (message type + 10), so it
//! is matched by message type, reference AND trace: a late or duplicated
//! answer can never be taken for the answer of another request, not even
//! of another request on the same reference.
//!
//! `0200` pay request (157 bytes): header, `biller_id` 66/16 A,
//! `account` 82/20 A, `amount` 102/12 N, `currency` 114/3 A, `bill_no`
//! 117/24 A (spaces: none), `mac` 141/16 A.
//!
//! `0210` pay answer (170 bytes): header, `result_code` 66/2 A,
//! `biller_id` 68/16 A, `account` 84/20 A, `amount` 104/12 N, `currency`
//! 116/3 A, `receipt_no` 119/20 A, `credited_at` 139/14 N, `duplicate`
//! 153/1 A (`Y`: the reference was paid before, this is the original
//! outcome; `N` or space: not), `mac` 154/16 A. Echo fields are those of the request.
//!
//! `0400` status query (98 bytes): header (the reference asked about),
//! `biller_id` 66/16 A, `mac` 82/16 A.
//!
//! `0410` status answer (172 bytes): header, `result_code` 66/2 A,
//! `state` 68/1 A (`C` credited, `R` rejected, `P` pending, space when
//! not found), `biller_id` 69/16 A, `account` 85/20 A, `amount` 105/12 N,
//! `currency` 117/3 A, `receipt_no` 120/20 A, `credited_at` 140/14 N,
//! `reject_code` 154/2 A, `mac` 156/16 A.
//!
//! `0300` bill query (118 bytes): header, `biller_id` 66/16 A, `account`
//! 82/20 A, `mac` 102/16 A.
//!
//! `0310` bill answer (384 bytes): header, `result_code` 66/2 A,
//! `biller_id` 68/16 A, `account` 84/20 A, `customer_name` 104/40 T,
//! `currency` 144/3 A, `bill_count` 147/1 N (0..=5), then 5 bill slots of
//! 44 bytes from offset 148 (`bill_no_K` 24 A, `amount_due_K` 12 N,
//! `due_date_K` 8 N; slots past `bill_count` are blank and ignored),
//! `mac` 368/16 A.
//!
//! `0800` echo (96 bytes): header, `sent_at` 66/14 N, `mac` 80/16 A.
//! `0810` echo answer (84 bytes): header, `result_code` 66/2 A, `mac`
//! 68/16 A.
//!
//! # The daily confirmation file
//!
//! Fixed-width lines of [`CONFIRMATION_WIDTH`] bytes (space-padded) ending
//! in `\n`, in the kinds above, without MAC: one header record
//! ([`CONFIRMATION_HEADER`]), one detail record per credit of the day
//! ([`CONFIRMATION_DETAIL`]), one trailer record with the count and the
//! total in minor units ([`CONFIRMATION_TRAILER`]).

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sha2::Sha256;

/// How a field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Printable ASCII, left-justified, space-padded.
    Alpha,
    /// ASCII digits, right-justified, zero-padded.
    Numeric,
    /// UTF-8, left-justified, space-padded, width in bytes.
    Text,
}

/// One field of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub width: usize,
    pub kind: Kind,
}

/// The layout of one message type (or of one confirmation file record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The message type (the record's first field), or the record type of
    /// a confirmation file line.
    pub msg_type: &'static str,
    /// The record length in bytes, MAC included.
    pub len: usize,
    pub fields: &'static [Field],
}

const fn a(name: &'static str, offset: usize, width: usize) -> Field {
    Field {
        name,
        offset,
        width,
        kind: Kind::Alpha,
    }
}

const fn n(name: &'static str, offset: usize, width: usize) -> Field {
    Field {
        name,
        offset,
        width,
        kind: Kind::Numeric,
    }
}

const fn t(name: &'static str, offset: usize, width: usize) -> Field {
    Field {
        name,
        offset,
        width,
        kind: Kind::Text,
    }
}

/// Message types.
pub const MSG_PAY: &str = "0200";
pub const MSG_PAY_ANSWER: &str = "0210";
pub const MSG_BILLS: &str = "0300";
pub const MSG_BILLS_ANSWER: &str = "0310";
pub const MSG_STATUS: &str = "0400";
pub const MSG_STATUS_ANSWER: &str = "0410";
pub const MSG_ECHO: &str = "0800";
pub const MSG_ECHO_ANSWER: &str = "0810";

/// The width of the MAC field (hex digits).
pub const MAC_WIDTH: usize = 16;
/// The width of the length prefix.
pub const PREFIX_WIDTH: usize = 4;
/// The largest number of bills in a bill answer.
pub const MAX_BILLS: usize = 5;
/// The largest amount a 12-digit minor-unit field holds.
pub const MAX_MINOR: u64 = 999_999_999_999;

/// The header every message starts with (66 bytes).
pub const HEADER_LEN: usize = 66;

macro_rules! header_fields {
    () => {
        [
            n("msg_type", 0, 4),
            a("terminal_id", 4, 16),
            a("reference", 20, 36),
            n("trace", 56, 10),
        ]
    };
}

const fn concat<const A: usize, const B: usize, const C: usize>(
    x: [Field; A],
    y: [Field; B],
) -> [Field; C] {
    assert!(A + B == C, "layout field count");
    let mut out = [n("", 0, 0); C];
    let mut i = 0;
    while i < A {
        out[i] = x[i];
        i += 1;
    }
    while i < C {
        out[i] = y[i - A];
        i += 1;
    }
    out
}

const PAY_FIELDS: [Field; 10] = concat(
    header_fields!(),
    [
        a("biller_id", 66, 16),
        a("account", 82, 20),
        n("amount", 102, 12),
        a("currency", 114, 3),
        a("bill_no", 117, 24),
        a("mac", 141, 16),
    ],
);
/// `0200` pay request.
pub const PAY: Layout = Layout {
    msg_type: MSG_PAY,
    len: 157,
    fields: &PAY_FIELDS,
};

const PAY_ANSWER_FIELDS: [Field; 13] = concat(
    header_fields!(),
    [
        a("result_code", 66, 2),
        a("biller_id", 68, 16),
        a("account", 84, 20),
        n("amount", 104, 12),
        a("currency", 116, 3),
        a("receipt_no", 119, 20),
        n("credited_at", 139, 14),
        a("duplicate", 153, 1),
        a("mac", 154, 16),
    ],
);
/// `0210` pay answer.
pub const PAY_ANSWER: Layout = Layout {
    msg_type: MSG_PAY_ANSWER,
    len: 170,
    fields: &PAY_ANSWER_FIELDS,
};

const STATUS_FIELDS: [Field; 6] =
    concat(header_fields!(), [a("biller_id", 66, 16), a("mac", 82, 16)]);
/// `0400` payment status query.
pub const STATUS: Layout = Layout {
    msg_type: MSG_STATUS,
    len: 98,
    fields: &STATUS_FIELDS,
};

const STATUS_ANSWER_FIELDS: [Field; 14] = concat(
    header_fields!(),
    [
        a("result_code", 66, 2),
        a("state", 68, 1),
        a("biller_id", 69, 16),
        a("account", 85, 20),
        n("amount", 105, 12),
        a("currency", 117, 3),
        a("receipt_no", 120, 20),
        n("credited_at", 140, 14),
        a("reject_code", 154, 2),
        a("mac", 156, 16),
    ],
);
/// `0410` payment status answer.
pub const STATUS_ANSWER: Layout = Layout {
    msg_type: MSG_STATUS_ANSWER,
    len: 172,
    fields: &STATUS_ANSWER_FIELDS,
};

const BILLS_FIELDS: [Field; 7] = concat(
    header_fields!(),
    [
        a("biller_id", 66, 16),
        a("account", 82, 20),
        a("mac", 102, 16),
    ],
);
/// `0300` bill query.
pub const BILLS: Layout = Layout {
    msg_type: MSG_BILLS,
    len: 118,
    fields: &BILLS_FIELDS,
};

/// The field names of bill slot `i` (0-based): bill number, amount due,
/// due date.
pub const BILL_SLOT_FIELDS: [[&str; 3]; MAX_BILLS] = [
    ["bill_no_1", "amount_due_1", "due_date_1"],
    ["bill_no_2", "amount_due_2", "due_date_2"],
    ["bill_no_3", "amount_due_3", "due_date_3"],
    ["bill_no_4", "amount_due_4", "due_date_4"],
    ["bill_no_5", "amount_due_5", "due_date_5"],
];

const BILLS_ANSWER_FIELDS: [Field; 26] = concat(
    header_fields!(),
    [
        a("result_code", 66, 2),
        a("biller_id", 68, 16),
        a("account", 84, 20),
        t("customer_name", 104, 40),
        a("currency", 144, 3),
        n("bill_count", 147, 1),
        a("bill_no_1", 148, 24),
        n("amount_due_1", 172, 12),
        n("due_date_1", 184, 8),
        a("bill_no_2", 192, 24),
        n("amount_due_2", 216, 12),
        n("due_date_2", 228, 8),
        a("bill_no_3", 236, 24),
        n("amount_due_3", 260, 12),
        n("due_date_3", 272, 8),
        a("bill_no_4", 280, 24),
        n("amount_due_4", 304, 12),
        n("due_date_4", 316, 8),
        a("bill_no_5", 324, 24),
        n("amount_due_5", 348, 12),
        n("due_date_5", 360, 8),
        a("mac", 368, 16),
    ],
);
/// `0310` bill answer.
pub const BILLS_ANSWER: Layout = Layout {
    msg_type: MSG_BILLS_ANSWER,
    len: 384,
    fields: &BILLS_ANSWER_FIELDS,
};

const ECHO_FIELDS: [Field; 6] = concat(header_fields!(), [n("sent_at", 66, 14), a("mac", 80, 16)]);
/// `0800` echo (health check).
pub const ECHO: Layout = Layout {
    msg_type: MSG_ECHO,
    len: 96,
    fields: &ECHO_FIELDS,
};

const ECHO_ANSWER_FIELDS: [Field; 6] = concat(
    header_fields!(),
    [a("result_code", 66, 2), a("mac", 68, 16)],
);
/// `0810` echo answer.
pub const ECHO_ANSWER: Layout = Layout {
    msg_type: MSG_ECHO_ANSWER,
    len: 84,
    fields: &ECHO_ANSWER_FIELDS,
};

/// Every message layout.
pub const MESSAGES: [&Layout; 8] = [
    &PAY,
    &PAY_ANSWER,
    &STATUS,
    &STATUS_ANSWER,
    &BILLS,
    &BILLS_ANSWER,
    &ECHO,
    &ECHO_ANSWER,
];

/// The largest record of the protocol; a longer length prefix is refused.
pub const MAX_RECORD: usize = 384;

/// The layout of a message type.
pub fn layout_for(msg_type: &str) -> Option<&'static Layout> {
    MESSAGES.iter().copied().find(|l| l.msg_type == msg_type)
}

/// The message type that answers `request_type` (`0200` → `0210`).
pub fn answer_type(request_type: &str) -> Option<&'static str> {
    match request_type {
        MSG_PAY => Some(MSG_PAY_ANSWER),
        MSG_STATUS => Some(MSG_STATUS_ANSWER),
        MSG_BILLS => Some(MSG_BILLS_ANSWER),
        MSG_ECHO => Some(MSG_ECHO_ANSWER),
        _ => None,
    }
}

/// The width of every confirmation file line (without its `\n`).
pub const CONFIRMATION_WIDTH: usize = 106;

const CONFIRMATION_HEADER_FIELDS: [Field; 4] = [
    a("record_type", 0, 1),
    a("biller_id", 1, 16),
    n("business_date", 17, 8),
    a("currency", 25, 3),
];
/// Confirmation file header record (`H`); filler up to the line width.
pub const CONFIRMATION_HEADER: Layout = Layout {
    msg_type: "H",
    len: CONFIRMATION_WIDTH,
    fields: &CONFIRMATION_HEADER_FIELDS,
};

const CONFIRMATION_DETAIL_FIELDS: [Field; 7] = [
    a("record_type", 0, 1),
    a("reference", 1, 36),
    a("receipt_no", 37, 20),
    a("account", 57, 20),
    n("amount", 77, 12),
    a("currency", 89, 3),
    n("credited_at", 92, 14),
];
/// Confirmation file detail record (`D`), one per credit.
pub const CONFIRMATION_DETAIL: Layout = Layout {
    msg_type: "D",
    len: CONFIRMATION_WIDTH,
    fields: &CONFIRMATION_DETAIL_FIELDS,
};

const CONFIRMATION_TRAILER_FIELDS: [Field; 3] =
    [a("record_type", 0, 1), n("count", 1, 8), n("total", 9, 15)];
/// Confirmation file trailer record (`T`): count and total (minor units).
pub const CONFIRMATION_TRAILER: Layout = Layout {
    msg_type: "T",
    len: CONFIRMATION_WIDTH,
    fields: &CONFIRMATION_TRAILER_FIELDS,
};

// ------------------------------------------------------------------ errors

/// A value that cannot be written in its field; nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct EncodeError {
    pub field: &'static str,
    pub reason: String,
}

/// A record that cannot be read; the message names the field and offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed record: {0}")]
pub struct DecodeError(pub String);

fn encode_error(field: &'static str, reason: impl Into<String>) -> EncodeError {
    EncodeError {
        field,
        reason: reason.into(),
    }
}

// --------------------------------------------------------------------- MAC

type HmacSha256 = Hmac<Sha256>;

fn hmac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// The MAC of `covered`: the first 8 bytes of HMAC-SHA256, uppercase hex.
pub fn mac(secret: &[u8], covered: &[u8]) -> String {
    let mut m = hmac(secret);
    m.update(covered);
    hex::encode_upper(&m.finalize().into_bytes()[..MAC_WIDTH / 2])
}

/// Checks a MAC in constant time; a MAC that is not 16 hex digits is wrong.
pub fn verify_mac(secret: &[u8], covered: &[u8], mac_hex: &str) -> bool {
    if mac_hex.len() != MAC_WIDTH {
        return false;
    }
    let Ok(given) = hex::decode(mac_hex) else {
        return false;
    };
    let mut m = hmac(secret);
    m.update(covered);
    m.verify_truncated_left(&given).is_ok()
}

// ----------------------------------------------------------------- framing

/// Prefixes a record with its 4-digit length.
pub fn frame(record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_WIDTH + record.len());
    out.extend_from_slice(format!("{:04}", record.len()).as_bytes());
    out.extend_from_slice(record);
    out
}

/// Reads a length prefix: 4 ASCII digits, at most [`MAX_RECORD`], at least
/// a header.
pub fn parse_prefix(prefix: [u8; PREFIX_WIDTH]) -> Result<usize, DecodeError> {
    if !prefix.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError(format!(
            "length prefix {:?} is not 4 digits",
            String::from_utf8_lossy(&prefix)
        )));
    }
    let len = prefix
        .iter()
        .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
    if !(HEADER_LEN..=MAX_RECORD).contains(&len) {
        return Err(DecodeError(format!(
            "length prefix {len} outside {HEADER_LEN}..={MAX_RECORD}"
        )));
    }
    Ok(len)
}

/// Splits one framed record off the front of `bytes` (for tests and
/// tools; the link reads the prefix, then the record).
pub fn unframe(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let prefix: [u8; PREFIX_WIDTH] = bytes
        .get(..PREFIX_WIDTH)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| DecodeError("shorter than the length prefix".into()))?;
    let len = parse_prefix(prefix)?;
    let rest = &bytes[PREFIX_WIDTH..];
    if rest.len() < len {
        return Err(DecodeError(format!(
            "length prefix says {len} bytes, only {} follow",
            rest.len()
        )));
    }
    Ok(rest.split_at(len))
}

// ------------------------------------------------------------ writer/reader

/// Writes a record field by field; unwritten fields are blank (spaces for
/// `A`/`T`, zeros for `N`).
#[derive(Debug, Clone)]
pub struct Writer {
    layout: &'static Layout,
    buf: Vec<u8>,
}

impl Writer {
    /// A blank record of `layout`, its first field (`msg_type` or
    /// `record_type`) written.
    pub fn new(layout: &'static Layout) -> Writer {
        let mut buf = vec![b' '; layout.len];
        for f in layout.fields.iter().filter(|f| f.kind == Kind::Numeric) {
            buf[f.offset..f.offset + f.width].fill(b'0');
        }
        let first = &layout.fields[0];
        buf[first.offset..first.offset + layout.msg_type.len()]
            .copy_from_slice(layout.msg_type.as_bytes());
        Writer { layout, buf }
    }

    fn field(&self, name: &'static str, kind: Kind) -> Result<Field, EncodeError> {
        let f = self
            .layout
            .fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| encode_error(name, format!("not in layout {}", self.layout.msg_type)))?;
        if f.kind != kind {
            return Err(encode_error(name, format!("is {:?}, not {kind:?}", f.kind)));
        }
        Ok(*f)
    }

    /// Writes an `A` field: printable ASCII, not ending in a space, at
    /// most the field's width.
    pub fn alpha(&mut self, name: &'static str, value: &str) -> Result<&mut Writer, EncodeError> {
        let f = self.field(name, Kind::Alpha)?;
        if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(encode_error(name, "must be printable ASCII"));
        }
        if value.ends_with(' ') {
            return Err(encode_error(name, "must not end with a space"));
        }
        if value.len() > f.width {
            return Err(encode_error(
                name,
                format!("{} characters, at most {}", value.len(), f.width),
            ));
        }
        self.buf[f.offset..f.offset + value.len()].copy_from_slice(value.as_bytes());
        Ok(self)
    }

    /// Writes an `N` field.
    pub fn numeric(&mut self, name: &'static str, value: u64) -> Result<&mut Writer, EncodeError> {
        let f = self.field(name, Kind::Numeric)?;
        let digits = format!("{value:0width$}", width = f.width);
        if digits.len() > f.width {
            return Err(encode_error(
                name,
                format!("{value} has more than {} digits", f.width),
            ));
        }
        self.buf[f.offset..f.offset + f.width].copy_from_slice(digits.as_bytes());
        Ok(self)
    }

    /// Writes a `T` field, cut at a character boundary to fit (names are
    /// display text: a shortened name is better than no answer).
    pub fn text(&mut self, name: &'static str, value: &str) -> Result<&mut Writer, EncodeError> {
        let f = self.field(name, Kind::Text)?;
        if value.chars().any(char::is_control) {
            return Err(encode_error(name, "must not hold control characters"));
        }
        let mut end = value.len().min(f.width);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let cut = value[..end].trim_end_matches(' ');
        self.buf[f.offset..f.offset + cut.len()].copy_from_slice(cut.as_bytes());
        Ok(self)
    }

    /// The record, its MAC written, framed with its length prefix.
    pub fn finish(mut self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let f = self.field("mac", Kind::Alpha)?;
        let m = mac(secret, &self.buf[..f.offset]);
        self.buf[f.offset..f.offset + f.width].copy_from_slice(m.as_bytes());
        Ok(frame(&self.buf))
    }

    /// The record as it stands, without MAC nor prefix (confirmation file
    /// lines).
    pub fn into_record(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads the fields of one record (without its length prefix).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    layout: &'static Layout,
    record: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Picks the layout by the record's message type and checks the
    /// record's length against it.
    pub fn new(record: &'a [u8]) -> Result<Reader<'a>, DecodeError> {
        let msg_type = record
            .get(..4)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| DecodeError("field `msg_type` at offset 0: missing".into()))?;
        let layout = layout_for(msg_type).ok_or_else(|| {
            DecodeError(format!(
                "field `msg_type` at offset 0: unknown message type {msg_type:?}"
            ))
        })?;
        Reader::with_layout(layout, record)
    }

    /// Reads `record` as a `layout` record (its length must match).
    pub fn with_layout(
        layout: &'static Layout,
        record: &'a [u8],
    ) -> Result<Reader<'a>, DecodeError> {
        if record.len() != layout.len {
            return Err(DecodeError(format!(
                "a {} record is {} bytes, got {}",
                layout.msg_type,
                layout.len,
                record.len()
            )));
        }
        if !record.starts_with(layout.msg_type.as_bytes()) {
            return Err(DecodeError(format!(
                "field `{}` at offset 0: expected {:?}",
                layout.fields[0].name, layout.msg_type
            )));
        }
        Ok(Reader { layout, record })
    }

    /// The record's layout.
    pub fn layout(&self) -> &'static Layout {
        self.layout
    }

    fn raw(&self, name: &str) -> Result<(Field, &'a [u8]), DecodeError> {
        let f = self
            .layout
            .fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| {
                DecodeError(format!(
                    "field `{name}` is not in layout {}",
                    self.layout.msg_type
                ))
            })?;
        Ok((*f, &self.record[f.offset..f.offset + f.width]))
    }

    /// An `A` field, trailing spaces removed.
    pub fn alpha(&self, name: &str) -> Result<&'a str, DecodeError> {
        let (f, raw) = self.raw(name)?;
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err(bad(&f, raw, "is not printable ASCII"));
        }
        // Printable ASCII is UTF-8.
        let s = std::str::from_utf8(raw).map_err(|_| bad(&f, raw, "is not ASCII"))?;
        Ok(s.trim_end_matches(' '))
    }

    /// An `N` field: digits only.
    pub fn numeric(&self, name: &str) -> Result<u64, DecodeError> {
        let (f, raw) = self.raw(name)?;
        if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) || raw.len() > 19 {
            return Err(bad(&f, raw, "is not numeric"));
        }
        Ok(raw
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
    }

    /// A `T` field: UTF-8, trailing spaces removed.
    pub fn text(&self, name: &str) -> Result<String, DecodeError> {
        let (f, raw) = self.raw(name)?;
        let s = std::str::from_utf8(raw).map_err(|_| bad(&f, raw, "is not UTF-8"))?;
        if s.chars().any(char::is_control) {
            return Err(bad(&f, raw, "holds control characters"));
        }
        Ok(s.trim_end_matches(' ').to_string())
    }

    /// An `N` amount in minor units, as a decimal with 2 decimals.
    pub fn amount(&self, name: &str) -> Result<Decimal, DecodeError> {
        Ok(from_minor(self.numeric(name)?))
    }

    /// An `N` time (`YYYYMMDDhhmmss`, UTC); all zeros is absent.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, DecodeError> {
        let (f, raw) = self.raw(name)?;
        self.numeric(name)?;
        if raw.iter().all(|b| *b == b'0') {
            return Ok(None);
        }
        let s = std::str::from_utf8(raw).map_err(|_| bad(&f, raw, "is not ASCII"))?;
        NaiveDateTime::parse_from_str(s, TIME_FORMAT)
            .map(|t| Some(t.and_utc()))
            .map_err(|_| bad(&f, raw, "is not a YYYYMMDDhhmmss time"))
    }

    /// An `N` date (`YYYYMMDD`).
    pub fn date(&self, name: &str) -> Result<NaiveDate, DecodeError> {
        let (f, raw) = self.raw(name)?;
        self.numeric(name)?;
        let s = std::str::from_utf8(raw).map_err(|_| bad(&f, raw, "is not ASCII"))?;
        NaiveDate::parse_from_str(s, DATE_FORMAT)
            .map_err(|_| bad(&f, raw, "is not a YYYYMMDD date"))
    }

    /// Whether the record's MAC is right under `secret`.
    pub fn mac_ok(&self, secret: &[u8]) -> bool {
        match self.raw("mac") {
            Ok((f, raw)) => std::str::from_utf8(raw)
                .is_ok_and(|m| verify_mac(secret, &self.record[..f.offset], m)),
            Err(_) => false,
        }
    }

    /// The header fields (read without checking the MAC: for matching an
    /// answer to its request only).
    pub fn header(&self) -> Result<Header, DecodeError> {
        Ok(Header {
            terminal_id: self.alpha("terminal_id")?.to_string(),
            reference: self.alpha("reference")?.to_string(),
            trace: self.numeric("trace")?,
        })
    }
}

fn bad(f: &Field, raw: &[u8], what: &str) -> DecodeError {
    DecodeError(format!(
        "field `{}` at offset {} (width {}): {:?} {what}",
        f.name,
        f.offset,
        f.width,
        String::from_utf8_lossy(raw)
    ))
}

// ----------------------------------------------------------------- values

/// `YYYYMMDDhhmmss`.
pub const TIME_FORMAT: &str = "%Y%m%d%H%M%S";
/// `YYYYMMDD`.
pub const DATE_FORMAT: &str = "%Y%m%d";

/// A time as the protocol writes it (UTC, to the second).
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

fn time_number(t: &DateTime<Utc>) -> u64 {
    // 14 digits always fit in u64; a year past 9999 is not a protocol time.
    format_time(t).parse().unwrap_or(0)
}

fn date_number(d: &NaiveDate) -> u64 {
    d.format(DATE_FORMAT).to_string().parse().unwrap_or(0)
}

/// An amount in minor units (hundredths), exactly: a negative amount, one
/// with more than 2 decimals or one over 12 digits is refused, never
/// rounded.
pub fn to_minor(amount: Decimal) -> Result<u64, EncodeError> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(encode_error("amount", format!("{amount} is negative")));
    }
    if amount.normalize().scale() > 2 {
        return Err(encode_error(
            "amount",
            format!("{amount} has more than 2 decimals (not sent: never rounded)"),
        ));
    }
    let minor = amount
        .checked_mul(Decimal::ONE_HUNDRED)
        .map(|m| m.normalize())
        .filter(|m| m.scale() == 0)
        .and_then(|m| m.to_u64())
        .filter(|m| *m <= MAX_MINOR)
        .ok_or_else(|| encode_error("amount", format!("{amount} does not fit 12 digits")))?;
    Ok(minor)
}

/// Minor units as a decimal with 2 decimals.
pub fn from_minor(minor: u64) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(minor), 2)
}

// --------------------------------------------------------------- messages

/// The header fields after the message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Our terminal id (the `key_id`).
    pub terminal_id: String,
    /// OUR reference.
    pub reference: String,
    /// Our trace number (unique per request, echoed in the answer).
    pub trace: u64,
}

impl Header {
    fn write(&self, w: &mut Writer) -> Result<(), EncodeError> {
        w.alpha("terminal_id", &self.terminal_id)?;
        w.alpha("reference", &self.reference)?;
        w.numeric("trace", self.trace)?;
        Ok(())
    }
}

/// `0200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequest {
    pub header: Header,
    pub biller_id: String,
    pub account: String,
    pub amount: Decimal,
    pub currency: String,
    pub bill_no: Option<String>,
}

impl PayRequest {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&PAY);
        self.header.write(&mut w)?;
        w.alpha("biller_id", &self.biller_id)?
            .alpha("account", &self.account)?
            .numeric("amount", to_minor(self.amount)?)?
            .alpha("currency", &self.currency)?
            .alpha("bill_no", self.bill_no.as_deref().unwrap_or(""))?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<PayRequest, DecodeError> {
        expect(r, &PAY)?;
        let bill_no = r.alpha("bill_no")?;
        Ok(PayRequest {
            header: r.header()?,
            biller_id: r.alpha("biller_id")?.to_string(),
            account: r.alpha("account")?.to_string(),
            amount: r.amount("amount")?,
            currency: r.alpha("currency")?.to_string(),
            bill_no: (!bill_no.is_empty()).then(|| bill_no.to_string()),
        })
    }
}

/// `0210`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayAnswer {
    pub header: Header,
    pub result_code: String,
    pub biller_id: String,
    pub account: String,
    pub amount: Decimal,
    pub currency: String,
    /// Empty unless credited.
    pub receipt_no: String,
    pub credited_at: Option<DateTime<Utc>>,
    pub duplicate: bool,
}

impl PayAnswer {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&PAY_ANSWER);
        self.header.write(&mut w)?;
        w.alpha("result_code", &self.result_code)?
            .alpha("biller_id", &self.biller_id)?
            .alpha("account", &self.account)?
            .numeric("amount", to_minor(self.amount)?)?
            .alpha("currency", &self.currency)?
            .alpha("receipt_no", &self.receipt_no)?
            .numeric(
                "credited_at",
                self.credited_at.as_ref().map_or(0, time_number),
            )?
            .alpha("duplicate", if self.duplicate { "Y" } else { "N" })?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<PayAnswer, DecodeError> {
        expect(r, &PAY_ANSWER)?;
        Ok(PayAnswer {
            header: r.header()?,
            result_code: r.alpha("result_code")?.to_string(),
            biller_id: r.alpha("biller_id")?.to_string(),
            account: r.alpha("account")?.to_string(),
            amount: r.amount("amount")?,
            currency: r.alpha("currency")?.to_string(),
            receipt_no: r.alpha("receipt_no")?.to_string(),
            credited_at: r.time("credited_at")?,
            duplicate: yes_no(r, "duplicate")?,
        })
    }
}

/// `0400`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    pub header: Header,
    pub biller_id: String,
}

impl StatusRequest {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&STATUS);
        self.header.write(&mut w)?;
        w.alpha("biller_id", &self.biller_id)?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<StatusRequest, DecodeError> {
        expect(r, &STATUS)?;
        Ok(StatusRequest {
            header: r.header()?,
            biller_id: r.alpha("biller_id")?.to_string(),
        })
    }
}

/// What the biller says a payment has become (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    Credited,
    Rejected,
    Pending,
}

impl PaymentState {
    fn code(self) -> &'static str {
        match self {
            PaymentState::Credited => "C",
            PaymentState::Rejected => "R",
            PaymentState::Pending => "P",
        }
    }
}

/// `0410`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAnswer {
    pub header: Header,
    pub result_code: String,
    /// `None` when the payment was not found.
    pub state: Option<PaymentState>,
    pub biller_id: String,
    pub account: String,
    pub amount: Decimal,
    pub currency: String,
    pub receipt_no: String,
    pub credited_at: Option<DateTime<Utc>>,
    pub reject_code: String,
}

impl StatusAnswer {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&STATUS_ANSWER);
        self.header.write(&mut w)?;
        w.alpha("result_code", &self.result_code)?
            .alpha("state", self.state.map_or("", PaymentState::code))?
            .alpha("biller_id", &self.biller_id)?
            .alpha("account", &self.account)?
            .numeric("amount", to_minor(self.amount)?)?
            .alpha("currency", &self.currency)?
            .alpha("receipt_no", &self.receipt_no)?
            .numeric(
                "credited_at",
                self.credited_at.as_ref().map_or(0, time_number),
            )?
            .alpha("reject_code", &self.reject_code)?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<StatusAnswer, DecodeError> {
        expect(r, &STATUS_ANSWER)?;
        let state = match r.alpha("state")? {
            "" => None,
            "C" => Some(PaymentState::Credited),
            "R" => Some(PaymentState::Rejected),
            "P" => Some(PaymentState::Pending),
            other => {
                return Err(DecodeError(format!(
                    "field `state` at offset 68: unknown state {other:?}"
                )))
            }
        };
        Ok(StatusAnswer {
            header: r.header()?,
            result_code: r.alpha("result_code")?.to_string(),
            state,
            biller_id: r.alpha("biller_id")?.to_string(),
            account: r.alpha("account")?.to_string(),
            amount: r.amount("amount")?,
            currency: r.alpha("currency")?.to_string(),
            receipt_no: r.alpha("receipt_no")?.to_string(),
            credited_at: r.time("credited_at")?,
            reject_code: r.alpha("reject_code")?.to_string(),
        })
    }
}

/// `0300`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillsRequest {
    pub header: Header,
    pub biller_id: String,
    pub account: String,
}

impl BillsRequest {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&BILLS);
        self.header.write(&mut w)?;
        w.alpha("biller_id", &self.biller_id)?
            .alpha("account", &self.account)?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<BillsRequest, DecodeError> {
        expect(r, &BILLS)?;
        Ok(BillsRequest {
            header: r.header()?,
            biller_id: r.alpha("biller_id")?.to_string(),
            account: r.alpha("account")?.to_string(),
        })
    }
}

/// One bill of a bill answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireBill {
    pub bill_no: String,
    pub amount_due: Decimal,
    pub due_date: NaiveDate,
}

/// `0310`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillsAnswer {
    pub header: Header,
    pub result_code: String,
    pub biller_id: String,
    pub account: String,
    pub customer_name: String,
    pub currency: String,
    /// At most [`MAX_BILLS`].
    pub bills: Vec<WireBill>,
}

impl BillsAnswer {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        if self.bills.len() > MAX_BILLS {
            return Err(encode_error(
                "bill_count",
                format!("{} bills, at most {MAX_BILLS}", self.bills.len()),
            ));
        }
        let mut w = Writer::new(&BILLS_ANSWER);
        self.header.write(&mut w)?;
        w.alpha("result_code", &self.result_code)?
            .alpha("biller_id", &self.biller_id)?
            .alpha("account", &self.account)?
            .text("customer_name", &self.customer_name)?
            .alpha("currency", &self.currency)?
            .numeric("bill_count", self.bills.len() as u64)?;
        for (bill, [no, amount, due]) in self.bills.iter().zip(BILL_SLOT_FIELDS) {
            w.alpha(no, &bill.bill_no)?
                .numeric(amount, to_minor(bill.amount_due)?)?
                .numeric(due, date_number(&bill.due_date))?;
        }
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<BillsAnswer, DecodeError> {
        expect(r, &BILLS_ANSWER)?;
        let count = r.numeric("bill_count")? as usize;
        if count > MAX_BILLS {
            return Err(DecodeError(format!(
                "field `bill_count` at offset 147: {count} is more than {MAX_BILLS}"
            )));
        }
        let bills = BILL_SLOT_FIELDS[..count]
            .iter()
            .map(|[no, amount, due]| {
                Ok(WireBill {
                    bill_no: r.alpha(no)?.to_string(),
                    amount_due: r.amount(amount)?,
                    due_date: r.date(due)?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(BillsAnswer {
            header: r.header()?,
            result_code: r.alpha("result_code")?.to_string(),
            biller_id: r.alpha("biller_id")?.to_string(),
            account: r.alpha("account")?.to_string(),
            customer_name: r.text("customer_name")?,
            currency: r.alpha("currency")?.to_string(),
            bills,
        })
    }
}

/// `0800`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoRequest {
    pub header: Header,
    pub sent_at: DateTime<Utc>,
}

impl EchoRequest {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&ECHO);
        self.header.write(&mut w)?;
        w.numeric("sent_at", time_number(&self.sent_at))?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<EchoRequest, DecodeError> {
        expect(r, &ECHO)?;
        Ok(EchoRequest {
            header: r.header()?,
            sent_at: r
                .time("sent_at")?
                .ok_or_else(|| DecodeError("field `sent_at` at offset 66: zeros".into()))?,
        })
    }
}

/// `0810`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoAnswer {
    pub header: Header,
    pub result_code: String,
}

impl EchoAnswer {
    pub fn encode(&self, secret: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut w = Writer::new(&ECHO_ANSWER);
        self.header.write(&mut w)?;
        w.alpha("result_code", &self.result_code)?;
        w.finish(secret)
    }

    pub fn decode(r: &Reader<'_>) -> Result<EchoAnswer, DecodeError> {
        expect(r, &ECHO_ANSWER)?;
        Ok(EchoAnswer {
            header: r.header()?,
            result_code: r.alpha("result_code")?.to_string(),
        })
    }
}

fn expect(r: &Reader<'_>, layout: &'static Layout) -> Result<(), DecodeError> {
    if r.layout().msg_type == layout.msg_type {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "field `msg_type` at offset 0: expected {}, got {}",
            layout.msg_type,
            r.layout().msg_type
        )))
    }
}

fn yes_no(r: &Reader<'_>, name: &str) -> Result<bool, DecodeError> {
    match r.alpha(name)? {
        "Y" => Ok(true),
        "N" | "" => Ok(false),
        other => Err(DecodeError(format!(
            "field `{name}`: {other:?} is not Y or N"
        ))),
    }
}

/// One record of the daily confirmation file, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmationLine {
    Header {
        biller_id: String,
        business_date: NaiveDate,
        currency: String,
    },
    Detail {
        reference: String,
        receipt_no: String,
        account: String,
        amount: Decimal,
        currency: String,
        credited_at: DateTime<Utc>,
    },
    Trailer {
        count: u64,
        total: Decimal,
    },
}

impl ConfirmationLine {
    /// Writes the line (without its `\n`).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(match self {
            ConfirmationLine::Header {
                biller_id,
                business_date,
                currency,
            } => {
                let mut w = Writer::new(&CONFIRMATION_HEADER);
                w.alpha("biller_id", biller_id)?
                    .numeric("business_date", date_number(business_date))?
                    .alpha("currency", currency)?;
                w.into_record()
            }
            ConfirmationLine::Detail {
                reference,
                receipt_no,
                account,
                amount,
                currency,
                credited_at,
            } => {
                let mut w = Writer::new(&CONFIRMATION_DETAIL);
                w.alpha("reference", reference)?
                    .alpha("receipt_no", receipt_no)?
                    .alpha("account", account)?
                    .numeric("amount", to_minor(*amount)?)?
                    .alpha("currency", currency)?
                    .numeric("credited_at", time_number(credited_at))?;
                w.into_record()
            }
            ConfirmationLine::Trailer { count, total } => {
                let mut w = Writer::new(&CONFIRMATION_TRAILER);
                w.numeric("count", *count)?
                    .numeric("total", to_minor(*total)?)?;
                w.into_record()
            }
        })
    }

    /// Reads one line (without its `\n`).
    pub fn decode(line: &[u8]) -> Result<ConfirmationLine, DecodeError> {
        let layout = match line.first() {
            Some(b'H') => &CONFIRMATION_HEADER,
            Some(b'D') => &CONFIRMATION_DETAIL,
            Some(b'T') => &CONFIRMATION_TRAILER,
            _ => {
                return Err(DecodeError(
                    "field `record_type` at offset 0: not H, D or T".into(),
                ))
            }
        };
        let r = Reader::with_layout(layout, line)?;
        Ok(match layout.msg_type {
            "H" => ConfirmationLine::Header {
                biller_id: r.alpha("biller_id")?.to_string(),
                business_date: r.date("business_date")?,
                currency: r.alpha("currency")?.to_string(),
            },
            "D" => ConfirmationLine::Detail {
                reference: r.alpha("reference")?.to_string(),
                receipt_no: r.alpha("receipt_no")?.to_string(),
                account: r.alpha("account")?.to_string(),
                amount: r.amount("amount")?,
                currency: r.alpha("currency")?.to_string(),
                credited_at: r
                    .time("credited_at")?
                    .ok_or_else(|| DecodeError("field `credited_at` at offset 92: zeros".into()))?,
            },
            _ => ConfirmationLine::Trailer {
                count: r.numeric("count")?,
                total: r.amount("total")?,
            },
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Alpha => "A",
            Kind::Numeric => "N",
            Kind::Text => "T",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const REF: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
    const SECRET: &[u8] = b"s3cret";

    /// Pinned by an independent HMAC computation (Python's `hmac`).
    const GOLDEN_PAY: &str = "01570200billclear       0f8fad5b-d9cb-469f-a165-70867728950e0000000042sh-gas          310012345677        000000008850CNY                        BC5832804E744163";
    const GOLDEN_PAY_ANSWER: &str = "01700210billclear       0f8fad5b-d9cb-469f-a165-70867728950e000000004200sh-gas          310012345677        000000008850CNYG000000000001       20261129020304N0BC28DD737432DB6";

    fn header() -> Header {
        Header {
            terminal_id: "billclear".into(),
            reference: REF.into(),
            trace: 42,
        }
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn pay() -> PayRequest {
        PayRequest {
            header: header(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("88.5"),
            currency: "CNY".into(),
            bill_no: None,
        }
    }

    fn record(framed: &[u8]) -> &[u8] {
        let (record, rest) = unframe(framed).unwrap();
        assert!(rest.is_empty());
        record
    }

    #[test]
    fn layouts_are_contiguous_and_end_with_the_mac() {
        for layout in MESSAGES {
            let mut at = 0;
            for f in layout.fields {
                assert_eq!(f.offset, at, "{} {}", layout.msg_type, f.name);
                at += f.width;
            }
            assert_eq!(at, layout.len, "{}", layout.msg_type);
            let last = layout.fields.last().unwrap();
            assert_eq!((last.name, last.width), ("mac", MAC_WIDTH));
            assert_eq!(&layout.fields[..4], &header_fields!()[..]);
            assert!(layout.len <= MAX_RECORD);
            let mut names: Vec<_> = layout.fields.iter().map(|f| f.name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), layout.fields.len(), "{}", layout.msg_type);
        }
        assert_eq!(MESSAGES.iter().map(|l| l.len).max(), Some(MAX_RECORD));
        for layout in [
            &CONFIRMATION_HEADER,
            &CONFIRMATION_DETAIL,
            &CONFIRMATION_TRAILER,
        ] {
            let mut at = 0;
            for f in layout.fields {
                assert_eq!(f.offset, at, "{} {}", layout.msg_type, f.name);
                at += f.width;
            }
            assert!(at <= CONFIRMATION_WIDTH);
        }
        for (request, answer) in [
            (MSG_PAY, MSG_PAY_ANSWER),
            (MSG_STATUS, MSG_STATUS_ANSWER),
            (MSG_BILLS, MSG_BILLS_ANSWER),
            (MSG_ECHO, MSG_ECHO_ANSWER),
        ] {
            assert_eq!(answer_type(request), Some(answer));
        }
        assert_eq!(answer_type(MSG_PAY_ANSWER), None);
    }

    #[test]
    fn pay_request_encodes_to_pinned_bytes() {
        let framed = pay().encode(SECRET).unwrap();
        assert_eq!(String::from_utf8(framed.clone()).unwrap(), GOLDEN_PAY);
        assert_eq!(mac(SECRET, &record(&framed)[..141]), "BC5832804E744163");
        let with_bill = PayRequest {
            bill_no: Some("B31001234567701".into()),
            ..pay()
        };
        let framed = with_bill.encode(SECRET).unwrap();
        assert_eq!(&framed[4 + 117..4 + 141], b"B31001234567701         ");
    }

    #[test]
    fn golden_records_decode() {
        let r = Reader::new(record(GOLDEN_PAY.as_bytes())).unwrap();
        assert!(r.mac_ok(SECRET));
        assert!(!r.mac_ok(b"other"));
        assert_eq!(PayRequest::decode(&r).unwrap(), pay());
        let r = Reader::new(record(GOLDEN_PAY_ANSWER.as_bytes())).unwrap();
        assert!(r.mac_ok(SECRET));
        let a = PayAnswer::decode(&r).unwrap();
        assert_eq!(a.header, header());
        assert_eq!(a.result_code, "00");
        assert_eq!(a.amount, dec("88.50"));
        assert_eq!(a.amount.to_string(), "88.50");
        assert_eq!(a.receipt_no, "G000000000001");
        assert_eq!(
            a.credited_at.map(|t| format_time(&t)).as_deref(),
            Some("20261129020304")
        );
        assert!(!a.duplicate);
        assert_eq!(
            String::from_utf8(a.encode(SECRET).unwrap()).unwrap(),
            GOLDEN_PAY_ANSWER
        );
    }

    #[test]
    fn every_message_round_trips() {
        let at = NaiveDateTime::parse_from_str("20261129020304", TIME_FORMAT)
            .unwrap()
            .and_utc();
        let status = StatusAnswer {
            header: header(),
            result_code: "00".into(),
            state: Some(PaymentState::Rejected),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("0.01"),
            currency: "CNY".into(),
            receipt_no: String::new(),
            credited_at: None,
            reject_code: "15".into(),
        };
        let framed = status.encode(SECRET).unwrap();
        let r = Reader::new(record(&framed)).unwrap();
        assert!(r.mac_ok(SECRET));
        assert_eq!(StatusAnswer::decode(&r).unwrap(), status);
        let bills = BillsAnswer {
            header: header(),
            result_code: "00".into(),
            biller_id: "minhang-gas".into(),
            account: "123456782".into(),
            customer_name: "张秀英".into(),
            currency: "CNY".into(),
            bills: (1..=5)
                .map(|i| WireBill {
                    bill_no: format!("B{i}"),
                    amount_due: Decimal::new(12345 * i, 2),
                    due_date: NaiveDate::from_ymd_opt(2026, 12, i as u32).unwrap(),
                })
                .collect(),
        };
        let framed = bills.encode(SECRET).unwrap();
        assert_eq!(framed.len(), 4 + 384);
        let r = Reader::new(record(&framed)).unwrap();
        assert_eq!(BillsAnswer::decode(&r).unwrap(), bills);
        let too_many = BillsAnswer {
            bills: [bills.bills.clone(), bills.bills.clone()].concat(),
            ..bills.clone()
        };
        assert_eq!(too_many.encode(SECRET).unwrap_err().field, "bill_count");
        let echo = EchoRequest {
            header: header(),
            sent_at: at,
        };
        let r_framed = echo.encode(SECRET).unwrap();
        assert_eq!(
            EchoRequest::decode(&Reader::new(record(&r_framed)).unwrap()).unwrap(),
            echo
        );
        for (framed, len) in [
            (
                StatusRequest {
                    header: header(),
                    biller_id: "sh-gas".into(),
                }
                .encode(SECRET)
                .unwrap(),
                98,
            ),
            (
                BillsRequest {
                    header: header(),
                    biller_id: "sh-gas".into(),
                    account: "310012345677".into(),
                }
                .encode(SECRET)
                .unwrap(),
                118,
            ),
            (
                EchoAnswer {
                    header: header(),
                    result_code: "00".into(),
                }
                .encode(SECRET)
                .unwrap(),
                84,
            ),
        ] {
            assert_eq!(framed.len(), 4 + len);
            assert!(Reader::new(record(&framed)).unwrap().mac_ok(SECRET));
        }
    }

    #[test]
    fn customer_names_are_cut_at_a_character_boundary() {
        let mut w = Writer::new(&BILLS_ANSWER);
        // 14 three-byte characters = 42 bytes: 13 fit in 40.
        w.text("customer_name", &"张".repeat(14)).unwrap();
        let rec = w.into_record();
        let r = Reader::with_layout(&BILLS_ANSWER, &rec).unwrap();
        assert_eq!(r.text("customer_name").unwrap(), "张".repeat(13));
    }

    #[test]
    fn amounts_convert_exactly_or_are_refused() {
        assert_eq!(to_minor(dec("88.5")), Ok(8850));
        assert_eq!(to_minor(dec("88.500")), Ok(8850));
        assert_eq!(to_minor(dec("0.01")), Ok(1));
        assert_eq!(to_minor(dec("7")), Ok(700));
        assert_eq!(to_minor(dec("9999999999.99")), Ok(MAX_MINOR));
        for bad in ["1.005", "-1", "10000000000.00", "0.001"] {
            let e = to_minor(dec(bad)).unwrap_err();
            assert_eq!(e.field, "amount", "{bad}");
        }
        assert!(to_minor(dec("1.005"))
            .unwrap_err()
            .reason
            .contains("more than 2 decimals"));
        assert_eq!(from_minor(8850).to_string(), "88.50");
        assert_eq!(from_minor(0).to_string(), "0.00");
    }

    #[test]
    fn unwritable_values_are_refused_naming_the_field() {
        let long = PayRequest {
            account: "1".repeat(21),
            ..pay()
        };
        assert_eq!(long.encode(SECRET).unwrap_err().field, "account");
        let wide = PayRequest {
            header: Header {
                reference: "x".repeat(37),
                ..header()
            },
            ..pay()
        };
        assert_eq!(wide.encode(SECRET).unwrap_err().field, "reference");
        let chinese = PayRequest {
            biller_id: "燃气".into(),
            ..pay()
        };
        assert_eq!(chinese.encode(SECRET).unwrap_err().field, "biller_id");
        let spaced = PayRequest {
            account: "3100 ".into(),
            ..pay()
        };
        assert_eq!(spaced.encode(SECRET).unwrap_err().field, "account");
        let trace = PayRequest {
            header: Header {
                trace: 10_000_000_000,
                ..header()
            },
            ..pay()
        };
        assert_eq!(trace.encode(SECRET).unwrap_err().field, "trace");
    }

    fn decode_err(framed: &str) -> String {
        let r = unframe(framed.as_bytes()).and_then(|(rec, _)| {
            let r = Reader::new(rec)?;
            PayAnswer::decode(&r).map(|_| ())
        });
        r.unwrap_err().0
    }

    fn patch(at: usize, with: &str) -> String {
        let mut s = GOLDEN_PAY_ANSWER.to_string();
        s.replace_range(4 + at..4 + at + with.len(), with);
        s
    }

    #[test]
    fn malformed_records_are_refused_naming_field_and_offset() {
        let e = decode_err(&patch(104, "00000000885A"));
        assert!(
            e.contains("`amount`") && e.contains("offset 104") && e.contains("not numeric"),
            "{e}"
        );
        let e = decode_err(&patch(139, "20261340020304"));
        assert!(
            e.contains("`credited_at`") && e.contains("offset 139"),
            "{e}"
        );
        let e = decode_err(&patch(56, "00000000 2"));
        assert!(e.contains("`trace`") && e.contains("offset 56"), "{e}");
        let e = decode_err(&patch(153, "X"));
        assert!(e.contains("`duplicate`"), "{e}");
        let e = decode_err(&patch(0, "0299"));
        assert!(e.contains("`msg_type`") && e.contains("0299"), "{e}");
        let mut non_ascii = GOLDEN_PAY_ANSWER.as_bytes().to_vec();
        non_ascii[4 + 70] = 0xC3;
        let e = unframe(&non_ascii)
            .and_then(|(rec, _)| PayAnswer::decode(&Reader::new(rec)?))
            .unwrap_err()
            .0;
        assert!(e.contains("`biller_id`") && e.contains("offset 68"), "{e}");
        // The wrong length for the type, a short frame, a bad prefix.
        let short = format!("0169{}", &GOLDEN_PAY_ANSWER[4..173]);
        assert!(decode_err(&short).contains("is 170 bytes, got 169"));
        assert!(decode_err(&GOLDEN_PAY_ANSWER[..100]).contains("only 96 follow"));
        assert!(decode_err(&format!("01x0{}", &GOLDEN_PAY_ANSWER[4..])).contains("not 4 digits"));
        assert!(parse_prefix(*b"9999").unwrap_err().0.contains("outside"));
        assert!(parse_prefix(*b"0010").is_err());
        assert_eq!(parse_prefix(*b"0384"), Ok(384));
        // A status answer with an unknown state.
        let mut w = Writer::new(&STATUS_ANSWER);
        w.alpha("state", "Z").unwrap();
        let rec = w.into_record();
        let e = StatusAnswer::decode(&Reader::new(&rec).unwrap())
            .unwrap_err()
            .0;
        assert!(e.contains("`state`"), "{e}");
        // A bill count over the slots.
        let mut w = Writer::new(&BILLS_ANSWER);
        w.numeric("bill_count", 7).unwrap();
        let rec = w.into_record();
        let e = BillsAnswer::decode(&Reader::new(&rec).unwrap())
            .unwrap_err()
            .0;
        assert!(e.contains("`bill_count`"), "{e}");
    }

    #[test]
    fn a_tampered_record_fails_its_mac() {
        let tampered = patch(104, "000000008851");
        let (rec, _) = unframe(tampered.as_bytes()).unwrap();
        assert!(!Reader::new(rec).unwrap().mac_ok(SECRET));
        assert!(!verify_mac(SECRET, b"x", "zz"));
        assert!(!verify_mac(
            SECRET,
            b"x",
            &mac(SECRET, b"x").to_lowercase()[..15]
        ));
        assert!(verify_mac(SECRET, b"x", &mac(SECRET, b"x").to_lowercase()));
    }

    #[test]
    fn confirmation_lines_round_trip() {
        let line = ConfirmationLine::Detail {
            reference: REF.into(),
            receipt_no: "G000000000001".into(),
            account: "310012345677".into(),
            amount: dec("88.50"),
            currency: "CNY".into(),
            credited_at: NaiveDateTime::parse_from_str("20261129020304", TIME_FORMAT)
                .unwrap()
                .and_utc(),
        };
        let bytes = line.encode().unwrap();
        assert_eq!(bytes.len(), CONFIRMATION_WIDTH);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!("D{REF}G000000000001       310012345677        000000008850CNY20261129020304")
        );
        assert_eq!(ConfirmationLine::decode(&bytes).unwrap(), line);
        assert!(ConfirmationLine::decode(b"X").is_err());
    }
}
