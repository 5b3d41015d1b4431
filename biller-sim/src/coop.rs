//! The water co-op simulator: the co-op's side of [`crate::coop`]. It
//! polls the drop directory, reads each new batch file, applies its lines
//! against its book and writes an acknowledgement file (or, for a file it
//! cannot read, a refusal file) into the ack directory.
//!
//! * A batch file is processed once per simulator run: its name is
//!   remembered, and a file whose `ACK_`/`REJ_` answer is already in the
//!   ack directory (or its `processed/` subdirectory) is skipped. Batch
//!   files are left where they are (the co-op keeps them as delivered).
//! * Lines are idempotent on OUR reference ACROSS files: a reference
//!   decided before is answered with its original outcome (a credit with
//!   its original receipt number), never applied twice; the same reference
//!   with other details (account, amount, currency, bill) is rejected
//!   `R05` and the original credit stands.
//! * A file that cannot be read (see [`biller_connectors::coop::parse_batch`]), of
//!   another co-op, or whose file id is not its name is refused whole by a
//!   `REJ_` file; nothing of it is applied.
//! * The answer is written `ack_delay_ms` after the file was applied
//!   ([`CoopSim::ack_now`] writes every pending answer at once).
//! * There is no separate daily confirmation file: the ack files are it.
//!
//! Faults ([`Faults`]): `outage` and `blackhole` leave new files untouched
//! (not read, not applied, nothing answered) until cleared; pending
//! answers are held too. `drop_response_next` = N: the next N files are
//! applied but never answered. `latency_ms`, `error_rate`,
//! `drop_response_rate`, `misecho_next`, `duplicate_answer_next` and
//! `out_of_order` are ignored (use `ack_delay_ms` for a slow co-op).

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use rust_decimal::Decimal;
use tokio::sync::watch;

use crate::book::Book;
use crate::{lock, Account, CreditRecord, Faults, RejectRecord};
use biller_connectors::coop::format::{sanitize_reason, valid_coop_id};
use biller_connectors::coop::{
    self, is_batch_file_name, list_files, parse_batch, read_bounded, render_ack, render_refusal,
    write_file_atomic, Ack, AckLine, AckStatus, Batch, BatchLine, FileRefusal, PROCESSED_DIR,
};

/// The largest payment accepted on one line.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// The shortest polling interval.
const MIN_POLL_MS: u64 = 10;

/// How the co-op simulator is set up.
#[derive(Debug, Clone)]
pub struct CoopSimConfig {
    /// Where billclear delivers batch files (created if missing).
    pub drop_dir: PathBuf,
    /// Where acks and refusals are written (created if missing).
    pub ack_dir: PathBuf,
    /// The co-op id batch files must name, e.g. "chongming-coop".
    pub coop_id: String,
    /// The only currency accepted, e.g. "CNY".
    pub currency: String,
    /// How often the drop directory is looked at (at least 10 ms).
    pub poll_ms: u64,
    /// How long after a file is applied its answer is written.
    pub ack_delay_ms: u64,
    /// The offset whose calendar day is the ack date (+08:00 by default).
    pub utc_offset: FixedOffset,
    /// The initial book: (biller id, account); only the accounts of
    /// `coop_id` are used.
    pub book: Vec<(String, Account)>,
}

impl CoopSimConfig {
    /// `chongming-coop`, CNY, polling every 500 ms, no ack delay, +08:00,
    /// an empty book.
    pub fn new(drop_dir: impl Into<PathBuf>, ack_dir: impl Into<PathBuf>) -> CoopSimConfig {
        CoopSimConfig {
            drop_dir: drop_dir.into(),
            ack_dir: ack_dir.into(),
            coop_id: "chongming-coop".to_string(),
            currency: "CNY".to_string(),
            poll_ms: 500,
            ack_delay_ms: 0,
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
            book: Vec::new(),
        }
    }
}

