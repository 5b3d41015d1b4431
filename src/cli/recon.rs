//! `billclear recon ...` and `billclear breaks ...`: finance staff's
//! daily reconciliation and the work on its breaks.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::domain::recon::breaks::{Action, Actor, BreakStatus, Proposal, ResolutionKind};
use crate::domain::recon::matching::minor_in as money;
use crate::domain::recon::matching::minor_to_string;
use crate::domain::recon::FileKind;
use crate::reconcile::import::{import_file, Imported};
use crate::store::recon::BreakFilter;
use crate::store::Store;

#[derive(Subcommand)]
pub enum ReconCommand {
    /// Import a biller's confirmation file, the hub's statement, a co-op
    /// acknowledgement or the bank statement (camt.053). Read whole first:
    /// a malformed file is refused with its line and reason, and nothing
    /// is kept. The same file twice is recognised and counted once.
    Import(ImportArgs),
    /// Reconcile a business date: per biller, our payments against every
    /// imported file of the date; breaks recorded, UNKNOWN payments
    /// decided, reports written.
    Run(RunArgs),
    /// Show or set a biller's matching tolerance: amounts differing by no
    /// more than this still match (counted and reported apart). Default 0
    /// (exact).
    Tolerance {
        #[arg(long)]
        biller: String,
        /// The new tolerance, e.g. 0.05 (in the biller's currency).
        #[arg(long)]
        set: Option<String>,
    },
    /// Past runs (the latest of a date and biller is its result).
    Runs {
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

#[derive(Args)]
pub struct ImportArgs {
    /// Who sent it: a biller id, `hub` or `bank`.
    #[arg(long)]
    pub source: String,
    /// The file (repeat for several).
    #[arg(long = "file", required_unless_present = "inbox")]
    pub files: Vec<PathBuf>,
    /// Import every file in the inbox directory (`<recon.dir>/inbox/<source>/`);
    /// imported files move to `done/`, refused ones to `refused/`.
    #[arg(long)]
    pub inbox: bool,
    /// The file kind, when it cannot be recognised from its content
    /// (water-csv, power-xml, gas-fixed, hub-statement, coop-ack, camt053,
    /// camt054, mt940). Bank files need `--source bank`.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<FileKind>,
    /// The business date, for a file that does not say (an empty day).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Who imports (recorded with the file).
    #[arg(long, env = "USER", default_value = "cli")]
    pub by: String,
}

fn parse_kind(s: &str) -> Result<FileKind, String> {
    FileKind::parse(s).ok_or_else(|| {
        format!(
            "unknown kind {s:?}; one of {}",
            FileKind::ALL.map(|k| k.as_str()).join(", ")
        )
    })
}

#[derive(Args)]
pub struct RunArgs {
    /// The business date (YYYY-MM-DD).
    #[arg(long)]
    pub date: NaiveDate,
    /// Only this biller (default: every biller).
    #[arg(long)]
    pub biller: Option<String>,
    /// Who runs it (recorded with the run).
    #[arg(long, env = "USER", default_value = "cli")]
    pub by: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum BreaksCommand {
    /// Breaks, oldest date first.
    List {
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long)]
        biller: Option<String>,
        /// open, investigating, pending-approval, resending, resolved, written-off
        #[arg(long, value_parser = parse_status)]
        status: Option<BreakStatus>,
        /// Only breaks not yet resolved or written off.
        #[arg(long)]
        open: bool,
    },
    /// One break with its evidence and audit trail.
    Show { id: i64 },
    /// Take a break: assign it (to yourself by default) and start investigating.
    Assign {
        id: i64,
        #[arg(long)]
        to: Option<String>,
    },
    /// Add a comment to a break's trail.
    Comment {
        id: i64,
        #[arg(long)]
        text: String,
    },
    /// Propose a resolution. One that moves money (reverse, write-off,
    /// accepting a different amount) waits for another person's approval.
    Resolve {
        id: i64,
        /// accept-biller, resend, reverse, write-off or explain
        #[arg(long, value_parser = parse_resolution)]
        resolution: ResolutionKind,
        /// Why (kept in the trail).
        #[arg(long)]
        note: String,
        /// resend: the connector to send through.
        #[arg(long)]
        connector: Option<String>,
    },
    /// Approve a proposed resolution (an approver other than its maker).
    /// An approved resend is made at once (both routes asked first); on a
    /// break left `resending` by a process that stopped, settles the
    /// re-send (the new route asked by our reference).
    Approve { id: i64 },
    /// Decline a proposed resolution; the break goes back to investigating.
    Decline {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

fn parse_status(s: &str) -> Result<BreakStatus, String> {
    BreakStatus::parse(s).ok_or_else(|| {
        format!(
            "unknown status {s:?}; one of {}",
            BreakStatus::ALL.map(|k| k.as_str()).join(", ")
        )
    })
}

fn parse_resolution(s: &str) -> Result<ResolutionKind, String> {
    ResolutionKind::parse(s)
        .filter(|k| *k != ResolutionKind::Cleared)
        .ok_or_else(|| {
            format!(
                "unknown resolution {s:?}; one of {}",
                ResolutionKind::CHOSEN.map(|k| k.as_str()).join(", ")
            )
        })
}

pub async fn recon(
    store: Arc<dyn Store>,
    config: &Config,
    cmd: ReconCommand,
) -> anyhow::Result<()> {
    match cmd {
        ReconCommand::Import(args) => import(store, config, args).await,
        ReconCommand::Run(args) => {
            let (summaries, bank, reports) = crate::reconcile::day::run_date(
                store,
                config,
                args.date,
                args.biller.as_deref(),
                &args.by,
                !args.json,
            )
            .await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "billers": summaries, "bank": bank })
                    )?
                );
            } else {
                print!("{}", crate::reconcile::console::summaries(&summaries));
                match &bank {
                    Some(b) => print!("{}", crate::reconcile::console::bank(b)),
                    None if args.biller.is_none() => {
                        println!(
                            "\nbank: no bank statement or notification imported for {}",
                            args.date
                        )
                    }
                    None => {}
                }
                println!();
                for p in &reports {
                    println!("report: {}", p.display());
                }
            }
            Ok(())
        }
        ReconCommand::Tolerance { biller, set } => {
            let billers = store.load_billers().await?;
            let b = billers
                .iter()
                .find(|b| b.id.as_str() == biller)
                .with_context(|| format!("no biller {biller}"))?;
            let currency = b.currency;
            if let Some(text) = set {
                let money = crate::domain::money::Money::new_or_zero(
                    text.parse::<rust_decimal::Decimal>()
                        .with_context(|| format!("{text:?} is not an amount"))?,
                    currency,
                )
                .with_context(|| format!("tolerance {text}"))?;
                let minor = i64::try_from(money.minor_units()).context("tolerance too large")?;
                store.set_recon_tolerance(&biller, minor).await?;
            }
            let minor = store.recon_tolerance(&biller).await?;
            println!(
                "{biller}: tolerance {} {}{}",
                minor_to_string(minor, currency.scale()),
                currency.code(),
                if minor == 0 { " (exact)" } else { "" }
            );
            Ok(())
        }
        ReconCommand::Runs { date } => {
            let runs = store.runs(date, 100).await?;
            println!(
                "{:>6} {:<10} {:<16} {:<20} {:>7}  by",
                "run", "date", "scope", "finished (UTC)", "breaks"
            );
            for r in runs {
                let breaks = r
                    .summary
                    .as_ref()
                    .and_then(|s| s.get("breaks"))
                    .and_then(|b| b.as_object())
                    .map(|m| {
                        m.values()
                            .filter_map(|t| t.get("count")?.as_u64())
                            .sum::<u64>()
                    })
                    .unwrap_or(0);
                println!(
                    "{:>6} {:<10} {:<16} {:<20} {:>7}  {}",
                    r.id,
                    r.business_date,
                    r.scope,
                    match (&r.failed, r.finished_at) {
                        (Some(_), _) => "FAILED".to_string(),
                        (None, Some(t)) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
                        (None, None) => "(running)".to_string(),
                    },
                    breaks,
                    r.run_by
                );
                if let Some(why) = &r.failed {
                    println!("       failed: {why}");
                }
            }
            Ok(())
        }
    }
}

