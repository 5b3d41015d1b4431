//! Golden tests: each format written by its biller-connectors writer and
//! read back exactly; one checked-in fixture per format under
//! `tests/fixtures/recon/` (regenerate with `BILLCLEAR_WRITE_RECON_FIXTURES=1`
//! only when a writer changes on purpose); refusals with their location
//! and reason.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::domain::recon::{FileKind, FileRefusal, ParsedFile, RecordStatus, TheirRecord};
use biller_connectors::coop::format::{render_ack, Ack, AckLine, AckStatus};
use biller_connectors::hub::codec::TxnState;
use biller_connectors::power::codec::{Confirmation, ConfirmedCredit};
use biller_sim::hub::{statement_csv, HubTxn};
use biller_sim::{confirmation_csv, CreditRecord};

// ------------------------------------------------------------- helpers

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

fn plus8() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn credit(
    our: &str,
    their: &str,
    biller: &str,
    account: &str,
    amount: &str,
    at: &str,
) -> CreditRecord {
    CreditRecord {
        our_reference: our.into(),
        biller_reference: their.into(),
        biller_id: biller.into(),
        account_number: account.into(),
        amount: dec(amount),
        currency: "CNY".into(),
        bill_reference: None,
        credited_at: utc(at),
    }
}

#[allow(clippy::too_many_arguments)]
fn rec(
    line: u64,
    our: &str,
    their: &str,
    biller: &str,
    account: &str,
    amount_minor: i64,
    status: RecordStatus,
    at: Option<&str>,
) -> TheirRecord {
    TheirRecord {
        our_reference: our.into(),
        their_reference: their.into(),
        biller_id: biller.into(),
        account: account.into(),
        amount_minor,
        currency: "CNY".into(),
        status,
        at: at.map(str::to_string),
        line,
    }
}

use RecordStatus::{Credited, Failed};

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recon")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn read_all(kind: FileKind, bytes: &[u8]) -> (Vec<TheirRecord>, FileSummary) {
    let mut records = Vec::new();
    let summary = read(kind, bytes, &mut |r| records.push(r))
        .unwrap_or_else(|e| panic!("{kind:?} refused: {e}"));
    (records, summary)
}

fn refused(kind: FileKind, bytes: impl AsRef<[u8]>) -> FileRefusal {
    match parse(kind, bytes.as_ref()) {
        Ok(f) => panic!(
            "{kind:?} read {} records, expected a refusal",
            f.records.len()
        ),
        Err(e) => e,
    }
}

/// A refusal at `location` whose reason holds `reason`.
#[track_caller]
fn assert_refused(kind: FileKind, bytes: impl AsRef<[u8]>, location: &str, reason: &str) {
    let e = refused(kind, bytes);
    assert_eq!(e.location, location, "{e}");
    assert!(
        e.reason.contains(reason),
        "{e}\nexpected reason with {reason:?}"
    );
}

// ------------------------------------------------------------ the files

fn water_file() -> String {
    let credits = [
        credit(
            "pay-0001",
            "W0001",
            "sh-water",
            "3100000011",
            "88.50",
            "2026-11-29T01:02:03.004Z",
        ),
        // A receipt needing CSV quoting (comma and quotes).
        credit(
            "pay-0002",
            "W0002,\"B\"",
            "sh-water",
            "3100000029",
            "120",
            "2026-11-29T05:00:00Z",
        ),
        // Another biller's credit and the next day's: not in the file.
        credit(
            "pay-0099",
            "P0001",
            "pudong-water",
            "PD20261129",
            "10.00",
            "2026-11-29T06:00:00Z",
        ),
        credit(
            "pay-0003",
            "W0003",
            "sh-water",
            "3100000037",
            "0.01",
            "2026-11-29T15:59:59.999Z",
        ),
        credit(
            "pay-0004",
            "W0004",
            "sh-water",
            "3100000045",
            "5.00",
            "2026-11-29T16:00:00Z",
        ),
    ];
    confirmation_csv(&credits, "sh-water", day(), plus8())
}

fn water_expected() -> ParsedFile {
    ParsedFile {
        kind: FileKind::WaterCsv,
        biller_id: Some("sh-water".into()),
        business_date: day(),
        identity: None,
        records: vec![
            rec(
                2,
                "pay-0001",
                "W0001",
                "sh-water",
                "3100000011",
                8850,
                Credited,
                Some("2026-11-29T09:02:03.004+08:00"),
            ),
            rec(
                3,
                "pay-0002",
                "W0002,\"B\"",
                "sh-water",
                "3100000029",
                12000,
                Credited,
                Some("2026-11-29T13:00:00.000+08:00"),
            ),
            rec(
                4,
                "pay-0003",
                "W0003",
                "sh-water",
                "3100000037",
                1,
                Credited,
                Some("2026-11-29T23:59:59.999+08:00"),
            ),
        ],
    }
}