/// A running co-op simulator. Dropping it shuts it down.
pub struct CoopSim {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

struct Shared {
    drop_dir: PathBuf,
    ack_dir: PathBuf,
    coop_id: String,
    currency: String,
    ack_delay: Duration,
    utc_offset: FixedOffset,
    faults: Mutex<Faults>,
    /// Held for a whole scan: scans never overlap.
    state: Mutex<State>,
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct State {
    book: Book,
    payments: HashMap<String, Payment>,
    /// Batch file names processed (or found answered) this run.
    seen: HashSet<String>,
    /// Batch file names processed this run, in order.
    files_seen: Vec<String>,
    pending: Vec<Pending>,
}

/// An answer waiting for its time.
struct Pending {
    due: Instant,
    name: String,
    bytes: Vec<u8>,
}

/// A line the co-op decided, kept under OUR reference.
struct Payment {
    line: BatchLine,
    outcome: AckStatus,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl CoopSim {
    /// Creates the directories if missing and starts polling the drop
    /// directory on the current tokio runtime (an error outside one).
    pub fn start(config: CoopSimConfig) -> io::Result<CoopSim> {
        if !valid_coop_id(&config.coop_id) {
            return Err(invalid(format!(
                "co-op simulator: bad co-op id {:?}",
                config.coop_id
            )));
        }
        if config.currency.len() != 3 || !config.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(format!(
                "co-op simulator: bad currency {:?}",
                config.currency
            )));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::other(format!("co-op simulator needs a tokio runtime: {e}")))?;
        std::fs::create_dir_all(&config.drop_dir)?;
        std::fs::create_dir_all(&config.ack_dir)?;
        let mut state = State::default();
        for (biller, account) in config.book {
            if biller == config.coop_id {
                state.book.add_account(&biller, account);
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            drop_dir: config.drop_dir,
            ack_dir: config.ack_dir,
            coop_id: config.coop_id,
            currency: config.currency,
            ack_delay: Duration::from_millis(config.ack_delay_ms),
            utc_offset: config.utc_offset,
            faults: Mutex::new(Faults::default()),
            state: Mutex::new(state),
            stop: stop_rx,
        });
        let poll = Duration::from_millis(config.poll_ms.max(MIN_POLL_MS));
        runtime.spawn(poll_loop(shared.clone(), poll));
        tracing::info!(
            drop_dir = %shared.drop_dir.display(),
            ack_dir = %shared.ack_dir.display(),
            coop = %shared.coop_id,
            "co-op simulator watching"
        );
        Ok(CoopSim { shared, stop })
    }

    /// Looks at the drop directory now, applies every new file and writes
    /// every pending answer at once (the ack delay waived). Returns how
    /// many new files it processed. Does nothing under `outage` or
    /// `blackhole`, or once shut down.
    pub fn ack_now(&self) -> io::Result<usize> {
        self.shared.scan(true)
    }

    /// Replaces the faults (validate them first with [`Faults::validate`]).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The faults in force (counters as counted down so far).
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Every line credited, in order (a reference answered again is not
    /// credited again).
    pub fn credits(&self) -> Vec<CreditRecord> {
        lock(&self.shared.state).book.credits.clone()
    }

    /// Every line rejected when decided (`R01`..`R05`), in order; a
    /// refused FILE is not a line rejection.
    pub fn rejections(&self) -> Vec<RejectRecord> {
        lock(&self.shared.state).book.rejections.clone()
    }

    /// The batch file names processed so far (applied, or refused whole),
    /// in order.
    pub fn files_seen(&self) -> Vec<String> {
        lock(&self.shared.state).files_seen.clone()
    }

    /// Answers applied but not written yet (ack delay, outage).
    pub fn pending_answers(&self) -> usize {
        lock(&self.shared.state).pending.len()
    }

    /// Adds (or replaces) an account of the co-op's book.
    pub fn add_account(&self, account: Account) {
        lock(&self.shared.state)
            .book
            .add_account(&self.shared.coop_id, account);
    }

    /// An account as it stands (bills reduced by payments).
    pub fn account(&self, account_number: &str) -> Option<Account> {
        lock(&self.shared.state)
            .book
            .account(&self.shared.coop_id, account_number)
            .cloned()
    }

    /// Stops polling; pending answers are abandoned (never written).
    /// Idempotent; also on drop.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for CoopSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn poll_loop(shared: Arc<Shared>, poll: Duration) {
    let mut stop = shared.stop.clone();
    let mut interval = tokio::time::interval(poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = interval.tick() => {}
        }
        let s = shared.clone();
        match tokio::task::spawn_blocking(move || s.scan(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("co-op simulator: scan failed: {e}"),
            Err(e) => tracing::error!("co-op simulator: scan panicked: {e}"),
        }
    }
    tracing::info!("co-op simulator stopped");
}

impl Shared {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// One look at the drop directory: new files applied, answers due
    /// written (all of them if `now`).
    fn scan(&self, now: bool) -> io::Result<usize> {
        let mut state = lock(&self.state);
        if self.stopped() {
            return Ok(0);
        }
        {
            let faults = lock(&self.faults);
            if faults.outage || faults.blackhole {
                return Ok(0);
            }
        }
        let mut processed = 0;
        for path in list_files(&self.drop_dir, is_batch_file_name)? {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if state.seen.contains(&name) {
                continue;
            }
            if self.answered_before(&name) {
                tracing::info!(file = %name, "already answered: skipped");
                state.seen.insert(name);
                continue;
            }
            let answer = match self.process(&mut state, &name, &path) {
                Ok(a) => a,
                Err(e) => {
                    // Not marked seen: tried again at the next scan.
                    tracing::warn!(file = %name, "cannot read batch file: {e}");
                    continue;
                }
            };
            processed += 1;
            state.seen.insert(name.clone());
            state.files_seen.push(name.clone());
            let drop_answer = {
                let mut faults = lock(&self.faults);
                let drop = faults.drop_response_next > 0;
                if drop {
                    faults.drop_response_next -= 1;
                }
                drop
            };
            match answer {
                Some(_) if drop_answer => {
                    tracing::info!(file = %name, "answer dropped (fault)");
                }
                Some((answer_name, bytes)) => state.pending.push(Pending {
                    due: Instant::now() + self.ack_delay,
                    name: answer_name,
                    bytes,
                }),
                None => {}
            }
        }
        self.write_due(&mut state, now)?;
        Ok(processed)
    }

