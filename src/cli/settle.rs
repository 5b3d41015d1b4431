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
    /// Batches with their totals and files.
    List {
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        biller: Option<String>,
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
    let pending: Vec<uuid::Uuid> = batches
        .iter()
        .filter(|b| b.files_written_at.is_none())
        .map(|b| b.id)
        .collect();
    if args.no_files {
        println!(
            "files: left to `billclear serve` ({} batches waiting)",
            pending.len()
        );
    } else {
        if !pending.is_empty() {
            println!(
                "publishing {} batches to RabbitMQ and writing their files ...",
                pending.len()
            );
            crate::settlement::service::publish_and_render(
                store.clone(),
                config,
                &pending,
                Duration::from_secs(args.timeout_s),
            )
            .await?;
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
    anyhow::ensure!(
        failed == 0,
        "{failed} billers could not be closed (see above)"
    );
    Ok(())
}

pub async fn print_files(
    store: &dyn Store,
    config: &Config,
    batches: &[BatchRecord],
) -> anyhow::Result<()> {
    for b in batches {
        let dir = config.settlement.outbox_dir.join(&b.biller_id);
        for f in store.batch_files(b.id).await? {
            println!(
                "  {:<9} {:<56} {:>10} bytes  sha256 {}…",
                f.kind,
                dir.join(&f.name).display(),
                f.bytes,
                &f.sha256[..16]
            );
        }
    }
    Ok(())
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
                let status = if b.files_written_at.is_some() {
                    "files written"
                } else {
                    "waiting for files"
                };
                print_batch(b, status);
            }
            print_files(&*store, config, &list).await?;
        }
    }
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
