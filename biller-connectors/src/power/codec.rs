//! The electricity company's wire format: the XML envelope, the bodies of
//! each message type, the string the MAC covers, and the daily confirmation
//! file. The connector and the simulator both use this module, so the two
//! sides cannot drift apart. See [`crate::power`] for the whole schema.
//!
//! Decoding is strict where ambiguity could hide a forgery and lenient where
//! it cannot: the document must be UTF-8, well formed, without DOCTYPE or
//! processing instructions, at most [`MAX_MESSAGE_BYTES`] long, at most
//! [`MAX_DEPTH`] elements deep and [`MAX_ELEMENTS`] elements in all; an
//! element the schema expects once must appear once; leaf text is taken
//! with surrounding XML whitespace trimmed; unknown elements are ignored
//! (they are still covered by the MAC when inside `<Body>`). Every error
//! names the element (`PowerMsg/Body/Amount`) or the byte offset.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use quick_xml::escape::{partial_escape, resolve_predefined_entity};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer, XmlVersion};
use rust_decimal::Decimal;

pub use crate::water::codec::{body_digest, parse_amount};
use crate::Signer;

/// The one endpoint (POST); the message type says what is asked.
pub const PATH_GATEWAY: &str = "/power/gateway";
/// The content type of every message.
pub const CONTENT_TYPE: &str = "application/xml; charset=utf-8";
/// The protocol version, the root's `version` attribute.
pub const PROTOCOL_VERSION: &str = "1";
/// The root element of every message.
pub const ROOT: &str = "PowerMsg";
/// The largest message decoded.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// How deep elements may nest (root = 1).
pub const MAX_DEPTH: usize = 8;
/// How many elements one document may hold.
pub const MAX_ELEMENTS: usize = 20_000;
/// The longest header value (MsgId, Sender, Timestamp, InReplyTo).
pub const MAX_HEADER_VALUE: usize = 128;

/// What a message is. Each request type has one answer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    PayReq,
    PayRsp,
    QryReq,
    QryRsp,
    BillReq,
    BillRsp,
    EchoReq,
    EchoRsp,
}

impl MsgType {
    const ALL: [MsgType; 8] = [
        MsgType::PayReq,
        MsgType::PayRsp,
        MsgType::QryReq,
        MsgType::QryRsp,
        MsgType::BillReq,
        MsgType::BillRsp,
        MsgType::EchoReq,
        MsgType::EchoRsp,
    ];

    /// The wire name, e.g. `PAY_REQ`.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::PayReq => "PAY_REQ",
            MsgType::PayRsp => "PAY_RSP",
            MsgType::QryReq => "QRY_REQ",
            MsgType::QryRsp => "QRY_RSP",
            MsgType::BillReq => "BILL_REQ",
            MsgType::BillRsp => "BILL_RSP",
            MsgType::EchoReq => "ECHO_REQ",
            MsgType::EchoRsp => "ECHO_RSP",
        }
    }

    /// Reads a wire name.
    pub fn parse(s: &str) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The answer type of a request type; `None` for answer types.
    pub fn answer(self) -> Option<MsgType> {
        match self {
            MsgType::PayReq => Some(MsgType::PayRsp),
            MsgType::QryReq => Some(MsgType::QryRsp),
            MsgType::BillReq => Some(MsgType::BillRsp),
            MsgType::EchoReq => Some(MsgType::EchoRsp),
            _ => None,
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that cannot be read; the text names the element or offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct DecodeError(pub String);

// ------------------------------------------------------------------- MAC

/// What the `<Mac>` covers:
/// `"{MsgType}|{Sender}|{MsgId}|{Timestamp}|{InReplyTo}|{hex(sha256(body))}"`
/// where the header values are the trimmed element texts, `InReplyTo` is
/// empty on requests, and `body` is the exact bytes of the `<Body>` element
/// as they stand in the document, from its `<` to the `>` of `</Body>`
/// (or of `<Body/>`). Header values never hold `|` (refused on both sides),
/// so the string is unambiguous.
pub fn string_to_mac(
    msg_type: MsgType,
    sender: &str,
    msg_id: &str,
    timestamp: &str,
    in_reply_to: Option<&str>,
    body: &[u8],
) -> String {
    format!(
        "{}|{sender}|{msg_id}|{timestamp}|{}|{}",
        msg_type.as_str(),
        in_reply_to.unwrap_or_default(),
        body_digest(body)
    )
}

/// The lowercase hex signature of `string_to_mac` under the connector's
/// scheme (HMAC-SHA256 by default; RSA or SM2 as configured).
pub fn mac(signer: &Signer, string_to_mac: &str) -> String {
    signer.sign_hex(string_to_mac.as_bytes())
}

/// A fresh message id: 16 random bytes in lowercase hex.
pub fn new_msg_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The protocol's time format: RFC 3339 with milliseconds, in `offset`.
pub fn format_time(t: &DateTime<Utc>, offset: FixedOffset) -> String {
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether `value` may stand in a header: 1..=128 printable ASCII
/// characters, no `|`, no space.
pub fn valid_header_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_HEADER_VALUE
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b'|')
}

// -------------------------------------------------------------- encoding

/// One element of a body as written: a leaf holding text, or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Leaf(&'static str, String),
    Group(&'static str, Vec<Node>),
}

fn leaf(name: &'static str, value: impl Into<String>) -> Node {
    Node::Leaf(name, value.into())
}

/// The header of a message to send (the MAC is computed on encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutHeader<'a> {
    pub msg_type: MsgType,
    pub sender: &'a str,
    pub msg_id: &'a str,
    pub timestamp: &'a str,
    /// The MsgId answered; `None` on requests.
    pub in_reply_to: Option<&'a str>,
}

/// Every write goes to a `Vec`, which cannot fail.
fn infallible(r: std::io::Result<()>) {
    if let Err(e) = r {
        unreachable!("writing XML into memory failed: {e}")
    }
}

fn write_leaf(w: &mut Writer<&mut Vec<u8>>, name: &str, text: &str) {
    let r = w
        .create_element(name)
        .write_text_content(BytesText::from_escaped(partial_escape(text)))
        .map(|_| ());
    infallible(r);
}

fn write_start(w: &mut Writer<&mut Vec<u8>>, start: BytesStart<'_>) {
    infallible(w.write_event(Event::Start(start)));
}

fn write_end(w: &mut Writer<&mut Vec<u8>>, name: &str) {
    infallible(w.write_event(Event::End(BytesEnd::new(name))));
}

fn write_nodes(w: &mut Writer<&mut Vec<u8>>, nodes: &[Node]) {
    for node in nodes {
        match node {
            Node::Leaf(name, text) => write_leaf(w, name, text),
            Node::Group(name, children) => {
                write_start(w, BytesStart::new(*name));
                write_nodes(w, children);
                write_end(w, name);
            }
        }
    }
}