fn power_file() -> String {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    let c = |r: &str, n: &str, acct: &str, amount: &str, t: &str| ConfirmedCredit {
        txn_ref: r.into(),
        receipt_no: n.into(),
        account_no: acct.into(),
        amount: dec(amount),
        currency: "CNY".into(),
        credited_at: at(t),
    };
    Confirmation {
        biller_code: "sh-power".into(),
        business_date: day(),
        credits: vec![
            c(
                "pay-0101",
                "PWR0000000001",
                "0306406159",
                "88.5",
                "2026-11-29T10:03:04.005+08:00",
            ),
            // A receipt needing XML escaping.
            c(
                "pay-0102",
                "PWR<2>&A",
                "0300010378",
                "11.50",
                "2026-11-29T10:03:05+08:00",
            ),
            c(
                "pay-0103",
                "PWR0000000003",
                "0300010741",
                "1000",
                "2026-11-29T02:03:06Z",
            ),
        ],
    }
    .encode()
}

fn power_expected() -> ParsedFile {
    ParsedFile {
        kind: FileKind::PowerXml,
        biller_id: Some("sh-power".into()),
        business_date: day(),
        identity: None,
        records: vec![
            rec(
                4,
                "pay-0101",
                "PWR0000000001",
                "sh-power",
                "0306406159",
                8850,
                Credited,
                Some("2026-11-29T10:03:04.005+08:00"),
            ),
            rec(
                5,
                "pay-0102",
                "PWR<2>&A",
                "sh-power",
                "0300010378",
                1150,
                Credited,
                Some("2026-11-29T10:03:05.000+08:00"),
            ),
            rec(
                6,
                "pay-0103",
                "PWR0000000003",
                "sh-power",
                "0300010741",
                100000,
                Credited,
                Some("2026-11-29T02:03:06.000Z"),
            ),
        ],
    }
}

fn gas_file() -> String {
    let credits = [
        credit(
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "G000000000001",
            "sh-gas",
            "310012345677",
            "88.50",
            "2026-11-29T01:02:03.004Z",
        ),
        credit(
            "pay-0202",
            "G000000000002",
            "sh-gas",
            "310000200530",
            "0.01",
            "2026-11-29T05:00:00Z",
        ),
        credit(
            "pay-0299",
            "M000000000001",
            "minhang-gas",
            "123456782",
            "9.99",
            "2026-11-29T05:00:00Z",
        ),
        credit(
            "pay-0203",
            "G000000000003",
            "sh-gas",
            "310000201064",
            "1234.56",
            "2026-11-29T15:59:59Z",
        ),
    ];
    biller_sim::gas::confirmation_file(&credits, "sh-gas", day(), plus8(), "CNY")
}

fn gas_expected() -> ParsedFile {
    ParsedFile {
        kind: FileKind::GasFixed,
        biller_id: Some("sh-gas".into()),
        business_date: day(),
        identity: None,
        records: vec![
            rec(
                2,
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "G000000000001",
                "sh-gas",
                "310012345677",
                8850,
                Credited,
                Some("2026-11-29T01:02:03Z"),
            ),
            rec(
                3,
                "pay-0202",
                "G000000000002",
                "sh-gas",
                "310000200530",
                1,
                Credited,
                Some("2026-11-29T05:00:00Z"),
            ),
            rec(
                4,
                "pay-0203",
                "G000000000003",
                "sh-gas",
                "310000201064",
                123456,
                Credited,
                Some("2026-11-29T15:59:59Z"),
            ),
        ],
    }
}

fn hub_file() -> String {
    let txn = |id: &str, r: &str, biller: &str, acct: &str, state, amount: &str, at: &str| HubTxn {
        hub_txn_id: id.into(),
        partner_ref: r.into(),
        biller_id: biller.into(),
        account_number: acct.into(),
        amount: dec(amount),
        currency: "CNY".into(),
        bill_reference: None,
        state,
        biller_receipt: None,
        fail_code: None,
        fail_message: None,
        completed_at: utc(at),
    };
    let txns = [
        txn(
            "HUB2026112900000001",
            "pay-0301",
            "sh-power",
            "0306406159",
            TxnState::Success,
            "88.5",
            "2026-11-29T01:00:00Z",
        ),
        // A partner reference needing CSV quoting.
        txn(
            "HUB2026112900000002",
            "pay,0302",
            "sh-water",
            "3100000011",
            TxnState::Success,
            "20.00",
            "2026-11-29T02:00:00.250Z",
        ),
        txn(
            "HUB2026112900000003",
            "pay-0303",
            "sh-gas",
            "310012345677",
            TxnState::Failed,
            "10.00",
            "2026-11-29T03:00:00Z",
        ),
        txn(
            "HUB2026112900000004",
            "pay-0304",
            "sh-gas",
            "310012345677",
            TxnState::Processing,
            "7.00",
            "2026-11-29T04:00:00Z",
        ),
        txn(
            "HUB2026112900000005",
            "pay-0305",
            "pudong-water",
            "PD20261129",
            TxnState::Success,
            "0.25",
            "2026-11-29T15:59:59.999Z",
        ),
        // The next day in +08:00: not in the statement.
        txn(
            "HUB2026113000000001",
            "pay-0306",
            "sh-power",
            "0306406159",
            TxnState::Success,
            "1.00",
            "2026-11-29T16:00:00Z",
        ),
    ];
    statement_csv("SIMHUB", &txns, day(), plus8(), utc("2026-11-30T01:00:00Z"))
}

