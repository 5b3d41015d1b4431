//! The `billclear` command line.

pub mod keys;
pub mod recon;
pub mod settle;
pub mod staff;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::auth::secrets::{generate_key_id, MasterKey, Secret};
use crate::config::Config;
use crate::domain::channel::{Channel, ChannelStatus};
use crate::domain::ids::ChannelId;
use crate::store::postgres::{self, PgStore};
use crate::store::{BillerStore, ChannelStore, LedgerStore, Store};

#[derive(Parser)]
#[command(
    name = "billclear",
    version,
    about = "Utility bill payment clearing: signed intake, double-entry ledger, dispatch, settlement, reconciliation"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./billclear.toml when present.
    /// Every key can be overridden by BILLCLEAR_* variables, e.g. BILLCLEAR_DATABASE__URL.
    #[arg(long, global = true, env = "BILLCLEAR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Database administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// Apply the SQL migrations to the configured database.
    Migrate,
    /// Run the channel API.
    Serve(ServeArgs),
    /// The biller registry.
    #[command(subcommand)]
    Billers(BillersCommand),
    /// Payment apps (channels) and their API keys.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// Finance staff users (reconciliation), their roles and bearer tokens.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
    /// Routes to billers: their health and planned switches.
    #[command(subcommand)]
    Routes(RoutesCommand),
    /// The duties one process of a fleet runs at a time (closing dates,
    /// the settlement relay, file routes, pruning): who holds each lease,
    /// until when, and the last hand-overs.
    Duties,
    /// Connectors' private keys: seal a PEM key with the master key, or
    /// generate an RSA or SM2 signing key pair.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Read the ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Close a business date: one batch per biller (commission, postings),
    /// published to RabbitMQ; the settlement files, the pain.001 and the
    /// channels' statements are written.
    Settle(settle::SettleArgs),
    /// Settlement batches and their files.
    #[command(subcommand)]
    Settlements(settle::SettlementsCommand),
    /// Write the payment apps' daily statements for a business date.
    Statements(settle::StatementsArgs),
    /// Payments after settlement (returns).
    #[command(subcommand)]
    Payments(settle::PaymentsCommand),
    /// Daily reconciliation: import counterparty files and bank
    /// statements, run a date, list past runs.
    #[command(subcommand)]
    Recon(recon::ReconCommand),
    /// Reconciliation breaks: list, show, assign, comment, resolve,
    /// approve (staff token in BILLCLEAR_STAFF_TOKEN).
    #[command(subcommand)]
    Breaks(recon::BreaksCommand),
    /// The main job end to end: a fresh database, the service, the water
    /// simulator and two payment apps; payments, replays, invalid requests
    /// and lost answers; waits until every payment is final, then audits.
    Demo(crate::demo::DemoArgs),
    /// Benchmarks that measure and print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// A stand-in for payment apps' callback endpoints on a local run
    /// (ops/run.sh starts it): acknowledges every callback (204) on each
    /// address, counts them and logs the count once a minute. It holds no
    /// channel secret, so it does not verify signatures: a real payment
    /// app does (see src/receiver.rs).
    ReceiveCallbacks(ReceiveCallbacksArgs),
    /// Print the API's OpenAPI 3.1 document (what /openapi.json serves):
    /// `billclear openapi > docs/openapi.json` refreshes the checked-in copy.
    Openapi,
}

#[derive(Args)]
pub struct ReceiveCallbacksArgs {
    /// Address to listen on (repeat for several channels' endpoints).
    #[arg(long, required = true)]
    pub listen: Vec<std::net::SocketAddr>,
    /// How often the count of callbacks received is logged, in seconds.
    #[arg(long, default_value_t = 60)]
    pub report_every_s: u64,
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Create the configured database when it does not exist.
    Create,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides http.listen).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
pub enum BillersCommand {
    /// Import (insert or update) billers from a TOML seed file.
    Import { file: PathBuf },
    /// List billers with their rules, status and routes.
    List,
    /// Issue an API key for a biller (downloading its settlement files);
    /// prints the secret ONCE.
    NewKey { id: String },
    /// Disable a biller's key (a leaked one): refused from the next request.
    DisableKey { key_id: String },
}

