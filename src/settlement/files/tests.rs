use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::*;
use crate::domain::money::Currency;
use crate::domain::settlement::{BankAccount, BatchTotals, FileFormat};

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A directory under the system temp dir, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new() -> TestDir {
        let path =
            std::env::temp_dir().join(format!("billclear-files-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    /// Every entry, hidden ones included, sorted.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn line(
    kind: ItemKind,
    n: u32,
    biller_reference: Option<&str>,
    account: &str,
    amount: &str,
    commission: &str,
    at: &str,
) -> ItemLine {
    ItemLine {
        kind,
        our_reference: format!("0193a5b0-0000-7000-8000-{n:012}"),
        biller_reference: biller_reference.map(str::to_string),
        account_number: account.to_string(),
        amount: d(amount),
        commission: d(commission),
        confirmed_at: utc(at),
    }
}

/// A payment, a payment without biller reference on an alphanumeric
/// account, a payment whose reference needs CSV quoting, and a return.
fn small_batch() -> Vec<ItemLine> {
    vec![
        line(
            ItemKind::Payment,
            1,
            Some("SW-889001"),
            "310000123456",
            "100.00",
            "0.50",
            "2026-11-29T01:02:03.456789Z",
        ),
        line(
            ItemKind::Payment,
            2,
            None,
            "CM-000123",
            "20",
            "0.5",
            "2026-11-29T09:30:00Z",
        ),
        line(
            ItemKind::Payment,
            3,
            Some("INV,2026/11 \"A\""),
            "310000654321",
            "1234.56",
            "3.70",
            "2026-11-29T14:59:59.999999Z",
        ),
        line(
            ItemKind::Return,
            4,
            Some("SW-880777"),
            "310000999999",
            "19.00",
            "0",
            "2026-11-28T08:00:00Z",
        ),
    ]
}

/// The totals the batch records, computed here independently of the writer.
fn totals_of(lines: &[ItemLine]) -> BatchTotals {
    let mut t = BatchTotals::new();
    for l in lines {
        match l.kind {
            ItemKind::Payment => t.add_payment(l.amount, l.commission),
            ItemKind::Return => t.add_return(l.amount),
        }
    }
    t
}

fn header(format: FileFormat, lines: &[ItemLine]) -> BatchHeader {
    BatchHeader {
        batch_id: uuid::Uuid::parse_str("0193a5b0-7c1e-7d2a-9b3c-4d5e6f708192").unwrap(),
        biller_id: "sh-water".into(),
        biller_name: "Shanghai Water".into(),
        business_date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
        currency: Currency::CNY,
        created_at: utc("2026-11-29T15:00:05.250Z"),
        cutoff_at: utc("2026-11-29T15:00:00Z"),
        format,
        commission_rule: "0.3% min 0.50 max 8.00, rounded half-up".into(),
        totals: totals_of(lines),
        creditor: BankAccount {
            name: "Shanghai Water Supply Co.".into(),
            account: "6222000011112222".into(),
            bic: "ICBKCNBJSHI".into(),
        },
        debtor: BankAccount {
            name: "billclear Settlement".into(),
            account: "31000099887766".into(),
            bic: "BKCHCNBJ".into(),
        },
    }
}

fn write_settlement(
    dir: &Path,
    header: &BatchHeader,
    lines: &[ItemLine],
) -> Result<WrittenFile, FileError> {
    let mut w = SettlementFileWriter::create(dir, header)?;
    for l in lines {
        w.push(l)?;
    }
    w.finish()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Validates `path` against the pain.001.001.03 schema with xmllint. Fails
/// (never skips) when xmllint is missing.
fn xmllint(path: &Path) -> Result<(), String> {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/iso20022/pain.001.001.03.xsd");
    assert!(xsd.is_file(), "{} is missing", xsd.display());
    let out = match Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "xmllint is not installed: install libxml2-utils \
             (bash ops/ensure-xmllint.sh, or apt-get install libxml2-utils)"
        ),
        Err(e) => panic!("cannot run xmllint: {e}"),
    };
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn assert_schema_valid(path: &Path) {
    if let Err(e) = xmllint(path) {
        panic!(
            "{} does not validate against pain.001.001.03: {e}\n{}",
            path.display(),
            fs::read_to_string(path).unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------- names

#[test]
fn file_names_are_deterministic_and_checked() {
    let lines = small_batch();
    let names = file_names(&header(FileFormat::Csv, &lines)).unwrap();
    assert_eq!(
        names.settlement,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_settlement.csv"
    );
    assert_eq!(
        names.pain001,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_pain001.xml"
    );
    assert_eq!(
        names.manifest,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_manifest.json"
    );
    let fixed = file_names(&header(FileFormat::FixedWidth, &lines)).unwrap();
    assert_eq!(
        fixed.settlement,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_settlement.txt"
    );
    // Another batch of the same biller and date (settled again from a
    // restored database into the same directory) never shares a name.
    let mut other = header(FileFormat::Csv, &lines);
    other.batch_id = uuid::Uuid::parse_str("0193a5b0-7c1e-7d2a-9b3c-4d5e6f708193").unwrap();
    let other = file_names(&other).unwrap();
    assert_eq!(
        other.settlement,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708193_settlement.csv"
    );
    assert_ne!(other.settlement, names.settlement);
    assert_ne!(other.pain001, names.pain001);
    assert_ne!(other.manifest, names.manifest);
    // The longest biller id still gives a name well under the limit.
    let mut long = header(FileFormat::Csv, &lines);
    long.biller_id = format!("b{}", "0".repeat(63));
    let long = file_names(&long).unwrap();
    for name in [&long.settlement, &long.pain001, &long.manifest] {
        assert!(name.len() <= 121, "{name} is {} bytes", name.len());
        atomic::check_file_name(name).unwrap();
    }
    for bad in ["../x", "", ".hidden", "Sh-Water", "a/b"] {
        let mut h = header(FileFormat::Csv, &lines);
        h.biller_id = bad.into();
        assert!(
            matches!(
                file_names(&h),
                Err(FileError::Invalid {
                    field: "biller_id",
                    ..
                })
            ),
            "{bad:?} accepted"
        );
    }
}

// ---------------------------------------------------------------- CSV

const CSV_GOLDEN: &str = concat!(
    "record_type,our_reference,biller_reference,account_number,amount,currency,confirmed_at,commission\r\n",
    "PAY,0193a5b0-0000-7000-8000-000000000001,SW-889001,310000123456,100.00,CNY,2026-11-29T01:02:03.456789Z,0.50\r\n",
    "PAY,0193a5b0-0000-7000-8000-000000000002,,CM-000123,20.00,CNY,2026-11-29T09:30:00.000000Z,0.50\r\n",
    "PAY,0193a5b0-0000-7000-8000-000000000003,\"INV,2026/11 \"\"A\"\"\",310000654321,1234.56,CNY,2026-11-29T14:59:59.999999Z,3.70\r\n",
    "RET,0193a5b0-0000-7000-8000-000000000004,SW-880777,310000999999,-19.00,CNY,2026-11-28T08:00:00.000000Z,0.00\r\n",
    "TRAILER,4,1335.56,4.70,1330.86\r\n",
);

#[test]
fn csv_golden_small_batch() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let written = write_settlement(dir.path(), &h, &lines).unwrap();
    let bytes = fs::read(dir.path().join(&written.name)).unwrap();
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), CSV_GOLDEN);
    assert_eq!(
        written.name,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_settlement.csv"
    );
    assert_eq!(written.kind, FileKind::Settlement);
    assert_eq!(written.count, 4);
    assert_eq!(written.total, d("1335.56"));
    assert_eq!(written.bytes, bytes.len() as u64);
    assert_eq!(written.sha256, sha256_hex(&bytes));
    // nothing but the final file is left
    assert_eq!(dir.entries(), vec![written.name.clone()]);

    // the file reads back with the csv crate: the amount column sums to the
    // trailer's total, and the trailer's net is what the batch pays
    let mut r = ::csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let (trailer, details) = rows.split_last().unwrap();
    let sum: Decimal = details.iter().map(|r| d(&r[4])).sum();
    let commission: Decimal = details.iter().map(|r| d(&r[7])).sum();
    assert_eq!(&trailer[0], "TRAILER");
    assert_eq!(trailer[1].parse::<usize>().unwrap(), details.len());
    assert_eq!(d(&trailer[2]), sum);
    assert_eq!(d(&trailer[3]), commission);
    assert_eq!(d(&trailer[4]), h.totals.net());
    assert_eq!(&details[1][3], "CM-000123");
    assert_eq!(&details[2][2], "INV,2026/11 \"A\"");
}

#[test]
fn csv_uses_the_currency_scale() {
    let dir = TestDir::new();
    let jpy = Currency::from_code("JPY").unwrap();
    let lines = vec![line(
        ItemKind::Payment,
        1,
        None,
        "A1",
        "1500",
        "5",
        "2026-11-29T00:00:00Z",
    )];
    let mut h = header(FileFormat::Csv, &lines);
    h.currency = jpy;
    let written = write_settlement(dir.path(), &h, &lines).unwrap();
    let text = fs::read_to_string(dir.path().join(written.name)).unwrap();
    assert!(
        text.contains(",A1,1500,JPY,2026-11-29T00:00:00.000000Z,5\r\n"),
        "{text}"
    );
    assert!(text.ends_with("TRAILER,1,1500,5,1495\r\n"), "{text}");

    // an amount with more decimals than the currency has is refused, not rounded
    let bad = vec![line(
        ItemKind::Payment,
        1,
        None,
        "A1",
        "1500.5",
        "5",
        "2026-11-29T00:00:00Z",
    )];
    let err = write_settlement(dir.path(), &h, &bad).unwrap_err();
    assert!(
        matches!(
            err,
            FileError::Invalid {
                field: "amount",
                ..
            }
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- fixed width

/// Each record written out in full; the filler at the end of each record is
/// spelled out by `pad` (spaces up to 250) to keep the lines readable.
fn fixed_golden() -> String {
    let pad = |s: &str| format!("{s:<250}\r\n");
    [
        pad("Hsh-water                                                        20261129CNY0193a5b0-7c1e-7d2a-9b3c-4d5e6f708192"),
        pad("DPAY0193a5b0-0000-7000-8000-000000000001SW-889001                                                       310000123456                                                    +000000000000100002026112901020300000000000000050"),
        pad("DPAY0193a5b0-0000-7000-8000-000000000002                                                                CM-000123                                                       +000000000000020002026112909300000000000000000050"),
        pad("DPAY0193a5b0-0000-7000-8000-000000000003INV,2026/11 \"A\"                                                 310000654321                                                    +000000000001234562026112914595900000000000000370"),
        pad("DRET0193a5b0-0000-7000-8000-000000000004SW-880777                                                       310000999999                                                    -000000000000019002026112808000000000000000000000"),
        pad("T0000000004+000000000000000133556000000000000000000470+000000000000000133086"),
    ]
    .concat()
}

#[test]
fn fixed_width_golden_small_batch() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::FixedWidth, &lines);
    let written = write_settlement(dir.path(), &h, &lines).unwrap();
    let bytes = fs::read(dir.path().join(&written.name)).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text, fixed_golden());
    assert_eq!(
        written.name,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_settlement.txt"
    );
    assert_eq!((written.count, written.total), (4, d("1335.56")));
    assert_eq!(written.sha256, sha256_hex(&bytes));

    // the same values read back through the layout table
    let records: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(records.len(), 6);
    assert_eq!(
        field(records[0], HEADER, "batch_id"),
        h.batch_id.to_string()
    );
    assert_eq!(
        field(records[2], DETAIL, "account_number").trim_end(),
        "CM-000123"
    );
    assert_eq!(field(records[2], DETAIL, "biller_reference").trim_end(), "");
    assert_eq!(field(records[3], DETAIL, "amount"), "+00000000000123456");
    assert_eq!(field(records[3], DETAIL, "confirmed_at"), "20261129145959");
    assert_eq!(field(records[4], DETAIL, "item_type"), "RET");
    assert_eq!(field(records[4], DETAIL, "amount"), "-00000000000001900");
    assert_eq!(field(records[5], TRAILER, "count"), "0000000004");
    assert_eq!(field(records[5], TRAILER, "net"), "+000000000000000133086");
}

/// The named field of a record, located through the layout table.
fn field<'a>(record: &'a str, layout: &[Field], name: &str) -> &'a str {
    let mut from = 0;
    for f in layout {
        if f.name == name {
            return &record[from..from + f.width];
        }
        from += f.width;
    }
    panic!("no field {name}");
}