fn hub_expected() -> ParsedFile {
    ParsedFile {
        kind: FileKind::HubStatement,
        biller_id: None,
        business_date: day(),
        identity: Some("hub:SIMHUB:2026-11-29".into()),
        records: vec![
            rec(
                3,
                "pay-0301",
                "HUB2026112900000001",
                "sh-power",
                "0306406159",
                8850,
                Credited,
                Some("2026-11-29T09:00:00.000+08:00"),
            ),
            rec(
                4,
                "pay,0302",
                "HUB2026112900000002",
                "sh-water",
                "3100000011",
                2000,
                Credited,
                Some("2026-11-29T10:00:00.250+08:00"),
            ),
            rec(
                5,
                "pay-0303",
                "HUB2026112900000003",
                "sh-gas",
                "310012345677",
                1000,
                Failed,
                Some("2026-11-29T11:00:00.000+08:00"),
            ),
            rec(
                7,
                "pay-0305",
                "HUB2026112900000005",
                "pudong-water",
                "PD20261129",
                25,
                Credited,
                Some("2026-11-29T23:59:59.999+08:00"),
            ),
        ],
    }
}

fn coop_file() -> String {
    let line = |n: u32, r: &str, acct: &str, amount: &str, status| AckLine {
        line_no: n,
        our_reference: r.into(),
        account_number: acct.into(),
        amount: dec(amount),
        currency: "CNY".into(),
        status,
    };
    let a = |receipt: &str| AckStatus::Accepted {
        receipt: receipt.into(),
    };
    render_ack(&Ack {
        batch_file_id: "PAY_chongming-coop_20261129_001".into(),
        coop_id: "chongming-coop".into(),
        ack_date: day(),
        created_at: utc("2026-11-29T10:00:00Z"),
        lines: vec![
            line(1, "pay-0401", "CM-000123", "88.50", a("CMR-0001")),
            line(
                2,
                "pay-0402",
                "CM-104271",
                "15.00",
                AckStatus::Rejected {
                    code: "R02".into(),
                    reason: "account closed, 帐户已销户".into(),
                },
            ),
            line(3, "pay-0403", "CM-108542", "120.00", a("CMR-0003")),
            line(5, "pay-0405", "CM-112813", "0.50", a("CMR-0005")),
        ],
    })
    .unwrap()
}

fn coop_expected() -> ParsedFile {
    let c = "chongming-coop";
    ParsedFile {
        kind: FileKind::CoopAck,
        biller_id: Some(c.into()),
        business_date: day(),
        identity: Some("coop-ack:PAY_chongming-coop_20261129_001".into()),
        records: vec![
            rec(
                2,
                "pay-0401",
                "CMR-0001",
                c,
                "CM-000123",
                8850,
                Credited,
                None,
            ),
            rec(3, "pay-0402", "", c, "CM-104271", 1500, Failed, None),
            rec(
                4,
                "pay-0403",
                "CMR-0003",
                c,
                "CM-108542",
                12000,
                Credited,
                None,
            ),
            rec(
                5,
                "pay-0405",
                "CMR-0005",
                c,
                "CM-112813",
                50,
                Credited,
                None,
            ),
        ],
    }
}

/// Each kind, its writer's file, its fixture's name, what it reads as.
fn cases() -> Vec<(FileKind, String, &'static str, ParsedFile)> {
    vec![
        (
            FileKind::WaterCsv,
            water_file(),
            "water.csv",
            water_expected(),
        ),
        (
            FileKind::PowerXml,
            power_file(),
            "power.xml",
            power_expected(),
        ),
        (FileKind::GasFixed, gas_file(), "gas.txt", gas_expected()),
        (
            FileKind::HubStatement,
            hub_file(),
            "hub.csv",
            hub_expected(),
        ),
        (
            FileKind::CoopAck,
            coop_file(),
            "ACK_PAY_chongming-coop_20261129_001.txt",
            coop_expected(),
        ),
    ]
}