    /// Whether an ACK_ or REJ_ answer of `name` is in the ack directory or
    /// its processed/ subdirectory.
    fn answered_before(&self, name: &str) -> bool {
        let processed = self.ack_dir.join(PROCESSED_DIR);
        [coop::ack_file_name(name), coop::refusal_file_name(name)]
            .iter()
            .any(|a| self.ack_dir.join(a).exists() || processed.join(a).exists())
    }

    /// Writes the answers due (or all); one that cannot be written stays
    /// pending, except one whose name exists already (dropped, logged).
    fn write_due(&self, state: &mut State, all: bool) -> io::Result<()> {
        let now = Instant::now();
        let mut first_error = None;
        let mut keep = Vec::new();
        for p in std::mem::take(&mut state.pending) {
            if !all && p.due > now {
                keep.push(p);
                continue;
            }
            match write_file_atomic(&self.ack_dir, &p.name, &p.bytes) {
                Ok(path) => tracing::info!(file = %path.display(), "answer written"),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    tracing::warn!(file = %p.name, "answer not written: {e}");
                }
                Err(e) => {
                    tracing::warn!(file = %p.name, "answer not written yet: {e}");
                    first_error.get_or_insert(e);
                    keep.push(p);
                }
            }
        }
        state.pending = keep;
        first_error.map_or(Ok(()), Err)
    }

    /// Reads and applies one batch file; the answer's file name and bytes
    /// (`None` if it cannot be rendered, logged). An I/O error leaves the
    /// file for the next scan.
    fn process(
        &self,
        state: &mut State,
        name: &str,
        path: &Path,
    ) -> io::Result<Option<(String, Vec<u8>)>> {
        let now = Utc::now().trunc_subsecs(0);
        let refuse = |line: usize, code: &str, reason: String| {
            tracing::info!(file = %name, line, code, "batch file refused: {reason}");
            let refusal = FileRefusal {
                batch_file_name: name.to_string(),
                coop_id: self.coop_id.clone(),
                created_at: now,
                line,
                code: code.to_string(),
                reason: sanitize_reason(&format!("file refused: {reason}")),
            };
            rendered(refusal.file_name(), render_refusal(&refusal))
        };
        let Some(bytes) = read_bounded(path)? else {
            return Ok(refuse(
                0,
                "F01",
                format!("larger than {} bytes", coop::MAX_FILE_BYTES),
            ));
        };
        let batch = match parse_batch(&bytes) {
            Ok(b) => b,
            Err(e) => {
                return Ok(refuse(
                    e.line,
                    "F01",
                    format!("line {}: {}", e.line, e.reason),
                ))
            }
        };
        if batch.coop_id != self.coop_id {
            return Ok(refuse(
                1,
                "F02",
                format!("the file is for {}, not {}", batch.coop_id, self.coop_id),
            ));
        }
        if batch.file_name() != name {
            return Ok(refuse(
                1,
                "F03",
                format!("file id {} is not the file's name", batch.file_id()),
            ));
        }
        let ack = self.apply(state, &batch, now);
        Ok(rendered(ack.file_name(), render_ack(&ack)))
    }