/// The exact bytes of `<Body>…</Body>` for `nodes` (no whitespace).
pub fn encode_body(nodes: &[Node]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    write_start(&mut w, BytesStart::new("Body"));
    write_nodes(&mut w, nodes);
    write_end(&mut w, "Body");
    out
}

/// A whole message: declaration, root, header with its MAC, body. No
/// whitespace between elements.
pub fn encode_message(header: &OutHeader<'_>, nodes: &[Node], signer: &Signer) -> Vec<u8> {
    let body = encode_body(nodes);
    let mac = mac(
        signer,
        &string_to_mac(
            header.msg_type,
            header.sender,
            header.msg_id,
            header.timestamp,
            header.in_reply_to,
            &body,
        ),
    );
    let mut out = Vec::with_capacity(body.len() + 400);
    let mut w = Writer::new(&mut out);
    infallible(w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))));
    write_start(
        &mut w,
        BytesStart::new(ROOT).with_attributes([("version", PROTOCOL_VERSION)]),
    );
    write_start(&mut w, BytesStart::new("Header"));
    write_leaf(&mut w, "MsgType", header.msg_type.as_str());
    write_leaf(&mut w, "Sender", header.sender);
    write_leaf(&mut w, "MsgId", header.msg_id);
    write_leaf(&mut w, "Timestamp", header.timestamp);
    if let Some(id) = header.in_reply_to {
        write_leaf(&mut w, "InReplyTo", id);
    }
    write_leaf(&mut w, "Mac", &mac);
    write_end(&mut w, "Header");
    out.extend_from_slice(&body);
    let mut w = Writer::new(&mut out);
    write_end(&mut w, ROOT);
    out
}

// -------------------------------------------------------------- decoding

/// An element as read: its name, attributes, trimmed text (leaves) and
/// children, and its path from the root for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub path: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    fn err(&self, what: impl fmt::Display) -> DecodeError {
        DecodeError(format!("element `{}`: {what}", self.path))
    }

    fn missing(&self, name: &str) -> DecodeError {
        DecodeError(format!("element `{}/{name}` is missing", self.path))
    }

    /// An attribute's value.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every child named `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The child named `name`, which may appear at most once.
    pub fn child(&self, name: &str) -> Result<Option<&Element>, DecodeError> {
        let mut found = self.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if let Some(dup) = found.next() {
            return Err(dup.err("appears more than once"));
        }
        Ok(first)
    }

    /// The child named `name`, which must appear exactly once.
    pub fn one(&self, name: &str) -> Result<&Element, DecodeError> {
        self.child(name)?.ok_or_else(|| self.missing(name))
    }

    /// The leaf text of the child `name`; present and not empty.
    pub fn text(&self, name: &str) -> Result<&str, DecodeError> {
        let e = self.one(name)?;
        let text = e.leaf_text()?;
        if text.is_empty() {
            return Err(e.err("is empty"));
        }
        Ok(text)
    }

    /// The leaf text of the child `name`; `None` when absent or empty.
    pub fn opt_text(&self, name: &str) -> Result<Option<&str>, DecodeError> {
        match self.child(name)? {
            None => Ok(None),
            Some(e) => e.leaf_text().map(|t| Some(t).filter(|t| !t.is_empty())),
        }
    }

    fn leaf_text(&self) -> Result<&str, DecodeError> {
        if self.children.is_empty() {
            Ok(&self.text)
        } else {
            Err(self.err("must hold text, not elements"))
        }
    }

    /// A decimal amount written as a plain decimal string ("88.50").
    pub fn amount(&self, name: &str) -> Result<Decimal, DecodeError> {
        let s = self.text(name)?;
        parse_amount(s).ok_or_else(|| {
            DecodeError(format!(
                "element `{}/{name}`: {s:?} is not a decimal amount",
                self.path
            ))
        })
    }

    /// A `YYYY-MM-DD` date.
    pub fn date(&self, name: &str) -> Result<NaiveDate, DecodeError> {
        let s = self.text(name)?;
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            DecodeError(format!(
                "element `{}/{name}`: {s:?} is not a YYYY-MM-DD date",
                self.path
            ))
        })
    }

    /// An RFC 3339 time.
    pub fn time(&self, name: &str) -> Result<DateTime<FixedOffset>, DecodeError> {
        let s = self.text(name)?;
        DateTime::parse_from_rfc3339(s).map_err(|_| {
            DecodeError(format!(
                "element `{}/{name}`: {s:?} is not an RFC 3339 time",
                self.path
            ))
        })
    }

    /// An optional RFC 3339 time.
    pub fn opt_time(&self, name: &str) -> Result<Option<DateTime<FixedOffset>>, DecodeError> {
        match self.opt_text(name)? {
            None => Ok(None),
            Some(_) => self.time(name).map(Some),
        }
    }

    /// An optional `true` / `false`.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, DecodeError> {
        match self.opt_text(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(DecodeError(format!(
                "element `{}/{name}`: {other:?} is not true or false",
                self.path
            ))),
        }
    }
}

/// A parsed document: its root element, and the byte range of the root's
/// child named `span_of` (from its `<` to the end of its end tag).
struct Document {
    root: Element,
    span: Option<std::ops::Range<usize>>,
}