// ----------------------------------------------------------- golden reads

#[test]
fn water_csv_from_the_writer_reads_exactly() {
    let file = water_file();
    assert!(file.contains("\"W0002,\"\"B\"\"\""), "{file}");
    let (records, summary) = read_all(FileKind::WaterCsv, file.as_bytes());
    assert_eq!(records, water_expected().records);
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::WaterCsv,
            biller_id: Some("sh-water".into()),
            business_date: day(),
            identity: None,
            records: 3,
            credited: 3,
            credited_total_minor: 20851,
            currency: Some("CNY".into()),
        }
    );
}

#[test]
fn power_xml_from_the_writer_reads_exactly() {
    let (records, summary) = read_all(FileKind::PowerXml, power_file().as_bytes());
    assert_eq!(records, power_expected().records);
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::PowerXml,
            biller_id: Some("sh-power".into()),
            business_date: day(),
            identity: None,
            records: 3,
            credited: 3,
            credited_total_minor: 110000,
            currency: Some("CNY".into()),
        }
    );
}

#[test]
fn gas_fixed_from_the_writer_reads_exactly() {
    let (records, summary) = read_all(FileKind::GasFixed, gas_file().as_bytes());
    assert_eq!(records, gas_expected().records);
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::GasFixed,
            biller_id: Some("sh-gas".into()),
            business_date: day(),
            identity: None,
            records: 3,
            credited: 3,
            credited_total_minor: 132307,
            currency: Some("CNY".into()),
        }
    );
}

#[test]
fn hub_statement_from_the_writer_reads_exactly() {
    let file = hub_file();
    assert!(
        file.contains("PROCESSING") && file.contains("\"pay,0302\""),
        "{file}"
    );
    let (records, summary) = read_all(FileKind::HubStatement, file.as_bytes());
    assert_eq!(records, hub_expected().records);
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::HubStatement,
            biller_id: None,
            business_date: day(),
            identity: Some("hub:SIMHUB:2026-11-29".into()),
            records: 4,
            credited: 3,
            credited_total_minor: 10875,
            currency: Some("CNY".into()),
        }
    );
}

#[test]
fn coop_ack_from_the_writer_reads_exactly() {
    let (records, summary) = read_all(FileKind::CoopAck, coop_file().as_bytes());
    assert_eq!(records, coop_expected().records);
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::CoopAck,
            biller_id: Some("chongming-coop".into()),
            business_date: day(),
            identity: Some("coop-ack:PAY_chongming-coop_20261129_001".into()),
            records: 4,
            credited: 3,
            credited_total_minor: 20900,
            currency: Some("CNY".into()),
        }
    );
}

/// The checked-in fixtures are exactly what the writers write today (a
/// writer that changes its format fails here first).
#[test]
fn fixtures_are_what_the_writers_write() {
    let write = std::env::var_os("BILLCLEAR_WRITE_RECON_FIXTURES").is_some();
    for (kind, file, name, _) in cases() {
        if write {
            std::fs::create_dir_all(fixture_path("")).unwrap();
            std::fs::write(fixture_path(name), &file).unwrap();
        }
        assert_eq!(
            String::from_utf8(fixture(name)).unwrap(),
            file,
            "{kind:?} {name}"
        );
    }
}

#[test]
fn water_fixture_reads_as_pinned() {
    assert_eq!(
        parse(FileKind::WaterCsv, &fixture("water.csv")).unwrap(),
        water_expected()
    );
}

#[test]
fn power_fixture_reads_as_pinned() {
    assert_eq!(
        parse(FileKind::PowerXml, &fixture("power.xml")).unwrap(),
        power_expected()
    );
}

#[test]
fn gas_fixture_reads_as_pinned() {
    assert_eq!(
        parse(FileKind::GasFixed, &fixture("gas.txt")).unwrap(),
        gas_expected()
    );
}

#[test]
fn hub_fixture_reads_as_pinned() {
    assert_eq!(
        parse(FileKind::HubStatement, &fixture("hub.csv")).unwrap(),
        hub_expected()
    );
}

#[test]
fn coop_fixture_reads_as_pinned() {
    assert_eq!(
        parse(
            FileKind::CoopAck,
            &fixture("ACK_PAY_chongming-coop_20261129_001.txt")
        )
        .unwrap(),
        coop_expected()
    );
}