async fn import(store: Arc<dyn Store>, config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let mut files = args.files.clone();
    let inbox = config.recon.dir.join("inbox").join(&args.source);
    if args.inbox {
        std::fs::create_dir_all(&inbox)?;
        let mut listed: Vec<PathBuf> = std::fs::read_dir(&inbox)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        listed.sort();
        files.extend(listed);
    }
    let mut refused = 0;
    let accounts = config.our_accounts()?;
    for path in &files {
        let result = import_file(
            store.as_ref(),
            &config.recon.dir,
            &accounts,
            &args.source,
            path,
            args.kind,
            args.date,
            &args.by,
            Utc::now(),
        )
        .await;
        let moved_to = |sub: &str| -> anyhow::Result<()> {
            if args.inbox && path.starts_with(&inbox) {
                let dir = inbox.join(sub);
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(path, dir.join(path.file_name().unwrap_or_default()))?;
            }
            Ok(())
        };
        match result {
            Ok(i) => {
                print_import(path, &i);
                moved_to("done")?;
            }
            Err(e) => {
                refused += 1;
                eprintln!("{}: {e}", path.display());
                moved_to("refused")?;
            }
        }
    }
    if files.is_empty() {
        println!("nothing to import in {}", inbox.display());
    }
    if refused > 0 {
        anyhow::bail!(
            "{refused} of {} file(s) refused; nothing of them was imported",
            files.len()
        );
    }
    Ok(())
}

