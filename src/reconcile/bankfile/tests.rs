use std::path::PathBuf;

use chrono::NaiveDate;

use super::*;
use crate::domain::money::Currency;
use crate::domain::recon::statement::{BankEntry, BankFormat, BankStatement, MessageKind};

const E2E: &str = "BCE01a227b7d62077af9deb9cd539c11085";
const ACCOUNT: &str = "31050161373600000001";
const STMT1: &str = "Document/BkToCstmrStmt/Stmt[1]";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bank")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// Reads a fixture as the kind its first bytes say.
fn read_fixture(name: &str) -> BankMessage {
    let bytes = fixture(name);
    let kind =
        sniff(&bytes[..bytes.len().min(512)]).unwrap_or_else(|| panic!("{name} not recognised"));
    read(kind, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn refused(kind: FileKind, bytes: impl AsRef<[u8]>) -> FileRefusal {
    match read(kind, bytes.as_ref()) {
        Ok(m) => panic!("read, not refused: {m:?}"),
        Err(e) => e,
    }
}

/// A statement without what is allowed to differ between versions of the
/// same statement: where things stand in the file and whether the bank
/// states the account's currency.
fn normalised(s: &BankStatement) -> BankStatement {
    let mut s = s.clone();
    s.location.clear();
    s.account_currency = None;
    for e in &mut s.entries {
        e.location.clear();
    }
    s
}

fn entry_fields(e: &BankEntry) -> BankEntry {
    BankEntry {
        location: String::new(),
        position: 0,
        ..e.clone()
    }
}

/// The statement of 2026-11-30 as every camt.053 fixture states it.
fn check_the_day(s: &BankStatement) {
    assert_eq!(s.kind, MessageKind::Statement);
    assert_eq!(s.index, 1);
    assert_eq!(s.location, STMT1);
    assert_eq!(s.id, "31050161373600000001-20261130");
    assert_eq!(s.electronic_seq.as_deref(), Some("330"));
    assert_eq!(s.legal_seq.as_deref(), Some("330"));
    assert_eq!(s.sequence_number(), Some(330));
    assert_eq!(s.page, None);
    assert_eq!(s.account, ACCOUNT);
    assert_eq!(
        (s.from_date, s.to_date, s.created),
        (Some(day(30)), Some(day(30)), Some(day(30)))
    );
    let opening = s.opening.as_ref().unwrap();
    assert_eq!(
        (opening.code.as_str(), opening.signed_minor),
        ("OPBD", 100_000_000)
    );
    assert_eq!((opening.currency.as_str(), opening.date), ("CNY", day(29)));
    let closing = s.closing.as_ref().unwrap();
    // Not the credit line's 500000.00 of camt.053.001.08's CLBD.
    assert_eq!(
        (closing.code.as_str(), closing.signed_minor),
        ("CLBD", 99_778_491)
    );
    assert_eq!((closing.currency.as_str(), closing.date), ("CNY", day(30)));
    assert_eq!(s.entries.len(), 4);
    let positions: Vec<u32> = s.entries.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert_eq!(s.entries[2].location, format!("{STMT1}/Ntry[3]"));

    let e = &s.entries[0];
    assert_eq!(
        (e.amount_minor, e.currency.as_str(), e.credit),
        (1_716_504, "CNY", false)
    );
    assert_eq!(e.status, "BOOK");
    assert_eq!(
        (e.booking_date, e.value_date),
        (Some(day(30)), Some(day(30)))
    );
    assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0001"));
    assert_eq!(e.entry_ref, None);
    assert_eq!(e.end_to_end_id.as_deref(), Some(E2E));
    assert_eq!(
        e.remittance.as_deref(),
        Some("billclear settlement sh-water 2026-11-29")
    );

    let e = &s.entries[1];
    assert_eq!(
        (e.amount_minor, e.credit, e.status.as_str()),
        (1_469_995, true, "BOOK")
    );
    // A booking date-time: its date.
    assert_eq!(
        (e.booking_date, e.value_date),
        (Some(day(30)), Some(day(30)))
    );
    assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0002"));
    assert_eq!(e.end_to_end_id, None, "NOTPROVIDED is no reference");
    assert_eq!(e.remittance.as_deref(), Some("BCF-alipay-20261129"));

    let e = &s.entries[2];
    assert_eq!(
        (e.amount_minor, e.credit, e.status.as_str()),
        (25_000, true, "BOOK")
    );
    assert_eq!(
        (e.account_servicer_ref.as_deref(), e.entry_ref.as_deref()),
        (None, None)
    );
    assert_eq!(e.bank_reference(), None);
    assert_eq!(e.end_to_end_id, None);
    assert_eq!(e.remittance.as_deref(), Some("interest november"));

    let e = &s.entries[3];
    assert_eq!(
        (e.amount_minor, e.credit, e.status.as_str()),
        (500, false, "PDNG")
    );
    assert!(!e.booked());
    assert_eq!((e.booking_date, e.value_date), (None, None));
    assert_eq!(
        e.remittance.as_deref(),
        Some("account service charge"),
        "AddtlNtryInf"
    );

    assert_eq!(s.currency().unwrap(), Currency::CNY);
    let proof = s
        .prove_balances()
        .unwrap()
        .expect("a statement proves its balances");
    assert_eq!(
        (proof.credits_minor, proof.debits_minor),
        (1_494_995, 1_716_504)
    );
}

/// The fixtures that can be are valid against the ISO 20022 schemas.
#[test]
fn schema_valid_fixtures_validate() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (xsd, file) in [
        ("camt.053.001.02", "camt053_v02.xml"),
        ("camt.053.001.08", "camt053_v08.xml"),
        ("camt.053.001.02", "camt053_v02_nl_eur.xml"),
        ("camt.054.001.02", "camt054_v02.xml"),
        ("camt.054.001.08", "camt054_v08.xml"),
        ("camt.054.001.08", "camt054_noref_v08.xml"),
    ] {
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(root.join(format!("schemas/iso20022/{xsd}.xsd")))
            .arg(root.join("tests/fixtures/bank").join(file))
            .output()
            .expect("xmllint runs (install libxml2-utils: ops/ensure-xmllint.sh)");
        assert!(
            out.status.success(),
            "{file} against {xsd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_camt053_version_reads_to_the_same_statement() {
    let v08 = read_fixture("camt053_v08.xml");
    assert_eq!(v08.format, BankFormat::Camt053(8));
    assert_eq!(v08.message_id, "STMT-20261130-0001");
    assert_eq!(v08.statements.len(), 1);
    check_the_day(&v08.statements[0]);
    for (v, name, states_currency) in [
        (2, "camt053_v02.xml", true),
        (3, "camt053_v03.xml", false),
        (4, "camt053_v04.xml", false),
        (6, "camt053_v06.xml", true),
        (8, "camt053_v08.xml", true),
    ] {
        let m = read_fixture(name);
        assert_eq!(m.format, BankFormat::Camt053(v), "{name}");
        assert_eq!(m.format.to_string(), format!("camt.053.001.0{v}"));
        assert_eq!(m.message_id, v08.message_id, "{name}");
        assert_eq!(m.statements.len(), 1, "{name}");
        let s = &m.statements[0];
        check_the_day(s);
        assert_eq!(normalised(s), normalised(&v08.statements[0]), "{name}");
        // Acct/Ccy is optional: without it the amounts give the currency.
        assert_eq!(s.account_currency.is_some(), states_currency, "{name}");
        if states_currency {
            assert_eq!(s.account_currency.as_deref(), Some("CNY"));
        }
    }
}

/// The fixture with every element in a prefixed namespace (`ns2:`).
fn prefixed(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() + 4096);
    let mut rest = xml;
    while let Some(p) = rest.find('<') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        if rest.starts_with("</") {
            out.push_str("</ns2:");
            rest = &rest[2..];
        } else if rest[1..].starts_with(|c: char| c.is_ascii_alphabetic()) {
            out.push_str("<ns2:");
            rest = &rest[1..];
        } else {
            out.push('<');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out.replacen(" xmlns=", " xmlns:ns2=", 1)
}

#[test]
fn namespace_prefixes_change_nothing() {
    for name in ["camt053_v08.xml", "camt053_v02.xml", "camt054_v08.xml"] {
        let xml = prefixed(&text(name));
        assert!(xml.contains("<ns2:Document xmlns:ns2=\"urn:iso"), "{xml}");
        assert!(xml.contains("<ns2:Amt Ccy=\"CNY\">17165.04</ns2:Amt>"));
        let kind = sniff(xml.as_bytes()).unwrap();
        assert_eq!(
            read(kind, xml.as_bytes()).unwrap(),
            read_fixture(name),
            "{name}"
        );
    }
    // A default namespace of another kind beside the prefixed one.
    let xml = prefixed(&text("camt053_v08.xml")).replacen(
        "<ns2:Document ",
        "<ns2:Document xmlns=\"urn:example:other\" ",
        1,
    );
    assert_eq!(
        read(FileKind::Camt053, xml.as_bytes()).unwrap(),
        read_fixture("camt053_v08.xml")
    );
}

#[test]
fn same_named_elements_deeper_in_an_entry_do_not_overwrite_its_own() {
    let xml = text("camt053_v08.xml")
        // An instructed amount in another currency, a transaction's own
        // amount and references, a second transaction and entry details.
        .replacen(
            "</BkTxCd>",
            "</BkTxCd>\n        <AmtDtls><InstdAmt><Amt Ccy=\"USD\">2400.00</Amt></InstdAmt></AmtDtls>",
            1,
        )
        .replacen(
            "<Refs>\n              <EndToEndId>BCE01",
            "<Refs>\n              <AcctSvcrRef>TX-REF-9</AcctSvcrRef>\n              <EndToEndId>BCE01",
            1,
        )
        .replacen(
            "<Ustrd>billclear settlement sh-water 2026-11-29</Ustrd>",
            "<Ustrd>billclear settlement</Ustrd>\n              <Ustrd>sh-water 2026-11-29</Ustrd>\n              <Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd>",
            1,
        )
        .replacen(
            "</TxDtls>\n        </NtryDtls>",
            "</TxDtls>\n          <TxDtls><Refs><EndToEndId>BCE00000000000000000000000000000000</EndToEndId></Refs><Amt Ccy=\"CNY\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><RmtInf><Ustrd>second</Ustrd></RmtInf></TxDtls>\n        </NtryDtls>\n        <NtryDtls><TxDtls><Refs><EndToEndId>BCEffffffffffffffffffffffffffffffff</EndToEndId></Refs></TxDtls></NtryDtls>",
            1,
        );
    let m = read(FileKind::Camt053, xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let e = &m.statements[0].entries[0];
    assert_eq!(
        (e.amount_minor, e.currency.as_str(), e.credit),
        (1_716_504, "CNY", false)
    );
    assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0001"));
    assert_eq!(e.end_to_end_id.as_deref(), Some(E2E), "the first one");
    assert_eq!(
        e.remittance.as_deref(),
        Some("billclear settlement sh-water 2026-11-29 RF18539007547034 second")
    );
    // The NOTPROVIDED of entry 2 is passed over for a later EndToEndId.
    let xml = text("camt053_v08.xml").replacen(
        "<Ustrd>BCF-alipay-20261129</Ustrd>\n            </RmtInf>\n          </TxDtls>",
        "<Ustrd>BCF-alipay-20261129</Ustrd>\n            </RmtInf>\n          </TxDtls>\n          <TxDtls><Refs><EndToEndId>BCE11111111111111111111111111111111</EndToEndId></Refs></TxDtls>",
        1,
    );
    let m = read(FileKind::Camt053, xml.as_bytes()).unwrap();
    assert_eq!(
        m.statements[0].entries[1].end_to_end_id.as_deref(),
        Some("BCE11111111111111111111111111111111")
    );
}

/// Removes every `<tag …>…</tag>` and `<tag/>` of `xml` (not nested).
fn without(xml: &str, tag: &str) -> String {
    let mut out = xml.to_string();
    loop {
        let open = format!("<{tag}>");
        let open_attr = format!("<{tag} ");
        let Some(start) = out.find(&open).or_else(|| out.find(&open_attr)) else {
            return out;
        };
        let close = format!("</{tag}>");
        let end = start + out[start..].find(&close).unwrap() + close.len();
        out.replace_range(start..end, "");
    }
}

#[test]
fn optional_elements_absent_do_not_matter() {
    let mut xml = text("camt053_v08.xml");
    for tag in [
        "MsgId",
        "CreDtTm",
        "FrToDt",
        "StmtPgntn",
        "ElctrncSeqNb",
        "LglSeqNb",
        "Ccy",
        "Nm",
        "Bal",
        "TxsSummry",
        "BookgDt",
        "ValDt",
        "AcctSvcrRef",
        "NtryDtls",
        "AddtlNtryInf",
    ] {
        xml = without(&xml, tag);
    }
    assert!(
        !xml.contains("<Bal>") && !xml.contains("<NtryDtls>"),
        "{xml}"
    );
    let m = read(FileKind::Camt053, xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(m.message_id, "");
    let s = &m.statements[0];
    assert_eq!(
        (s.id.as_str(), s.account.as_str()),
        ("31050161373600000001-20261130", ACCOUNT)
    );
    assert_eq!(
        (s.electronic_seq.as_deref(), s.legal_seq.as_deref()),
        (None, None)
    );
    assert_eq!((s.created, s.from_date, s.to_date), (None, None, None));
    assert_eq!(
        (
            s.opening.as_ref(),
            s.closing.as_ref(),
            s.account_currency.as_deref()
        ),
        (None, None, None)
    );
    assert_eq!(s.entries.len(), 4);
    for e in &s.entries {
        assert_eq!((e.booking_date, e.value_date), (None, None));
        assert_eq!(
            (&e.account_servicer_ref, &e.end_to_end_id, &e.remittance),
            (&None, &None, &None)
        );
    }
    // Still CNY by its amounts; without balances the domain refuses to
    // prove it, the reader does not.
    assert_eq!(s.currency().unwrap(), Currency::CNY);
    assert!(s
        .prove_balances()
        .unwrap_err()
        .reason
        .contains("no opening balance"));
    // The statement's CreDtTm is its creation; without it (optional from
    // .08), the group header's.
    let xml = text("camt053_v08.xml").replacen(
        "<CreDtTm>2026-11-30T18:00:00+08:00</CreDtTm>",
        "<CreDtTm>2026-12-01T01:00:00+08:00</CreDtTm>",
        1,
    );
    let s = read(FileKind::Camt053, xml.as_bytes())
        .unwrap()
        .statements
        .remove(0);
    assert_eq!(s.created, Some(day(30)), "Stmt/CreDtTm");
    let stmt_date = "\n      <CreDtTm>2026-11-30T18:00:00+08:00</CreDtTm>";
    assert!(xml.contains(stmt_date));
    let xml = xml.replacen(stmt_date, "", 1);
    let s = read(FileKind::Camt053, xml.as_bytes())
        .unwrap()
        .statements
        .remove(0);
    assert_eq!(
        s.created,
        NaiveDate::from_ymd_opt(2026, 12, 1),
        "GrpHdr/CreDtTm"
    );
}

#[test]
fn a_prior_closing_balance_opens_when_there_is_no_opening_one_and_other_types_are_skipped() {
    let xml = text("camt053_v02.xml").replacen("<Cd>OPBD</Cd>", "<Cd>PRCD</Cd>", 1);
    let s = read(FileKind::Camt053, xml.as_bytes())
        .unwrap()
        .statements
        .remove(0);
    let opening = s.opening.as_ref().unwrap();
    assert_eq!(
        (opening.code.as_str(), opening.signed_minor),
        ("PRCD", 100_000_000)
    );
    assert!(s.prove_balances().is_ok());
    // A debit balance is negative; CLAV/ITBD/proprietary types are skipped
    // even when they hold what a proven balance must not.
    let xml = text("camt053_v02.xml")
        .replacen("<CdtDbtInd>CRDT</CdtDbtInd>", "<CdtDbtInd>DBIT</CdtDbtInd>", 1)
        .replacen(
            "<TxsSummry>",
            "<Bal><Tp><CdOrPrtry><Cd>CLAV</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">1.234</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>\
             <Bal><Tp><CdOrPrtry><Prtry>XYZ</Prtry></CdOrPrtry></Tp><Amt Ccy=\"CNY\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>\n      <TxsSummry>",
            1,
        );
    let s = read(FileKind::Camt053, xml.as_bytes())
        .unwrap()
        .statements
        .remove(0);
    assert_eq!(s.opening.unwrap().signed_minor, -100_000_000);
    assert_eq!(s.closing.unwrap().signed_minor, 99_778_491);
}

#[test]
fn mt940_reads_to_the_same_booked_entries_and_balances() {
    let camt = read_fixture("camt053_v08.xml").statements.remove(0);
    let m = read_fixture("mt940.sta");
    assert_eq!(m.format, BankFormat::Mt940);
    assert_eq!(m.message_id, "STMT20261130");
    assert_eq!(m.statements.len(), 1);
    let s = &m.statements[0];
    assert_eq!(
        (s.kind, s.index, s.location.as_str()),
        (MessageKind::Statement, 1, "line 2")
    );
    assert_eq!(s.id, "STMT20261130");
    assert_eq!(
        (s.electronic_seq.as_deref(), s.page.as_deref()),
        (Some("330"), Some("1"))
    );
    assert_eq!(s.sequence_number(), Some(330));
    assert_eq!(s.account, ACCOUNT);
    assert_eq!(s.account_currency.as_deref(), Some("CNY"));
    assert_eq!(s.opening, camt.opening);
    assert_eq!(s.closing, camt.closing);
    assert_eq!(s.currency().unwrap(), Currency::CNY);
    assert!(s.prove_balances().unwrap().is_some());
    let booked: Vec<&BankEntry> = camt.entries.iter().filter(|e| e.booked()).collect();
    assert_eq!(s.entries.len(), booked.len());
    for (a, b) in s.entries.iter().zip(booked) {
        assert_eq!(a.position, b.position);
        assert_eq!(
            (a.amount_minor, &a.currency, a.credit),
            (b.amount_minor, &b.currency, b.credit)
        );
        assert_eq!(
            (a.booking_date, a.value_date),
            (b.booking_date, b.value_date)
        );
        assert_eq!(a.status, "BOOK");
        assert_eq!(a.account_servicer_ref, b.account_servicer_ref);
        assert_eq!(
            a.bank_reference(),
            b.bank_reference(),
            "NONREF is no reference"
        );
        assert_eq!(a.end_to_end_id, b.end_to_end_id);
        let (ra, rb) = (
            a.remittance.as_deref().unwrap(),
            b.remittance.as_deref().unwrap(),
        );
        assert!(ra.contains(rb), "{ra:?} holds {rb:?}");
    }
    assert_eq!(s.entries[0].location, "line 6");
    assert_eq!(
        s.entries[0].remittance.as_deref(),
        Some("/EREF/BCE01a227b7d62077af9deb9cd539c11085/REMI/billclear settlement sh-water 2026-11-29")
    );
    assert!(s.entries[1]
        .remittance
        .as_deref()
        .unwrap()
        .contains("BCF-alipay-20261129"));
}

#[test]
fn raw_mt940_gives_each_statement() {
    let raw = read_fixture("mt940_raw.sta");
    assert_eq!(raw.message_id, "STMT20261130");
    assert_eq!(raw.statements.len(), 2);
    let (first, second) = (&raw.statements[0], &raw.statements[1]);
    // The same first statement as in the envelope.
    let enveloped = read_fixture("mt940.sta").statements.remove(0);
    assert_eq!(normalised(first), normalised(&enveloped));
    assert_eq!(first.location, "line 1");
    assert_eq!((second.index, second.location.as_str()), (2, "line 14"));
    assert_eq!(second.id, "STMT20261201");
    assert_eq!(second.account, ACCOUNT, "BIC/account: the account");
    assert_eq!(
        (second.electronic_seq.as_deref(), second.page.as_deref()),
        (Some("331"), Some("1"))
    );
    assert_eq!(
        second.opening.as_ref().unwrap().signed_minor,
        first.closing.as_ref().unwrap().signed_minor
    );
    assert_eq!(second.closing.as_ref().unwrap().signed_minor, 99_788_491);
    let e = &second.entries[0];
    assert_eq!((e.amount_minor, e.credit), (10_000, true));
    assert_eq!(e.booking_date, NaiveDate::from_ymd_opt(2026, 12, 1));
    assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0003"));
    // The statement-level :86: after :62F: is not the entry's.
    assert_eq!(
        e.remittance.as_deref(),
        Some("/REMI/refund BCF-alipay-20261130")
    );
    assert!(second.prove_balances().is_ok());
}

#[test]
fn mt940_line_ends_envelopes_trailers_and_charsets_change_nothing() {
    let crlf = text("mt940.sta");
    let expected = read_fixture("mt940.sta");
    let lf = crlf.replace("\r\n", "\n");
    assert_eq!(read(FileKind::Mt940, lf.as_bytes()).unwrap(), expected);
    let trailer = crlf.replace("-}\r\n", "-}{5:{CHK:0123456789AB}}\r\n");
    assert_eq!(read(FileKind::Mt940, trailer.as_bytes()).unwrap(), expected);
    let header3 = crlf.replacen("{4:", "{3:{108:MT940 330}}{4:", 1);
    assert_eq!(read(FileKind::Mt940, header3.as_bytes()).unwrap(), expected);
    // Two messages in one file: two statements.
    let two = format!(
        "{crlf}{}",
        crlf.replace("STMT20261130", "STMT20261130B")
            .replace(":28C:330/1", ":28C:330/2")
    );
    let m = read(FileKind::Mt940, two.as_bytes()).unwrap();
    assert_eq!(m.statements.len(), 2);
    assert_eq!(m.message_id, "STMT20261130");
    assert_eq!(
        (
            m.statements[1].page.as_deref(),
            m.statements[1].location.as_str()
        ),
        (Some("2"), "line 18")
    );
    // Intermediate balances, debit balances, leading zeros kept as sent,
    // Latin-1 text in the information.
    let changed = crlf
        .replace(":60F:C261129CNY1000000,00", ":60M:D261129CNY0,00")
        .replace(":62F:C261130CNY997784,91", ":62M:D261130CNY2215,09")
        .replace(":28C:330/1", ":28C:00330/001")
        .replace("interest november", "Zins f~r november");
    let latin1: Vec<u8> = changed
        .bytes()
        .map(|b| if b == b'~' { 0xFC } else { b })
        .collect();
    assert!(std::str::from_utf8(&latin1).is_err());
    let s = read(FileKind::Mt940, &latin1).unwrap().statements.remove(0);
    assert_eq!(s.electronic_seq.as_deref(), Some("00330"));
    assert_eq!(s.sequence_number(), Some(330));
    assert_eq!(s.page.as_deref(), Some("001"));
    let (opening, closing) = (s.opening.as_ref().unwrap(), s.closing.as_ref().unwrap());
    assert_eq!((opening.code.as_str(), opening.signed_minor), ("OPBD", 0));
    assert_eq!(
        (closing.code.as_str(), closing.signed_minor),
        ("CLBD", -221_509)
    );
    assert!(s.prove_balances().is_ok());
    assert_eq!(
        s.entries[2].remittance.as_deref(),
        Some("/REMI/Zins für november")
    );
}

#[test]
fn camt054_reads_as_notifications() {
    let statement = read_fixture("camt053_v08.xml").statements.remove(0);
    for (v, name) in [(2, "camt054_v02.xml"), (8, "camt054_v08.xml")] {
        let m = read_fixture(name);
        assert_eq!(m.format, BankFormat::Camt054(v), "{name}");
        assert_eq!(m.message_id, "NTF-MSG-20261130-01");
        assert_eq!(m.statements.len(), 1);
        let n = &m.statements[0];
        assert_eq!(n.kind, MessageKind::Notification);
        assert_eq!(n.location, "Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]");
        assert_eq!(n.id, "NTF-20261130-01");
        assert_eq!(
            (n.account.as_str(), n.account_currency.as_deref()),
            (ACCOUNT, Some("CNY"))
        );
        assert_eq!((n.opening.as_ref(), n.closing.as_ref()), (None, None));
        assert_eq!(n.created, Some(day(30)));
        assert_eq!(n.entries.len(), 2);
        assert_eq!(
            n.entries[1].location,
            "Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Ntry[2]"
        );
        for (a, b) in n.entries.iter().zip(&statement.entries) {
            assert_eq!(entry_fields(a), entry_fields(b), "{name}");
        }
        assert_eq!(n.currency().unwrap(), Currency::CNY);
        assert_eq!(n.prove_balances().unwrap(), None, "no balances to prove");
    }
    let m = read_fixture("camt054_noref_v08.xml");
    let n = &m.statements[0];
    assert_eq!(
        (n.kind, n.id.as_str()),
        (MessageKind::Notification, "NTF-20261130-02")
    );
    assert_eq!(n.entries.len(), 1);
    let e = &n.entries[0];
    assert_eq!(entry_fields(e), entry_fields(&statement.entries[2]));
    assert_eq!(
        (e.account_servicer_ref.as_deref(), e.entry_ref.as_deref()),
        (None, None)
    );
    assert_eq!(e.bank_reference(), None);
}

#[test]
fn a_public_style_eur_statement_reads() {
    let m = read_fixture("camt053_v02_nl_eur.xml");
    assert_eq!(m.format, BankFormat::Camt053(2));
    assert_eq!(m.message_id, "0417164300.2026-11-30.001");
    let s = &m.statements[0];
    assert_eq!(s.account, "NL91ABNA0417164300");
    assert_eq!(s.account_currency.as_deref(), Some("EUR"));
    assert_eq!(s.currency().unwrap().code(), "EUR");
    assert_eq!(s.created, Some(day(30)));
    let opening = s.opening.as_ref().unwrap();
    assert_eq!(
        (
            opening.code.as_str(),
            opening.signed_minor,
            opening.currency.as_str()
        ),
        ("PRCD", 100_000, "EUR")
    );
    let closing = s.closing.as_ref().unwrap();
    assert_eq!(
        (closing.code.as_str(), closing.signed_minor),
        ("CLBD", 100_620)
    );
    assert!(s.prove_balances().unwrap().is_some());
    assert_eq!(s.entries.len(), 2);
    let e = &s.entries[0];
    // The entry's EUR amount, not the instructed USD one.
    assert_eq!(
        (e.amount_minor, e.currency.as_str(), e.credit),
        (1_070, "EUR", true)
    );
    assert_eq!(e.entry_ref.as_deref(), Some("2026113000001"));
    // Refs/AcctSvcrRef is the transaction's, not the entry's.
    assert_eq!(e.account_servicer_ref, None);
    assert_eq!(e.bank_reference(), Some("2026113000001"));
    assert_eq!(e.end_to_end_id, None);
    assert_eq!(
        e.remittance.as_deref(),
        Some("Factuur 2026-118 & 2026-119 RF18539007547034")
    );
    let e = &s.entries[1];
    assert_eq!((e.amount_minor, e.credit), (450, false));
    assert_eq!(e.entry_ref.as_deref(), Some("2026113000002"));
    assert_eq!(
        e.remittance.as_deref(),
        Some("KOSTEN BETALINGSVERKEER NOVEMBER 2026")
    );
}

#[test]
fn text_is_read_with_its_entities_and_character_references() {
    let xml = text("camt053_v08.xml").replacen(
        "<Ustrd>interest november</Ustrd>",
        "<Ustrd>interest &lt;november&gt; &amp; &#x5229;&#24687; <![CDATA[a<b]]>&apos;&quot;</Ustrd>",
        1,
    );
    let m = read(FileKind::Camt053, xml.as_bytes()).unwrap();
    assert_eq!(
        m.statements[0].entries[2].remittance.as_deref(),
        Some("interest <november> & 利息 a<b'\"")
    );
    let e = refused(FileKind::Camt053, xml.replacen("&amp;", "&nbsp;", 1));
    assert_eq!(
        e.location,
        format!("{STMT1}/Ntry[3]/NtryDtls/TxDtls/RmtInf/Ustrd")
    );
    assert!(e.reason.contains("&nbsp;"), "{e}");
}

#[test]
fn a_latin1_document_reads_when_it_says_so() {
    let xml = text("camt053_v02_nl_eur.xml")
        .replacen("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"", 1)
        .replacen("KOSTEN BETALINGSVERKEER", "KOSTEN BETALINGSVERKEER ~", 1);
    let latin1: Vec<u8> = xml
        .bytes()
        .map(|b| if b == b'~' { 0xE9 } else { b })
        .collect();
    let m = read(FileKind::Camt053, &latin1).unwrap();
    assert_eq!(
        m.statements[0].entries[1].remittance.as_deref(),
        Some("KOSTEN BETALINGSVERKEER \u{e9} NOVEMBER 2026")
    );
    // Undeclared, it is not UTF-8: refused.
    let undeclared: Vec<u8> = text("camt053_v02_nl_eur.xml")
        .replacen("KOSTEN", "~", 1)
        .bytes()
        .map(|b| if b == b'~' { 0xE9 } else { b })
        .collect();
    let e = refused(FileKind::Camt053, &undeclared);
    assert_eq!(e.location, "file");
    assert!(e.reason.contains("not UTF-8"), "{e}");
}

#[test]
fn malformed_camt_files_are_refused_whole_with_where_and_why() {
    let good = text("camt053_v08.xml");
    let cases: Vec<(String, String, &str)> = vec![
        // Not XML at all.
        (
            "this is not XML, it is a letter".into(),
            "file".into(),
            "not an XML document",
        ),
        ("".into(), "file".into(), "no XML element"),
        // Truncated: in an element's text, and inside a tag.
        (
            good[..good.find("BCF-alipay").unwrap() + 3].into(),
            format!("{STMT1}/Ntry[2]/NtryDtls/TxDtls/RmtInf/Ustrd"),
            "truncated",
        ),
        (
            good[..good.find("<Amt Ccy=\"CNY\">250.00").unwrap() + 7].into(),
            format!("{STMT1}/Ntry[3]"),
            "truncated",
        ),
        // Another root, another message, another version.
        (
            "<?xml version=\"1.0\"?><PowerConfirmation/>".into(),
            "PowerConfirmation".into(),
            "not Document",
        ),
        (
            good.replace("camt.053.001.08", "camt.052.001.08"),
            "Document".into(),
            "\"urn:iso:std:iso:20022:tech:xsd:camt.052.001.08\"",
        ),
        (
            good.replace("camt.053.001.08", "camt.053.001.09"),
            "Document".into(),
            "camt.053.001.02 to camt.053.001.08",
        ),
        (
            good.replace(
                " xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"",
                "",
            ),
            "Document".into(),
            "no namespace",
        ),
        (
            good.replace("BkToCstmrStmt>", "BkToCstmrAcctRpt>"),
            "Document/BkToCstmrAcctRpt".into(),
            "holds BkToCstmrStmt",
        ),
        // Amounts: three decimals in CNY, a currency not known, no Ccy.
        (
            good.replacen(">17165.04<", ">17165.045<", 1),
            format!("{STMT1}/Ntry[1]/Amt"),
            "more decimals than CNY",
        ),
        (
            good.replacen(">17165.04<", ">-17165.04<", 1),
            format!("{STMT1}/Ntry[1]/Amt"),
            "not an amount",
        ),
        (
            good.replacen("Ccy=\"CNY\">14699.95", "Ccy=\"XYZ\">14699.95", 1),
            format!("{STMT1}/Ntry[2]/Amt"),
            "XYZ",
        ),
        (
            good.replacen("Ccy=\"CNY\">14699.95", ">14699.95", 1),
            format!("{STMT1}/Ntry[2]/Amt"),
            "no Ccy",
        ),
        (
            good.replacen(">997784.91<", ">997784.9.1<", 1),
            format!("{STMT1}/Bal[2]/Amt"),
            "not an amount",
        ),
        // Direction and status.
        (
            good.replacen(
                "<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>",
                "<CdtDbtInd>XXX</CdtDbtInd>\n        <Sts>",
                1,
            ),
            format!("{STMT1}/Ntry[2]/CdtDbtInd"),
            "\"XXX\" is not CRDT or DBIT",
        ),
        (
            good.replacen("<CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts>", "<Sts>", 1),
            format!("{STMT1}/Ntry[1]/CdtDbtInd"),
            "missing",
        ),
        (
            good.replacen(
                "<Amt Ccy=\"CNY\">17165.04</Amt>\n        <CdtDbtInd>",
                "<CdtDbtInd>",
                1,
            ),
            format!("{STMT1}/Ntry[1]/Amt"),
            "missing",
        ),
        (
            good.replacen("<Sts><Cd>BOOK</Cd></Sts>", "", 1),
            format!("{STMT1}/Ntry[1]/Sts"),
            "missing",
        ),
        (
            good.replacen("<Sts><Cd>BOOK</Cd></Sts>", "<Sts><Cd></Cd></Sts>", 1),
            format!("{STMT1}/Ntry[1]/Sts"),
            "missing",
        ),
        (
            good.replacen(
                "<CdtDbtInd>CRDT</CdtDbtInd>",
                "<CdtDbtInd>CREDIT</CdtDbtInd>",
                1,
            ),
            format!("{STMT1}/Bal[1]/CdtDbtInd"),
            "CREDIT",
        ),
        // Dates.
        (
            good.replacen(
                "<Dt>2026-11-30</Dt>\n        </BookgDt>",
                "<Dt>2026-11-31</Dt>\n        </BookgDt>",
                1,
            ),
            format!("{STMT1}/Ntry[1]/BookgDt/Dt"),
            "not a date",
        ),
        (
            good.replacen("2026-11-30T09:15:00", "30.11.2026 09:15", 1),
            format!("{STMT1}/Ntry[2]/BookgDt/DtTm"),
            "not a date",
        ),
        (
            good.replacen("<Dt>2026-11-29</Dt>", "<Dt>2026-02-29</Dt>", 1),
            format!("{STMT1}/Bal[1]/Dt/Dt"),
            "not a date",
        ),
        (
            good.replacen("2026-11-30T00:00:00+08:00", "yesterday", 1),
            format!("{STMT1}/FrToDt/FrDtTm"),
            "not a date",
        ),
        // The statement's id and account.
        (
            good.replacen("<Id>31050161373600000001-20261130</Id>", "", 1),
            format!("{STMT1}/Id"),
            "no Id",
        ),
        (
            good.replacen("<Id>31050161373600000001</Id>", "", 1),
            format!("{STMT1}/Acct/Id"),
            "no account",
        ),
        // No statement at all.
        (
            format!(
                "{}</BkToCstmrStmt>\n</Document>\n",
                &good[..good.find("<Stmt>").unwrap()]
            ),
            "Document/BkToCstmrStmt".into(),
            "no Stmt",
        ),
        // Content after the root.
        (
            format!("{good}<Document/>"),
            "Document".into(),
            "second root",
        ),
        (format!("{good}trailing"), "file".into(), "after the root"),
    ];
    for (xml, at, why) in cases {
        let e = refused(FileKind::Camt053, &xml);
        assert_eq!(e.location, at, "{why}: {e}");
        assert!(e.reason.contains(why), "{why}: {e}");
    }
    // The place in a file of several statements, as the refusal gives it.
    let stmt = &good[good.find("<Stmt>").unwrap()..good.find("</BkToCstmrStmt>").unwrap()];
    let two = good.replacen(
        stmt,
        &format!("{stmt}{}", stmt.replacen(">250.00<", ">250.001<", 1)),
        1,
    );
    let e = refused(FileKind::Camt053, &two);
    assert_eq!(
        e.location, "Document/BkToCstmrStmt/Stmt[2]/Ntry[3]/Amt",
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: \"250.001\" has more decimals than CNY has (2)",
            e.location
        )
    );
    // Both read when good.
    let both = good.replacen(stmt, &format!("{stmt}{stmt}"), 1);
    let m = read(FileKind::Camt053, both.as_bytes()).unwrap();
    assert_eq!(m.statements.len(), 2);
    assert_eq!(
        (m.statements[1].index, m.statements[1].location.as_str()),
        (2, "Document/BkToCstmrStmt/Stmt[2]")
    );
    assert_eq!(
        m.statements[1].entries[0].location,
        "Document/BkToCstmrStmt/Stmt[2]/Ntry[1]"
    );
    // A notification is not a statement, nor the other way round.
    let e = refused(FileKind::Camt053, fixture("camt054_v08.xml"));
    assert_eq!(e.location, "Document");
    assert!(
        e.reason
            .contains("camt.054.001.08 notification, not a camt.053 statement"),
        "{e}"
    );
    let e = refused(FileKind::Camt054, fixture("camt053_v02.xml"));
    assert!(
        e.reason
            .contains("camt.053.001.02 statement, not a camt.054 notification"),
        "{e}"
    );
    // Only the bank kinds are read here.
    let e = refused(FileKind::WaterCsv, fixture("camt053_v02.xml"));
    assert_eq!(e.location, "file");
}

#[test]
fn malformed_mt940_files_are_refused_whole_with_where_and_why() {
    let good = text("mt940.sta");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            good.replacen(":61:2611301130D", ":61:2613301130D", 1),
            "line 6, field :61:",
            "value date",
        ),
        (
            good.replacen(":61:2611301130D", ":61:2611301131D", 1),
            "line 6, field :61:",
            "entry date",
        ),
        (
            good.replacen("C14699,95NTRF", "C14699,951NTRF", 1),
            "line 10, field :61:",
            "more decimals",
        ),
        (
            good.replacen("C14699,95NTRF", "X14699,95NTRF", 1),
            "line 10, field :61:",
            "mark",
        ),
        (
            good.replacen(":60F:C261129CNY1000000,00", ":60F:C261129XYZ1000000,00", 1),
            "line 5, field :60F:",
            "XYZ",
        ),
        (
            good.replacen(":60F:C261129CNY1000000,00", ":60F:C26112", 1),
            "line 5, field :60F:",
            "not a balance",
        ),
        (
            good.replacen(":28C:330/1", ":28C:ABC", 1),
            "line 4, field :28C:",
            "not a statement number",
        ),
        (
            good.replacen(":20:STMT20261130", ":20:", 1),
            "line 2, field :20:",
            "no statement reference",
        ),
        (
            good.replacen(":62F:C261130CNY997784,91\r\n", "", 1),
            "line 2",
            ":62F:/:62M: closing balance",
        ),
        (
            good.replacen(":60F:C261129CNY1000000,00\r\n", "", 1),
            "line 5, field :61:",
            "before the opening balance",
        ),
        (
            good.replacen(":25:31050161373600000001\r\n", "", 1),
            "line 2",
            ":25: account",
        ),
        (
            good.replacen(":20:STMT20261130\r\n", "", 1),
            "line 2, field :25:",
            "starts with :20:",
        ),
        (
            good.replacen(":62F:C261130CNY997784,91", ":62F:C261130CNY-997784,91", 1),
            "line 14, field :62F:",
            "not an amount",
        ),
        ("hello\r\n".into(), "file", "no statement"),
    ];
    for (sta, at, why) in cases {
        let e = refused(FileKind::Mt940, &sta);
        assert_eq!(e.location, at, "{why}: {e}");
        assert!(e.reason.contains(why), "{why}: {e}");
    }
    // Without :60F: and :61: the statement is refused for its opening.
    let no_opening: String = good
        .lines()
        .filter(|l| {
            !l.starts_with(":60F:")
                && !l.starts_with(":61:")
                && !l.starts_with(":86:")
                && !l.starts_with("BILLCLEAR")
                && !l.starts_with("settlement")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let e = refused(FileKind::Mt940, &no_opening);
    assert!(e.reason.contains(":60F:/:60M: opening balance"), "{e}");
}

#[test]
fn bank_files_are_recognised_from_their_first_bytes() {
    for (name, kind) in [
        ("camt053_v02.xml", FileKind::Camt053),
        ("camt053_v03.xml", FileKind::Camt053),
        ("camt053_v04.xml", FileKind::Camt053),
        ("camt053_v06.xml", FileKind::Camt053),
        ("camt053_v08.xml", FileKind::Camt053),
        ("camt053_v02_nl_eur.xml", FileKind::Camt053),
        ("camt054_v02.xml", FileKind::Camt054),
        ("camt054_v08.xml", FileKind::Camt054),
        ("camt054_noref_v08.xml", FileKind::Camt054),
        ("mt940.sta", FileKind::Mt940),
        ("mt940_raw.sta", FileKind::Mt940),
    ] {
        let b = fixture(name);
        assert_eq!(sniff(&b[..b.len().min(512)]), Some(kind), "{name}");
        // The Document's namespace itself is within the first 512 bytes.
        if name.ends_with(".xml") {
            let head = String::from_utf8_lossy(&b[..512]);
            assert!(
                head.contains(" xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.05"),
                "{name}"
            );
        }
        let mut bom = b"\xEF\xBB\xBF\r\n".to_vec();
        bom.extend_from_slice(&b);
        assert_eq!(sniff(&bom[..512]), Some(kind), "{name} after a BOM");
    }
    assert_eq!(sniff(b"{4:\r\n:20:X\r\n"), Some(FileKind::Mt940));
    assert_eq!(
        sniff(b"our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at\n"),
        None
    );
    for other in [
        &b""[..],
        b"P-1,R-1,sh-water,1234,10.00,CNY,2026-11-30T10:00:00+08:00\n",
        b"<?xml version=\"1.0\"?><PowerConfirmation/>",
        b"<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.052.001.08\">",
        b"{1:F01PCBCCNBJAXXX0000000000}",
        b"HUBSTATEMENT,hub,2026-11-30",
    ] {
        assert_eq!(sniff(other), None, "{}", String::from_utf8_lossy(other));
    }
}

/// Issue 20: damaged tags found by mutating the fixtures are refused with
/// where and why, never a panic (a camt.053 whose `<Stmt>` start tag is
/// missing used to reach an `expect`).
#[test]
fn damaged_tags_are_refused_whole_with_where_and_why() {
    let good = text("camt053_v08.xml");
    let cases: Vec<(String, &str, &str)> = vec![
        // The statement's start tag missing: its end tag closes nothing.
        (
            good.replacen("<Stmt>", "", 1),
            "Document/BkToCstmrStmt",
            "not well-formed XML",
        ),
        // Its end tag missing: the message ends inside it.
        (
            good.replacen("</Stmt>", "", 1),
            STMT1,
            "not well-formed XML",
        ),
        // Both missing: the statement's elements sit in the message,
        // which holds no statement then.
        (
            good.replacen("<Stmt>", "", 1).replacen("</Stmt>", "", 1),
            "Document/BkToCstmrStmt",
            "no Stmt",
        ),
        // An entry's start tag missing.
        (good.replacen("<Ntry>", "", 1), STMT1, "not well-formed XML"),
        // A reference to an unknown entity before the root element.
        (
            good.replacen("<Document", "&nosuch;<Document", 1),
            "file",
            "unknown entity &nosuch;",
        ),
        (
            good.replacen("<Document", "&#0;<Document", 1),
            "file",
            "bad character reference",
        ),
        // Elements without a name.
        (
            good.replacen("<Document", "<><Document", 1),
            "file",
            "an element without a name",
        ),
        (
            good.replacen("<Stmt>", "<Stmt><p:>x</p:>", 1),
            STMT1,
            "an element without a name (<p:>)",
        ),
    ];
    for (xml, at, why) in cases {
        let e = refused(FileKind::Camt053, &xml);
        assert_eq!(e.location, at, "{why}: {e}");
        assert!(e.reason.contains(why), "{why}: {e}");
    }
}