#[test]
fn sniff_recognises_each_fixture() {
    for (kind, _, name, _) in cases() {
        let bytes = fixture(name);
        assert_eq!(sniff(&bytes[..bytes.len().min(512)]), Some(kind), "{name}");
        assert_eq!(
            sniff(&bytes[..bytes.len().min(64)]),
            Some(kind),
            "{name} (64 bytes)"
        );
    }
    let camt = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/camt053/statement_v08.xml"),
    )
    .unwrap();
    assert_eq!(sniff(&camt[..camt.len().min(512)]), Some(FileKind::Camt053));
    for unknown in [
        &b""[..],
        b"hello",
        b"{\"a\":1}",
        b"<html></html>",
        b"H|PAY|x",
        b"our_reference,x\n",
    ] {
        assert_eq!(sniff(unknown), None, "{}", String::from_utf8_lossy(unknown));
    }
}

#[test]
fn bank_statements_are_sent_to_their_own_reader() {
    let e = refused(FileKind::Camt053, b"<Document/>");
    assert_eq!(e.location, "file");
    assert!(e.reason.contains("bank file reader"), "{e}");
}

// ------------------------------------------------------- water refusals

#[test]
fn water_csv_refusals_name_line_and_reason() {
    let good = water_file();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 5);
    let with = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line;
        l.join("\n") + "\n"
    };
    let k = FileKind::WaterCsv;
    // Truncated: no trailer, cut mid-line, cut inside the trailer.
    assert_refused(
        k,
        lines[..4].join("\n") + "\n",
        "line 4",
        "without its TRAILER line (truncated?)",
    );
    assert_refused(
        k,
        &good[..good.len() - 30],
        "line 4",
        "in the middle of this line",
    );
    assert_refused(
        k,
        &good[..good.len() - 1],
        "line 5",
        "without its line break (truncated?)",
    );
    assert_refused(k, "", "line 1", "empty");
    // Trailer figures.
    assert_refused(
        k,
        with(4, "TRAILER,4,208.51"),
        "line 5, field count",
        "trailer count 4 but the file has 3 rows",
    );
    assert_refused(
        k,
        with(4, "TRAILER,3,208.52"),
        "line 5, field total",
        "trailer total 208.52 but the rows add up to 208.51",
    );
    assert_refused(k, with(4, "TRAILER,3"), "line 5", "expected 3");
    assert_refused(
        k,
        good.clone() + "extra\n",
        "line 6",
        "nothing may follow the TRAILER",
    );
    // Amounts.
    let row = lines[1].replace("88.50", "88.505");
    assert_refused(
        k,
        with(1, &row),
        "line 2, field amount",
        "amount 88.505 has more decimals than CNY allows",
    );
    let row = lines[1].replace("88.50", "-1.00");
    assert_refused(k, with(1, &row), "line 2, field amount", "not positive");
    let row = lines[1].replace("88.50", "0.00");
    assert_refused(k, with(1, &row), "line 2, field amount", "not positive");
    let row = lines[1].replace("88.50", "88,50");
    assert_refused(k, with(1, &row), "line 2", "fields, expected 7");
    let row = lines[1].replace(",CNY,", ",XYZ,");
    assert_refused(
        k,
        with(1, &row),
        "line 2, field currency",
        "\"XYZ\" is not one billclear carries",
    );
    // Dates and times.
    let row = lines[1].replace("2026-11-29T09:02:03.004+08:00", "2026-11-31T09:02:03+08:00");
    assert_refused(
        k,
        with(1, &row),
        "line 2, field credited_at",
        "is not a date and time",
    );
    let row = lines[3].replace(
        "2026-11-29T23:59:59.999+08:00",
        "2026-11-30T00:00:00.000+08:00",
    );
    assert_refused(
        k,
        with(3, &row),
        "line 4, field credited_at",
        "credited on 2026-11-30, the file's first row on 2026-11-29",
    );
    // Another biller's row.
    let row = lines[2].replace("sh-water", "sh-gas");
    assert_refused(
        k,
        with(2, &row),
        "line 3, field biller_id",
        "names biller sh-gas, the file is sh-water's",
    );
    // Wrong first line; CSV faults.
    assert_refused(
        k,
        with(0, "our_reference,biller_reference"),
        "line 1",
        "must be the header",
    );
    assert_refused(
        k,
        "HUBSTATEMENT,X,2026-11-29,2026-11-29T00:00:00Z\n",
        "line 1",
        "must be the header",
    );
    let row = lines[1].replace("W0001", "W\"0001");
    assert_refused(
        k,
        with(1, &row),
        "line 2",
        "holds a quote but is not quoted",
    );
    let row = lines[1].replace("W0001", "\"W0001\"x");
    assert_refused(k, with(1, &row), "line 2", "text after its closing quote");
    assert_refused(k, with(1, ""), "line 2", "empty line");
    // Not UTF-8.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("3100000029").unwrap();
    bytes[at] = 0xff;
    assert_refused(k, &bytes, "line 3", "not UTF-8");
}