    /// Applies every line of a batch; the ack answering it.
    fn apply(&self, state: &mut State, batch: &Batch, now: DateTime<Utc>) -> Ack {
        let lines = batch
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| AckLine {
                line_no: i as u32 + 1,
                our_reference: line.our_reference.clone(),
                account_number: line.account_number.clone(),
                amount: line.amount,
                currency: line.currency.clone(),
                status: self.decide(state, line, now),
            })
            .collect();
        tracing::info!(file = %batch.file_name(), lines = batch.lines.len(), "batch applied");
        Ack {
            batch_file_id: batch.file_id(),
            coop_id: self.coop_id.clone(),
            ack_date: now.with_timezone(&self.utc_offset).date_naive(),
            created_at: now,
            lines,
        }
    }

    /// The outcome of one line: the original one for a reference decided
    /// before, else a new decision (recorded).
    fn decide(&self, state: &mut State, line: &BatchLine, now: DateTime<Utc>) -> AckStatus {
        if let Some(previous) = state.payments.get(&line.our_reference) {
            if previous.line == *line {
                return previous.outcome.clone();
            }
            let reason = "reference already used with other details".to_string();
            self.record_rejection(state, line, "R05", &reason, now);
            return AckStatus::Rejected {
                code: "R05".into(),
                reason,
            };
        }
        let refusal = match state.book.account(&self.coop_id, &line.account_number) {
            None => Some(("R01", "account not found".to_string())),
            Some(a) if !a.open => Some(("R02", "account closed".to_string())),
            Some(_) if line.currency != self.currency => {
                Some(("R03", format!("only {} accepted", self.currency)))
            }
            Some(_) if line.amount > MAX_AMOUNT => {
                Some(("R04", "amount above 1000000.00".to_string()))
            }
            Some(_) => None,
        };
        let outcome = match refusal {
            Some((code, reason)) => {
                self.record_rejection(state, line, code, &reason, now);
                AckStatus::Rejected {
                    code: code.to_string(),
                    reason,
                }
            }
            None => {
                state.book.receipts += 1;
                let receipt = format!("CM{:010}", state.book.receipts);
                state.book.reduce_bill(
                    &self.coop_id,
                    &line.account_number,
                    line.bill_reference.as_deref(),
                    line.amount,
                );
                state.book.credits.push(CreditRecord {
                    our_reference: line.our_reference.clone(),
                    biller_reference: receipt.clone(),
                    biller_id: self.coop_id.clone(),
                    account_number: line.account_number.clone(),
                    amount: line.amount,
                    currency: line.currency.clone(),
                    bill_reference: line.bill_reference.clone(),
                    credited_at: now,
                });
                tracing::debug!(reference = %line.our_reference, %receipt, amount = %line.amount, "line credited");
                AckStatus::Accepted { receipt }
            }
        };
        state.payments.insert(
            line.our_reference.clone(),
            Payment {
                line: line.clone(),
                outcome: outcome.clone(),
            },
        );
        outcome
    }

    fn record_rejection(
        &self,
        state: &mut State,
        line: &BatchLine,
        code: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        tracing::debug!(reference = %line.our_reference, code, "line rejected: {reason}");
        state.book.rejections.push(RejectRecord {
            our_reference: line.our_reference.clone(),
            biller_id: self.coop_id.clone(),
            account_number: line.account_number.clone(),
            amount: line.amount,
            currency: line.currency.clone(),
            code: code.to_string(),
            message: reason.to_string(),
            at: now,
        });
    }
}

/// An answer's name and bytes, or `None` (logged) if it cannot be rendered.
fn rendered(name: String, text: Result<String, coop::FileError>) -> Option<(String, Vec<u8>)> {
    match text {
        Ok(t) => Some((name, t.into_bytes())),
        Err(e) => {
            tracing::error!(file = %name, "answer cannot be rendered: {e}");
            None
        }
    }
}