/// Checks that every record of a fixed-width file has the declared length
/// and returns the records.
fn fixed_records(text: &str) -> Vec<&str> {
    assert!(text.ends_with("\r\n"), "the last record ends with CRLF");
    let records: Vec<&str> = text.split_terminator("\r\n").collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.len(), RECORD_LEN, "record {i} has length {}", r.len());
        assert!(
            r.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "record {i} is not printable ASCII"
        );
    }
    records
}

#[test]
fn fixed_width_every_record_has_the_declared_length() {
    for layout in [HEADER, DETAIL, TRAILER] {
        assert_eq!(layout.iter().map(|f| f.width).sum::<usize>(), RECORD_LEN);
    }
    let dir = TestDir::new();
    let mut lines = small_batch();
    // fields filled to their full width
    lines.push(ItemLine {
        biller_reference: Some("R".repeat(64)),
        account_number: "A".repeat(64),
        ..line(
            ItemKind::Payment,
            5,
            None,
            "x",
            "999999999999.99",
            "8.00",
            "2026-11-29T00:00:00Z",
        )
    });
    let mut h = header(FileFormat::FixedWidth, &lines);
    h.biller_id = format!("b{}", "0".repeat(63));
    let written = write_settlement(dir.path(), &h, &lines).unwrap();
    let text = fs::read_to_string(dir.path().join(&written.name)).unwrap();
    let records = fixed_records(&text);
    assert_eq!(records.len(), 1 + lines.len() + 1);
    assert!(records[0].starts_with('H'));
    assert!(records[1..records.len() - 1]
        .iter()
        .all(|r| r.starts_with('D')));
    assert!(records[records.len() - 1].starts_with('T'));
    assert_eq!(field(records[5], DETAIL, "amount"), "+00099999999999999");
    assert_eq!(field(records[5], DETAIL, "account_number"), "A".repeat(64));
}