#[test]
fn water_csv_quoted_line_breaks_and_empty_days() {
    let credits = [
        credit(
            "pay-1",
            "W\n1",
            "sh-water",
            "3100000011",
            "1.00",
            "2026-11-29T01:00:00Z",
        ),
        credit(
            "pay-2",
            "W2",
            "sh-water",
            "3100000029",
            "2.00",
            "2026-11-29T02:00:00Z",
        ),
    ];
    let file = confirmation_csv(&credits, "sh-water", day(), plus8());
    let parsed = parse(FileKind::WaterCsv, file.as_bytes()).unwrap();
    assert_eq!(parsed.records.len(), 2);
    assert_eq!(parsed.records[0].their_reference, "W\n1");
    assert_eq!((parsed.records[0].line, parsed.records[1].line), (2, 4));
    // A quote opened and never closed: the file ends inside it.
    let cut = file.replace("\"W\n1\"", "\"W\n1");
    assert_refused(FileKind::WaterCsv, cut, "line 2", "never closed");
    // CRLF line ends are tolerated.
    let crlf = water_file().replace('\n', "\r\n");
    assert_eq!(
        parse(FileKind::WaterCsv, crlf.as_bytes()).unwrap(),
        water_expected()
    );
    // An empty day: no biller, no date (the caller supplies them).
    let empty = confirmation_csv(&[], "sh-water", day(), plus8());
    let (records, summary) = read_all(FileKind::WaterCsv, empty.as_bytes());
    assert!(records.is_empty());
    assert_eq!(
        summary,
        FileSummary {
            kind: FileKind::WaterCsv,
            biller_id: None,
            business_date: UNKNOWN_DATE,
            identity: None,
            records: 0,
            credited: 0,
            credited_total_minor: 0,
            currency: None,
        }
    );
    assert_refused(
        FileKind::WaterCsv,
        empty.replace("TRAILER,0,0.00", "TRAILER,0,1.00"),
        "line 2, field total",
        "the file has no credit",
    );
}

#[test]
fn water_csv_streams_200k_rows_to_the_sink() {
    const N: usize = 200_000;
    let mut file = String::with_capacity(N * 80);
    file.push_str(biller_sim::CONFIRMATION_HEADER);
    file.push('\n');
    for i in 0..N {
        file.push_str(&format!(
            "pay-{i:08},W{i:08},sh-water,3100000011,1.25,CNY,2026-11-29T10:00:00.000+08:00\n"
        ));
    }
    file.push_str(&format!("TRAILER,{N},{}.00\n", N / 4 * 5));
    let mut calls = 0usize;
    let mut last_line = 0;
    let started = std::time::Instant::now();
    let summary = read(
        FileKind::WaterCsv,
        std::io::BufReader::new(file.as_bytes()),
        &mut |r| {
            calls += 1;
            last_line = r.line;
        },
    )
    .unwrap();
    eprintln!(
        "{N} water rows read in {:?} (debug build)",
        started.elapsed()
    );
    assert_eq!(calls, N);
    assert_eq!(last_line, N as u64 + 1);
    assert_eq!(summary.records, N as u64);
    assert_eq!(summary.credited_total_minor, N as i64 * 125);
}

// ------------------------------------------------------- power refusals

#[test]
fn power_xml_refusals_name_the_element() {
    let good = power_file();
    let k = FileKind::PowerXml;
    // Truncated.
    let cut = &good[..good.find("<Credit><TxnRef>pay-0103").unwrap() + 8];
    assert_refused(k, cut, "PowerConfirmation/Credit", "(truncated?)");
    assert_refused(k, "", "file", "empty");
    // Control figures.
    assert_refused(
        k,
        good.replace("<Count>3</Count>", "<Count>4</Count>"),
        "PowerConfirmation/Control",
        "Count \"4\" but 3 credits",
    );
    assert_refused(
        k,
        good.replace("<Total>1100.00</Total>", "<Total>1100.01</Total>"),
        "PowerConfirmation/Control",
        "Total 1100.01 but the credits sum to 1100.00",
    );
    // Amounts: too many decimals (the total agreeing), negative, not a number.
    let bad = good
        .replace("<Amount>11.50</Amount>", "<Amount>11.505</Amount>")
        .replace("<Total>1100.00</Total>", "<Total>1100.005</Total>");
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Credit[2]/Amount",
        "amount 11.505 has more decimals than CNY allows",
    );
    let bad = good.replace("<Amount>11.50</Amount>", "<Amount>eleven</Amount>");
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Credit[2]/Amount",
        "is not a decimal amount",
    );
    let bad = good.replace(
        "<Currency>CNY</Currency><CreditedAt>2026-11-29T10:03:05",
        "<Currency>CN</Currency><CreditedAt>2026-11-29T10:03:05",
    );
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Credit[2]/Currency",
        "\"CN\" is not one billclear carries",
    );
    // Dates and times.
    let bad = good.replace("2026-11-29T10:03:05.000+08:00", "2026-11-29 10:03");
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Credit[2]/CreditedAt",
        "not an RFC 3339 time",
    );
    let bad = good.replace("<BusinessDate>2026-11-29", "<BusinessDate>2026-13-29");
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Control/BusinessDate",
        "not a YYYY-MM-DD date",
    );
    // A missing element.
    let bad = good.replace("<ReceiptNo>PWR0000000003</ReceiptNo>", "");
    assert_refused(
        k,
        bad,
        "PowerConfirmation/Credit[3]/ReceiptNo",
        "is missing",
    );
    // Wrong document.
    assert_refused(
        k,
        good.replace("PowerConfirmation", "PowerStatement"),
        "document",
        "root element is `PowerStatement`",
    );
    assert_refused(
        k,
        "our_reference,biller_reference\n",
        "line 1",
        "this is not XML",
    );
    assert_refused(
        k,
        "<PowerConfirmation version=\"1\"></Control>",
        "line 1",
        "not well-formed XML",
    );
    // Not UTF-8: the line of the byte.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("0300010378").unwrap();
    bytes[at] = 0xff;
    assert_refused(k, &bytes, "line 5", "not UTF-8");
}