#[derive(Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel; prints its first key id and secret ONCE.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Where final payment states are pushed (http or https).
        #[arg(long)]
        callback_url: String,
        /// Requests per second allowed to this channel, for the whole fleet
        /// (each live process takes its share).
        #[arg(long, default_value_t = 1000)]
        rate_limit_rps: u32,
    },
    /// List channels and their key ids (never secrets).
    List {
        /// Print channel ids only, one per line.
        #[arg(long)]
        quiet_ids: bool,
    },
    /// Disable a channel: all its requests get 401.
    Disable { id: String },
    /// Enable a disabled channel.
    Enable { id: String },
    /// Issue another key for a channel (rotation); prints the secret ONCE.
    NewKey { id: String },
    /// Disable one key.
    DisableKey { key_id: String },
}

#[derive(Subcommand)]
pub enum RoutesCommand {
    /// Every biller's routes in the order they are tried, with the circuit
    /// state each running process last reported.
    List,
    /// Planned switch: send a biller's new payments through one of its
    /// routes first (`--auto`: back to its priority order). Payments already
    /// sent stay on their route. Takes effect in every process within
    /// intake.biller_refresh_ms.
    Switch {
        #[arg(long)]
        biller: String,
        /// The route (connector id) to use first.
        #[arg(long, conflicts_with = "auto", required_unless_present = "auto")]
        to: Option<String>,
        /// Back to the biller's priority order.
        #[arg(long)]
        auto: bool,
    },
}

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Pending and posted balance of an account, e.g. biller:sh-water:payable:CNY.
    Balance { account: String },
    /// Check every journal balances and every payment has exactly one pending transfer.
    Audit,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Signed HTTP payment intake: throughput and latency, then a ledger audit.
    Intake(crate::bench::intake::IntakeBenchArgs),
    /// Closing a business date of N confirmed payments for one biller and
    /// writing its files: time of the closing step, of the files, peak memory.
    Settle(crate::bench::settle::SettleBenchArgs),
    /// Reconciling one biller's business date of N payments against its
    /// confirmation file: time of the import, of the run, and the run's
    /// own peak memory (each in a process of its own).
    Recon(crate::bench::recon::ReconBenchArgs),
    /// The whole path under load: a fresh stack (simulators answering after
    /// --biller-latency-ms, the service with its workers, a callback
    /// receiver), R signed payments a second until N; prints accepted/s,
    /// confirmed/s, the drain, accept-to-CONFIRMED p50/p99, callbacks and
    /// their delay, 503s; then audits (final exactly once, the ledger, the
    /// simulators' books).
    E2e(crate::bench::e2e::E2eBenchArgs),
    /// The finance console over real HTTP with a large queue (--breaks N):
    /// p50/p95 of the breaks queue, break pages and day overviews.
    Console(crate::bench::console::ConsoleBenchArgs),
    /// Internal to `bench recon`: one timed step (import or run) alone in
    /// this process; prints its figures for the parent.
    #[command(hide = true)]
    ReconStep(crate::bench::recon::StepArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The document needs no configuration, database or logs.
    if let Command::Openapi = cli.command {
        print!("{}", crate::api::openapi_document());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    // A benchmark prints figures; per-request logs would only slow it down.
    let filter = match cli.command {
        Command::Bench(_) => "warn,sqlx=error",
        // The demo makes the biller misbehave on purpose; its summary tells
        // the story, warnings about each lost answer would drown it.
        Command::Demo(_) => "error",
        _ => config.log.filter.as_str(),
    };
    crate::telemetry::init(filter, &config.log.format);
    match cli.command {
        Command::Db(DbCommand::Create) => {
            let (server, name) = postgres::split_url(&config.database.url)?;
            postgres::create_database(&server, &name).await?;
            println!("database {name} is ready");
            Ok(())
        }
        Command::Migrate => {
            let store = connect(&config).await?;
            store.migrate().await.context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Serve(args) => serve(config, args).await,
        Command::Billers(cmd) => billers(config, cmd).await,
        Command::Routes(cmd) => routes(config, cmd).await,
        Command::Duties => duties(&connect(&config).await?, &config).await,
        Command::Keys(cmd) => keys::run(&config, cmd),
        Command::Channels(cmd) => channels(config, cmd).await,
        Command::Ledger(cmd) => ledger(config, cmd).await,
        Command::Staff(cmd) => staff::run(&connect(&config).await?, &config, cmd).await,
        Command::Demo(args) => crate::demo::run(config, args).await,
        Command::Settle(args) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            settle::settle(store, &config, args).await
        }
        Command::Settlements(cmd) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            settle::settlements(store, &config, cmd).await
        }
        Command::Statements(args) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            settle::statements(store, &config, args).await
        }
        Command::Payments(cmd) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            settle::payments(store, cmd).await
        }
        Command::Recon(cmd) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            recon::recon(store, &config, cmd).await
        }
        Command::Breaks(cmd) => {
            let store: Arc<dyn Store> = Arc::new(connect(&config).await?);
            let actor = recon::staff_actor(store.as_ref()).await?;
            recon::breaks(store, &config, actor, cmd).await
        }
        Command::Bench(BenchCommand::Intake(args)) => crate::bench::intake::run(config, args).await,
        Command::Bench(BenchCommand::Settle(args)) => crate::bench::settle::run(config, args).await,
        Command::Bench(BenchCommand::E2e(args)) => crate::bench::e2e::run(config, args).await,
        Command::Bench(BenchCommand::Console(args)) => {
            crate::bench::console::run(config, args).await
        }
        Command::Bench(BenchCommand::Recon(args)) => crate::bench::recon::run(config, args).await,
        Command::Bench(BenchCommand::ReconStep(args)) => crate::bench::recon::step(args).await,
        Command::ReceiveCallbacks(args) => receive_callbacks(args).await,
        Command::Openapi => unreachable!("answered before the configuration is loaded"),
    }
}

