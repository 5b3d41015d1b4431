//! The co-op's batch and acknowledgement files, and the co-op simulator
//! over real directories.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use biller_connectors::coop::{
    self, parse_ack, parse_batch, parse_refusal, read_acks, read_refusals, reconcile_ack,
    write_batch, Ack, AckLine, AckStatus, Batch, BatchLine, ErrorKind, LineOutcome,
};
use biller_sim::{CoopSim, CoopSimConfig, Faults};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

const COOP: &str = "chongming-coop";
/// The 7th generated default account, closed.
const CLOSED: &str = "CM-129897";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("coop-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn line(reference: &str, account: &str, amount: &str) -> BatchLine {
    BatchLine {
        our_reference: reference.into(),
        account_number: account.into(),
        amount: dec(amount),
        currency: "CNY".into(),
        bill_reference: None,
    }
}

fn batch(seq: u32, lines: Vec<BatchLine>) -> Batch {
    Batch {
        coop_id: COOP.into(),
        business_date: day(),
        seq,
        created_at: at("2026-11-29T09:30:00Z"),
        lines,
    }
}

fn golden_batch() -> Batch {
    let mut first = line("pay-0001", "CM-000123", "88.5");
    first.bill_reference = Some("BCM-00012301".into());
    batch(1, vec![first, line("pay-0002", "CM-104271", "120")])
}

const GOLDEN_BATCH: &str = "\
H|PAY|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T09:30:00Z
D|1|pay-0001|CM-000123|88.50|CNY|BCM-00012301
D|2|pay-0002|CM-104271|120.00|CNY|
T|2|208.50
";

const GOLDEN_ACK: &str = "\
H|ACK|PAY_chongming-coop_20261129_001|chongming-coop|20261129|2026-11-29T10:15:00Z
D|1|pay-0001|CM-000123|88.50|CNY|A|CM0000000001||
D|2|pay-0002|CM-104271|120.00|CNY|R||R02|account closed
T|1|88.50|1|120.00
";

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ------------------------------------------------------------------ files

#[test]
fn golden_batch_file_is_written_byte_for_byte() {
    let tmp = TempDir::new();
    let path = write_batch(&tmp.0, &golden_batch()).unwrap();
    assert_eq!(path, tmp.0.join("PAY_chongming-coop_20261129_001.txt"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), GOLDEN_BATCH);
    assert_eq!(names(&tmp.0), ["PAY_chongming-coop_20261129_001.txt"]);
    assert_eq!(
        parse_batch(GOLDEN_BATCH.as_bytes()).unwrap(),
        golden_batch()
    );
}

#[test]
fn write_batch_refuses_to_overwrite_and_leaves_no_temporary_file() {
    let tmp = TempDir::new();
    let b = golden_batch();
    write_batch(&tmp.0, &b).unwrap();
    let mut other = b.clone();
    other.lines[0].amount = dec("1.00");
    let e = write_batch(&tmp.0, &other).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    let e = write_batch(&tmp.0, &b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    let path = tmp.0.join(b.file_name());
    assert_eq!(std::fs::read_to_string(path).unwrap(), GOLDEN_BATCH);
    assert_eq!(names(&tmp.0), [b.file_name()]);
    // A batch the format cannot carry: refused, nothing written.
    let mut bad = batch(2, vec![line("p|1", "CM-000123", "1.00")]);
    let e = write_batch(&tmp.0, &bad).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    bad.lines[0] = line("p1", "CM-000123", "1.001");
    assert!(write_batch(&tmp.0, &bad).is_err());
    assert_eq!(names(&tmp.0).len(), 1);
}

#[test]
fn a_batch_is_never_seen_half_written() {
    let tmp = TempDir::new();
    let lines: Vec<BatchLine> = (0..40_000)
        .map(|i| line(&format!("ref-{i:08}"), "CM-000123", "12.34"))
        .collect();
    let b = batch(1, lines);
    let path = tmp.0.join(b.file_name());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut complete_reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(bytes) = std::fs::read(&path) {
                    let parsed = parse_batch(&bytes).expect("a complete file");
                    assert_eq!(parsed.lines.len(), 40_000);
                    complete_reads += 1;
                }
            }
            complete_reads
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    write_batch(&tmp.0, &b).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(names(&tmp.0), [b.file_name()]);
}