fn print_import(path: &std::path::Path, i: &Imported) {
    if let Some(b) = &i.bank {
        println!(
            "{}: {} as file #{} ({}, {}): {} statement(s), {} new, {} with balances proven; {} booked entr{}: {} booked now, {} already known (not booked again){}",
            path.display(),
            if i.already { "already imported" } else { "imported" },
            i.id,
            i.kind.as_str(),
            i.business_date,
            b.statements,
            b.statements_new,
            b.balances_proven,
            b.entries,
            if b.entries == 1 { "y" } else { "ies" },
            b.entries_booked,
            b.entries_already_known,
            if b.entries_pending > 0 {
                format!("; {} pending entr{} not booked by the bank (counted only)", b.entries_pending, if b.entries_pending == 1 { "y" } else { "ies" })
            } else {
                String::new()
            }
        );
        return;
    }
    if i.already {
        println!(
            "{}: already imported as file #{} — not counted again",
            path.display(),
            i.id
        );
    } else {
        println!(
            "{}: imported as file #{} ({}, {}, {} records, {} credited totalling {} {}){}",
            path.display(),
            i.id,
            i.kind.as_str(),
            i.business_date,
            i.records,
            i.credited,
            money(
                i.credited_total_minor,
                i.currency.as_deref().unwrap_or("CNY")
            ),
            i.currency.as_deref().unwrap_or(""),
            i.replaced
                .map(|r| format!("; replaces file #{r}"))
                .unwrap_or_default()
        );
    }
}

pub async fn breaks(
    store: Arc<dyn Store>,
    config: &Config,
    actor: Option<Actor>,
    cmd: BreaksCommand,
) -> anyhow::Result<()> {
    let act =
        |id: i64, action: Action| act_on_break(store.clone(), config, actor.clone(), id, action);
    match cmd {
        BreaksCommand::List {
            date,
            biller,
            status,
            open,
        } => {
            let filter = BreakFilter {
                date,
                scope: biller,
                status,
                open_only: open,
                limit: 10_000,
            };
            list_breaks(store.as_ref(), &filter).await
        }
        BreaksCommand::Show { id } => show_break(store.as_ref(), id).await,
        BreaksCommand::Assign { id, to } => {
            let owner = match to {
                Some(owner) => owner,
                None => need_actor(actor.clone())?.user,
            };
            act(id, Action::Assign { owner }).await
        }
        BreaksCommand::Comment { id, text } => act(id, Action::Comment { text }).await,
        BreaksCommand::Resolve {
            id,
            resolution,
            note,
            connector,
        } => {
            act(
                id,
                Action::Propose(Proposal {
                    kind: resolution,
                    maker: String::new(),
                    connector,
                    note,
                }),
            )
            .await
        }
        BreaksCommand::Approve { id } => act(id, Action::Approve).await,
        BreaksCommand::Decline { id, reason } => act(id, Action::Decline { reason }).await,
    }
}

fn need_actor(actor: Option<Actor>) -> anyhow::Result<Actor> {
    actor.context(
        "acting on a break needs a staff token: set BILLCLEAR_STAFF_TOKEN (see `billclear staff add`)",
    )
}