async fn receive_callbacks(args: ReceiveCallbacksArgs) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for addr in &args.listen {
        listeners.push(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        );
    }
    let shown: Vec<String> = args.listen.iter().map(|a| format!("http://{a}")).collect();
    println!(
        "receiving callbacks on {} (acknowledged and counted; signatures not verified)",
        shown.join(", ")
    );
    crate::receiver::stand_in(
        listeners,
        std::time::Duration::from_secs(args.report_every_s.max(1)),
    )
    .await
}

async fn connect(config: &Config) -> anyhow::Result<PgStore> {
    PgStore::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "connecting to {} (run `billclear db create` and `billclear migrate` first?)",
                crate::config::redact_url(&config.database.url)
            )
        })
}

pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    match &config.security.master_key {
        Some(k) => MasterKey::from_base64(k).context("security.master_key"),
        None => MasterKey::load_or_create(&config.security.master_key_file),
    }
}

async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    store.migrate().await.context("applying migrations")?;
    let listen = args.listen.unwrap_or(config.http.listen);
    let key = master_key(&config)?;
    keys::warn_at_start(&config);
    let parts = crate::startup::Parts::all(crate::dispatch::worker_name());
    let service = crate::startup::Service::start(Arc::new(store), key, config, parts).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "billclear API listening");
    println!("billclear API listening on http://{listen}  (OpenAPI: http://{listen}/openapi.json)");
    service.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Each biller's deliveries waiting, and the new payments refused for it