#[test]
fn acks_are_read_refused_whole_and_moved_when_processed() {
    let tmp = TempDir::new();
    let ok = tmp.0.join("ACK_PAY_chongming-coop_20261129_001.txt");
    std::fs::write(&ok, GOLDEN_ACK).unwrap();
    // Truncated in transit: no trailer.
    let truncated = tmp.0.join("ACK_PAY_chongming-coop_20261129_002.txt");
    let cut: String = GOLDEN_ACK
        .replace("_001", "_002")
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&truncated, cut).unwrap();
    // Ignored: a temporary file, another kind, a stray name.
    std::fs::write(
        tmp.0.join(".ACK_PAY_chongming-coop_20261129_003.txt.x.tmp"),
        "x",
    )
    .unwrap();
    std::fs::write(tmp.0.join("notes.txt"), "x").unwrap();
    std::fs::write(
        tmp.0.join("REJ_PAY_chongming-coop_20261129_004.txt"),
        "REJ|PAY_chongming-coop_20261129_004.txt|chongming-coop|2026-11-29T10:15:00Z|0|F01|file refused: empty\n",
    )
    .unwrap();

    let acks = read_acks(&tmp.0).unwrap();
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].0, ok);
    let ack = acks[0].1.as_ref().unwrap();
    assert_eq!(ack.lines.len(), 2);
    assert_eq!(acks[1].0, truncated);
    let e = acks[1].1.as_ref().unwrap_err();
    assert_eq!((e.line, e.kind), (3, ErrorKind::MissingTrailer), "{e}");

    let refusals = read_refusals(&tmp.0).unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].1.as_ref().unwrap().code, "F01");

    let moved = coop::mark_processed(&ok).unwrap();
    assert_eq!(moved, tmp.0.join("processed").join(ok.file_name().unwrap()));
    assert!(!ok.exists());
    assert_eq!(std::fs::read_to_string(&moved).unwrap(), GOLDEN_ACK);
    let acks = read_acks(&tmp.0).unwrap();
    assert_eq!(acks.len(), 1, "the processed ack is no longer listed");
    // The same name processed twice: refused, nothing lost.
    std::fs::write(&ok, GOLDEN_ACK).unwrap();
    let e = coop::mark_processed(&ok).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(ok.exists());
}

#[test]
fn oversized_ack_is_refused_unread() {
    let tmp = TempDir::new();
    let big = tmp.0.join("ACK_PAY_chongming-coop_20261129_001.txt");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(coop::MAX_FILE_BYTES + 1).unwrap();
    let acks = read_acks(&tmp.0).unwrap();
    assert_eq!(acks[0].1.as_ref().unwrap_err().kind, ErrorKind::TooLarge);
}

// -------------------------------------------------------------- reconcile

fn golden_ack() -> Ack {
    parse_ack(GOLDEN_ACK.as_bytes()).unwrap()
}

#[test]
fn reconcile_maps_each_line() {
    let outcomes = reconcile_ack(&golden_batch(), &golden_ack()).unwrap();
    assert_eq!(
        outcomes,
        [
            LineOutcome::Accepted {
                our_reference: "pay-0001".into(),
                receipt: "CM0000000001".into()
            },
            LineOutcome::Rejected {
                our_reference: "pay-0002".into(),
                code: "R02".into(),
                reason: "account closed".into()
            },
        ]
    );
    assert_eq!(outcomes[1].our_reference(), "pay-0002");
    assert_eq!(coop::accepted_total(&golden_ack()), dec("88.50"));
}