#[test]
fn fixed_width_layout_doc_matches_the_table() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/settlement-files.md"))
            .unwrap();
    let begin = "<!-- fixed-width layout: generated by layout_markdown() -->\n\n";
    let end = "<!-- end of fixed-width layout -->";
    let start = doc.find(begin).expect("layout start marker") + begin.len();
    let stop = doc.find(end).expect("layout end marker");
    assert_eq!(
        &doc[start..stop],
        layout_markdown(),
        "docs/settlement-files.md differs from the layout tables in fixed.rs; \
         paste layout_markdown()'s output between the markers"
    );
    assert!(doc.contains(&format!("exactly {RECORD_LEN} bytes")));
}

#[test]
fn fixed_width_refuses_non_ascii_and_too_long_fields() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::FixedWidth, &lines);
    let mut w = SettlementFileWriter::create(dir.path(), &h).unwrap();

    let mut long = lines[0].clone();
    long.biller_reference = Some("R".repeat(65));
    let err = w.push(&long).unwrap_err();
    assert!(
        matches!(
            err,
            FileError::FieldTooLong {
                field: "biller_reference",
                len: 65,
                max: 64
            }
        ),
        "{err}"
    );
    let mut long = lines[0].clone();
    long.our_reference.push('x');
    assert!(matches!(
        w.push(&long).unwrap_err(),
        FileError::FieldTooLong {
            field: "our_reference",
            len: 37,
            max: 36
        }
    ));
    for (account, reference) in [
        ("Café-1", None),
        ("A1", Some("Zürich")),
        ("A1", Some("tab\there")),
    ] {
        let mut bad = lines[0].clone();
        bad.account_number = account.into();
        bad.biller_reference = reference.map(str::to_string);
        let err = w.push(&bad).unwrap_err();
        assert!(
            matches!(err, FileError::NonAscii { .. }),
            "{account} {reference:?}: {err}"
        );
        assert!(err.to_string().contains("refused rather than altered"));
    }
    // the refused lines were not written: the real ones still add up
    for l in &lines {
        w.push(l).unwrap();
    }
    let written = w.finish().unwrap();
    let text = fs::read_to_string(dir.path().join(&written.name)).unwrap();
    assert_eq!(text, fixed_golden());

    // the header is checked too
    let mut h = header(FileFormat::FixedWidth, &lines);
    h.biller_id = format!("b{}", "0".repeat(64));
    assert!(SettlementFileWriter::create(dir.path(), &h).is_err());
    assert_eq!(dir.entries(), vec![written.name]);
}