/// (503 biller_backlogged) by each running process.
async fn print_backlog(config: &Config, store: &dyn crate::store::Store) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let policy = config.intake.backlog_policy();
    let oldest: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>> =
        store.oldest_waiting().await?.into_iter().collect();
    let since =
        now - chrono::Duration::milliseconds((3 * config.intake.backlog_refresh_ms) as i64 + 5_000);
    let refusals = store.backlog(since).await?;
    let bound = match policy.max_age {
        Some(b) => format!("refused past {} s", b.as_secs_f64()),
        None => "never refused (intake.backlog_max_age_ms = 0)".into(),
    };
    println!("\nBILLER           OLDEST WAITING   NEW PAYMENTS ({bound})");
    for b in store.load_billers().await? {
        let id = b.id.to_string();
        let waiting = oldest.get(&id).copied();
        let age = match waiting {
            Some(at) => format!(
                "{:.1} s",
                (now - at).num_milliseconds().max(0) as f64 / 1000.0
            ),
            None => "none".into(),
        };
        let rows: Vec<_> = refusals.iter().filter(|r| r.biller_id == id).collect();
        let refused: u64 = rows.iter().map(|r| r.refused).sum();
        let state = match (
            policy.judge(waiting, now),
            rows.iter().find_map(|r| r.refusing_since),
        ) {
            (Some(v), _) => format!(
                "refused (503 biller_backlogged, Retry-After {} s); {refused} refused",
                v.retry_after_s
            ),
            (None, Some(_)) => format!("refused until the next refresh; {refused} refused"),
            (None, None) if refused > 0 => format!("taken; {refused} refused earlier"),
            (None, None) => "taken".into(),
        };
        println!("{id:<16} {age:<16} {state}");
    }
    Ok(())
}

async fn routes(config: Config, cmd: RoutesCommand) -> anyhow::Result<()> {
    use crate::domain::ids::{BillerId, ConnectorId};
    let store = connect(&config).await?;
    match cmd {
        RoutesCommand::Switch { biller, to, auto } => {
            let biller = BillerId::parse(&biller)?;
            let to = if auto {
                None
            } else {
                to.as_deref().map(ConnectorId::parse).transpose()?
            };
            store
                .set_preferred_route(&biller, to.as_ref())
                .await
                .with_context(|| format!("switching {biller}"))?;
            match to {
                Some(r) => println!("{biller}: new payments go through {r} first (payments already sent stay on their route)"),
                None => println!("{biller}: back to its priority order"),
            }
            println!(
                "takes effect in every process within {} ms",
                config.intake.biller_refresh_ms
            );
        }
        RoutesCommand::List => {
            let since = chrono::Utc::now()
                - chrono::Duration::milliseconds((3 * config.routing.heartbeat_ms) as i64 + 5_000);
            let health = store.route_health(since).await?;
            println!(
                "{:<16} {:<4} {:<16} {:<10} STATE (per running process)",
                "BILLER", "#", "ROUTE", ""
            );
            for b in store.load_billers().await? {
                let names: Vec<String> = b.routes.iter().map(|r| r.to_string()).collect();
                let preferred = b.preferred_route.as_ref().map(|r| r.as_str());
                for (i, r) in crate::domain::routing::route_order(&names, preferred)
                    .into_iter()
                    .enumerate()
                {
                    let seen: Vec<String> = health
                        .iter()
                        .filter(|h| h.connector_id == r)
                        .map(|h| match &h.last_error {
                            Some(e) if h.state != crate::domain::routing::RouteState::Closed => {
                                format!(
                                    "{} ({} failures; {e})",
                                    h.state.as_str(),
                                    h.consecutive_failures
                                )
                            }
                            _ => h.state.as_str().to_string(),
                        })
                        .collect();
                    let state = if seen.is_empty() {
                        "not reported (not configured, or no process running)".to_string()
                    } else {
                        seen.join(", ")
                    };
                    let mark = if Some(r) == preferred {
                        "preferred"
                    } else {
                        ""
                    };
                    println!("{:<16} {:<4} {:<16} {:<10} {state}", b.id, i + 1, r, mark);
                }
            }
            print_backlog(&config, &store).await?;
            let security = keys::connector_security(&config);
            if !security.is_empty() {
                println!("\nCONNECTOR        KIND       SECURITY (this config)");
                for line in security {
                    println!("{line}");
                }
            }
            let warnings = crate::dispatch::connectors::security_warnings(
                &config.connectors,
                chrono::Utc::now(),
            );
            for w in warnings {
                println!("warning: {w}");
            }
        }
    }
    Ok(())
}