#[test]
fn reconcile_catches_missing_extra_and_mismatched_lines() {
    let b = golden_batch();
    let mut missing = golden_ack();
    missing.lines.pop();
    let e = reconcile_ack(&b, &missing).unwrap_err();
    assert_eq!((e.line, e.kind), (2, ErrorKind::MissingLine), "{e}");

    let mut extra = golden_ack();
    extra.lines.push(AckLine {
        line_no: 3,
        our_reference: "pay-0003".into(),
        account_number: "CM-000123".into(),
        amount: dec("1.00"),
        currency: "CNY".into(),
        status: AckStatus::Accepted {
            receipt: "CM0000000009".into(),
        },
    });
    let e = reconcile_ack(&b, &extra).unwrap_err();
    assert_eq!((e.line, e.kind), (3, ErrorKind::ExtraLine), "{e}");

    let mut amount = golden_ack();
    amount.lines[0].amount = dec("88.51");
    let e = reconcile_ack(&b, &amount).unwrap_err();
    assert_eq!((e.line, e.kind), (1, ErrorKind::LineMismatch), "{e}");
    assert!(e.reason.contains("88.51"), "{e}");

    let mut account = golden_ack();
    account.lines[1].account_number = "CM-000123".into();
    assert_eq!(
        reconcile_ack(&b, &account).unwrap_err().kind,
        ErrorKind::LineMismatch
    );

    let mut swapped = golden_ack();
    swapped.lines[0].our_reference = "pay-0009".into();
    let e = reconcile_ack(&b, &swapped).unwrap_err();
    assert_eq!((e.line, e.kind), (1, ErrorKind::MissingLine));

    let mut other = golden_ack();
    other.batch_file_id = "PAY_chongming-coop_20261129_002".into();
    assert_eq!(
        reconcile_ack(&b, &other).unwrap_err().kind,
        ErrorKind::WrongBatch
    );
}

#[test]
fn default_coop_accounts() {
    let accounts = biller_sim::default_accounts(COOP, day());
    assert_eq!(accounts[0].account_number, "CM-000123");
    assert_eq!(accounts.len(), 16);
    assert!(accounts.iter().all(|a| {
        let n = &a.account_number;
        n.len() == 9 && n.starts_with("CM-") && n[3..].bytes().all(|b| b.is_ascii_digit())
    }));
    let closed: Vec<_> = accounts.iter().filter(|a| !a.open).collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].account_number, CLOSED);
    assert!(accounts.iter().any(|a| a.account_number == "CM-104271"));
}

// -------------------------------------------------------------- simulator

struct Rig {
    _tmp: TempDir,
    drop_dir: PathBuf,
    ack_dir: PathBuf,
    sim: CoopSim,
}

fn rig_with(ack_delay_ms: u64) -> Rig {
    let tmp = TempDir::new();
    let (drop_dir, ack_dir) = (tmp.sub("drop"), tmp.sub("ack"));
    let mut config = CoopSimConfig::new(&drop_dir, &ack_dir);
    config.poll_ms = 20;
    config.ack_delay_ms = ack_delay_ms;
    config.book = biller_sim::book_for(&[COOP], Utc::now().date_naive());
    let sim = CoopSim::start(config).unwrap();
    Rig {
        _tmp: tmp,
        drop_dir,
        ack_dir,
        sim,
    }
}

fn rig() -> Rig {
    rig_with(0)
}

