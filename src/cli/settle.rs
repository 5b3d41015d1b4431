//! `billclear settle`, `settlements`, `statements`, `payments return` and
//! `billers new-key`: settlement by hand.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::auth::secrets::{generate_key_id, Secret};
use crate::config::Config;
use crate::domain::ids::{BillerId, PaymentId};
use crate::settlement::close::{close_date, Closing, When};
use crate::settlement::service::{FailedBatch, FilesFailed};
use crate::store::{BatchRecord, CloseOutcome, Store};

#[derive(Args)]
pub struct SettleArgs {
    /// The business date to close (YYYY-MM-DD).
    #[arg(long)]
    pub date: NaiveDate,
    /// Only this biller (default: every biller with settlement terms).
    #[arg(long)]
    pub biller: Option<String>,
    /// Close now, before the cut-off: payments confirmed from now on go to
    /// the next date.
    #[arg(long)]
    pub early: bool,
    /// Close only: leave publishing and the files to `billclear serve`.
    #[arg(long)]
    pub no_files: bool,
    /// How long to wait for the files.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

#[derive(Subcommand)]
pub enum SettlementsCommand {
    /// Batches with their totals and files (and a failure of their files).
    List {
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        biller: Option<String>,
    },
    /// One batch: totals, accounts, its message, its files or why they
    /// failed.
    Show {
        /// The batch id.
        batch_id: uuid::Uuid,
    },
    /// The settlement dead-letter queue: each message's id, batch, when and
    /// why (left in place); `--replay` republishes them to the settlement
    /// exchange (after the cause is fixed) and removes them from it.
    DeadLetters {
        /// Republish to the settlement exchange and ack off the queue.
        #[arg(long)]
        replay: bool,
        /// Only the messages of this batch.
        #[arg(long)]
        batch: Option<uuid::Uuid>,
        /// Read at most this many messages (listing).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum PaymentsCommand {
    /// A settled payment given back by its biller: reversed in the ledger
    /// now, recovered from the biller's next batch.
    Return {
        /// The payment id.
        id: uuid::Uuid,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub struct StatementsArgs {
    /// The business date (YYYY-MM-DD).
    #[arg(long)]
    pub date: NaiveDate,
    /// Write them although some billers have not closed the date (a
    /// partial statement, replaced once the date is complete).
    #[arg(long)]
    pub partial: bool,
}

fn print_batch_header() {
    println!(
        "{:<16} {:<10} {:>9} {:>16} {:>12} {:>5} {:>12} {:>16}  STATUS",
        "BILLER", "DATE", "PAYMENTS", "GROSS", "COMMISSION", "RET", "RETURNED", "NET"
    );
}

fn print_batch(b: &BatchRecord, status: &str) {
    println!(
        "{:<16} {:<10} {:>9} {:>16} {:>12} {:>5} {:>12} {:>16}  {status}",
        b.biller_id,
        b.business_date,
        b.totals.count,
        b.totals.gross,
        b.totals.commission,
        b.totals.returns_count,
        b.totals.returns,
        b.totals.net()
    );
}

pub async fn settle(
    store: Arc<dyn Store>,
    config: &Config,
    args: SettleArgs,
) -> anyhow::Result<()> {
    let billers = store.load_billers().await?;
    let when = if args.early {
        When::Early
    } else {
        When::AtCutoff
    };
    let out = close_date(
        &*store,
        &billers,
        args.date,
        args.biller.as_deref(),
        when,
        &config.settlement.debtor,
        Utc::now(),
    )
    .await?;
    print_batch_header();
    let mut batches = Vec::new();
    let mut failed = 0;
    for (id, c) in &out {
        match c {
            Closing::Closed(CloseOutcome::Closed(b)) => {
                print_batch(b, "closed now");
                batches.push(b.clone());
            }
            Closing::Closed(CloseOutcome::AlreadyClosed(b)) => {
                print_batch(b, "closed before (nothing new)");
                batches.push(b.clone());
            }
            Closing::Skipped(why) => println!("{id:<16} {:<10} not closed: {why}", args.date),
            Closing::Failed(why) => {
                failed += 1;
                println!("{id:<16} {:<10} FAILED: {why}", args.date)
            }
        }
    }
    // Batches whose files failed for good before are told (below), not
    // waited for: only a replay of their dead letter retries them.
    let pending: Vec<uuid::Uuid> = batches
        .iter()
        .filter(|b| b.files_pending())
        .map(|b| b.id)
        .collect();
    let mut files_failed: Vec<FailedBatch> = batches
        .iter()
        .filter(|b| b.files_failed())
        .map(FailedBatch::of)
        .collect();
    if args.no_files {
        println!(
            "files: left to `billclear serve` ({} batches waiting)",
            pending.len()
        );
        // Closing was asked, and done: an earlier files failure is shown,
        // not an error of this command.
        for b in batches.iter().filter(|b| b.files_failed()) {
            print_failure(b);
        }
        files_failed.clear();
    } else {
        if !pending.is_empty() {
            println!(
                "publishing {} batches to RabbitMQ and writing their files ...",
                pending.len()
            );
            let done = crate::settlement::service::publish_and_render(
                store.clone(),
                config,
                &pending,
                Duration::from_secs(args.timeout_s),
            )
            .await;
            // A batch whose files failed for good is told with the others'
            // files (below) and ends the command in error; anything else
            // ends it now.
            if let Err(e) = done {
                files_failed.extend(e.downcast::<FilesFailed>()?.0);
            }
        }
        print_files(&*store, config, &batches).await?;
        let written = crate::settlement::statement::write_all_if_complete(
            &*store,
            &config.settlement.outbox_dir,
            args.date,
        )
        .await?;
        if written.is_empty() {
            println!(
                "channel statements: written once every biller has closed {}",
                args.date
            );
        }
        for (channel, s) in written {
            let owed: Vec<String> = s.owed.iter().map(|(c, a)| format!("{a} {c}")).collect();
            println!(
                "statement  {channel:<10} {} lines, owes {}  {}",
                s.lines,
                owed.join(", "),
                s.path.display()
            );
        }
    }
    if !files_failed.is_empty() {
        return Err(FilesFailed(files_failed).into());
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} billers could not be closed (see above)"
    );
    Ok(())
}

/// Each batch's files (as recorded), or why they failed.
pub async fn print_files(
    store: &dyn Store,
    config: &Config,
    batches: &[BatchRecord],
) -> anyhow::Result<()> {
    for b in batches {
        let dir = config.settlement.outbox_dir.join(&b.biller_id);
        // The record as it is now (the consumer may have written or failed
        // the files since `b` was read).
        let now = store.batch(b.id).await?.unwrap_or_else(|| b.clone());
        for f in store.batch_files(b.id).await? {
            println!(
                "  {:<9} {:<56} {:>10} bytes  sha256 {}…",
                f.kind,
                dir.join(&f.name).display(),
                f.bytes,
                &f.sha256[..16]
            );
        }
        if now.files_failed() {
            print_failure(&now);
        }
    }
    Ok(())
}

/// A batch's recorded files failure, and what to do about it.
fn print_failure(b: &BatchRecord) {
    if let (Some(at), Some(why)) = (b.files_failed_at, &b.files_failure) {
        println!(
            "  FILES FAILED {} (batch {}): {why}",
            at.format("%Y-%m-%dT%H:%M:%SZ"),
            b.id
        );
        println!(
            "  nothing was replaced and the batch stays closed and settled; once the cause is fixed: billclear settlements dead-letters --replay --batch {}",
            b.id
        );
    }
}

fn files_status(b: &BatchRecord) -> &'static str {
    if b.files_written_at.is_some() && b.files_failed_at.is_some() {
        "files written (after a failure)"
    } else if b.files_written_at.is_some() {
        "files written"
    } else if b.files_failed_at.is_some() {
        "FILES FAILED"
    } else {
        "waiting for files"
    }
}

pub async fn settlements(
    store: Arc<dyn Store>,
    config: &Config,
    cmd: SettlementsCommand,
) -> anyhow::Result<()> {
    match cmd {
        SettlementsCommand::List { date, biller } => {
            let list = store.batches(biller.as_deref(), date).await?;
            print_batch_header();
            for b in &list {
                print_batch(b, files_status(b));
            }
            print_files(&*store, config, &list).await?;
        }
        SettlementsCommand::Show { batch_id } => show(&*store, config, batch_id).await?,
        SettlementsCommand::DeadLetters {
            replay,
            batch,
            limit,
        } => dead_letters(&*store, config, replay, batch, limit).await?,
    }
    Ok(())
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `billclear settlements show BATCH_ID`.
pub async fn show(store: &dyn Store, config: &Config, id: uuid::Uuid) -> anyhow::Result<()> {
    let b = store
        .batch(id)
        .await?
        .with_context(|| format!("no settlement batch {id}"))?;
    let t = &b.totals;
    println!("batch          {}", b.id);
    println!("biller         {} ({})", b.biller_id, b.biller_name);
    println!(
        "business date  {} (cut-off {}, closed {})",
        b.business_date,
        time(b.cutoff_at),
        time(b.created_at)
    );
    println!(
        "payments       {} of {} {}, commission {} ({})",
        t.count, t.gross, b.currency, t.commission, b.commission_rule
    );
    println!("returns        {} of {}", t.returns_count, t.returns);
    println!(
        "net            {} {} to {} {} ({}), from {} {}",
        t.net(),
        b.currency,
        b.creditor.name,
        b.creditor.account,
        b.creditor.bic,
        b.debtor.name,
        b.debtor.account
    );
    println!(
        "journal        {}",
        b.journal_id
            .map(|j| j.to_string())
            .unwrap_or_else(|| "none (nothing settled)".into())
    );
    for m in store.settlement_messages(id).await? {
        let state = match (m.done_at, m.abandoned) {
            (Some(_), true) => format!(
                "abandoned: {}",
                m.last_error.as_deref().unwrap_or("no error recorded")
            ),
            (Some(at), false) => format!("published {} (confirmed by RabbitMQ)", time(at)),
            (None, _) => format!(
                "not published yet, next try {}{}",
                time(m.available_at),
                m.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
        };
        println!(
            "message        outbox #{}, {} attempts: {state}",
            m.outbox_id, m.attempts
        );
    }
    match (b.files_written_at, b.files_failed_at) {
        (Some(at), None) => println!("files          written {}", time(at)),
        (Some(at), Some(failed)) => println!(
            "files          written {} (after failing {}: {})",
            time(at),
            time(failed),
            b.files_failure.as_deref().unwrap_or("")
        ),
        (None, Some(_)) => println!("files          FAILED"),
        (None, None) => println!("files          waiting for files"),
    }
    print_files(store, config, std::slice::from_ref(&b)).await?;
    Ok(())
}

/// `billclear settlements dead-letters [--replay] [--batch ID]`.
pub async fn dead_letters(
    store: &dyn Store,
    config: &Config,
    replay: bool,
    batch: Option<uuid::Uuid>,
    limit: usize,
) -> anyhow::Result<()> {
    let cfg = &config.amqp;
    let connect_hint = || {
        format!(
            "reading the dead-letter queue {} at {} (is RabbitMQ running?)",
            cfg.dead_letter_queue,
            crate::config::redact_url(&cfg.url)
        )
    };
    if replay {
        let done = crate::settlement::broker::replay_dead_letters(cfg, batch)
            .await
            .with_context(connect_hint)?;
        for d in &done.replayed {
            println!(
                "replayed {} (batch {}, {}) with routing key {}",
                d.message_id.as_deref().unwrap_or("-"),
                d.batch_id
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.biller_id.as_deref().unwrap_or("-"),
                d.routing_key
            );
        }
        println!(
            "{} replayed to {}; {} left in {}",
            done.replayed.len(),
            cfg.exchange,
            done.left,
            cfg.dead_letter_queue
        );
        if !done.replayed.is_empty() {
            println!("a running `billclear serve` consumes them; `billclear settlements show BATCH_ID` tells how each ended");
        }
        return Ok(());
    }
    let list = crate::settlement::broker::dead_letters(cfg, limit)
        .await
        .with_context(connect_hint)?;
    let mut shown = 0;
    for d in list
        .iter()
        .filter(|d| batch.is_none_or(|b| d.batch_id == Some(b)))
    {
        shown += 1;
        let about = match d.batch_id {
            Some(id) => match store.batch(id).await? {
                Some(b) => format!(
                    "batch {id} ({} {}, {})",
                    b.biller_id,
                    b.business_date,
                    files_status(&b)
                ),
                None => format!("batch {id} (not in this database)"),
            },
            None => "no batch".into(),
        };
        println!(
            "{}  {about}  dead-lettered {}{}",
            d.message_id.as_deref().unwrap_or("(no message id)"),
            d.dead_lettered_at
                .map(time)
                .unwrap_or_else(|| "(time unknown)".into()),
            if d.replays > 0 {
                format!("  replayed {} times before", d.replays)
            } else {
                String::new()
            }
        );
        println!("    reason: {}", d.reason);
    }
    println!(
        "{shown} dead letters in {} (left in place; --replay republishes them, --batch ID only one batch's)",
        cfg.dead_letter_queue
    );
    Ok(())
}

pub async fn payments(store: Arc<dyn Store>, cmd: PaymentsCommand) -> anyhow::Result<()> {
    match cmd {
        PaymentsCommand::Return { id, reason } => {
            let r = store
                .record_return(PaymentId(id), &reason, Utc::now())
                .await
                .with_context(|| format!("returning payment {id}"))?;
            println!(
                "payment {} RETURNED: {} reversed (Dr biller:{}:payable / Cr channel receivable); recovered from {}'s next batch",
                r.payment_id, r.amount, r.biller_id, r.biller_id
            );
        }
    }
    Ok(())
}

pub async fn statements(
    store: Arc<dyn Store>,
    config: &Config,
    args: StatementsArgs,
) -> anyhow::Result<()> {
    if !args.partial {
        let billers = store.load_billers().await?;
        let closed = store.batches(None, Some(args.date)).await?;
        let open = crate::settlement::statement::billers_not_closed(&billers, &closed);
        anyhow::ensure!(
            open.is_empty(),
            "{} is not closed for {} yet; statements would be partial (--partial writes them anyway)",
            args.date,
            open.join(", ")
        );
    }
    let channels = store.statement_channels(args.date).await?;
    if channels.is_empty() {
        println!("no settled payments on {}", args.date);
    }
    for c in channels {
        let channel = crate::domain::ids::ChannelId::parse(&c)?;
        let s = crate::settlement::statement::write(
            &*store,
            &config.settlement.outbox_dir,
            &channel,
            args.date,
        )
        .await?;
        let owed: Vec<String> = s.owed.iter().map(|(c, a)| format!("{a} {c}")).collect();
        println!(
            "{c:<10} {} lines, owes {}  {}",
            s.lines,
            owed.join(", "),
            s.path.display()
        );
    }
    Ok(())
}

/// A new API key for a biller (downloading settlement files); the secret
/// is printed once.
pub async fn new_biller_key(
    store: &dyn Store,
    key: &crate::auth::secrets::MasterKey,
    biller: &str,
) -> anyhow::Result<(String, Secret)> {
    let biller = BillerId::parse(biller)?;
    let key_id = generate_key_id();
    let secret = Secret::generate();
    store
        .add_biller_key(&biller, &key_id, &key.seal(&key_id, &secret))
        .await
        .with_context(|| format!("adding a key for biller {biller}"))?;
    Ok((key_id, secret))
}