// ---------------------------------------------------------------- control totals, atomicity

#[test]
fn control_totals_mismatch_is_refused_and_nothing_is_left() {
    let lines = small_batch();
    for format in [FileFormat::Csv, FileFormat::FixedWidth] {
        let good = header(format, &lines);
        let mut cases: Vec<(&str, BatchTotals)> = Vec::new();
        let mut t = good.totals;
        t.count += 1;
        cases.push(("count", t));
        let mut t = good.totals;
        t.gross += d("0.01");
        cases.push(("gross", t));
        let mut t = good.totals;
        t.commission -= d("0.01");
        cases.push(("commission", t));
        let mut t = good.totals;
        t.returns_count = 0;
        t.returns = Decimal::ZERO;
        cases.push(("returns", t));
        for (what, totals) in cases {
            let dir = TestDir::new();
            let h = BatchHeader {
                totals,
                ..good.clone()
            };
            let err = write_settlement(dir.path(), &h, &lines).unwrap_err();
            match &err {
                FileError::ControlTotals { expected, actual } => {
                    assert_eq!(**expected, totals, "{what}");
                    assert_eq!(**actual, good.totals, "{what}");
                }
                other => panic!("{what}: {other}"),
            }
            assert!(err.to_string().contains("control totals do not match"));
            assert!(dir.entries().is_empty(), "{what}: left {:?}", dir.entries());
        }
        // a missing line is caught the same way
        let dir = TestDir::new();
        let err = write_settlement(dir.path(), &good, &lines[..3]).unwrap_err();
        assert!(matches!(err, FileError::ControlTotals { .. }));
        assert!(dir.entries().is_empty());
    }
}

#[test]
fn dropping_a_writer_removes_its_temp_file() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let mut w = SettlementFileWriter::create(dir.path(), &h).unwrap();
    w.push(&lines[0]).unwrap();
    let entries = dir.entries();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .starts_with(".sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_settlement.csv.tmp-"),
        "{entries:?}"
    );
    drop(w);
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());
}

#[test]
fn rewriting_identical_content_is_fine_and_different_content_is_refused() {
    let dir = TestDir::new();
    let first = write_atomic(dir.path(), "a.txt", b"one\n").unwrap();
    assert_eq!(first.sha256, sha256_hex(b"one\n"));
    assert_eq!(first.bytes, 4);
    let again = write_atomic(dir.path(), "a.txt", b"one\n").unwrap();
    assert_eq!(again, first);
    let err = write_atomic(dir.path(), "a.txt", b"two\n").unwrap_err();
    assert!(matches!(err, FileError::Conflict { .. }), "{err}");
    // The refusal names the file and both digests.
    let text = err.to_string();
    assert!(text.contains("a.txt"), "{text}");
    assert!(text.contains(&sha256_hex(b"one\n")), "{text}");
    assert!(text.contains(&sha256_hex(b"two\n")), "{text}");
    assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"one\n");
    assert_eq!(dir.entries(), vec!["a.txt"]);

    // a whole settlement file rendered again over itself
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let one = write_settlement(dir.path(), &h, &lines).unwrap();
    let two = write_settlement(dir.path(), &h, &lines).unwrap();
    assert_eq!(one, two);
    assert_eq!(dir.entries(), vec!["a.txt", one.name.as_str()]);

    for bad in ["", ".hidden", "../escape", "a/b"] {
        assert!(matches!(
            write_atomic(dir.path(), bad, b"x"),
            Err(FileError::Invalid { .. })
        ));
    }
}

#[test]
fn creates_missing_directories() {
    let dir = TestDir::new();
    let nested = dir.path().join("2026/11/29");
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let written = write_settlement(&nested, &h, &lines).unwrap();
    assert_eq!(
        fs::read_to_string(nested.join(written.name)).unwrap(),
        CSV_GOLDEN
    );
}