/// XML whitespace (`S` in the XML grammar).
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Parses `bytes` into an element tree, recording the byte range of the
/// root's (unique) child named `span_of`.
fn parse_document(bytes: &[u8], span_of: &str) -> Result<Document, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError(format!(
            "document of {} bytes is larger than {MAX_MESSAGE_BYTES}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError(format!(
            "not UTF-8 at byte {} (only UTF-8 is accepted)",
            e.valid_up_to()
        ))
    })?;
    let mut reader = Reader::from_str(text);
    {
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
    }
    // The open elements, each with the offset of its `<`.
    let mut stack: Vec<(Element, usize)> = Vec::new();
    let mut root: Option<Element> = None;
    let mut span = None;
    let mut count = 0usize;
    let mut seen_markup = false;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            DecodeError(format!(
                "not well-formed XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let at = |what: &str| DecodeError(format!("{what} at byte {before}"));
        match event {
            Event::Decl(decl) => {
                if seen_markup {
                    return Err(at("XML declaration not at the start"));
                }
                let version = decl
                    .version()
                    .map_err(|e| at(&format!("bad XML declaration ({e})")))?;
                if version != "1.0" {
                    return Err(at(&format!("XML version {version:?} (only 1.0)")));
                }
                if let Some(enc) = decl.encoding() {
                    let enc = enc.map_err(|e| at(&format!("bad XML declaration ({e})")))?;
                    if !enc.eq_ignore_ascii_case("utf-8") {
                        return Err(at(&format!("encoding {enc:?} (only UTF-8)")));
                    }
                }
            }
            Event::DocType(_) => return Err(at("DOCTYPE not allowed")),
            Event::PI(_) => return Err(at("processing instruction not allowed")),
            Event::Comment(_) => {}
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(at("content after the root element"));
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(at(&format!("more than {MAX_ELEMENTS} elements")));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(at(&format!("elements nested deeper than {MAX_DEPTH}")));
                }
                let name = start.name().as_ref().to_string();
                if name.is_empty() {
                    return Err(at("an element without a name (`<>`)"));
                }
                let path = match stack.last() {
                    Some((parent, _)) => format!("{}/{name}", parent.path),
                    None => name.clone(),
                };
                let mut attributes = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| at(&format!("bad attribute in `{path}` ({e})")))?;
                    let value = attr
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| at(&format!("bad attribute in `{path}` ({e})")))?;
                    attributes.push((attr.key.as_ref().to_string(), value.into_owned()));
                }
                let element = Element {
                    name,
                    path,
                    attributes,
                    text: String::new(),
                    children: Vec::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    close(
                        &mut stack,
                        &mut root,
                        &mut span,
                        span_of,
                        element,
                        before..after,
                    )?;
                } else {
                    stack.push((element, before));
                }
            }
            Event::End(_) => {
                let Some((element, start)) = stack.pop() else {
                    return Err(at("end tag without a start tag"));
                };
                close(
                    &mut stack,
                    &mut root,
                    &mut span,
                    span_of,
                    element,
                    start..after,
                )?;
            }
            Event::Text(t) => push_text(&mut stack, t.xml10_content(), || at("text"))?,
            Event::CData(t) => push_text(&mut stack, t.xml10_content(), || at("CDATA"))?,
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match resolve_predefined_entity(&r) {
                        Some(s) => Cow::Borrowed(s),
                        None => return Err(at(&format!("unknown entity &{};", &*r))),
                    },
                    Err(e) => return Err(at(&format!("bad character reference ({e})"))),
                };
                push_text(&mut stack, resolved, || at("a reference"))?;
            }
            Event::Eof => break,
        }
        seen_markup = true;
    }
    if let Some((open, _)) = stack.last() {
        return Err(DecodeError(format!(
            "document ends inside element `{}`",
            open.path
        )));
    }
    let root = root.ok_or_else(|| DecodeError("no root element".into()))?;
    Ok(Document { root, span })
}

/// Attaches a finished element to its parent (or makes it the root),
/// trimming its text and checking it does not mix text and elements.
fn close(
    stack: &mut [(Element, usize)],
    root: &mut Option<Element>,
    span: &mut Option<std::ops::Range<usize>>,
    span_of: &str,
    mut element: Element,
    range: std::ops::Range<usize>,
) -> Result<(), DecodeError> {
    let trimmed = element.text.trim_matches(is_xml_space);
    if !element.children.is_empty() && !trimmed.is_empty() {
        return Err(element.err("mixes text and elements"));
    }
    element.text = trimmed.to_string();
    let depth = stack.len();
    match stack.last_mut() {
        Some((parent, _)) => {
            if depth == 1 && element.name == span_of && span.replace(range).is_some() {
                return Err(element.err("appears more than once"));
            }
            parent.children.push(element);
        }
        None => *root = Some(element),
    }
    Ok(())
}

fn push_text(
    stack: &mut [(Element, usize)],
    text: Cow<'_, str>,
    at: impl FnOnce() -> DecodeError,
) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some((open, _)) => {
            open.text.push_str(&text);
            Ok(())
        }
        None if text.chars().all(is_xml_space) => Ok(()),
        None => {
            let e = at();
            Err(DecodeError(format!("{} outside the root element", e.0)))
        }
    }
}

/// A decoded message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub msg_type: MsgType,
    pub sender: String,
    pub msg_id: String,
    pub timestamp: String,
    pub in_reply_to: Option<String>,
    pub mac: String,
}

/// A decoded message: its header, its body tree and the exact body bytes
/// the MAC covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Element,
    pub body_bytes: Vec<u8>,
}

impl Message {
    /// The string this message's MAC must cover.
    pub fn string_to_mac(&self) -> String {
        let h = &self.header;
        string_to_mac(
            h.msg_type,
            &h.sender,
            &h.msg_id,
            &h.timestamp,
            h.in_reply_to.as_deref(),
            &self.body_bytes,
        )
    }

    /// Whether the MAC (signature) verifies under the counterpart's key
    /// (an HMAC in constant time).
    pub fn mac_verifies(&self, signer: &Signer) -> bool {
        signer.verify_hex(self.string_to_mac().as_bytes(), &self.header.mac)
    }
}

/// Decodes a message down to its header and body (the MAC is not
/// checked here: see [`Message::mac_verifies`]).
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let doc = parse_document(bytes, "Body")?;
    let root = &doc.root;
    if root.name != ROOT {
        return Err(DecodeError(format!(
            "root element is `{}`, not `{ROOT}`",
            root.name
        )));
    }
    match root.attribute("version") {
        Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            return Err(root.err(format!(
                "version {other:?} (only {PROTOCOL_VERSION:?} is understood)"
            )))
        }
        None => return Err(root.err("attribute `version` is missing")),
    }
    let h = root.one("Header")?;
    let header_value = |name: &str| -> Result<String, DecodeError> {
        let v = h.text(name)?;
        if valid_header_value(v) {
            Ok(v.to_string())
        } else {
            Err(DecodeError(format!(
                "element `{}/{name}`: {v:?} must be 1..={MAX_HEADER_VALUE} printable ASCII characters without `|`",
                h.path
            )))
        }
    };
    let type_name = h.text("MsgType")?;
    let msg_type = MsgType::parse(type_name).ok_or_else(|| {
        DecodeError(format!(
            "element `{}/MsgType`: unknown message type {type_name:?}",
            h.path
        ))
    })?;
    let in_reply_to = match h.opt_text("InReplyTo")? {
        Some(_) => Some(header_value("InReplyTo")?),
        None => None,
    };
    let header = Header {
        msg_type,
        sender: header_value("Sender")?,
        msg_id: header_value("MsgId")?,
        timestamp: header_value("Timestamp")?,
        in_reply_to,
        mac: h.text("Mac")?.to_string(),
    };
    let body = root.one("Body")?.clone();
    let span = doc
        .span
        .ok_or_else(|| DecodeError(format!("element `{ROOT}/Body` is missing")))?;
    let body_bytes = bytes
        .get(span.clone())
        .filter(|b| b.first() == Some(&b'<'))
        .ok_or_else(|| DecodeError(format!("element `{ROOT}/Body`: bad span {span:?}")))?
        .to_vec();
    Ok(Message {
        header,
        body,
        body_bytes,
    })
}

// ---------------------------------------------------------------- bodies

/// `PAY_REQ`: `BillerCode`, `TxnRef` (OUR reference), `AccountNo`,
/// `Amount` (decimal string, kept as written), `Currency`, `BillNo`
/// (optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequest {
    pub biller_code: String,
    pub txn_ref: String,
    pub account_no: String,
    pub amount: String,
    pub currency: String,
    pub bill_no: Option<String>,
}