// --------------------------------------------------------- gas refusals

#[test]
fn gas_fixed_refusals_name_line_field_and_reason() {
    let good = gas_file();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l.len() == 106));
    let with = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line;
        l.join("\n") + "\n"
    };
    let patch = |i: usize, at: usize, text: &str| {
        let mut l = lines[i].to_string();
        l.replace_range(at..at + text.len(), text);
        with(i, &l)
    };
    let k = FileKind::GasFixed;
    // Truncated.
    assert_refused(
        k,
        lines[..4].join("\n") + "\n",
        "line 4",
        "without its T trailer record (truncated?)",
    );
    assert_refused(
        k,
        &good[..good.len() - 50],
        "line 5",
        "in the middle of this line",
    );
    assert_refused(k, "", "line 1", "empty");
    // Trailer figures: count at 1 (8 digits), total at 9 (15 digits).
    assert_refused(
        k,
        patch(4, 1, "00000004"),
        "line 5, field count",
        "trailer count 4 but the file has 3 D records",
    );
    assert_refused(
        k,
        patch(4, 9, "000000000132308"),
        "line 5, field total",
        "trailer total 1323.08 but the D records add up to 1323.07",
    );
    assert_refused(
        k,
        good.clone() + lines[2] + "\n",
        "line 6",
        "nothing may follow the T trailer",
    );
    assert_refused(
        k,
        good.clone() + "\n",
        "line 6",
        "nothing may follow the T trailer",
    );
    // Amounts: a currency without decimals cannot take hundredths; zero;
    // not numeric.
    let jpy = good
        .replace("CNY", "JPY")
        .replace("000000000001JPY", "000000000100JPY");
    let jpy = jpy.replace("000000000132307", "000000000132406");
    assert_refused(
        k,
        jpy,
        "line 2, field amount",
        "amount 88.50 has more decimals than JPY allows",
    );
    let zero = patch(2, 77, "000000000000").replace("000000000132307", "000000000132306");
    assert_refused(k, zero, "line 3, field amount", "not positive");
    assert_refused(
        k,
        patch(1, 77, "00000000885A"),
        "line 2, field amount",
        "not numeric",
    );
    assert_refused(
        k,
        patch(2, 89, "USD"),
        "line 3, field currency",
        "the header says the file is in CNY",
    );
    // Dates and times.
    assert_refused(
        k,
        patch(0, 17, "20261340"),
        "line 1, field business_date",
        "not a YYYYMMDD date",
    );
    assert_refused(
        k,
        patch(1, 92, "20261129250000"),
        "line 2, field credited_at",
        "not a YYYYMMDDhhmmss time",
    );
    // Wrong first line, a short line, a second header.
    assert_refused(
        k,
        with(0, lines[1]),
        "line 1",
        "must be the H header record",
    );
    assert_refused(
        k,
        with(2, &lines[2][..100]),
        "line 3",
        "is 106 bytes, got 100",
    );
    assert_refused(k, with(2, lines[0]), "line 3", "a second H header");
    assert_refused(
        k,
        with(2, &lines[2].replacen('D', "X", 1)),
        "line 3, field record_type",
        "not H, D or T",
    );
    // Not UTF-8.
    let mut bytes = good.clone().into_bytes();
    bytes[107 + 40] = 0xC3;
    assert_refused(k, &bytes, "line 2", "not UTF-8");
}

// --------------------------------------------------------- hub refusals