#[test]
fn invalid_lines_are_refused_and_the_writer_goes_on() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let mut w = SettlementFileWriter::create(dir.path(), &h).unwrap();
    let payment = &lines[0];
    let refund = &lines[3];
    let cases = [
        (
            "amount",
            ItemLine {
                amount: d("0"),
                ..payment.clone()
            },
        ),
        (
            "amount",
            ItemLine {
                amount: d("-1.00"),
                ..payment.clone()
            },
        ),
        (
            "amount",
            ItemLine {
                amount: d("1.001"),
                ..payment.clone()
            },
        ),
        (
            "commission",
            ItemLine {
                commission: d("0.005"),
                ..payment.clone()
            },
        ),
        (
            "commission",
            ItemLine {
                commission: d("100.01"),
                ..payment.clone()
            },
        ),
        (
            "commission",
            ItemLine {
                commission: d("0.01"),
                ..refund.clone()
            },
        ),
        (
            "account_number",
            ItemLine {
                account_number: String::new(),
                ..payment.clone()
            },
        ),
        (
            "our_reference",
            ItemLine {
                our_reference: String::new(),
                ..payment.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        match w.push(&bad) {
            Err(FileError::Invalid { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    for l in &lines {
        w.push(l).unwrap();
    }
    let written = w.finish().unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(written.name)).unwrap(),
        CSV_GOLDEN
    );
}

#[test]
fn same_input_gives_byte_identical_files() {
    let lines = small_batch();
    for format in [FileFormat::Csv, FileFormat::FixedWidth] {
        let h = header(format, &lines);
        let render = |dir: &TestDir| {
            let s = write_settlement(dir.path(), &h, &lines).unwrap();
            let p = write_pain001(dir.path(), &h).unwrap();
            let m = write_manifest(dir.path(), &h, &[s.clone(), p.clone()]).unwrap();
            [s, p, m]
        };
        let (a, b) = (TestDir::new(), TestDir::new());
        let (fa, fb) = (render(&a), render(&b));
        assert_eq!(fa, fb);
        for f in &fa {
            assert_eq!(
                fs::read(a.path().join(&f.name)).unwrap(),
                fs::read(b.path().join(&f.name)).unwrap(),
                "{}",
                f.name
            );
        }
        assert_eq!(a.entries(), b.entries());
        assert_eq!(a.entries().len(), 3);
    }
}

// ---------------------------------------------------------------- pain.001

const PAIN001_GOLDEN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03">
  <CstmrCdtTrfInitn>
    <GrpHdr>
      <MsgId>BCM0193a5b07c1e7d2a9b3c4d5e6f708192</MsgId>
      <CreDtTm>2026-11-29T15:00:05Z</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <CtrlSum>1330.86</CtrlSum>
      <InitgPty>
        <Nm>billclear Settlement</Nm>
      </InitgPty>
    </GrpHdr>
    <PmtInf>
      <PmtInfId>BCP0193a5b07c1e7d2a9b3c4d5e6f708192</PmtInfId>
      <PmtMtd>TRF</PmtMtd>
      <BtchBookg>false</BtchBookg>
      <NbOfTxs>1</NbOfTxs>
      <CtrlSum>1330.86</CtrlSum>
      <ReqdExctnDt>2026-11-30</ReqdExctnDt>
      <Dbtr>
        <Nm>billclear Settlement</Nm>
      </Dbtr>
      <DbtrAcct>
        <Id>
          <Othr>
            <Id>31000099887766</Id>
          </Othr>
        </Id>
      </DbtrAcct>
      <DbtrAgt>
        <FinInstnId>
          <BIC>BKCHCNBJ</BIC>
        </FinInstnId>
      </DbtrAgt>
      <CdtTrfTxInf>
        <PmtId>
          <EndToEndId>BCE0193a5b07c1e7d2a9b3c4d5e6f708192</EndToEndId>
        </PmtId>
        <Amt>
          <InstdAmt Ccy="CNY">1330.86</InstdAmt>
        </Amt>
        <CdtrAgt>
          <FinInstnId>
            <BIC>ICBKCNBJSHI</BIC>
          </FinInstnId>
        </CdtrAgt>
        <Cdtr>
          <Nm>Shanghai Water Supply Co.</Nm>
        </Cdtr>
        <CdtrAcct>
          <Id>
            <Othr>
              <Id>6222000011112222</Id>
            </Othr>
          </Id>
        </CdtrAcct>
        <RmtInf>
          <Ustrd>billclear settlement sh-water 2026-11-29 3 payments</Ustrd>
        </RmtInf>
      </CdtTrfTxInf>
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>
"#;

/// Writes `header`'s pain.001 and validates it with xmllint.
fn written_pain001(dir: &TestDir, h: &BatchHeader) -> String {
    let written = write_pain001(dir.path(), h).unwrap();
    let path = dir.path().join(&written.name);
    assert_schema_valid(&path);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(written.sha256, sha256_hex(text.as_bytes()));
    assert_eq!(written.count, 1);
    assert_eq!(written.total, h.totals.net());
    text
}

/// A string value read back from the pain.001 by xmllint (unescaped).
fn xpath(path: &Path, local_names: &[&str]) -> String {
    let expr: String = local_names
        .iter()
        .map(|n| format!("/*[local-name()='{n}']"))
        .collect();
    let out = Command::new("xmllint")
        .args(["--xpath", &format!("string({expr})")])
        .arg(path)
        .output()
        .expect("xmllint is not installed: install libxml2-utils");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn pain001_validates_against_the_xsd() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let text = written_pain001(&dir, &h);
    assert_eq!(text, PAIN001_GOLDEN);
    assert_eq!(render_pain001(&h).unwrap(), text);
    let path = dir
        .path()
        .join("sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_pain001.xml");
    let amt = xpath(
        &path,
        &[
            "Document",
            "CstmrCdtTrfInitn",
            "PmtInf",
            "CdtTrfTxInf",
            "Amt",
            "InstdAmt",
        ],
    );
    assert_eq!(d(&amt), h.totals.net());

    // xmllint really checks: a broken BIC is rejected
    let broken = dir.path().join("broken.xml");
    fs::write(
        &broken,
        text.replace("<BIC>BKCHCNBJ</BIC>", "<BIC>bkchcnbj</BIC>"),
    )
    .unwrap();
    assert!(
        xmllint(&broken).is_err(),
        "xmllint accepted a lower-case BIC"
    );
}

#[test]
fn pain001_escapes_xml_special_characters() {
    let dir = TestDir::new();
    let lines = small_batch();
    let mut h = header(FileFormat::Csv, &lines);
    let name = "Tom & Jerry <Water> \"Co\" 'Ltd' ]]>";
    h.biller_name = name.into();
    h.creditor.name = name.into();
    h.debtor.name = "A&B <Settlement>".into();
    let text = written_pain001(&dir, &h);
    assert!(text.contains("<Nm>Tom &amp; Jerry &lt;Water&gt;"), "{text}");
    assert!(!text.contains("Tom & Jerry"));
    let path = dir
        .path()
        .join("sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_pain001.xml");
    let back = |role: &str| {
        xpath(
            &path,
            &[
                "Document",
                "CstmrCdtTrfInitn",
                "PmtInf",
                "CdtTrfTxInf",
                role,
                "Nm",
            ],
        )
    };
    assert_eq!(back("Cdtr"), name);
    assert_eq!(
        xpath(
            &path,
            &["Document", "CstmrCdtTrfInitn", "GrpHdr", "InitgPty", "Nm"]
        ),
        "A&B <Settlement>"
    );
}

#[test]
fn pain001_with_8_and_11_character_bics() {
    let lines = small_batch();
    for (debtor_bic, creditor_bic) in [
        ("BKCHCNBJ", "ICBKCNBJSHI"),
        ("BKCHCNBJ300", "ICBKCNBJ"),
        ("DEUTDEFF", "COBADEFFXXX"),
    ] {
        let dir = TestDir::new();
        let mut h = header(FileFormat::Csv, &lines);
        h.debtor.bic = debtor_bic.into();
        h.creditor.bic = creditor_bic.into();
        let text = written_pain001(&dir, &h);
        assert!(text.contains(&format!("<BIC>{debtor_bic}</BIC>")));
        assert!(text.contains(&format!("<BIC>{creditor_bic}</BIC>")));
    }
    for bad in [
        "ICBKCNB",
        "ICBKCN1J",
        "icbkcnbj",
        "ICBKCNBO",
        "ICBKCNBJSH",
        "ICBKCNBJSH-",
    ] {
        let mut h = header(FileFormat::Csv, &lines);
        h.creditor.bic = bad.into();
        assert!(
            matches!(
                render_pain001(&h),
                Err(FileError::Invalid {
                    field: "creditor BIC",
                    ..
                })
            ),
            "{bad} accepted"
        );
    }
}

#[test]
fn pain001_names_up_to_140_characters() {
    let lines = small_batch();
    let dir = TestDir::new();
    let mut h = header(FileFormat::Csv, &lines);
    // 140 characters of 3 bytes each: the limit counts characters
    h.creditor.name = "水".repeat(140);
    written_pain001(&dir, &h);
    h.creditor.name = "水".repeat(141);
    assert!(matches!(
        render_pain001(&h),
        Err(FileError::FieldTooLong {
            field: "creditor name",
            len: 141,
            max: 140
        })
    ));
    let mut h = header(FileFormat::Csv, &lines);
    h.debtor.name = "x".repeat(141);
    assert!(matches!(
        render_pain001(&h),
        Err(FileError::FieldTooLong {
            field: "debtor name",
            ..
        })
    ));
    for bad in ["", "   ", "line\nbreak", "nul\0"] {
        let mut h = header(FileFormat::Csv, &lines);
        h.creditor.name = bad.into();
        assert!(
            matches!(
                render_pain001(&h),
                Err(FileError::Invalid {
                    field: "creditor name",
                    ..
                })
            ),
            "{bad:?} accepted"
        );
    }
    let mut h = header(FileFormat::Csv, &lines);
    h.creditor.account = "1".repeat(35);
    assert!(matches!(
        render_pain001(&h),
        Err(FileError::FieldTooLong {
            field: "creditor account",
            ..
        })
    ));
}

#[test]
fn pain001_refused_when_nothing_to_pay() {
    let lines = vec![
        line(
            ItemKind::Payment,
            1,
            None,
            "A1",
            "10.00",
            "0.50",
            "2026-11-29T00:00:00Z",
        ),
        line(
            ItemKind::Return,
            2,
            None,
            "A2",
            "9.50",
            "0",
            "2026-11-29T00:00:00Z",
        ),
    ];
    let h = header(FileFormat::Csv, &lines);
    assert_eq!(h.totals.net(), Decimal::ZERO);
    let dir = TestDir::new();
    let err = write_pain001(dir.path(), &h).unwrap_err();
    assert!(
        matches!(err, FileError::NotPayable { net } if net.is_zero()),
        "{err}"
    );
    assert!(dir.entries().is_empty());
    // the settlement file of such a batch is still written, net 0.00
    let written = write_settlement(dir.path(), &h, &lines).unwrap();
    let text = fs::read_to_string(dir.path().join(written.name)).unwrap();
    assert!(text.ends_with("TRAILER,2,0.50,0.50,0.00\r\n"), "{text}");

    let mut h = header(FileFormat::Csv, &lines);
    h.totals.returns = d("10.00");
    assert!(matches!(
        render_pain001(&h),
        Err(FileError::NotPayable { .. })
    ));
}

// ---------------------------------------------------------------- manifest

#[test]
fn manifest_lists_correct_sha256_and_verify_detects_tampering() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let settlement = write_settlement(dir.path(), &h, &lines).unwrap();
    let pain = write_pain001(dir.path(), &h).unwrap();
    let m = write_manifest(dir.path(), &h, &[settlement.clone(), pain.clone()]).unwrap();
    assert_eq!(
        m.name,
        "sh-water_20261129_0193a5b07c1e7d2a9b3c4d5e6f708192_manifest.json"
    );
    assert_eq!(
        (m.kind, m.count, m.total),
        (FileKind::Manifest, 2, d("1330.86"))
    );

    let text = fs::read_to_string(dir.path().join(&m.name)).unwrap();
    assert_eq!(m.sha256, sha256_hex(text.as_bytes()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // every listed file: sha256 and size recomputed here from the bytes
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let bytes = fs::read(dir.path().join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(f["sha256"].as_str().unwrap(), sha256_hex(&bytes));
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
    }
    assert_eq!(files[0]["kind"], "settlement");
    assert_eq!(files[0]["count"], 4);
    assert_eq!(files[0]["total"], "1335.56");
    assert_eq!(files[1]["kind"], "pain001");
    assert_eq!(files[1]["total"], "1330.86");
    assert_eq!(json["totals"]["gross"], "1354.56");
    assert_eq!(json["totals"]["commission"], "4.70");
    assert_eq!(json["totals"]["returns"], "19.00");
    assert_eq!(json["totals"]["net"], "1330.86");
    assert_eq!(json["totals"]["count"], 3);
    assert_eq!(json["totals"]["returns_count"], 1);
    assert_eq!(json["created_at"], "2026-11-29T15:00:05.250Z");
    assert_eq!(json["cutoff_at"], "2026-11-29T15:00:00Z");
    assert_eq!(json["currency"], "CNY");
    assert_eq!(
        json["commission_rule"],
        "0.3% min 0.50 max 8.00, rounded half-up"
    );
    // keys in a stable, documented order
    let keys = [
        "\"version\"",
        "\"batch_id\"",
        "\"biller_id\"",
        "\"biller_name\"",
        "\"business_date\"",
        "\"currency\"",
        "\"cutoff_at\"",
        "\"created_at\"",
        "\"format\"",
        "\"commission_rule\"",
        "\"totals\"",
        "\"files\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.ends_with("}\n"));

    let verified = verify_manifest(dir.path(), &m.name).unwrap();
    assert_eq!(verified.files, vec![settlement.clone(), pain.clone()]);
    assert_eq!(verified.totals.net, "1330.86");

    // one byte changed, same size
    let csv_path = dir.path().join(&settlement.name);
    let original = fs::read(&csv_path).unwrap();
    let mut tampered = original.clone();
    let at = tampered.iter().position(|b| *b == b'7').unwrap();
    tampered[at] = b'8';
    fs::write(&csv_path, &tampered).unwrap();
    match verify_manifest(dir.path(), &m.name) {
        Err(FileError::Manifest(ManifestError::Sha256 {
            name,
            expected,
            actual,
        })) => {
            assert_eq!(name, settlement.name);
            assert_eq!(expected, settlement.sha256);
            assert_eq!(actual, sha256_hex(&tampered));
        }
        other => panic!("{other:?}"),
    }
    // a line appended
    let mut longer = original.clone();
    longer.extend_from_slice(b"PAY,x\r\n");
    fs::write(&csv_path, &longer).unwrap();
    assert!(matches!(
        verify_manifest(dir.path(), &m.name),
        Err(FileError::Manifest(ManifestError::Size { .. }))
    ));
    // removed
    fs::remove_file(&csv_path).unwrap();
    assert!(matches!(
        verify_manifest(dir.path(), &m.name),
        Err(FileError::Manifest(ManifestError::Missing { .. }))
    ));
    // restored
    fs::write(&csv_path, &original).unwrap();
    verify_manifest(dir.path(), &m.name).unwrap();
}

#[test]
fn manifest_refuses_unsafe_or_wrong_listings() {
    let dir = TestDir::new();
    let lines = small_batch();
    let h = header(FileFormat::Csv, &lines);
    let settlement = write_settlement(dir.path(), &h, &lines).unwrap();

    // write_manifest checks what it is given
    let mut wrong = settlement.clone();
    wrong.sha256 = "00".repeat(32);
    assert!(matches!(
        write_manifest(dir.path(), &h, &[wrong]),
        Err(FileError::Manifest(ManifestError::Sha256 { .. }))
    ));
    assert!(matches!(
        write_manifest(dir.path(), &h, &[settlement.clone(), settlement.clone()]),
        Err(FileError::Manifest(ManifestError::Duplicate { .. }))
    ));
    assert!(matches!(
        write_manifest(dir.path(), &h, &[]),
        Err(FileError::Manifest(ManifestError::Empty))
    ));
    assert_eq!(dir.entries(), vec![settlement.name.clone()]);

    // verify_manifest never leaves the directory
    let m = write_manifest(dir.path(), &h, std::slice::from_ref(&settlement)).unwrap();
    let text = fs::read_to_string(dir.path().join(&m.name)).unwrap();
    for bad in ["../outside.csv", "/etc/passwd", ".hidden"] {
        fs::write(
            dir.path().join("evil.json"),
            text.replace(&format!("\"{}\"", settlement.name), &format!("{bad:?}")),
        )
        .unwrap();
        assert!(
            matches!(
                verify_manifest(dir.path(), "evil.json"),
                Err(FileError::Manifest(ManifestError::BadName { .. }))
            ),
            "{bad}"
        );
    }
    fs::write(dir.path().join("evil.json"), "{\"version\": 1}").unwrap();
    assert!(matches!(
        verify_manifest(dir.path(), "evil.json"),
        Err(FileError::Manifest(ManifestError::Unreadable { .. }))
    ));
    assert!(matches!(
        verify_manifest(dir.path(), "../x.json"),
        Err(FileError::Invalid { .. })
    ));
}

// ---------------------------------------------------------------- streaming

/// Line `i` of a large batch: every 100th a return.
fn generated(i: u64) -> ItemLine {
    let kind = if i % 100 == 99 {
        ItemKind::Return
    } else {
        ItemKind::Payment
    };
    let (amount, commission) = match kind {
        ItemKind::Payment => (1000 + (i % 997) * 13, (i % 7) * 5),
        ItemKind::Return => (500 + i % 11, 0),
    };
    ItemLine {
        kind,
        our_reference: uuid::Uuid::from_u128(u128::from(i)).to_string(),
        biller_reference: (!i.is_multiple_of(3)).then(|| format!("R{i}")),
        account_number: format!("ACC-{:08}", i % 50_000),
        amount: Decimal::new(amount as i64, 2),
        commission: Decimal::new(commission as i64, 2),
        confirmed_at: utc("2026-11-29T00:00:00Z") + chrono::Duration::milliseconds(i as i64 * 17),
    }
}

#[test]
fn streaming_200_000_lines() {
    const N: u64 = 200_000;
    // expected control figures in integer minor units, computed apart from
    // the writer and from Decimal
    let (mut pay, mut ret, mut total, mut commission) = (0u64, 0u64, 0i128, 0i128);
    let mut totals = BatchTotals::new();
    for i in 0..N {
        let l = generated(i);
        match l.kind {
            ItemKind::Payment => {
                pay += 1;
                total += l.amount.mantissa();
                commission += l.commission.mantissa();
                totals.add_payment(l.amount, l.commission);
            }
            ItemKind::Return => {
                ret += 1;
                total -= l.amount.mantissa();
                totals.add_return(l.amount);
            }
        }
    }
    assert_eq!((pay, ret), (198_000, 2_000));
    let net = total - commission;

    for format in [FileFormat::Csv, FileFormat::FixedWidth] {
        let dir = TestDir::new();
        let h = BatchHeader {
            totals,
            ..header(format, &[])
        };
        let mut w = SettlementFileWriter::create(dir.path(), &h).unwrap();
        for i in 0..N {
            w.push(&generated(i)).unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(written.count, N);
        assert_eq!(written.total.mantissa(), total);
        let text = fs::read_to_string(dir.path().join(&written.name)).unwrap();
        assert_eq!(written.bytes, text.len() as u64);
        assert_eq!(written.sha256, sha256_hex(text.as_bytes()));
        let minor = |s: &str| d(s).mantissa();
        match format {
            FileFormat::Csv => {
                let rows: Vec<&str> = text.split_terminator("\r\n").collect();
                assert_eq!(rows.len() as u64, 1 + N + 1);
                let sum: i128 = rows[1..rows.len() - 1]
                    .iter()
                    .map(|r| minor(r.split(',').nth(4).unwrap()))
                    .sum();
                assert_eq!(sum, total);
                let trailer: Vec<&str> = rows[rows.len() - 1].split(',').collect();
                assert_eq!(trailer[0], "TRAILER");
                assert_eq!(trailer[1], N.to_string());
                assert_eq!(minor(trailer[2]), total);
                assert_eq!(minor(trailer[3]), commission);
                assert_eq!(minor(trailer[4]), net);
            }
            FileFormat::FixedWidth => {
                let records = fixed_records(&text);
                assert_eq!(records.len() as u64, 1 + N + 1);
                let t = records[records.len() - 1];
                let int = |s: &str| s.parse::<i128>().unwrap();
                assert_eq!(int(field(t, TRAILER, "count")), i128::from(N));
                assert_eq!(int(field(t, TRAILER, "total")), total);
                assert_eq!(int(field(t, TRAILER, "commission_total")), commission);
                assert_eq!(int(field(t, TRAILER, "net")), net);
            }
        }
        assert_eq!(net, totals.net().mantissa());
    }
}
