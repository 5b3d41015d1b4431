//! Property runs over every parser of outside bytes (issue 20): bank
//! statements (camt.053, camt.054, MT940), the counterparties' daily
//! confirmation files, the co-op's ack, refusal (return) and batch files,
//! the gas company's fixed-length TCP frames, the billers' JSON and XML
//! answers, and the signed request header.
//!
//! The property, for every input: the parser returns, reading the input
//! or refusing it with a typed error that says where and why; it never
//! panics. Each parser gets valid seeds (the project's fixtures, or what
//! its own writer produces) that the harness mutates, and the sweeps and
//! random cases described in `harness.rs`.
//!
//! `cargo test` runs a quick 300 cases per parser; `ops/test.sh` runs
//! 10,000 (`BILLCLEAR_FUZZ_CASES=10000`) and prints one line per parser:
//!
//! ```text
//! fuzz camt053: 10000 cases, 0 panics, 9409 refused, 591 read (seed 0xb11c1ea00202026, …)
//! ```
//!
//! See `docs/testing.md` for running it and replaying a failure.

mod harness;

use std::path::PathBuf;
use std::str::FromStr;

use billclear::auth::{signing, staff_token};
use billclear::domain::money::Currency;
use billclear::domain::recon::statement::{BankMessage, OurAccount};
use billclear::domain::recon::{FileKind, FileRefusal};
use billclear::reconcile::{bankfile, formats};
use biller_connectors::coop;
use biller_connectors::gas::codec as gas;
use biller_connectors::hub::codec as hub;
use biller_connectors::power::codec as power;
use biller_connectors::water::codec as water;
use biller_connectors::Signer;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use harness::{check, refusal, refusal_text, Target, Verdict};

// ------------------------------------------------------------- helpers

fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn words(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// `<Name>`, `</Name>` and `<Name/>` of each element name.
fn tags(names: &[&str]) -> Vec<Vec<u8>> {
    names
        .iter()
        .flat_map(|n| [format!("<{n}>"), format!("</{n}>"), format!("<{n}/>")])
        .map(String::into_bytes)
        .collect()
}

/// The text of `seed` with `what` removed (the first time it appears).
fn without(seed: &[u8], what: &str) -> Vec<u8> {
    let text = String::from_utf8(seed.to_vec()).unwrap();
    assert!(text.contains(what), "{what} is not in the seed");
    text.replacen(what, "", 1).into_bytes()
}

fn file_refusal(e: &FileRefusal) -> Verdict {
    refusal(&e.location, &e.reason)
}

// ------------------------------------------------------------ bank files

/// The accounts the bank fixtures are of.
fn our_accounts() -> Vec<OurAccount> {
    vec![
        OurAccount {
            account: "31050161373600000001".into(),
            currency: Currency::from_code("CNY").unwrap(),
        },
        OurAccount {
            account: "NL91ABNA0417164300".into(),
            currency: Currency::from_code("EUR").unwrap(),
        },
    ]
}

/// What `billclear recon import` does with a bank file before it reaches
/// the store: read it, then check every statement (ours, in one currency,
/// balances that add up, dated) and key every entry.
fn import_bank(kind: FileKind, bytes: &[u8], accounts: &[OurAccount]) -> Verdict {
    let message: BankMessage = match bankfile::read(kind, bytes) {
        Ok(m) => m,
        Err(e) => return file_refusal(&e),
    };
    let _ = message.format.to_string();
    for st in &message.statements {
        let checked = st
            .check_ours(accounts)
            .and_then(|_| st.prove_balances())
            .map(|_| ());
        // Whatever the checks say, what the import reads of a statement
        // must not panic either.
        let _ = st.business_date();
        let _ = st.identity();
        let _ = st.sequence_number();
        for (e, keys) in st.entries.iter().zip(st.entry_keys()) {
            let _ = (e.booked(), e.bank_reference(), keys);
        }
        if let Err(e) = checked {
            return refusal(&e.location, &e.reason);
        }
        if st.business_date().is_none() {
            return refusal(&st.location, "no date");
        }
    }
    Verdict::Read
}

fn sniffs(bytes: &[u8]) {
    let head = &bytes[..bytes.len().min(512)];
    let _ = formats::sniff(head);
    let _ = bankfile::sniff(head);
}

fn bank_target(
    name: &'static str,
    kind: FileKind,
    seeds: Vec<Vec<u8>>,
    dictionary: Vec<Vec<u8>>,
    must_refuse: Vec<(&'static str, Vec<u8>)>,
) -> Target {
    let accounts = our_accounts();
    Target {
        name,
        seeds,
        dictionary,
        must_refuse,
        parse: Box::new(move |bytes| {
            sniffs(bytes);
            import_bank(kind, bytes, &accounts)
        }),
    }
}

const CAMT_NAMES: &[&str] = &[
    "Document",
    "BkToCstmrStmt",
    "BkToCstmrDbtCdtNtfctn",
    "GrpHdr",
    "MsgId",
    "CreDtTm",
    "Stmt",
    "Ntfctn",
    "Id",
    "ElctrncSeqNb",
    "LglSeqNb",
    "FrToDt",
    "FrDtTm",
    "ToDtTm",
    "Acct",
    "IBAN",
    "Othr",
    "Ccy",
    "Bal",
    "Tp",
    "CdOrPrtry",
    "Cd",
    "Amt",
    "CdtDbtInd",
    "Dt",
    "DtTm",
    "Ntry",
    "Sts",
    "BookgDt",
    "ValDt",
    "AcctSvcrRef",
    "NtryRef",
    "NtryDtls",
    "TxDtls",
    "Refs",
    "EndToEndId",
    "RmtInf",
    "Ustrd",
    "Strd",
    "AddtlNtryInf",
];

fn camt_dictionary() -> Vec<Vec<u8>> {
    let mut d = tags(CAMT_NAMES);
    d.extend(words(&[
        "<Amt Ccy=\"CNY\">",
        "<Amt Ccy=\"JPY\">",
        "<Amt Ccy=\"XXX\">",
        "<Amt>",
        " Ccy=\"\"",
        "CRDT",
        "DBIT",
        "BOOK",
        "PDNG",
        "OPBD",
        "PRCD",
        "CLBD",
        "NONREF",
        "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08",
        "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02",
        "urn:iso:std:iso:20022:tech:xsd:camt.053.001.09",
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        "<p:Document xmlns:p=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">",
        "BCE01a227b7d62077af9deb9cd539c11085",
    ]));
    d
}

fn camt053_seeds() -> Vec<Vec<u8>> {
    [
        "bank/camt053_v02.xml",
        "bank/camt053_v03.xml",
        "bank/camt053_v04.xml",
        "bank/camt053_v06.xml",
        "bank/camt053_v08.xml",
        "bank/camt053_v02_nl_eur.xml",
        "camt053/statement_v02.xml",
        "camt053/statement_v08.xml",
    ]
    .iter()
    .map(|p| fixture(p))
    .collect()
}

#[test]
fn fuzz_camt053() {
    let seeds = camt053_seeds();
    let mut must_refuse = Vec::new();
    // The outside tester's shape: a statement whose <Stmt> start tag is
    // missing (it used to reach an `expect`), and its mirror image.
    for seed in &seeds {
        must_refuse.push((
            "camt.053 without its <Stmt> start tag",
            without(seed, "<Stmt>"),
        ));
        must_refuse.push((
            "camt.053 without its </Stmt> end tag",
            without(seed, "</Stmt>"),
        ));
        must_refuse.push((
            "camt.053 without <Stmt> and </Stmt>",
            without(&without(seed, "<Stmt>"), "</Stmt>"),
        ));
        must_refuse.push((
            "camt.053 without <BkToCstmrStmt>",
            without(seed, "<BkToCstmrStmt>"),
        ));
        must_refuse.push(("camt.053 without its first <Ntry>", without(seed, "<Ntry>")));
        must_refuse.push(("camt.053 cut in half", seed[..seed.len() / 2].to_vec()));
    }
    check(bank_target(
        "camt053",
        FileKind::Camt053,
        seeds,
        camt_dictionary(),
        must_refuse,
    ));
}

#[test]
fn fuzz_camt054() {
    let seeds: Vec<Vec<u8>> = [
        "bank/camt054_v02.xml",
        "bank/camt054_v08.xml",
        "bank/camt054_noref_v08.xml",
    ]
    .iter()
    .map(|p| fixture(p))
    .collect();
    let mut must_refuse = Vec::new();
    for seed in &seeds {
        must_refuse.push((
            "camt.054 without its <Ntfctn> start tag",
            without(seed, "<Ntfctn>"),
        ));
        must_refuse.push((
            "camt.054 without its </Ntfctn> end tag",
            without(seed, "</Ntfctn>"),
        ));
    }
    check(bank_target(
        "camt054",
        FileKind::Camt054,
        seeds,
        camt_dictionary(),
        must_refuse,
    ));
}

#[test]
fn fuzz_mt940() {
    // mt940.sta has CRLF line ends, mt940_raw.sta LF.
    let seeds = vec![fixture("bank/mt940.sta"), fixture("bank/mt940_raw.sta")];
    let must_refuse = vec![
        (
            "MT940 without :20:",
            without(&seeds[0], ":20:STMT20261130\r\n"),
        ),
        (
            "MT940 without its closing balance",
            without(&seeds[1], ":62F:C261130CNY997784,91\n"),
        ),
        (
            "MT940 :61: before :60F:",
            without(&seeds[0], ":60F:C261129CNY1000000,00\r\n"),
        ),
    ];
    let dictionary = words(&[
        ":20:",
        ":21:",
        ":25:",
        ":28C:",
        ":28:",
        ":60F:",
        ":60M:",
        ":61:",
        ":86:",
        ":62F:",
        ":62M:",
        ":64:",
        ":65:",
        "{1:",
        "{2:",
        "{3:{108:",
        "{4:",
        "-}",
        "{5:",
        "-\n",
        "C",
        "D",
        "RC",
        "RD",
        "CNY",
        "EUR",
        "JPY",
        "NTRF",
        "NONREF",
        "//",
        "/EREF/",
        "EREF+",
        "?20",
        "261130",
        "1130",
        "1231",
        "0229",
        ",00",
        ",",
        "\r\n",
        "BCE01a227b7d62077af9deb9cd539c11085",
    ]);
    check(bank_target(
        "mt940",
        FileKind::Mt940,
        seeds,
        dictionary,
        must_refuse,
    ));
}

// ------------------------------------------------------ confirmation files

fn confirmation_target(
    name: &'static str,
    kind: FileKind,
    seeds: Vec<Vec<u8>>,
    dictionary: Vec<Vec<u8>>,
) -> Target {
    Target {
        name,
        seeds,
        dictionary,
        must_refuse: Vec::new(),
        parse: Box::new(move |bytes| {
            sniffs(bytes);
            match formats::parse(kind, bytes) {
                Ok(_) => Verdict::Read,
                Err(e) => file_refusal(&e),
            }
        }),
    }
}

#[test]
fn fuzz_water_csv() {
    check(confirmation_target(
        "water_csv",
        FileKind::WaterCsv,
        vec![fixture("recon/water.csv")],
        words(&[
            "our_reference,biller_reference,biller_id,account_number,amount,currency,credited_at\n",
            "TRAILER,",
            "TRAILER,0,0.00\n",
            "sh-water",
            "CNY",
            "JPY",
            "\"",
            "\"\"",
            "2026-11-29T09:02:03.004+08:00",
            "2026-11-30T00:00:00.000+08:00",
            ",",
        ]),
    ));
}

#[test]
fn fuzz_power_xml() {
    let mut dictionary = tags(&[
        "PowerConfirmation",
        "Control",
        "BillerCode",
        "BusinessDate",
        "Count",
        "Total",
        "Credit",
        "TxnRef",
        "ReceiptNo",
        "AccountNo",
        "Amount",
        "Currency",
        "CreditedAt",
    ]);
    dictionary.extend(words(&[
        "version=\"1\"",
        "version=\"2\"",
        "sh-power",
        "CNY",
    ]));
    check(confirmation_target(
        "power_xml",
        FileKind::PowerXml,
        vec![fixture("recon/power.xml")],
        dictionary,
    ));
}

#[test]
fn fuzz_gas_fixed() {
    check(confirmation_target(
        "gas_fixed",
        FileKind::GasFixed,
        vec![fixture("recon/gas.txt")],
        words(&[
            "H",
            "D",
            "T",
            "sh-gas          ",
            "CNY",
            "20261129",
            "20261129235959",
            "000000000001",
            "999999999999",
        ]),
    ));
}

#[test]
fn fuzz_hub_statement() {
    check(confirmation_target(
        "hub_statement",
        FileKind::HubStatement,
        vec![fixture("recon/hub.csv")],
        words(&[
            "HUBSTATEMENT,",
            "hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt\n",
            "TRAILER,",
            "SUCCESS",
            "FAILED",
            "PROCESSING",
            "CNY",
            "2026-11-29",
            "2026-11-29T09:00:00.000+08:00",
        ]),
    ));
}

const COOP_WORDS: &[&str] = &[
    "H|ACK|",
    "H|PAY|",
    "D|",
    "T|",
    "REJ|",
    "PAY_chongming-coop_20261129_001",
    "chongming-coop",
    "20261129",
    "2026-11-29T10:15:00Z",
    "|A|",
    "|R|",
    "R02",
    "F01",
    "CNY",
    "帐户已销户",
];

fn coop_refusal(e: &coop::FileError) -> Verdict {
    refusal(&format!("line {}", e.line), &e.reason)
}

#[test]
fn fuzz_coop_ack() {
    // Read twice as the service reads it: by reconciliation
    // (`recon import`) and by dispatch (`read_acks`, `parse_ack`).
    let seeds = vec![
        fixture("recon/ACK_PAY_chongming-coop_20261129_001.txt"),
        coop::render_ack(&coop::Ack {
            batch_file_id: "PAY_chongming-coop_20261129_001".into(),
            coop_id: "chongming-coop".into(),
            ack_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            created_at: utc("2026-11-29T10:15:00Z"),
            lines: vec![
                coop::AckLine {
                    line_no: 1,
                    our_reference: "pay-0001".into(),
                    account_number: "CM-000123".into(),
                    amount: dec("88.50"),
                    currency: "CNY".into(),
                    status: coop::AckStatus::Accepted {
                        receipt: "CM0000000001".into(),
                    },
                },
                coop::AckLine {
                    line_no: 2,
                    our_reference: "pay-0002".into(),
                    account_number: "CM-104271".into(),
                    amount: dec("120.00"),
                    currency: "CNY".into(),
                    status: coop::AckStatus::Rejected {
                        code: "R02".into(),
                        reason: "account closed".into(),
                    },
                },
            ],
        })
        .unwrap()
        .into_bytes(),
    ];
    check(Target {
        name: "coop_ack",
        seeds,
        dictionary: words(COOP_WORDS),
        must_refuse: Vec::new(),
        parse: Box::new(|bytes| {
            sniffs(bytes);
            if let Err(e) = coop::parse_ack(bytes) {
                if let unclear @ Verdict::Unclear(_) = coop_refusal(&e) {
                    return unclear;
                }
            }
            match formats::parse(FileKind::CoopAck, bytes) {
                Ok(_) => Verdict::Read,
                Err(e) => file_refusal(&e),
            }
        }),
    });
}

#[test]
fn fuzz_coop_refusal() {
    // The co-op's return of a whole batch file it could not read.
    let seed = coop::render_refusal(&coop::FileRefusal {
        batch_file_name: "PAY_chongming-coop_20261129_001.txt".into(),
        coop_id: "chongming-coop".into(),
        created_at: utc("2026-11-29T10:15:00Z"),
        line: 3,
        code: "F01".into(),
        reason: "file refused: line 3 has 6 fields, expected 7".into(),
    })
    .unwrap()
    .into_bytes();
    check(Target {
        name: "coop_refusal",
        seeds: vec![seed],
        dictionary: words(COOP_WORDS),
        must_refuse: vec![("an empty refusal file", Vec::new())],
        parse: Box::new(|bytes| match coop::parse_refusal(bytes) {
            Ok(_) => Verdict::Read,
            Err(e) => coop_refusal(&e),
        }),
    });
}

#[test]
fn fuzz_coop_batch() {
    // A batch file found in the drop directory is read back to compare.
    let seed = b"H|PAY|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T09:30:00Z
D|1|pay-0001|CM-000123|88.50|CNY|BCM-00012301
D|2|pay-0002|CM-104271|120.00|CNY|
T|2|208.50
"
    .to_vec();
    check(Target {
        name: "coop_batch",
        seeds: vec![seed],
        dictionary: words(COOP_WORDS),
        must_refuse: vec![("an empty batch file", Vec::new())],
        parse: Box::new(|bytes| match coop::parse_batch(bytes) {
            Ok(b) => {
                let _ = (b.total(), b.file_id(), b.file_name());
                Verdict::Read
            }
            Err(e) => coop_refusal(&e),
        }),
    });
}

// --------------------------------------------------- the any-file import

#[test]
fn fuzz_recon_import() {
    // `billclear recon import` without --kind: the kind is recognised
    // from the first bytes, then read as that kind.
    let mut seeds = camt053_seeds();
    for p in [
        "bank/camt054_v02.xml",
        "bank/camt054_v08.xml",
        "bank/mt940.sta",
        "bank/mt940_raw.sta",
        "recon/water.csv",
        "recon/power.xml",
        "recon/gas.txt",
        "recon/hub.csv",
        "recon/ACK_PAY_chongming-coop_20261129_001.txt",
    ] {
        seeds.push(fixture(p));
    }
    let accounts = our_accounts();
    check(Target {
        name: "recon_import",
        seeds,
        dictionary: camt_dictionary(),
        must_refuse: vec![
            ("an empty file", Vec::new()),
            (
                "a camt.053 without its <Stmt> start tag",
                without(&fixture("bank/camt053_v08.xml"), "<Stmt>"),
            ),
        ],
        parse: Box::new(move |bytes| {
            let head = &bytes[..bytes.len().min(512)];
            let Some(kind) = formats::sniff(head) else {
                return refusal("line 1", "not a file kind billclear reads");
            };
            if kind.is_bank() {
                import_bank(kind, bytes, &accounts)
            } else {
                match formats::parse(kind, bytes) {
                    Ok(_) => Verdict::Read,
                    Err(e) => file_refusal(&e),
                }
            }
        }),
    });
}

// -------------------------------------------------------- gas TCP frames

const GAS_SECRET: &[u8] = b"gas-secret";

fn gas_header(reference: &str) -> gas::Header {
    gas::Header {
        terminal_id: "BILLCLEAR01".into(),
        reference: reference.into(),
        trace: 4711,
    }
}

fn gas_frames() -> Vec<Vec<u8>> {
    let reference = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let h = || gas_header(reference);
    let bill = |no: &str, amount: &str| gas::WireBill {
        bill_no: no.into(),
        amount_due: dec(amount),
        due_date: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
    };
    let frames = vec![
        gas::PayAnswer {
            header: h(),
            result_code: "00".into(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("88.50"),
            currency: "CNY".into(),
            receipt_no: "G000000000001".into(),
            credited_at: Some(utc("2026-11-29T01:02:03Z")),
            duplicate: false,
        }
        .encode(GAS_SECRET),
        gas::StatusAnswer {
            header: h(),
            result_code: "00".into(),
            state: Some(gas::PaymentState::Credited),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("88.50"),
            currency: "CNY".into(),
            receipt_no: "G000000000001".into(),
            credited_at: Some(utc("2026-11-29T01:02:03Z")),
            reject_code: String::new(),
        }
        .encode(GAS_SECRET),
        gas::StatusAnswer {
            header: h(),
            result_code: "00".into(),
            state: Some(gas::PaymentState::Rejected),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("88.50"),
            currency: "CNY".into(),
            receipt_no: String::new(),
            credited_at: None,
            reject_code: "14".into(),
        }
        .encode(GAS_SECRET),
        gas::BillsAnswer {
            header: h(),
            result_code: "00".into(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            customer_name: "张伟".into(),
            currency: "CNY".into(),
            bills: vec![bill("B202611", "123.45"), bill("B202612", "0.01")],
        }
        .encode(GAS_SECRET),
        gas::EchoAnswer {
            header: h(),
            result_code: "00".into(),
        }
        .encode(GAS_SECRET),
        gas::PayRequest {
            header: h(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: dec("88.50"),
            currency: "CNY".into(),
            bill_no: Some("B202611".into()),
        }
        .encode(GAS_SECRET),
        gas::StatusRequest {
            header: h(),
            biller_id: "sh-gas".into(),
        }
        .encode(GAS_SECRET),
        gas::BillsRequest {
            header: h(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
        }
        .encode(GAS_SECRET),
        gas::EchoRequest {
            header: h(),
            sent_at: utc("2026-11-29T01:02:03Z"),
        }
        .encode(GAS_SECRET),
    ];
    frames.into_iter().map(|f| f.unwrap()).collect()
}

/// A frame read as the gas link reads one: the length prefix, the record,
/// its layout by message type, its header and MAC, then the message.
fn read_gas_frame(bytes: &[u8]) -> Verdict {
    if let Some(prefix) = bytes.get(..gas::PREFIX_WIDTH) {
        let _ = gas::parse_prefix(prefix.try_into().unwrap());
    }
    let (record, _rest) = match gas::unframe(bytes) {
        Ok(r) => r,
        Err(e) => return refusal_text(&e.to_string()),
    };
    let reader = match gas::Reader::new(record) {
        Ok(r) => r,
        Err(e) => return refusal_text(&e.to_string()),
    };
    let _ = reader.mac_ok(GAS_SECRET);
    let _ = reader.header();
    let decoded: Result<(), gas::DecodeError> = match reader.layout().msg_type {
        gas::MSG_PAY_ANSWER => gas::PayAnswer::decode(&reader).map(|_| ()),
        gas::MSG_STATUS_ANSWER => gas::StatusAnswer::decode(&reader).map(|_| ()),
        gas::MSG_BILLS_ANSWER => gas::BillsAnswer::decode(&reader).map(|_| ()),
        gas::MSG_ECHO_ANSWER => gas::EchoAnswer::decode(&reader).map(|_| ()),
        gas::MSG_PAY => gas::PayRequest::decode(&reader).map(|_| ()),
        gas::MSG_STATUS => gas::StatusRequest::decode(&reader).map(|_| ()),
        gas::MSG_BILLS => gas::BillsRequest::decode(&reader).map(|_| ()),
        gas::MSG_ECHO => gas::EchoRequest::decode(&reader).map(|_| ()),
        other => Err(gas::DecodeError(format!("message type {other}"))),
    };
    // Every decoder given a record of another type refuses it.
    let _ = gas::PayAnswer::decode(&reader);
    let _ = gas::BillsAnswer::decode(&reader);
    match decoded {
        Ok(()) => Verdict::Read,
        Err(e) => refusal_text(&e.to_string()),
    }
}

#[test]
fn fuzz_gas_frame() {
    let mut seeds = gas_frames();
    // Two frames back to back, as they come on the wire.
    let two = [seeds[0].clone(), seeds[4].clone()].concat();
    seeds.push(two);
    check(Target {
        name: "gas_frame",
        seeds,
        dictionary: words(&[
            "0210", "0310", "0410", "0810", "0200", "0300", "0400", "0800", "0000", "9999", "0157",
            "0170", "0384", "00", "Y", "N", "C", "R", "P", "5", "6", "9",
        ]),
        must_refuse: vec![
            ("an empty frame", Vec::new()),
            ("a frame cut inside its prefix", b"01".to_vec()),
        ],
        parse: Box::new(read_gas_frame),
    });
}

// ----------------------------------------------------- billers' answers

/// An answer body given to each of a biller's decoders: read when one of
/// them reads it; every refusal must say why.
fn any_read<E: std::fmt::Display>(results: impl IntoIterator<Item = Result<(), E>>) -> Verdict {
    let mut read = false;
    let mut first_refusal = None;
    for r in results {
        match r {
            Ok(()) => read = true,
            Err(e) => match refusal_text(&e.to_string()) {
                unclear @ Verdict::Unclear(_) => return unclear,
                refused => {
                    first_refusal.get_or_insert(refused);
                }
            },
        }
    }
    match first_refusal {
        Some(refused) if !read => refused,
        _ => Verdict::Read,
    }
}

#[test]
fn fuzz_water_json() {
    let seeds = words(&[
        r#"{"result_code":"0000","result_msg":"ok","txn_ref":"pay-0001","account_no":"3100000011","amount":"88.50","currency":"CNY","receipt_no":"W000000000001","credited_at":"2026-11-29T02:03:04.005Z","duplicate":false,"extra":"ignored"}"#,
        r#"{"result_code":"0000","result_msg":"ok","account_no":"3100000011","customer_name":"Zhang Wei","bills":[{"bill_no":"B1","amount_due":"123.45","currency":"CNY","due_date":"2026-12-15"},{"bill_no":"B2","amount_due":"0.01","currency":"CNY","due_date":"2027-01-15"}]}"#,
        r#"{"result_code":"0000","txn_ref":"p","state":"REJECTED","account_no":"1","amount":"1.00","currency":"CNY","reject_code":"1002","reject_msg":"closed"}"#,
        r#"{"result_code":"0000","txn_ref":"p","state":"CREDITED","account_no":"1","amount":"1.00","currency":"CNY","receipt_no":"W1","credited_at":"2026-11-29T10:00:00+08:00"}"#,
        r#"{"result_code":"1001","result_msg":"account not found"}"#,
    ]);
    check(Target {
        name: "water_json",
        seeds,
        dictionary: words(&[
            "\"result_code\":",
            "\"amount\":",
            "\"bills\":",
            "\"state\":",
            "\"credited_at\":",
            "\"duplicate\":",
            "\"0000\"",
            "null",
            "true",
            "[{}]",
            "{\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
            "\"\\u0000\"",
            "\"\\ud800\"",
            "1e400",
            "-0.0",
        ]),
        must_refuse: vec![("an empty answer", Vec::new())],
        parse: Box::new(|bytes| {
            let env = match water::decode_envelope(bytes) {
                Ok(env) => env,
                Err(e) => return refusal_text(&e.to_string()),
            };
            any_read([
                water::PayAnswer::decode(&env.fields).map(|_| ()),
                water::PaymentQueryAnswer::decode(&env.fields).map(|_| ()),
                water::BillsAnswer::decode(&env.fields).map(|_| ()),
            ])
        }),
    });
}

#[test]
fn fuzz_hub_json() {
    let seeds = words(&[
        r#"{"code":"0","message":"success","status":"ACCEPTED","hubTxnId":"HUB2026112900000001","partnerRef":"pay-0001","billerCode":"sh-power","accountNo":"0306406159","amount":"88.50","currency":"CNY","billerReceipt":"E0000000001","completedAt":"2026-11-29T10:03:04.005+08:00","repeated":false,"extra":"ignored"}"#,
        r#"{"code":"0","message":"success","billerCode":"sh-gas","accountNo":"310012345677","customerName":"张伟","bills":[{"billNo":"B1","amountDue":"123.45","currency":"CNY","dueDate":"2026-12-15"}]}"#,
        r#"{"code":"0","state":"FAILED","hubTxnId":"HUB1","partnerRef":"p","billerCode":"sh-water","accountNo":"1","amount":"1.00","currency":"CNY","failCode":"2002","failMessage":"account closed","completedAt":"2026-11-29T10:00:00.000+08:00"}"#,
        r#"{"code":"0","state":"PROCESSING","hubTxnId":"HUB1","partnerRef":"p","billerCode":"sh-water","accountNo":"1","amount":"1.00","currency":"CNY"}"#,
        r#"{"code":"2001","message":"no such account"}"#,
    ]);
    check(Target {
        name: "hub_json",
        seeds,
        dictionary: words(&[
            "\"code\":",
            "\"amount\":",
            "\"amountDue\":",
            "\"bills\":",
            "\"state\":",
            "\"status\":",
            "\"completedAt\":",
            "\"repeated\":",
            "\"SUCCESS\"",
            "\"ACCEPTED\"",
            "null",
            "true",
            "[{}]",
            "\"\\u0000\"",
            "1e400",
        ]),
        must_refuse: vec![("an empty answer", Vec::new())],
        parse: Box::new(|bytes| {
            let env = match hub::decode_envelope(bytes) {
                Ok(env) => env,
                Err(e) => return refusal_text(&e.to_string()),
            };
            any_read([
                hub::PaymentAnswer::decode(&env.fields).map(|_| ()),
                hub::StatusAnswer::decode(&env.fields).map(|_| ()),
                hub::BillsAnswer::decode(&env.fields).map(|_| ()),
            ])
        }),
    });
}

fn power_signer() -> Signer {
    Signer::hmac(b"power-secret").unwrap()
}

fn power_messages() -> Vec<Vec<u8>> {
    let signer = power_signer();
    let msg_id = "00112233445566778899aabbccddeeff";
    let header = |msg_type| power::OutHeader {
        msg_type,
        sender: "sh-power-gateway",
        msg_id: "ffeeddccbbaa99887766554433221100",
        timestamp: "2026-11-29T02:03:04.005Z",
        in_reply_to: Some(msg_id),
    };
    let at = DateTime::parse_from_rfc3339("2026-11-29T10:03:04.005+08:00").unwrap();
    let pay = power::PayAnswer {
        txn_ref: "pay-0001".into(),
        account_no: "0306406159".into(),
        amount: dec("88.50"),
        currency: "CNY".into(),
        receipt_no: "PWR0000000001".into(),
        credited_at: at,
        duplicate: false,
    };
    let query = power::QueryAnswer {
        txn_ref: "pay-0001".into(),
        state: power::PaymentState::Credited,
        account_no: "0306406159".into(),
        amount: dec("88.50"),
        currency: "CNY".into(),
        receipt_no: Some("PWR0000000001".into()),
        credited_at: Some(at),
        reject_code: None,
        reject_msg: None,
    };
    let bills = power::BillsAnswer {
        account_no: "0306406159".into(),
        customer_name: "张伟 & Co <1>".into(),
        bills: vec![power::WireBill {
            bill_no: "E202611".into(),
            amount_due: dec("123.45"),
            currency: "CNY".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
        }],
    };
    vec![
        power::encode_message(
            &header(power::MsgType::PayRsp),
            &power::RetStatus::with("0000", "ok", pay.to_nodes()),
            &signer,
        ),
        power::encode_message(
            &header(power::MsgType::QryRsp),
            &power::RetStatus::with("0000", "ok", query.to_nodes()),
            &signer,
        ),
        power::encode_message(
            &header(power::MsgType::BillRsp),
            &power::RetStatus::with("0000", "ok", bills.to_nodes()),
            &signer,
        ),
        power::encode_message(
            &header(power::MsgType::PayRsp),
            &power::RetStatus::with("E401", "bad signature", Vec::new()),
            &signer,
        ),
    ]
}

#[test]
fn fuzz_power_answer() {
    let signer = power_signer();
    let mut dictionary = tags(&[
        "PowerMsg",
        "Header",
        "MsgType",
        "Sender",
        "MsgId",
        "Timestamp",
        "InReplyTo",
        "Mac",
        "Body",
        "RetCode",
        "RetMsg",
        "TxnRef",
        "State",
        "AccountNo",
        "Amount",
        "Currency",
        "ReceiptNo",
        "CreditedAt",
        "Duplicate",
        "CustomerName",
        "Bills",
        "Bill",
        "BillNo",
        "AmountDue",
        "DueDate",
    ]);
    dictionary.extend(words(&[
        "PAY_RSP",
        "QRY_RSP",
        "BILL_RSP",
        "version=\"1\"",
        "CREDITED",
        "REJECTED",
        "true",
        "false",
    ]));
    check(Target {
        name: "power_answer",
        seeds: power_messages(),
        dictionary,
        must_refuse: vec![("an empty answer", Vec::new())],
        parse: Box::new(move |bytes| {
            let message = match power::decode_message(bytes) {
                Ok(m) => m,
                Err(e) => return refusal_text(&e.to_string()),
            };
            let _ = message.mac_verifies(&signer);
            let _ = message.string_to_mac();
            let body = &message.body;
            // The requests' decoders are the simulator's; run for panics.
            let _ = power::PayRequest::decode(body);
            let _ = power::QueryRequest::decode(body);
            let _ = power::BillsRequest::decode(body);
            if let Err(e) = power::RetStatus::decode(body) {
                return refusal_text(&e.to_string());
            }
            any_read([
                power::PayAnswer::decode(body).map(|_| ()),
                power::QueryAnswer::decode(body).map(|_| ()),
                power::BillsAnswer::decode(body).map(|_| ()),
            ])
        }),
    });
}

// ---------------------------------------------------------- signed header

#[test]
fn fuzz_signed_header() {
    let seeds: Vec<Vec<u8>> = [
        signing::authorization(
            "bck_1",
            b"s3cret",
            "POST",
            "/v1/payments",
            1_700_000_000,
            "n-1",
            b"{}",
        ),
        signing::authorization(
            "bck_0123456789abcdef",
            b"another",
            "GET",
            "/v1/payments?channel_reference=x",
            1_764_374_400,
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            b"",
        ),
        "Bearer bcstaff_q2V0b3Bw-Zm9vYmFy_YmF6cXV4cXV1eHF1dXhxdXV4cXU".to_string(),
        "bcstaff_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    check(Target {
        name: "signed_header",
        seeds,
        dictionary: words(&[
            "BC1-HMAC-SHA256 ",
            "key=",
            "ts=",
            "nonce=",
            "sig=",
            ",",
            "=",
            "==",
            "Bearer ",
            "bcstaff_",
            "bcs_",
        ]),
        must_refuse: vec![
            ("an empty header", Vec::new()),
            ("the scheme alone", b"BC1-HMAC-SHA256 ".to_vec()),
        ],
        parse: Box::new(|bytes| {
            // Header values reach the parser as text.
            let text = String::from_utf8_lossy(bytes);
            let _ = staff_token::looks_like_staff_token(&text);
            let _ = staff_token::is_well_formed(&text);
            if let Some(token) = text.strip_prefix("Bearer ") {
                let _ = staff_token::is_well_formed(token);
                let _ = staff_token::staff_token_hash(token);
            }
            match signing::parse_header(Some(&text)) {
                Ok(h) => {
                    let _ = signing::verify(b"s3cret", &h, "POST", "/v1/payments", b"{}");
                    Verdict::Read
                }
                Err(e) => refusal_text(&e.to_string()),
            }
        }),
    });
}
