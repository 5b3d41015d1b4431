use std::path::PathBuf;

use chrono::NaiveDate;

use super::*;
use crate::domain::money::Currency;
use crate::domain::recon::statement::{BankFormat, BankStatement, MessageKind};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/bank")
            .join(name),
    )
    .unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn read_fixture(name: &str) -> BankMessage {
    let bytes = fixture(name);
    let kind =
        sniff(&bytes[..bytes.len().min(512)]).unwrap_or_else(|| panic!("{name} not recognised"));
    read(kind, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What every format must agree on (locations, format and the stated
/// account currency aside).
fn essence(s: &BankStatement) -> BankStatement {
    let mut s = s.clone();
    s.location.clear();
    s.account_currency = None;
    s.created = None;
    s.from_date = None;
    s.to_date = None;
    for e in &mut s.entries {
        e.location.clear();
    }
    s
}

/// The fixtures are valid against the ISO 20022 schemas (xmllint).
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
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_camt053_version_reads_to_the_same_statement() {
    let v08 = read_fixture("camt053_v08.xml");
    assert_eq!(v08.format, BankFormat::Camt053(8));
    assert_eq!(v08.message_id, "STMT-20261130-0001");
    let s = &v08.statements[0];
    assert_eq!(s.kind, MessageKind::Statement);
    assert_eq!(s.id, "31050161373600000001-20261130");
    assert_eq!(
        (s.electronic_seq.as_deref(), s.legal_seq.as_deref()),
        (Some("330"), Some("330"))
    );
    assert_eq!(s.account, "31050161373600000001");
    assert_eq!(s.opening.as_ref().unwrap().signed_minor, 100_000_000);
    assert_eq!(s.opening.as_ref().unwrap().date, day(29));
    assert_eq!(s.closing.as_ref().unwrap().signed_minor, 99_778_491);
    assert_eq!(
        (s.from_date, s.to_date, s.created),
        (Some(day(30)), Some(day(30)), Some(day(30)))
    );
    assert_eq!(s.entries.len(), 4);
    let e = &s.entries[0];
    assert_eq!(
        (e.amount_minor, e.credit, e.status.as_str()),
        (1_716_504, false, "BOOK")
    );
    assert_eq!(
        (e.booking_date, e.value_date),
        (Some(day(30)), Some(day(30)))
    );
    assert_eq!(e.account_servicer_ref.as_deref(), Some("BANKREF0001"));
    assert_eq!(
        e.end_to_end_id.as_deref(),
        Some("BCE01a227b7d62077af9deb9cd539c11085")
    );
    let f = &s.entries[1];
    assert_eq!((f.amount_minor, f.credit), (1_469_995, true));
    assert_eq!(f.end_to_end_id, None, "NOTPROVIDED is no reference");
    assert_eq!(f.remittance.as_deref(), Some("BCF-alipay-20261129"));
    assert_eq!(s.entries[2].bank_reference(), None);
    assert_eq!(
        (s.entries[3].status.as_str(), s.entries[3].booking_date),
        ("PDNG", None)
    );
    assert!(s.prove_balances().unwrap().is_some());
    for (v, name) in [
        (2, "camt053_v02.xml"),
        (3, "camt053_v03.xml"),
        (4, "camt053_v04.xml"),
        (6, "camt053_v06.xml"),
    ] {
        let m = read_fixture(name);
        assert_eq!(m.format, BankFormat::Camt053(v));
        assert_eq!(essence(&m.statements[0]), essence(s), "{name}");
        assert_eq!(m.statements[0].currency().unwrap(), Currency::CNY, "{name}");
        assert!(m.statements[0].prove_balances().is_ok(), "{name}");
    }
    // v03 and v04 leave the optional Acct/Ccy out.
    assert_eq!(
        read_fixture("camt053_v03.xml").statements[0].account_currency,
        None
    );
}

#[test]
fn mt940_reads_to_the_same_booked_entries_and_balances() {
    let camt = read_fixture("camt053_v08.xml").statements.remove(0);
    let m = read_fixture("mt940.sta");
    assert_eq!(m.format, BankFormat::Mt940);
    assert_eq!(m.message_id, "STMT20261130");
    let s = &m.statements[0];
    assert_eq!(
        (s.electronic_seq.as_deref(), s.page.as_deref()),
        (Some("330"), Some("1"))
    );
    assert_eq!(s.account, camt.account);
    assert_eq!(s.opening.as_ref().unwrap().signed_minor, 100_000_000);
    assert_eq!(s.closing.as_ref().unwrap().signed_minor, 99_778_491);
    assert!(s.prove_balances().is_ok());
    let booked: Vec<_> = camt.entries.iter().filter(|e| e.booked()).collect();
    assert_eq!(s.entries.len(), booked.len());
    for (a, b) in s.entries.iter().zip(booked) {
        assert_eq!(
            (a.amount_minor, a.credit, a.booking_date),
            (b.amount_minor, b.credit, b.booking_date)
        );
        assert_eq!(a.account_servicer_ref, b.account_servicer_ref);
        assert_eq!(a.end_to_end_id, b.end_to_end_id);
        assert!(
            a.remittance
                .as_deref()
                .unwrap()
                .contains(b.remittance.as_deref().unwrap()),
            "{a:?}"
        );
    }
    // Without the envelope, two statements, continuation lines joined.
    let raw = read_fixture("mt940_raw.sta");
    assert_eq!(raw.statements.len(), 2);
    assert_eq!(raw.statements[0].account, "31050161373600000001");
    assert_eq!(
        raw.statements[0].entries[0].remittance.as_deref(),
        Some("/EREF/BCE01a227b7d62077af9deb9cd539c11085/REMI/billclear settlement sh-water 2026-11-29")
    );
    let second = &raw.statements[1];
    assert_eq!(second.electronic_seq.as_deref(), Some("331"));
    assert_eq!(
        second.entries[0].booking_date,
        Some(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
    );
    assert!(second.prove_balances().is_ok());
}

#[test]
fn camt054_reads_as_notifications() {
    for name in ["camt054_v02.xml", "camt054_v08.xml"] {
        let m = read_fixture(name);
        assert!(matches!(m.format, BankFormat::Camt054(_)));
        let n = &m.statements[0];
        assert_eq!(n.kind, MessageKind::Notification);
        assert_eq!(n.id, "NTF-20261130-01");
        assert_eq!(n.entries.len(), 2);
        assert_eq!(
            n.entries[1].account_servicer_ref.as_deref(),
            Some("BANKREF0002")
        );
        assert_eq!(n.prove_balances().unwrap(), None, "no balances to prove");
    }
    let n = read_fixture("camt054_noref_v08.xml");
    assert_eq!(n.statements[0].entries[0].bank_reference(), None);
}

#[test]
fn a_public_style_eur_statement_reads() {
    let m = read_fixture("camt053_v02_nl_eur.xml");
    let s = &m.statements[0];
    assert_eq!(s.account, "NL91ABNA0417164300");
    assert_eq!(s.currency().unwrap().code(), "EUR");
    assert_eq!(s.entries[0].entry_ref.as_deref(), Some("1"));
    assert_eq!(s.entries[0].remittance.as_deref(), Some("Invoice 2026-118"));
    assert_eq!(
        s.entries[1].remittance.as_deref(),
        Some("KOSTEN BETALINGSVERKEER")
    );
    assert!(s.prove_balances().is_ok());
}

fn refused(kind: FileKind, bytes: &[u8]) -> FileRefusal {
    read(kind, bytes).expect_err("refused")
}

#[test]
fn malformed_files_are_refused_with_where_and_why() {
    let good = String::from_utf8(fixture("camt053_v08.xml")).unwrap();
    let e = refused(FileKind::Camt053, b"not xml at all <");
    assert!(
        e.reason.contains("root element") || e.reason.contains("XML"),
        "{e}"
    );
    let e = refused(FileKind::Camt053, &good.as_bytes()[..good.len() / 2]);
    assert!(
        e.reason.contains("truncated") || e.reason.contains("XML"),
        "{e}"
    );
    let e = refused(
        FileKind::Camt053,
        good.replace("camt.053.001.08", "camt.052.001.08")
            .as_bytes(),
    );
    assert!(e.reason.contains("camt.052.001.08"), "{e}");
    let e = refused(
        FileKind::Camt053,
        good.replacen("17165.04", "17165.045", 1).as_bytes(),
    );
    assert!(e.location.ends_with("Stmt[1]/Ntry[1]/Amt"), "{e}");
    assert!(e.reason.contains("more decimals"), "{e}");
    let e = refused(
        FileKind::Camt053,
        good.replacen(
            "<CdtDbtInd>CRDT</CdtDbtInd><Sts>",
            "<CdtDbtInd>XXX</CdtDbtInd><Sts>",
            1,
        )
        .as_bytes(),
    );
    assert!(e.location.ends_with("Ntry[2]/CdtDbtInd"), "{e}");
    let e = refused(
        FileKind::Camt053,
        good.replacen("<Sts><Cd>BOOK</Cd></Sts>", "", 1).as_bytes(),
    );
    assert!(
        e.location.ends_with("Ntry[1]/Sts") && e.reason == "missing",
        "{e}"
    );
    let e = refused(FileKind::Camt054, good.as_bytes());
    assert!(e.reason.contains("not a camt054"), "{e}");
    let mt = String::from_utf8(fixture("mt940.sta")).unwrap();
    let e = refused(
        FileKind::Mt940,
        mt.replacen(":61:2611301130D", ":61:2613301130D", 1)
            .as_bytes(),
    );
    assert!(e.location.starts_with("line 6, field :61:"), "{e}");
    let e = refused(
        FileKind::Mt940,
        mt.replace(":62F:C261130CNY997784,91\r\n", "").as_bytes(),
    );
    assert!(e.reason.contains(":62F:/:62M: closing balance"), "{e}");
}

#[test]
fn bank_files_are_recognised_from_their_first_bytes() {
    for (name, kind) in [
        ("camt053_v02.xml", FileKind::Camt053),
        ("camt053_v06.xml", FileKind::Camt053),
        ("camt054_v08.xml", FileKind::Camt054),
        ("mt940.sta", FileKind::Mt940),
        ("mt940_raw.sta", FileKind::Mt940),
    ] {
        let b = fixture(name);
        assert_eq!(sniff(&b[..b.len().min(512)]), Some(kind), "{name}");
        assert_eq!(
            crate::reconcile::formats::sniff(&b[..b.len().min(512)]),
            Some(kind),
            "{name}"
        );
    }
    assert_eq!(
        sniff(b"our_reference,biller_reference,account,amount"),
        None
    );
}