impl PayRequest {
    /// The request for `order`, amount written as given (never a float).
    pub fn from_order(order: &crate::PayOrder) -> PayRequest {
        PayRequest {
            biller_code: order.biller_id.clone(),
            txn_ref: order.our_reference.clone(),
            account_no: order.account_number.clone(),
            amount: order.amount.to_string(),
            currency: order.currency.clone(),
            bill_no: order.bill_reference.clone(),
        }
    }

    /// The body's elements, in schema order.
    pub fn to_nodes(&self) -> Vec<Node> {
        let mut nodes = vec![
            leaf("BillerCode", &self.biller_code),
            leaf("TxnRef", &self.txn_ref),
            leaf("AccountNo", &self.account_no),
            leaf("Amount", &self.amount),
            leaf("Currency", &self.currency),
        ];
        if let Some(bill) = &self.bill_no {
            nodes.push(leaf("BillNo", bill));
        }
        nodes
    }

    /// Reads a request body (the amount is checked by the biller).
    pub fn decode(body: &Element) -> Result<PayRequest, DecodeError> {
        Ok(PayRequest {
            biller_code: body.text("BillerCode")?.to_string(),
            txn_ref: body.text("TxnRef")?.to_string(),
            account_no: body.text("AccountNo")?.to_string(),
            amount: body.text("Amount")?.to_string(),
            currency: body.text("Currency")?.to_string(),
            bill_no: body.opt_text("BillNo")?.map(str::to_string),
        })
    }
}

/// `QRY_REQ`: `BillerCode`, `TxnRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    pub biller_code: String,
    pub txn_ref: String,
}

impl QueryRequest {
    /// The body's elements.
    pub fn to_nodes(&self) -> Vec<Node> {
        vec![
            leaf("BillerCode", &self.biller_code),
            leaf("TxnRef", &self.txn_ref),
        ]
    }

    /// Reads a request body.
    pub fn decode(body: &Element) -> Result<QueryRequest, DecodeError> {
        Ok(QueryRequest {
            biller_code: body.text("BillerCode")?.to_string(),
            txn_ref: body.text("TxnRef")?.to_string(),
        })
    }
}

/// `BILL_REQ`: `BillerCode`, `AccountNo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillsRequest {
    pub biller_code: String,
    pub account_no: String,
}

impl BillsRequest {
    /// The body's elements.
    pub fn to_nodes(&self) -> Vec<Node> {
        vec![
            leaf("BillerCode", &self.biller_code),
            leaf("AccountNo", &self.account_no),
        ]
    }

    /// Reads a request body.
    pub fn decode(body: &Element) -> Result<BillsRequest, DecodeError> {
        Ok(BillsRequest {
            biller_code: body.text("BillerCode")?.to_string(),
            account_no: body.text("AccountNo")?.to_string(),
        })
    }
}

/// What every answer body starts with: `RetCode` and `RetMsg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetStatus {
    pub ret_code: String,
    pub ret_msg: String,
}

impl RetStatus {
    /// An answer body: `RetCode`, `RetMsg`, then `fields`.
    pub fn with(code: &str, msg: &str, fields: Vec<Node>) -> Vec<Node> {
        let mut nodes = vec![leaf("RetCode", code), leaf("RetMsg", msg)];
        nodes.extend(fields);
        nodes
    }

    /// Reads the result of an answer body (`RetMsg` may be absent).
    pub fn decode(body: &Element) -> Result<RetStatus, DecodeError> {
        Ok(RetStatus {
            ret_code: body.text("RetCode")?.to_string(),
            ret_msg: body.opt_text("RetMsg")?.unwrap_or_default().to_string(),
        })
    }
}

/// The fields of a successful `PAY_RSP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayAnswer {
    pub txn_ref: String,
    pub account_no: String,
    pub amount: Decimal,
    pub currency: String,
    pub receipt_no: String,
    pub credited_at: DateTime<FixedOffset>,
    /// The payment had been credited before (a repeated request).
    pub duplicate: bool,
}

impl PayAnswer {
    /// The fields after `RetCode`/`RetMsg`.
    pub fn to_nodes(&self) -> Vec<Node> {
        vec![
            leaf("TxnRef", &self.txn_ref),
            leaf("AccountNo", &self.account_no),
            leaf("Amount", self.amount.to_string()),
            leaf("Currency", &self.currency),
            leaf("ReceiptNo", &self.receipt_no),
            leaf("CreditedAt", rfc3339(&self.credited_at)),
            leaf("Duplicate", self.duplicate.to_string()),
        ]
    }

    /// Reads a successful answer's fields (`Duplicate` optional).
    pub fn decode(body: &Element) -> Result<PayAnswer, DecodeError> {
        Ok(PayAnswer {
            txn_ref: body.text("TxnRef")?.to_string(),
            account_no: body.text("AccountNo")?.to_string(),
            amount: body.amount("Amount")?,
            currency: body.text("Currency")?.to_string(),
            receipt_no: body.text("ReceiptNo")?.to_string(),
            credited_at: body.time("CreditedAt")?,
            duplicate: body.opt_bool("Duplicate")?.unwrap_or(false),
        })
    }
}

fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the biller says a payment asked about has become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    Credited,
    Rejected,
    Pending,
}

impl PaymentState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Credited => "CREDITED",
            PaymentState::Rejected => "REJECTED",
            PaymentState::Pending => "PENDING",
        }
    }
}

/// The fields of a successful `QRY_RSP`. `ReceiptNo` and `CreditedAt`
/// come with CREDITED, `RejectCode` and `RejectMsg` with REJECTED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer {
    pub txn_ref: String,
    pub state: PaymentState,
    pub account_no: String,
    pub amount: Decimal,
    pub currency: String,
    pub receipt_no: Option<String>,
    pub credited_at: Option<DateTime<FixedOffset>>,
    pub reject_code: Option<String>,
    pub reject_msg: Option<String>,
}

impl QueryAnswer {
    /// The fields after `RetCode`/`RetMsg`.
    pub fn to_nodes(&self) -> Vec<Node> {
        let mut nodes = vec![
            leaf("TxnRef", &self.txn_ref),
            leaf("State", self.state.as_str()),
            leaf("AccountNo", &self.account_no),
            leaf("Amount", self.amount.to_string()),
            leaf("Currency", &self.currency),
        ];
        let optional = [
            ("ReceiptNo", self.receipt_no.clone()),
            ("CreditedAt", self.credited_at.as_ref().map(rfc3339)),
            ("RejectCode", self.reject_code.clone()),
            ("RejectMsg", self.reject_msg.clone()),
        ];
        nodes.extend(
            optional
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| leaf(name, v))),
        );
        nodes
    }

    /// Reads a successful answer's fields. Which optional fields a state
    /// requires is checked by the connector.
    pub fn decode(body: &Element) -> Result<QueryAnswer, DecodeError> {
        let state = match body.text("State")? {
            "CREDITED" => PaymentState::Credited,
            "REJECTED" => PaymentState::Rejected,
            "PENDING" => PaymentState::Pending,
            other => {
                return Err(DecodeError(format!(
                    "element `{}/State`: unknown state {other:?}",
                    body.path
                )))
            }
        };
        Ok(QueryAnswer {
            txn_ref: body.text("TxnRef")?.to_string(),
            state,
            account_no: body.text("AccountNo")?.to_string(),
            amount: body.amount("Amount")?,
            currency: body.text("Currency")?.to_string(),
            receipt_no: body.opt_text("ReceiptNo")?.map(str::to_string),
            credited_at: body.opt_time("CreditedAt")?,
            reject_code: body.opt_text("RejectCode")?.map(str::to_string),
            reject_msg: body.opt_text("RejectMsg")?.map(str::to_string),
        })
    }
}