#[test]
fn hub_statement_refusals_name_line_and_reason() {
    let good = hub_file();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[7], "TRAILER,5,3,108.75");
    let with = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line;
        l.join("\n") + "\n"
    };
    let k = FileKind::HubStatement;
    // Truncated.
    assert_refused(
        k,
        lines[..7].join("\n") + "\n",
        "line 7",
        "without its TRAILER line (truncated?)",
    );
    assert_refused(
        k,
        &good[..good.len() - 25],
        "line 7",
        "in the middle of this line",
    );
    assert_refused(
        k,
        lines[..1].join("\n") + "\n",
        "line 1",
        "without its TRAILER line",
    );
    // Trailer figures.
    assert_refused(
        k,
        with(7, "TRAILER,4,3,108.75"),
        "line 8, field rows",
        "trailer count 4 but the file has 5 rows",
    );
    assert_refused(
        k,
        with(7, "TRAILER,5,4,108.75"),
        "line 8, field successful rows",
        "counts 4 successful rows but the file has 3",
    );
    assert_refused(
        k,
        with(7, "TRAILER,5,3,108.76"),
        "line 8, field total",
        "trailer total 108.76 but the successful rows add up to 108.75",
    );
    assert_refused(
        k,
        with(7, "TRAILER,5,3,108.755"),
        "line 8, field total",
        "more decimals than CNY allows",
    );
    // Amounts, status.
    let row = lines[4].replace("10.00", "10.001");
    assert_refused(
        k,
        with(4, &row),
        "line 5, field amount",
        "amount 10.001 has more decimals than CNY allows",
    );
    let row = lines[4].replace("FAILED", "REVERSED");
    assert_refused(
        k,
        with(4, &row),
        "line 5, field status",
        "\"REVERSED\" is not SUCCESS, FAILED or PROCESSING",
    );
    // Dates and times.
    assert_refused(
        k,
        with(
            0,
            "HUBSTATEMENT,SIMHUB,29/11/2026,2026-11-30T09:00:00.000+08:00",
        ),
        "line 1, field date",
        "not a date such as 2026-11-29",
    );
    let row = lines[2].replace("2026-11-29T09:00:00.000+08:00", "2026-11-29T09:00");
    assert_refused(
        k,
        with(2, &row),
        "line 3, field completedAt",
        "is not a date and time",
    );
    // Wrong first and second lines.
    assert_refused(k, water_file(), "line 1", "not a hub statement");
    assert_refused(
        k,
        with(1, "hubTxnId,partnerRef"),
        "line 2",
        "must be the column names",
    );
    // Not UTF-8.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("pudong-water").unwrap();
    bytes[at] = 0xfe;
    assert_refused(k, &bytes, "line 7", "not UTF-8");
}

// -------------------------------------------------------- co-op refusals

#[test]
fn coop_ack_refusals_name_line_and_reason() {
    let good = coop_file();
    let lines: Vec<&str> = good.lines().collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5], "T|3|209.00|1|15.00");
    let with = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line;
        l.join("\n") + "\n"
    };
    let k = FileKind::CoopAck;
    // Truncated.
    assert_refused(k, lines[..5].join("\n") + "\n", "line 5", "truncated");
    assert_refused(
        k,
        &good[..good.len() - 3],
        "line 6",
        "no line end (truncated file?)",
    );
    assert_refused(k, "", "file", "empty");
    // Trailer figures.
    assert_refused(
        k,
        with(5, "T|4|209.00|1|15.00"),
        "line 6",
        "trailer says 4 accepted lines, the file has 3",
    );
    assert_refused(
        k,
        with(5, "T|3|209.01|1|15.00"),
        "line 6",
        "trailer says accepted total 209.01, the lines sum to 209.00",
    );
    // Amounts.
    let row = lines[1].replace("88.50", "88.505");
    assert_refused(k, with(1, &row), "line 2", "has more than 2 decimals");
    let row = lines[1].replace("|CNY|", "|XYZ|");
    assert_refused(
        k,
        with(1, &row),
        "line 2, field currency",
        "\"XYZ\" is not one billclear carries",
    );
    // Dates.
    let bad = with(0, &lines[0].replace("|20261129|", "|20261131|"));
    assert_refused(k, bad, "line 1", "must be YYYYMMDD");
    let bad = with(
        0,
        &lines[0].replace("2026-11-29T10:00:00Z", "2026-11-29 10:00"),
    );
    assert_refused(k, bad, "line 1", "must be YYYY-MM-DDTHH:MM:SSZ");
    // Wrong first line.
    assert_refused(
        k,
        with(0, &lines[0].replace("|ACK|", "|PAY|")),
        "line 1",
        "file type must be ACK",
    );
    // Not UTF-8.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("CM-108542").unwrap();
    bytes[at] = 0xff;
    assert_refused(k, &bytes, "line 4", "not UTF-8");
}