async fn billers(config: Config, cmd: BillersCommand) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    match cmd {
        BillersCommand::Import { file } => {
            let list = crate::config::billers_file::load(&file)?;
            store.upsert_billers(&list).await?;
            println!("imported {} billers from {}", list.len(), file.display());
            for b in &list {
                println!(
                    "  {:<16} {:<12} {}{}",
                    b.id,
                    b.kind.as_str(),
                    b.name,
                    b.recon_tolerance_minor
                        .map(|t| format!(
                            " (recon tolerance {} {})",
                            crate::domain::recon::matching::minor_to_string(t, b.currency.scale()),
                            b.currency.code()
                        ))
                        .unwrap_or_default()
                );
            }
        }
        BillersCommand::NewKey { id } => {
            let (key_id, secret) =
                settle::new_biller_key(&store, &master_key(&config)?, &id).await?;
            println!("biller:  {id}");
            println!("key_id:  {key_id}");
            println!("secret:  {}", secret.expose_text());
            println!(
                "(the secret is shown once; the biller signs GET /v1/settlements requests with it)"
            );
        }
        BillersCommand::DisableKey { key_id } => {
            crate::store::SettlementStore::disable_biller_key(&store, &key_id).await?;
            println!("biller key {key_id} disabled");
        }
        BillersCommand::List => {
            let now = chrono::Utc::now();
            println!(
                "{:<16} {:<12} {:<4} {:<10} {:<8} {:<22} {:<14} ROUTES",
                "ID", "KIND", "CUR", "STATUS", "AMOUNT", "MIN..MAX", "CUTOFF"
            );
            for b in store.load_billers().await? {
                let status = match b.availability(now) {
                    crate::domain::biller::Availability::Available => "active".to_string(),
                    crate::domain::biller::Availability::Suspended => "suspended".to_string(),
                    crate::domain::biller::Availability::Maintenance { .. } => "maint".to_string(),
                };
                println!(
                    "{:<16} {:<12} {:<4} {:<10} {:<8} {:<22} {:<14} {}",
                    b.id,
                    b.kind.as_str(),
                    b.currency,
                    status,
                    b.amount_rule.mode(),
                    format!(
                        "{}..{}",
                        b.amount_rule.min.amount(),
                        b.amount_rule.max.amount()
                    ),
                    format!(
                        "{} {}",
                        b.cutoff.time.format("%H:%M"),
                        b.cutoff.zone.name().rsplit('/').next().unwrap_or("")
                    ),
                    b.routes
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" > ")
                );
            }
        }
    }
    Ok(())
}

async fn channels(config: Config, cmd: ChannelsCommand) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    match cmd {
        ChannelsCommand::Add {
            id,
            name,
            callback_url,
            rate_limit_rps,
        } => {
            anyhow::ensure!(rate_limit_rps >= 1, "--rate-limit-rps must be at least 1");
            let channel = Channel {
                id: ChannelId::parse(&id)?,
                name,
                callback_url,
                status: ChannelStatus::Active,
                rate_limit_rps,
            };
            let (key_id, secret) =
                crate::auth::channel_keys::create_channel(&store, &master_key(&config)?, &channel)
                    .await?;
            print_secret(&channel.id, &key_id, &secret);
        }
        ChannelsCommand::List { quiet_ids } => {
            let list = store.list_channels().await?;
            if quiet_ids {
                list.iter().for_each(|(c, _)| println!("{}", c.id));
                return Ok(());
            }
            println!(
                "{:<14} {:<9} {:<8} {:<40} KEYS",
                "ID", "STATUS", "RPS", "CALLBACK"
            );
            for (c, keys) in list {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}{}", k.key_id, if k.active { "" } else { " (disabled)" }))
                    .collect();
                println!(
                    "{:<14} {:<9} {:<8} {:<40} {}",
                    c.id,
                    c.status.as_str(),
                    c.rate_limit_rps,
                    c.callback_url,
                    keys.join(", ")
                );
            }
        }
        ChannelsCommand::Disable { id } => {
            store
                .set_channel_status(&ChannelId::parse(&id)?, ChannelStatus::Disabled)
                .await?;
            println!("channel {id} disabled (takes effect within auth.key_cache_ttl_ms in every process)");
        }
        ChannelsCommand::Enable { id } => {
            store
                .set_channel_status(&ChannelId::parse(&id)?, ChannelStatus::Active)
                .await?;
            println!("channel {id} enabled");
        }
        ChannelsCommand::NewKey { id } => {
            let channel = ChannelId::parse(&id)?;
            let key = master_key(&config)?;
            let key_id = generate_key_id();
            let secret = Secret::generate();
            store
                .add_key(&channel, &key_id, &key.seal(&key_id, &secret))
                .await?;
            print_secret(&channel, &key_id, &secret);
        }
        ChannelsCommand::DisableKey { key_id } => {
            store.disable_key(&key_id).await?;
            println!("key {key_id} disabled (takes effect within auth.key_cache_ttl_ms in every process)");
        }
    }
    Ok(())
}