/// One action on a break by the staff user `actor`; prints where the break
/// stands after it.
async fn act_on_break(
    store: Arc<dyn Store>,
    config: &Config,
    actor: Option<Actor>,
    id: i64,
    action: Action,
) -> anyhow::Result<()> {
    let a = need_actor(actor)?;
    // A re-send calls the routes named in the configuration.
    let connectors = crate::dispatch::Connectors::from_settings(
        &config.connectors,
        &config.recon.file_routes,
        &crate::cli::master_key(config)?,
        // One call by hand, outside the fleet's shares.
        std::sync::Arc::new(crate::fleet::Fleet::new("cli")),
    )?;
    let b = crate::reconcile::resend::act(&store, &connectors, id, &a, &action, Utc::now()).await?;
    println!(
        "break {id}: {} ({}){}",
        b.status.as_str(),
        b.category.as_str(),
        b.proposal
            .as_ref()
            .map(|p| format!(
                " — {} proposed by {}, waiting for an approver other than {}",
                p.kind.as_str(),
                p.maker,
                p.maker
            ))
            .or_else(|| b.resolution.as_ref().map(|r| format!(" — {r}")))
            .unwrap_or_default()
    );
    Ok(())
}

/// `billclear breaks list`: the breaks the filter selects, one per line.
async fn list_breaks(store: &dyn Store, filter: &BreakFilter) -> anyhow::Result<()> {
    let rows = store.breaks(filter).await?;
    println!(
        "{:>6} {:<10} {:<16} {:<20} {:<17} {:>14} {:>14} {:<4} {:<10} reference",
        "id", "date", "biller", "category", "status", "ours", "theirs", "ccy", "owner"
    );
    for b in &rows {
        let amt = |m: Option<i64>| {
            m.map(|m| money(m, &b.currency))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:>6} {:<10} {:<16} {:<20} {:<17} {:>14} {:>14} {:<4} {:<10} {}",
            b.id,
            b.business_date,
            b.scope,
            b.category.as_str(),
            b.status.as_str(),
            amt(b.our_amount_minor),
            amt(b.their_amount_minor),
            b.currency,
            b.owner.as_deref().unwrap_or("-"),
            b.subject
        );
    }
    println!("{} break(s)", rows.len());
    Ok(())
}

/// `billclear breaks show`: one break, its evidence and its trail.
async fn show_break(store: &dyn Store, id: i64) -> anyhow::Result<()> {
    let (b, events) = store
        .break_detail(id)
        .await?
        .with_context(|| format!("no break {id}"))?;
    println!(
        "break {}: {} {} {} — {}",
        b.id,
        b.business_date,
        b.scope,
        b.category.as_str(),
        b.status.as_str()
    );
    println!("  our reference   {}", b.our_reference);
    println!(
        "  their reference {}",
        if b.their_reference.is_empty() {
            "-"
        } else {
            &b.their_reference
        }
    );
    println!(
        "  amounts         ours {} / theirs {} {}",
        b.our_amount_minor
            .map(|m| money(m, &b.currency))
            .unwrap_or_else(|| "-".into()),
        b.their_amount_minor
            .map(|m| money(m, &b.currency))
            .unwrap_or_else(|| "-".into()),
        b.currency
    );
    println!("  detail          {}", b.detail);
    println!("  evidence        {}", b.evidence);
    println!("  owner           {}", b.owner.as_deref().unwrap_or("-"));
    if let Some(p) = &b.proposal {
        println!(
            "  proposal        {} by {}: {}",
            p.kind.as_str(),
            p.maker,
            p.note
        );
    }
    if let Some(r) = &b.resolution {
        println!("  resolution      {r}");
    }
    println!("  trail:");
    for e in events {
        println!(
            "    {} {:<14} {:<12} {} → {}{}{}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.from_status.as_deref().unwrap_or("-"),
            e.to_status,
            if e.note.is_empty() {
                String::new()
            } else {
                format!("  \"{}\"", e.note)
            },
            e.detail.map(|d| format!("  {d}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// The staff user whose token is in `BILLCLEAR_STAFF_TOKEN` (None if unset).
pub async fn staff_actor(store: &dyn Store) -> anyhow::Result<Option<Actor>> {
    let Ok(token) = std::env::var("BILLCLEAR_STAFF_TOKEN") else {
        return Ok(None);
    };
    let hash = crate::auth::staff_token::staff_token_hash(token.trim());
    let user = store
        .staff_by_token_hash(&hash)
        .await?
        .filter(|u| !u.disabled)
        .context("BILLCLEAR_STAFF_TOKEN is not the token of an active staff user")?;
    Ok(Some(Actor {
        user: user.id,
        role: user.role,
    }))
}