/// Waits (at most 5 s) for `name` in `dir` and returns its bytes.
async fn wait_for_file(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    for _ in 0..250 {
        if let Ok(bytes) = std::fs::read(&path) {
            return bytes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}

async fn wait_for_ack(rig: &Rig, b: &Batch) -> Ack {
    let bytes = wait_for_file(&rig.ack_dir, &coop::ack_file_name(&b.file_name())).await;
    parse_ack(&bytes).unwrap()
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

fn receipt(o: &LineOutcome) -> &str {
    match o {
        LineOutcome::Accepted { receipt, .. } => receipt,
        other => panic!("not accepted: {other:?}"),
    }
}

#[tokio::test]
async fn sim_accepts_and_rejects_lines() {
    let rig = rig();
    let b = batch(
        1,
        vec![
            line("p-1", "CM-000123", "88.50"),
            line("p-2", "CM-999999", "10.00"),
            line("p-3", CLOSED, "20.00"),
            line("p-4", "CM-104271", "0.01"),
        ],
    );
    write_batch(&rig.drop_dir, &b).unwrap();
    let ack = wait_for_ack(&rig, &b).await;
    let outcomes = reconcile_ack(&b, &ack).unwrap();
    assert!(receipt(&outcomes[0]).starts_with("CM"));
    assert!(matches!(&outcomes[1], LineOutcome::Rejected { code, .. } if code == "R01"));
    assert!(matches!(&outcomes[2], LineOutcome::Rejected { code, .. } if code == "R02"));
    assert!(receipt(&outcomes[3]).starts_with("CM"));
    let credits = rig.sim.credits();
    assert_eq!(credits.len(), 2);
    assert_eq!(credits[0].our_reference, "p-1");
    assert_eq!(credits[0].biller_reference, receipt(&outcomes[0]));
    assert_eq!(credits[0].amount, dec("88.50"));
    assert_eq!(rig.sim.rejections().len(), 2);
    assert_eq!(rig.sim.files_seen(), [b.file_name()]);
    assert_eq!(coop::accepted_total(&ack), dec("88.51"));
    // The batch file is left where it was delivered.
    assert!(rig.drop_dir.join(b.file_name()).exists());
    let acks = read_acks(&rig.ack_dir).unwrap();
    assert_eq!(acks.len(), 1);
    coop::mark_processed(&acks[0].0).unwrap();
    assert!(read_acks(&rig.ack_dir).unwrap().is_empty());
}

#[tokio::test]
async fn the_same_batch_delivered_twice_is_credited_once() {
    let rig = rig();
    let b = batch(1, vec![line("p-1", "CM-000123", "88.50")]);
    write_batch(&rig.drop_dir, &b).unwrap();
    wait_for_ack(&rig, &b).await;
    let e = write_batch(&rig.drop_dir, &b).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(rig.sim.ack_now().unwrap(), 0);
    assert_eq!(rig.sim.credits().len(), 1);
    assert_eq!(rig.sim.files_seen().len(), 1);
    // A second simulator run over the same directories skips the answered
    // file.
    drop(rig.sim);
    let mut config = CoopSimConfig::new(&rig.drop_dir, &rig.ack_dir);
    config.poll_ms = 20;
    let again = CoopSim::start(config).unwrap();
    assert_eq!(again.ack_now().unwrap(), 0);
    assert!(again.files_seen().is_empty());
    assert!(again.credits().is_empty());
}

#[tokio::test]
async fn a_reference_sent_again_in_a_new_file_is_not_credited_twice() {
    let rig = rig();
    let first = batch(1, vec![line("p-1", "CM-000123", "88.50")]);
    write_batch(&rig.drop_dir, &first).unwrap();
    let ack1 = wait_for_ack(&rig, &first).await;
    let r1 = reconcile_ack(&first, &ack1).unwrap();

    let second = batch(
        2,
        vec![
            line("p-2", "CM-104271", "5.00"),
            line("p-1", "CM-000123", "88.50"),
        ],
    );
    write_batch(&rig.drop_dir, &second).unwrap();
    let ack2 = wait_for_ack(&rig, &second).await;
    let r2 = reconcile_ack(&second, &ack2).unwrap();
    assert_eq!(receipt(&r2[1]), receipt(&r1[0]), "the original receipt");
    let credits = rig.sim.credits();
    assert_eq!(credits.len(), 2);
    assert_eq!(
        credits.iter().filter(|c| c.our_reference == "p-1").count(),
        1
    );

    // The same reference with another amount: rejected, the original
    // credit stands.
    let third = batch(3, vec![line("p-1", "CM-000123", "99.00")]);
    write_batch(&rig.drop_dir, &third).unwrap();
    let ack3 = wait_for_ack(&rig, &third).await;
    let r3 = reconcile_ack(&third, &ack3).unwrap();
    assert!(matches!(&r3[0], LineOutcome::Rejected { code, .. } if code == "R05"));
    assert_eq!(rig.sim.credits().len(), 2);
}

#[tokio::test]
async fn a_dropped_answer_leaves_the_lines_applied() {
    let rig = rig();
    rig.sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let b = batch(1, vec![line("p-1", "CM-000123", "88.50")]);
    write_batch(&rig.drop_dir, &b).unwrap();
    wait_until("the file is processed", || rig.sim.files_seen().len() == 1).await;
    rig.sim.ack_now().unwrap();
    assert!(names(&rig.ack_dir).is_empty(), "no ack");
    assert_eq!(rig.sim.credits().len(), 1, "applied");
    assert_eq!(rig.sim.faults().drop_response_next, 0);

    // billclear, with no answer, sends the lines again in a new file.
    let again = batch(2, b.lines.clone());
    write_batch(&rig.drop_dir, &again).unwrap();
    let ack = wait_for_ack(&rig, &again).await;
    let outcomes = reconcile_ack(&again, &ack).unwrap();
    assert_eq!(receipt(&outcomes[0]), rig.sim.credits()[0].biller_reference);
    assert_eq!(rig.sim.credits().len(), 1, "not credited twice");
}

#[tokio::test]
async fn an_outage_leaves_files_untouched_until_cleared() {
    let rig = rig();
    rig.sim.set_faults(Faults {
        outage: true,
        ..Faults::default()
    });
    let b = batch(1, vec![line("p-1", "CM-000123", "88.50")]);
    let path = write_batch(&rig.drop_dir, &b).unwrap();
    let before = std::fs::read(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(rig.sim.ack_now().unwrap(), 0);
    assert!(names(&rig.ack_dir).is_empty());
    assert!(rig.sim.credits().is_empty());
    assert!(rig.sim.files_seen().is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), before);

    rig.sim.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.sim.files_seen().is_empty(), "blackhole is an outage");

    rig.sim.set_faults(Faults::default());
    let ack = wait_for_ack(&rig, &b).await;
    reconcile_ack(&b, &ack).unwrap();
    assert_eq!(rig.sim.credits().len(), 1);
}

#[tokio::test]
async fn a_malformed_batch_file_is_refused_whole() {
    let rig = rig();
    // Truncated in transit: no trailer.
    let name = "PAY_chongming-coop_20261129_001.txt";
    let cut: String = GOLDEN_BATCH
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(rig.drop_dir.join(name), cut).unwrap();
    let bytes = wait_for_file(&rig.ack_dir, &coop::refusal_file_name(name)).await;
    let refusal = parse_refusal(&bytes).unwrap();
    assert_eq!(refusal.code, "F01");
    assert_eq!(refusal.line, 3);
    assert!(
        refusal.reason.starts_with("file refused: line 3"),
        "{refusal:?}"
    );
    assert_eq!(refusal.batch_file_name, name);
    assert!(rig.sim.credits().is_empty(), "nothing applied");
    assert!(!rig.ack_dir.join(coop::ack_file_name(name)).exists());

    // A well-formed file under another file's name.
    let other = "PAY_chongming-coop_20261129_002.txt";
    std::fs::write(rig.drop_dir.join(other), GOLDEN_BATCH).unwrap();
    let bytes = wait_for_file(&rig.ack_dir, &coop::refusal_file_name(other)).await;
    assert_eq!(parse_refusal(&bytes).unwrap().code, "F03");
    assert!(rig.sim.credits().is_empty());
    assert_eq!(read_refusals(&rig.ack_dir).unwrap().len(), 2);
}

#[tokio::test]
async fn answers_wait_for_the_ack_delay_unless_asked_now() {
    let rig = rig_with(60_000);
    let b = batch(1, vec![line("p-1", "CM-000123", "88.50")]);
    write_batch(&rig.drop_dir, &b).unwrap();
    wait_until("the file is processed", || rig.sim.files_seen().len() == 1).await;
    assert_eq!(rig.sim.credits().len(), 1);
    assert_eq!(rig.sim.pending_answers(), 1);
    assert!(names(&rig.ack_dir).is_empty());
    rig.sim.ack_now().unwrap();
    assert_eq!(rig.sim.pending_answers(), 0);
    let ack = wait_for_ack(&rig, &b).await;
    reconcile_ack(&b, &ack).unwrap();
    rig.sim.shutdown();
}