fn print_secret(channel: &ChannelId, key_id: &str, secret: &Secret) {
    println!("channel: {channel}");
    println!("key_id:  {key_id}");
    println!("secret:  {}", secret.expose_text());
    println!("The secret is shown only this once and is stored sealed; give it to the channel over a secure path.");
}

async fn ledger(config: Config, cmd: LedgerCommand) -> anyhow::Result<()> {
    let store = connect(&config).await?;
    match cmd {
        LedgerCommand::Balance { account } => {
            let b = store
                .balance(&account)
                .await?
                .with_context(|| format!("no account {account:?}"))?;
            println!("{account}");
            println!(
                "  pending  debits {:>18}  credits {:>18}",
                b.pending_debits, b.pending_credits
            );
            println!(
                "  posted   debits {:>18}  credits {:>18}",
                b.posted_debits, b.posted_credits
            );
        }
        LedgerCommand::Audit => {
            let a = store.audit().await?;
            println!(
                "journals {}  entries {}  payments {}",
                a.journals, a.entries, a.payments
            );
            println!("debits {}  credits {}", a.total_debits, a.total_credits);
            println!(
                "unbalanced journals {}  journals under two entries {}",
                a.unbalanced_journals, a.short_journals
            );
            println!(
                "payments without exactly one pending transfer {}",
                a.payments_without_exactly_one_transfer
            );
            anyhow::ensure!(
                a.balanced() && a.payments_exactly_once(),
                "ledger audit FAILED"
            );
            println!("ledger audit OK");
        }
    }
    Ok(())
}

/// `billclear duties`: each duty's lease and its last hand-overs.
async fn duties(store: &PgStore, config: &Config) -> anyhow::Result<()> {
    use crate::store::lease::LeaseStore;
    let timing = crate::startup::duty::LeaseTiming::from_config(&config.duties);
    println!(
        "leases of {} s, asked for every {} s: a dead holder's duty is taken over within {} s",
        timing.lease.as_secs_f64(),
        timing.check.as_secs_f64(),
        timing.takeover_bound().as_secs_f64()
    );
    let leases = store.leases().await?;
    if leases.is_empty() {
        println!("no duty has been held yet (no billclear serve has run on this database)");
    }
    println!("{:<18} {:<40} {:<26} SINCE", "DUTY", "HOLDER", "EXPIRES");
    for l in &leases {
        let holder = if l.holder.is_empty() {
            "(released)"
        } else {
            &l.holder
        };
        println!(
            "{:<18} {:<40} {:<26} {}{}",
            l.duty,
            holder,
            l.expires_at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
            l.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"),
            if l.expired {
                "  EXPIRED: the next process to check takes it"
            } else {
                ""
            }
        );
        for h in store.handovers(&l.duty).await?.iter().rev().take(3) {
            println!(
                "    {} taken by {}{}",
                h.at.format("%Y-%m-%d %H:%M:%S UTC"),
                h.holder,
                h.previous_holder
                    .as_deref()
                    .map(|p| format!(" from {p}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