/// One outstanding bill in a `BILL_RSP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireBill {
    pub bill_no: String,
    pub amount_due: Decimal,
    pub currency: String,
    pub due_date: NaiveDate,
}

/// The fields of a successful `BILL_RSP`: `AccountNo`, `CustomerName`,
/// then `<Bills>` holding one `<Bill>` (`BillNo`, `AmountDue`, `Currency`,
/// `DueDate`) per outstanding bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillsAnswer {
    pub account_no: String,
    pub customer_name: String,
    pub bills: Vec<WireBill>,
}

impl BillsAnswer {
    /// The fields after `RetCode`/`RetMsg`.
    pub fn to_nodes(&self) -> Vec<Node> {
        let bills = self
            .bills
            .iter()
            .map(|b| {
                Node::Group(
                    "Bill",
                    vec![
                        leaf("BillNo", &b.bill_no),
                        leaf("AmountDue", b.amount_due.to_string()),
                        leaf("Currency", &b.currency),
                        leaf("DueDate", b.due_date.format("%Y-%m-%d").to_string()),
                    ],
                )
            })
            .collect();
        vec![
            leaf("AccountNo", &self.account_no),
            leaf("CustomerName", &self.customer_name),
            Node::Group("Bills", bills),
        ]
    }

    /// Reads a successful answer's fields. `<Bills>` may be empty (or
    /// `<Bills/>`), but must be there.
    pub fn decode(body: &Element) -> Result<BillsAnswer, DecodeError> {
        let bills = body
            .one("Bills")?
            .all("Bill")
            .enumerate()
            .map(|(i, b)| {
                let named = |e: DecodeError| DecodeError(format!("Bill[{i}]: {}", e.0));
                Ok(WireBill {
                    bill_no: b.text("BillNo").map_err(named)?.to_string(),
                    amount_due: b.amount("AmountDue").map_err(named)?,
                    currency: b.text("Currency").map_err(named)?.to_string(),
                    due_date: b.date("DueDate").map_err(named)?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(BillsAnswer {
            account_no: body.text("AccountNo")?.to_string(),
            customer_name: body.text("CustomerName")?.to_string(),
            bills,
        })
    }
}

// ------------------------------------------------------ confirmation file

/// The root of the daily confirmation file.
pub const CONFIRMATION_ROOT: &str = "PowerConfirmation";

/// One credit in the daily confirmation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedCredit {
    pub txn_ref: String,
    pub receipt_no: String,
    pub account_no: String,
    pub amount: Decimal,
    pub currency: String,
    pub credited_at: DateTime<FixedOffset>,
}

/// The daily confirmation file: the biller, the business day, and its
/// credits in credit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub biller_code: String,
    pub business_date: NaiveDate,
    pub credits: Vec<ConfirmedCredit>,
}

impl Confirmation {
    /// The file, one element per line:
    ///
    /// ```text
    /// <?xml version="1.0" encoding="UTF-8"?>
    /// <PowerConfirmation version="1">
    /// <Control><BillerCode>sh-power</BillerCode><BusinessDate>2026-11-29</BusinessDate><Count>2</Count><Total>100.00</Total></Control>
    /// <Credit><TxnRef>…</TxnRef><ReceiptNo>…</ReceiptNo><AccountNo>…</AccountNo><Amount>88.50</Amount><Currency>CNY</Currency><CreditedAt>2026-11-29T10:03:04.005+08:00</CreditedAt></Credit>
    /// </PowerConfirmation>
    /// ```
    ///
    /// Amounts carry 2 decimals; `Total` is the sum of the `Amount`s.
    pub fn encode(&self) -> String {
        let total: Decimal = self.credits.iter().map(|c| c.amount).sum();
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        infallible(w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None))));
        w.get_mut().push(b'\n');
        write_start(
            &mut w,
            BytesStart::new(CONFIRMATION_ROOT).with_attributes([("version", PROTOCOL_VERSION)]),
        );
        w.get_mut().push(b'\n');
        let control = vec![
            leaf("BillerCode", &self.biller_code),
            leaf(
                "BusinessDate",
                self.business_date.format("%Y-%m-%d").to_string(),
            ),
            leaf("Count", self.credits.len().to_string()),
            leaf("Total", crate::confirmation::money2(total)),
        ];
        write_nodes(&mut w, &[Node::Group("Control", control)]);
        w.get_mut().push(b'\n');
        for c in &self.credits {
            let credit = vec![
                leaf("TxnRef", &c.txn_ref),
                leaf("ReceiptNo", &c.receipt_no),
                leaf("AccountNo", &c.account_no),
                leaf("Amount", crate::confirmation::money2(c.amount)),
                leaf("Currency", &c.currency),
                leaf("CreditedAt", rfc3339(&c.credited_at)),
            ];
            write_nodes(&mut w, &[Node::Group("Credit", credit)]);
            w.get_mut().push(b'\n');
        }
        write_end(&mut w, CONFIRMATION_ROOT);
        w.get_mut().push(b'\n');
        // Every piece written is a `&str`, escaped: the bytes are UTF-8.
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads a confirmation file, checking `Count` and `Total` against the
    /// credits listed.
    pub fn decode(bytes: &[u8]) -> Result<Confirmation, DecodeError> {
        let doc = parse_document(bytes, "Control")?;
        let root = &doc.root;
        if root.name != CONFIRMATION_ROOT {
            return Err(DecodeError(format!(
                "root element is `{}`, not `{CONFIRMATION_ROOT}`",
                root.name
            )));
        }
        let control = root.one("Control")?;
        let credits = root
            .all("Credit")
            .enumerate()
            .map(|(i, c)| {
                let named = |e: DecodeError| DecodeError(format!("Credit[{i}]: {}", e.0));
                Ok(ConfirmedCredit {
                    txn_ref: c.text("TxnRef").map_err(named)?.to_string(),
                    receipt_no: c.text("ReceiptNo").map_err(named)?.to_string(),
                    account_no: c.text("AccountNo").map_err(named)?.to_string(),
                    amount: c.amount("Amount").map_err(named)?,
                    currency: c.text("Currency").map_err(named)?.to_string(),
                    credited_at: c.time("CreditedAt").map_err(named)?,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let count = control.text("Count")?;
        if count.parse::<usize>().ok() != Some(credits.len()) {
            return Err(control.err(format!(
                "Count {count:?} but {} credits listed",
                credits.len()
            )));
        }
        let total = control.amount("Total")?;
        // Amounts as large as a decimal holds are well-formed, but their
        // sum may not fit one: that is a refusal, never an overflow.
        let mut sum = Decimal::ZERO;
        for (i, c) in credits.iter().enumerate() {
            sum = sum.checked_add(c.amount).ok_or_else(|| {
                DecodeError(format!(
                    "Credit[{i}]: element `{CONFIRMATION_ROOT}/Credit/Amount`: {} is too large \
                     to add up with the other credits: Total cannot be checked",
                    c.amount
                ))
            })?;
        }
        if total != sum {
            return Err(control.err(format!("Total {total} but the credits sum to {sum}")));
        }
        Ok(Confirmation {
            biller_code: control.text("BillerCode")?.to_string(),
            business_date: control.date("BusinessDate")?,
            credits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PayOrder;
    use std::str::FromStr;

    const SECRET: &[u8] = b"s3cret";

    fn hm(secret: &[u8]) -> Signer {
        Signer::hmac(secret).unwrap()
    }
    const MSG_ID: &str = "00112233445566778899aabbccddeeff";
    const TS: &str = "2026-11-29T02:03:04.005Z";

    fn order() -> PayOrder {
        PayOrder {
            our_reference: "pay-0001".into(),
            biller_id: "sh-power".into(),
            account_number: "0306406159".into(),
            amount: Decimal::from_str("88.50").unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
        }
    }

    fn request_header() -> OutHeader<'static> {
        OutHeader {
            msg_type: MsgType::PayReq,
            sender: "billclear",
            msg_id: MSG_ID,
            timestamp: TS,
            in_reply_to: None,
        }
    }

    const PAY_REQ_BODY: &str = "<Body><BillerCode>sh-power</BillerCode><TxnRef>pay-0001</TxnRef>\
        <AccountNo>0306406159</AccountNo><Amount>88.50</Amount><Currency>CNY</Currency></Body>";

    #[test]
    fn pay_request_encodes_to_pinned_bytes() {
        let nodes = PayRequest::from_order(&order()).to_nodes();
        assert_eq!(
            String::from_utf8(encode_body(&nodes)).unwrap(),
            PAY_REQ_BODY
        );
        let xml = encode_message(&request_header(), &nodes, &hm(SECRET));
        assert_eq!(
            String::from_utf8(xml).unwrap(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><PowerMsg version=\"1\"><Header>\
                 <MsgType>PAY_REQ</MsgType><Sender>billclear</Sender><MsgId>{MSG_ID}</MsgId>\
                 <Timestamp>{TS}</Timestamp>\
                 <Mac>ad8e170b026d6e6c036f8c91f91ae4a6acc364a137c3af27a4ba30b457091096</Mac>\
                 </Header>{PAY_REQ_BODY}</PowerMsg>"
            )
        );
        let with_bill = PayOrder {
            bill_reference: Some("B<1>&2".into()),
            ..order()
        };
        let body = encode_body(&PayRequest::from_order(&with_bill).to_nodes());
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.ends_with("<BillNo>B&lt;1&gt;&amp;2</BillNo></Body>"),
            "{body}"
        );
    }

    #[test]
    fn string_to_mac_and_mac_are_pinned() {
        let s = string_to_mac(
            MsgType::PayReq,
            "billclear",
            MSG_ID,
            TS,
            None,
            PAY_REQ_BODY.as_bytes(),
        );
        assert_eq!(
            s,
            format!(
                "PAY_REQ|billclear|{MSG_ID}|{TS}||{}",
                body_digest(PAY_REQ_BODY.as_bytes())
            )
        );
        assert_eq!(
            body_digest(PAY_REQ_BODY.as_bytes()),
            "1938dceb476fef39259793b64050824d748f702813f5301d21da24861e1b9e6a"
        );
        assert_eq!(
            mac(&hm(SECRET), &s),
            "ad8e170b026d6e6c036f8c91f91ae4a6acc364a137c3af27a4ba30b457091096"
        );
        let answer = string_to_mac(
            MsgType::PayRsp,
            "sh-power-gateway",
            "b1",
            "2026-11-29T10:03:04.120+08:00",
            Some(MSG_ID),
            b"<Body><RetCode>E101</RetCode><RetMsg>account not found</RetMsg></Body>",
        );
        assert!(answer.starts_with(&format!(
            "PAY_RSP|sh-power-gateway|b1|2026-11-29T10:03:04.120+08:00|{MSG_ID}|"
        )));
        assert_eq!(
            mac(&hm(SECRET), &answer),
            "c89563f032b0ea5b883fbfc2d24c56a98579c8b296f914196b07431e5e0eebcf"
        );
    }

    /// A pretty-printed answer: the MAC covers the body bytes exactly as
    /// they stand, whitespace and entities included.
    const GOLDEN_PAY_RSP: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>
<!-- from the biller -->
<PowerMsg version=\"1\">
  <Header>
    <MsgType>PAY_RSP</MsgType>
    <Sender>sh-power-gateway</Sender>
    <MsgId>b1</MsgId>
    <Timestamp>2026-11-29T10:03:04.120+08:00</Timestamp>
    <InReplyTo> 00112233445566778899aabbccddeeff </InReplyTo>
    <Mac>5bf588dbdbd10271a696716aa36d8a878968593108cb272013cddaa29996ab5e</Mac>
  </Header>
  <Body>
    <RetCode>00</RetCode>
    <RetMsg>success &amp; thanks</RetMsg>
    <TxnRef>pay-0001</TxnRef>
    <AccountNo>0306406159</AccountNo>
    <Amount>88.50</Amount>
    <Currency>CNY</Currency>
    <ReceiptNo>PWR0000000001</ReceiptNo>
    <CreditedAt>2026-11-29T10:03:04.120+08:00</CreditedAt>
    <Extra>ignored</Extra>
  </Body>
</PowerMsg>
";

    #[test]
    fn golden_pay_answer_decodes_and_verifies() {
        let m = decode_message(GOLDEN_PAY_RSP.as_bytes()).unwrap();
        assert_eq!(m.header.msg_type, MsgType::PayRsp);
        assert_eq!(m.header.in_reply_to.as_deref(), Some(MSG_ID));
        assert!(m.body_bytes.starts_with(b"<Body>\n    <RetCode>"));
        assert!(m.body_bytes.ends_with(b"</Extra>\n  </Body>"));
        assert!(m.mac_verifies(&hm(SECRET)));
        assert!(!m.mac_verifies(&hm(b"other")));
        let ret = RetStatus::decode(&m.body).unwrap();
        assert_eq!(ret.ret_code, "00");
        assert_eq!(ret.ret_msg, "success & thanks");
        let a = PayAnswer::decode(&m.body).unwrap();
        assert_eq!(a.amount, Decimal::from_str("88.50").unwrap());
        assert_eq!(a.receipt_no, "PWR0000000001");
        assert_eq!(
            a.credited_at.with_timezone(&Utc),
            DateTime::parse_from_rfc3339("2026-11-29T02:03:04.120Z").unwrap()
        );
        assert!(!a.duplicate);
        // One byte changed inside the body: the MAC no longer verifies.
        let tampered = GOLDEN_PAY_RSP.replace("88.50", "88.51");
        assert!(!decode_message(tampered.as_bytes())
            .unwrap()
            .mac_verifies(&hm(SECRET)));
        let tampered = GOLDEN_PAY_RSP.replace("<MsgId>b1<", "<MsgId>b2<");
        assert!(!decode_message(tampered.as_bytes())
            .unwrap()
            .mac_verifies(&hm(SECRET)));
    }

    #[test]
    fn messages_round_trip() {
        let credited_at = DateTime::parse_from_rfc3339("2026-11-29T10:03:04.005+08:00").unwrap();
        let header = OutHeader {
            msg_type: MsgType::QryRsp,
            sender: "sh-power-gateway",
            msg_id: "b9",
            timestamp: "2026-11-29T10:03:04.005+08:00",
            in_reply_to: Some(MSG_ID),
        };
        let answer = QueryAnswer {
            txn_ref: "p".into(),
            state: PaymentState::Credited,
            account_no: "0306406159".into(),
            amount: Decimal::from_str("1.50").unwrap(),
            currency: "CNY".into(),
            receipt_no: Some("PWR1".into()),
            credited_at: Some(credited_at),
            reject_code: None,
            reject_msg: None,
        };
        let xml = encode_message(
            &header,
            &RetStatus::with("00", "ok", answer.to_nodes()),
            &hm(SECRET),
        );
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(
            text.contains("<Amount>1.50</Amount>")
                && text.contains("<CreditedAt>2026-11-29T10:03:04.005+08:00</CreditedAt>")
                && text.contains(&format!("<InReplyTo>{MSG_ID}</InReplyTo><Mac>")),
            "{text}"
        );
        let m = decode_message(&xml).unwrap();
        assert!(m.mac_verifies(&hm(SECRET)));
        assert_eq!(QueryAnswer::decode(&m.body).unwrap(), answer);

        let bills = BillsAnswer {
            account_no: "0306406159".into(),
            customer_name: "张伟 & Co".into(),
            bills: vec![WireBill {
                bill_no: "B1".into(),
                amount_due: Decimal::from_str("123.45").unwrap(),
                currency: "CNY".into(),
                due_date: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
            }],
        };
        let body = RetStatus::with("00", "ok", bills.to_nodes());
        let xml = encode_message(&request_header(), &body, &hm(SECRET));
        let m = decode_message(&xml).unwrap();
        assert_eq!(BillsAnswer::decode(&m.body).unwrap(), bills);
        let empty = BillsAnswer {
            bills: Vec::new(),
            ..bills
        };
        let xml = encode_message(
            &request_header(),
            &RetStatus::with("00", "ok", empty.to_nodes()),
            &hm(SECRET),
        );
        assert!(String::from_utf8_lossy(&xml).contains("<Bills></Bills>"));
        assert_eq!(
            BillsAnswer::decode(&decode_message(&xml).unwrap().body).unwrap(),
            empty
        );
        let echo = encode_message(&request_header(), &[], &hm(SECRET));
        let m = decode_message(&echo).unwrap();
        assert_eq!(m.body_bytes, b"<Body></Body>");
        assert!(m.mac_verifies(&hm(SECRET)));
    }

    fn error_of(xml: &str) -> String {
        decode_message(xml.as_bytes()).unwrap_err().0
    }

    fn with_body(body: &str) -> String {
        format!(
            "<PowerMsg version=\"1\"><Header><MsgType>PAY_RSP</MsgType><Sender>s</Sender>\
             <MsgId>m</MsgId><Timestamp>t</Timestamp><Mac>00</Mac></Header>{body}</PowerMsg>"
        )
    }

    #[test]
    fn malformed_documents_are_refused_naming_the_offset_or_element() {
        let cases: &[(&str, &str)] = &[
            ("", "no root element"),
            ("{\"result_code\":\"00\"}", "outside the root element"),
            (
                "<PowerMsg version=\"1\"><Header>",
                "ends inside element `PowerMsg/Header`",
            ),
            (
                "<PowerMsg version=\"1\"></Header>",
                "not well-formed XML at byte",
            ),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><PowerMsg/>",
                "DOCTYPE not allowed",
            ),
            (
                "<?xml version=\"1.0\" encoding=\"GBK\"?><PowerMsg/>",
                "only UTF-8",
            ),
            (
                "<PowerMsg/><PowerMsg/>",
                "content after the root element at byte 11",
            ),
            ("<Other version=\"1\"/>", "root element is `Other`"),
            ("<PowerMsg/>", "attribute `version` is missing"),
            ("<PowerMsg version=\"2\"/>", "version \"2\""),
            (
                "<PowerMsg version=\"1\"/>",
                "element `PowerMsg/Header` is missing",
            ),
            (&with_body(""), "element `PowerMsg/Body` is missing"),
            (
                &with_body("<Body/><Body/>"),
                "`PowerMsg/Body`: appears more than once",
            ),
            (&with_body("<Body>&nbsp;</Body>"), "unknown entity &nbsp;"),
            (
                &with_body("<Body>x<A>1</A></Body>"),
                "`PowerMsg/Body`: mixes text and elements",
            ),
            (
                &with_body("<Body/>").replace("PAY_RSP", "PAY"),
                "unknown message type \"PAY\"",
            ),
            (
                &with_body("<Body/>").replace("<Sender>s<", "<Sender>a|b<"),
                "`PowerMsg/Header/Sender`",
            ),
            (
                &with_body("<Body/>").replace("<Mac>00</Mac>", ""),
                "`PowerMsg/Header/Mac` is missing",
            ),
            (
                &with_body("<Body/>").replace("<MsgId>m</MsgId>", "<MsgId/>"),
                "`PowerMsg/Header/MsgId`: is empty",
            ),
            (
                &with_body("<Body/>")
                    .replace("<MsgId>m</MsgId>", "<MsgId>m</MsgId><MsgId>n</MsgId>"),
                "`PowerMsg/Header/MsgId`: appears more than once",
            ),
            (&with_body(&"<A>".repeat(10)), "nested deeper than 8"),
        ];
        for (xml, want) in cases {
            let e = error_of(xml);
            assert!(e.contains(want), "{xml}: {e}");
        }
        let e = decode_message(b"<PowerMsg version=\"1\">\xff</PowerMsg>")
            .unwrap_err()
            .0;
        assert!(e.contains("not UTF-8 at byte 22"), "{e}");
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(decode_message(&big).unwrap_err().0.contains("larger than"));
        // A well-formed minimal message decodes; `<Body/>` is its own bytes.
        let m = decode_message(with_body("<Body/>").as_bytes()).unwrap();
        assert_eq!(m.body_bytes, b"<Body/>");
        assert_eq!(m.header.in_reply_to, None);
    }

    fn pay_error(fields: &str) -> String {
        let m = decode_message(with_body(&format!("<Body>{fields}</Body>")).as_bytes()).unwrap();
        PayAnswer::decode(&m.body).unwrap_err().0
    }

    const OK_FIELDS: &str = "<RetCode>00</RetCode><TxnRef>p</TxnRef><AccountNo>1</AccountNo>\
        <Currency>CNY</Currency><ReceiptNo>R</ReceiptNo><CreditedAt>2026-11-29T02:03:04Z</CreditedAt>";

    #[test]
    fn bad_amounts_and_missing_elements_are_named() {
        for bad in [
            "88,50", "1e3", "", " ", "NaN", "1.", "+1", "0x10", "<X>1</X>",
        ] {
            let e = pay_error(&format!("{OK_FIELDS}<Amount>{bad}</Amount>"));
            assert!(e.contains("`PowerMsg/Body/Amount`"), "{bad}: {e}");
        }
        let e = pay_error(OK_FIELDS);
        assert!(
            e.contains("element `PowerMsg/Body/Amount` is missing"),
            "{e}"
        );
        let e = pay_error(&format!("{OK_FIELDS}<Amount>1</Amount><Amount>2</Amount>"));
        assert!(e.contains("appears more than once"), "{e}");
        let e = pay_error(&format!(
            "{}<Amount>1</Amount>",
            OK_FIELDS.replace("02:03:04Z", "yesterday")
        ));
        assert!(e.contains("`PowerMsg/Body/CreditedAt`"), "{e}");
        let e = pay_error(&format!(
            "{OK_FIELDS}<Amount>1</Amount><Duplicate>yes</Duplicate>"
        ));
        assert!(e.contains("`PowerMsg/Body/Duplicate`"), "{e}");
        let m = decode_message(with_body("<Body><RetMsg>x</RetMsg></Body>").as_bytes()).unwrap();
        let e = RetStatus::decode(&m.body).unwrap_err().0;
        assert!(e.contains("`PowerMsg/Body/RetCode` is missing"), "{e}");
        let m = decode_message(
            with_body(
                "<Body><AccountNo>1</AccountNo><CustomerName>x</CustomerName><Bills>\
                 <Bill><BillNo>B</BillNo><AmountDue>1.00</AmountDue><Currency>CNY</Currency></Bill>\
                 </Bills></Body>",
            )
            .as_bytes(),
        )
        .unwrap();
        let e = BillsAnswer::decode(&m.body).unwrap_err().0;
        assert!(
            e.contains("Bill[0]") && e.contains("`PowerMsg/Body/Bills/Bill/DueDate`"),
            "{e}"
        );
    }

    #[test]
    fn message_types_pair_requests_with_answers() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::parse(t.as_str()), Some(t));
        }
        assert_eq!(MsgType::PayReq.answer(), Some(MsgType::PayRsp));
        assert_eq!(MsgType::EchoReq.answer(), Some(MsgType::EchoRsp));
        assert_eq!(MsgType::PayRsp.answer(), None);
        assert_eq!(MsgType::parse("pay_req"), None);
    }

    const GOLDEN_CONFIRMATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<PowerConfirmation version=\"1\">
<Control><BillerCode>sh-power</BillerCode><BusinessDate>2026-11-29</BusinessDate><Count>2</Count><Total>100.00</Total></Control>
<Credit><TxnRef>p-c1</TxnRef><ReceiptNo>PWR0000000001</ReceiptNo><AccountNo>0306406159</AccountNo><Amount>88.50</Amount><Currency>CNY</Currency><CreditedAt>2026-11-29T10:03:04.005+08:00</CreditedAt></Credit>
<Credit><TxnRef>p-c2</TxnRef><ReceiptNo>PWR0000000002</ReceiptNo><AccountNo>0306406159</AccountNo><Amount>11.50</Amount><Currency>CNY</Currency><CreditedAt>2026-11-29T10:03:05.000+08:00</CreditedAt></Credit>
</PowerConfirmation>
";

    fn confirmation() -> Confirmation {
        let at = |s| DateTime::parse_from_rfc3339(s).unwrap();
        let credit = |r: &str, n: &str, amount: &str, t| ConfirmedCredit {
            txn_ref: r.into(),
            receipt_no: n.into(),
            account_no: "0306406159".into(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY".into(),
            credited_at: at(t),
        };
        Confirmation {
            biller_code: "sh-power".into(),
            business_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            credits: vec![
                credit(
                    "p-c1",
                    "PWR0000000001",
                    "88.5",
                    "2026-11-29T10:03:04.005+08:00",
                ),
                credit(
                    "p-c2",
                    "PWR0000000002",
                    "11.50",
                    "2026-11-29T10:03:05+08:00",
                ),
            ],
        }
    }

    #[test]
    fn confirmation_file_is_pinned_and_checked() {
        assert_eq!(confirmation().encode(), GOLDEN_CONFIRMATION);
        let read = Confirmation::decode(GOLDEN_CONFIRMATION.as_bytes()).unwrap();
        assert_eq!(read, confirmation());
        let bad_total = GOLDEN_CONFIRMATION.replace("<Total>100.00", "<Total>100.01");
        let e = Confirmation::decode(bad_total.as_bytes()).unwrap_err().0;
        assert!(
            e.contains("`PowerConfirmation/Control`") && e.contains("Total"),
            "{e}"
        );
        let bad_count = GOLDEN_CONFIRMATION.replace("<Count>2", "<Count>3");
        let e = Confirmation::decode(bad_count.as_bytes()).unwrap_err().0;
        assert!(e.contains("Count \"3\" but 2 credits"), "{e}");
        let empty = Confirmation {
            credits: Vec::new(),
            ..confirmation()
        };
        assert!(empty
            .encode()
            .contains("<Count>0</Count><Total>0.00</Total></Control>\n</PowerConfirmation>\n"));
    }

    #[test]
    fn header_values_are_checked() {
        assert!(valid_header_value("billclear"));
        assert!(valid_header_value("2026-11-29T10:03:04.005+08:00"));
        for bad in ["", "a b", "a|b", "é", &"x".repeat(129)] {
            assert!(!valid_header_value(bad), "{bad}");
        }
        assert_eq!(
            format_time(
                &DateTime::parse_from_rfc3339("2026-11-29T02:03:04Z")
                    .unwrap()
                    .with_timezone(&Utc),
                FixedOffset::east_opt(8 * 3600).unwrap()
            ),
            "2026-11-29T10:03:04.000+08:00"
        );
    }
}
