//! `biller-sim`: runs a biller simulator over real sockets, for the demo
//! and for manual testing. One subcommand per counterpart protocol.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use biller_connectors::{PlainKeyFiles, SignatureScheme, SignatureSettings, Signer};
use biller_sim::http::{server_tls, SimSecurity};
use biller_sim::{
    Account, BookEntry, CoopSim, CoopSimConfig, GasSim, GasSimConfig, HubSim, HubSimConfig,
    PowerSim, PowerSimConfig, WaterSim, WaterSimConfig,
};
use chrono::FixedOffset;
use clap::{Parser, Subcommand};

const FAULTS_HELP: &str = "\
FAULTS (switch at run time, JSON, unlisted fields reset to their defaults):
  latency_ms          delay before each request is processed (processing goes on
                      even if the client gives up)
  error_rate          share 0..=1 of requests answered 503 / code 9001, not applied
  outage              every request answered 503 / code 9002, nothing applied
  blackhole           requests read but never answered, nothing applied
                      (held up to 10 minutes, then 504)
  drop_response_rate  share 0..=1 of payments applied, then never answered
  drop_response_next  the next N payments applied, answers dropped (counts down)
  misecho_next        the next N successful payment answers echo amount + 0.01

ADMIN ENDPOINTS (same port, unsigned):
  GET  /_sim/faults                          the faults in force
  PUT  /_sim/faults                          replace them
  GET  /_sim/credits                         every credited payment, in order
  GET  /_sim/rejections                      every refused payment
  POST /_sim/accounts                        {\"biller_id\": ..., \"account\": {...}}
  GET  /_sim/confirmations/{biller}/{date}   daily confirmation CSV (date YYYY-MM-DD)

EXAMPLE:
  curl -X PUT http://127.0.0.1:9101/_sim/faults -d '{\"drop_response_next\":3}'
  curl http://127.0.0.1:9101/_sim/confirmations/sh-water/2026-11-29";

#[derive(Debug, Parser)]
#[command(
    name = "biller-sim",
    version,
    about = "Biller simulators for billclear: real servers speaking each biller's protocol, with faults to inject"
)]
struct Cli {
    #[command(subcommand)]
    biller: Biller,
}

#[derive(Debug, Subcommand)]
enum Biller {
    /// The water company: JSON over HTTP, HMAC-signed requests and answers.
    #[command(after_help = FAULTS_HELP)]
    Water(WaterArgs),
    /// The intermediary hub: one JSON API (v2) in front of water,
    /// electricity and gas billers, HMAC-signed (base64), its own
    /// transaction references and daily statement file.
    #[command(after_help = HUB_HELP)]
    Hub(HubArgs),
    /// The electricity company (sh-power): XML over HTTP at POST
    /// /power/gateway, a MAC in every envelope.
    #[command(after_help = POWER_HELP)]
    Power(PowerArgs),
    /// The gas company: fixed-length messages over persistent TCP links,
    /// MAC'd; admin endpoints over HTTP on a second port.
    #[command(after_help = GAS_FAULTS_HELP)]
    Gas(GasArgs),
    /// The water co-op (chongming-coop): no API, batch files polled from a
    /// drop directory, acknowledgement (ACK_) or refusal (REJ_) files
    /// written into an ack directory.
    #[command(after_help = COOP_HELP)]
    Coop(CoopArgs),
}

const COOP_HELP: &str = "\
FILES:
  reads    <drop-dir>/PAY_<coop>_<YYYYMMDD>_<nnn>.txt   (dot-files ignored)
  writes   <ack-dir>/ACK_<batch file name>   lines accepted (A) / rejected (R)
           <ack-dir>/REJ_<batch file name>   a file refused whole, nothing applied
  Batch files are left in place; a file already answered (ACK_/REJ_ in the ack
  dir or its processed/ subdirectory) is skipped. The ack files are the
  co-op's daily confirmation.

There are no admin endpoints and faults cannot be switched from the command
line (tests use CoopSim::set_faults). Default book: the chongming-coop accounts
(CM-000123 first, one closed).";

#[derive(Debug, clap::Args)]
struct CoopArgs {
    /// The directory billclear delivers batch files into.
    #[arg(long, env = "BILLER_SIM_DROP_DIR")]
    drop_dir: PathBuf,
    /// The directory acknowledgement and refusal files are written into.
    #[arg(long, env = "BILLER_SIM_ACK_DIR")]
    ack_dir: PathBuf,
    /// The co-op id batch files must name.
    #[arg(long, env = "BILLER_SIM_COOP_ID", default_value = "chongming-coop")]
    coop_id: String,
    /// How often the drop directory is looked at, in milliseconds.
    #[arg(long, env = "BILLER_SIM_POLL_MS", default_value_t = 500)]
    poll_ms: u64,
    /// How long after a file is applied its answer is written, in ms.
    #[arg(long, env = "BILLER_SIM_ACK_DELAY_MS", default_value_t = 0)]
    ack_delay_ms: u64,
    /// A JSON book: [{"biller_id": "...", "account": {...}}, ...]. Without
    /// it, the default accounts of the co-op id.
    #[arg(long, env = "BILLER_SIM_BOOK")]
    book: Option<PathBuf>,
    /// The only currency accepted.
    #[arg(long, env = "BILLER_SIM_CURRENCY", default_value = "CNY")]
    currency: String,
    /// The offset whose calendar day is the ack date.
    #[arg(
        long,
        env = "BILLER_SIM_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    utc_offset: FixedOffset,
}

async fn run_coop(args: CoopArgs) -> Result<(), String> {
    let book = match args.book.as_ref() {
        Some(path) => load_book(Some(path))?,
        None => biller_sim::book_for(&[args.coop_id.as_str()], chrono::Utc::now().date_naive()),
    };
    let mut config = CoopSimConfig::new(&args.drop_dir, &args.ack_dir);
    config.coop_id = args.coop_id;
    config.currency = args.currency;
    config.poll_ms = args.poll_ms;
    config.ack_delay_ms = args.ack_delay_ms;
    config.utc_offset = args.utc_offset;
    config.book = book;
    let sim = CoopSim::start(config).map_err(|e| e.to_string())?;
    println!(
        "co-op simulator watching {} (answers into {})",
        args.drop_dir.display(),
        args.ack_dir.display()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("Ctrl-C: shutting down");
    sim.shutdown();
    Ok(())
}

const GAS_FAULTS_HELP: &str = "\
FAULTS (switch at run time on the ADMIN port, JSON, unlisted fields reset):
  latency_ms             delay before each request is processed (goes on even if
                         the client gives up)
  error_rate             share 0..=1 of requests answered 91 (busy), not applied
  outage                 every request answered 92 (service down), nothing applied
  blackhole              requests read but never answered, nothing applied
  drop_response_rate     share 0..=1 of payments applied, then never answered
  drop_response_next     the next N payments applied, answers dropped
  misecho_next           the next N successful payment answers echo amount + 0.01
  duplicate_answer_next  the next N answers written twice (the copy 30 ms later)
  out_of_order           answers held up to 40 ms and written in reverse order

ADMIN ENDPOINTS (HTTP, --admin-listen, unauthenticated):
  GET  /_sim/faults                          the faults in force
  PUT  /_sim/faults                          replace them
  GET  /_sim/credits                         every credited payment, in order
  GET  /_sim/rejections                      every refused payment
  POST /_sim/accounts                        {\"biller_id\": ..., \"account\": {...}}
  GET  /_sim/confirmations/{biller}/{date}   daily fixed-width confirmation file

EXAMPLE:
  curl -X PUT http://127.0.0.1:9313/_sim/faults -d '{\"out_of_order\":true}'
  curl http://127.0.0.1:9313/_sim/confirmations/sh-gas/2026-11-29";

#[derive(Debug, clap::Args)]
struct GasArgs {
    /// Address of the TCP link listener.
    #[arg(long, env = "BILLER_SIM_LISTEN", default_value = "127.0.0.1:9303")]
    listen: SocketAddr,
    #[command(flatten)]
    security: SecurityArgs,
    /// Address of the HTTP admin listener (/_sim/...).
    #[arg(
        long,
        env = "BILLER_SIM_ADMIN_LISTEN",
        default_value = "127.0.0.1:9313"
    )]
    admin_listen: SocketAddr,
    /// The terminal id billclear uses (its key_id).
    #[arg(long, env = "BILLER_SIM_KEY_ID", default_value = "billclear")]
    key_id: String,
    /// The shared MAC secret (prefer the environment variable).
    #[arg(long, env = "BILLER_SIM_SECRET", hide_env_values = true)]
    secret: String,
    /// A JSON book: [{"biller_id": "...", "account": {...}}, ...]. Without
    /// it, a built-in book (sh-gas, minhang-gas) is used.
    #[arg(long, env = "BILLER_SIM_BOOK")]
    book: Option<PathBuf>,
    /// The only currency accepted.
    #[arg(long, env = "BILLER_SIM_CURRENCY", default_value = "CNY")]
    currency: String,
    /// The offset of the confirmation file's business day.
    #[arg(
        long,
        env = "BILLER_SIM_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    utc_offset: FixedOffset,
}

async fn run_gas(args: GasArgs) -> Result<(), String> {
    if args.security.signature != SignatureScheme::HmacSha256 {
        return Err("the gas link is MAC'd with HMAC-SHA256 only".into());
    }
    if args.secret.is_empty() {
        return Err("the secret must not be empty".into());
    }
    let book = match args.book.as_ref() {
        Some(path) => load_book(Some(path))?,
        None => biller_sim::book_for(&["sh-gas", "minhang-gas"], chrono::Utc::now().date_naive()),
    };
    let config = GasSimConfig {
        key_id: args.key_id,
        secret: args.secret,
        tls: args.security.security()?.tls,
        currency: args.currency,
        utc_offset: args.utc_offset,
        book,
    };
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let link = bind(args.listen).await?;
    let admin = bind(args.admin_listen).await?;
    let sim = GasSim::start(link, admin, config)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "gas simulator listening on {} (admin {})",
        sim.address(),
        sim.admin_url()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("Ctrl-C: shutting down");
    sim.shutdown();
    Ok(())
}

const HUB_HELP: &str = "\
FAULTS (PUT /_sim/faults, JSON, unlisted fields reset to their defaults):
  latency_ms          delay before each request is processed (processing goes on
                      even if the client gives up)
  error_rate          share 0..=1 of requests answered 503 / code 5030, not applied
  outage              every request answered 503 / code 5031 (maintenance)
  blackhole           requests read but never answered, nothing applied
  drop_response_rate  share 0..=1 of payments applied, then never answered
  drop_response_next  the next N payments applied, answers dropped (counts down)
  misecho_next        the next N successful payment answers echo amount + 0.01
  (duplicate_answer_next and out_of_order are ignored over HTTP)

HUB SWITCHES (PUT /_sim/hub, JSON):
  cut_off             our merchant suspended: 403 / code 4030 on everything
  billers_down        [\"sh-gas\", ...]: those billers answered 503 / code 5030

ADMIN ENDPOINTS (same port, unsigned):
  GET  /_sim/faults | /_sim/hub              the switches in force
  GET  /_sim/credits                         every credited payment, in order
  GET  /_sim/rejections                      every refused payment
  GET  /_sim/transactions                    every hub transaction
  POST /_sim/accounts                        {\"biller_id\": ..., \"account\": {...}}
  GET  /_sim/statement/{date}                the hub's daily statement CSV

EXAMPLE:
  curl -X PUT http://127.0.0.1:9305/_sim/hub -d '{\"cut_off\":true}'
  curl http://127.0.0.1:9305/_sim/statement/2026-11-29";

#[derive(Debug, clap::Args)]
struct HubArgs {
    /// Address to listen on.
    #[arg(long, env = "BILLER_SIM_LISTEN", default_value = "127.0.0.1:9305")]
    listen: SocketAddr,
    #[command(flatten)]
    security: SecurityArgs,
    /// Our merchant id at the hub (the key id billclear signs with).
    #[arg(long, env = "BILLER_SIM_KEY_ID", default_value = "billclear")]
    key_id: String,
    /// The shared HMAC secret (prefer the environment variable).
    #[arg(long, env = "BILLER_SIM_SECRET", hide_env_values = true)]
    secret: String,
    /// A JSON book: [{"biller_id": "...", "account": {...}}, ...]. Without
    /// it, the default accounts of sh-water, pudong-water, sh-power, sh-gas
    /// and minhang-gas. The hub serves the billers its book names.
    #[arg(long, env = "BILLER_SIM_BOOK")]
    book: Option<PathBuf>,
    /// The only currency accepted.
    #[arg(long, env = "BILLER_SIM_CURRENCY", default_value = "CNY")]
    currency: String,
    /// The hub's offset (times, business day, hubTxnId dates).
    #[arg(
        long,
        env = "BILLER_SIM_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    utc_offset: FixedOffset,
    /// The hub id written in the statement file.
    #[arg(long, env = "BILLER_SIM_HUB_ID", default_value = "SIMHUB")]
    hub_id: String,
}

async fn run_hub(args: HubArgs) -> Result<(), String> {
    if args.secret.is_empty() {
        return Err("the secret must not be empty".into());
    }
    let book = match args.book.as_ref() {
        Some(_) => load_book(args.book.as_ref())?,
        None => biller_sim::hub::default_hub_book(chrono::Utc::now().date_naive()),
    };
    let config = HubSimConfig {
        key_id: args.key_id,
        secret: args.secret,
        security: args.security.security()?,
        currency: args.currency,
        utc_offset: args.utc_offset,
        hub_id: args.hub_id,
        book,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let sim = HubSim::start(listener, config)
        .await
        .map_err(|e| e.to_string())?;
    println!("hub simulator listening on {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("Ctrl-C: shutting down");
    sim.shutdown();
    Ok(())
}

#[derive(Debug, clap::Args)]
struct WaterArgs {
    /// Address to listen on.
    #[arg(long, env = "BILLER_SIM_LISTEN", default_value = "127.0.0.1:9101")]
    listen: SocketAddr,
    #[command(flatten)]
    security: SecurityArgs,
    /// The key id billclear signs with.
    #[arg(long, env = "BILLER_SIM_KEY_ID", default_value = "billclear")]
    key_id: String,
    /// The shared HMAC secret (prefer the environment variable).
    #[arg(long, env = "BILLER_SIM_SECRET", hide_env_values = true)]
    secret: String,
    /// A JSON book: [{"biller_id": "...", "account": {...}}, ...]. Without
    /// it, a built-in book (sh-water, pudong-water) is used.
    #[arg(long, env = "BILLER_SIM_BOOK")]
    book: Option<PathBuf>,
    /// The only currency accepted.
    #[arg(long, env = "BILLER_SIM_CURRENCY", default_value = "CNY")]
    currency: String,
    /// The offset of the confirmation file's business day.
    #[arg(
        long,
        env = "BILLER_SIM_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    utc_offset: FixedOffset,
}

fn load_book(path: Option<&PathBuf>) -> Result<Vec<(String, Account)>, String> {
    let Some(path) = path else {
        return Ok(biller_sim::default_book());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let entries: Vec<BookEntry> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(entries
        .into_iter()
        .map(|e| (e.biller_id, e.account))
        .collect())
}

const POWER_HELP: &str = "\
FAULTS (switch at run time, JSON, unlisted fields reset to their defaults):
  latency_ms          delay before each request is processed (processing goes on
                      even if the client gives up)
  error_rate          share 0..=1 of requests answered 503 / code S901, not applied
  outage              every request answered 503 / code S902, nothing applied
  blackhole           requests read but never answered, nothing applied
                      (held up to 10 minutes, then 504)
  drop_response_rate  share 0..=1 of payments applied, then never answered
  drop_response_next  the next N payments applied, answers dropped (counts down)
  misecho_next        the next N successful payment answers echo amount + 0.01

ADMIN ENDPOINTS (same port, unauthenticated):
  GET  /_sim/faults                          the faults in force
  PUT  /_sim/faults                          replace them
  GET  /_sim/credits                         every credited payment, in order
  GET  /_sim/rejections                      every refused payment
  POST /_sim/accounts                        {\"biller_id\": ..., \"account\": {...}}
  GET  /_sim/confirmations/{biller}/{date}   daily confirmation XML (date YYYY-MM-DD)

EXAMPLE:
  curl -X PUT http://127.0.0.1:9302/_sim/faults -d '{\"drop_response_next\":3}'
  curl http://127.0.0.1:9302/_sim/confirmations/sh-power/2026-11-29";

#[derive(Debug, clap::Args)]
struct PowerArgs {
    /// Address to listen on.
    #[arg(long, env = "BILLER_SIM_LISTEN", default_value = "127.0.0.1:9302")]
    listen: SocketAddr,
    #[command(flatten)]
    security: SecurityArgs,
    /// The key id billclear sends as its Sender.
    #[arg(long, env = "BILLER_SIM_KEY_ID", default_value = "billclear")]
    key_id: String,
    /// The shared MAC secret (prefer the environment variable).
    #[arg(long, env = "BILLER_SIM_SECRET", hide_env_values = true)]
    secret: String,
    /// A JSON book: [{"biller_id": "...", "account": {...}}, ...]. Without
    /// it, the built-in sh-power accounts are used.
    #[arg(long, env = "BILLER_SIM_BOOK")]
    book: Option<PathBuf>,
    /// The only currency accepted.
    #[arg(long, env = "BILLER_SIM_CURRENCY", default_value = "CNY")]
    currency: String,
    /// The offset of the simulator's clock and of the confirmation file's
    /// business day.
    #[arg(
        long,
        env = "BILLER_SIM_UTC_OFFSET",
        default_value = "+08:00",
        allow_hyphen_values = true
    )]
    utc_offset: FixedOffset,
}

async fn run_power(args: PowerArgs) -> Result<(), String> {
    if args.secret.is_empty() {
        return Err("the secret must not be empty".into());
    }
    let book = match args.book.as_ref() {
        Some(path) => load_book(Some(path))?,
        None => biller_sim::book_for(&["sh-power"], chrono::Utc::now().date_naive()),
    };
    let config = PowerSimConfig {
        key_id: args.key_id,
        secret: args.secret,
        security: args.security.security()?,
        currency: args.currency,
        utc_offset: args.utc_offset,
        book,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let sim = PowerSim::start(listener, config)
        .await
        .map_err(|e| e.to_string())?;
    println!("power simulator listening on {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("Ctrl-C: shutting down");
    sim.shutdown();
    Ok(())
}

async fn run_water(args: WaterArgs) -> Result<(), String> {
    if args.secret.is_empty() {
        return Err("the secret must not be empty".into());
    }
    let config = WaterSimConfig {
        key_id: args.key_id,
        secret: args.secret,
        security: args.security.security()?,
        currency: args.currency,
        utc_offset: args.utc_offset,
        book: load_book(args.book.as_ref())?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let sim = WaterSim::start(listener, config)
        .await
        .map_err(|e| e.to_string())?;
    println!("water simulator listening on {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("Ctrl-C: shutting down");
    sim.shutdown();
    Ok(())
}

/// TLS and signature options shared by the HTTP simulators.
#[derive(Debug, Clone, clap::Args)]
struct SecurityArgs {
    /// Serve HTTPS with this certificate chain (PEM); plaintext without it.
    #[arg(long, env = "BILLER_SIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "BILLER_SIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these CAs (PEM): mutual TLS.
    #[arg(long, env = "BILLER_SIM_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// The signature scheme: hmac-sha256 (with --secret), rsa-sha256 or
    /// sm2-sm3 (with --signing-key and --peer-key).
    #[arg(long, env = "BILLER_SIM_SIGNATURE", default_value = "hmac-sha256", value_parser = SignatureScheme::parse)]
    signature: SignatureScheme,
    /// The simulator's own private key (PEM), signing its answers.
    #[arg(long, env = "BILLER_SIM_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// billclear's public key or certificate (PEM), verifying requests;
    /// repeat it for two keys during a rotation.
    #[arg(long = "peer-key", env = "BILLER_SIM_PEER_KEYS", value_delimiter = ',')]
    peer_keys: Vec<PathBuf>,
}

impl SecurityArgs {
    /// The security these options describe (the HMAC `secret` is the
    /// simulator's own config).
    fn security(&self) -> Result<SimSecurity, String> {
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let ca = self.tls_client_ca.as_ref().map(read).transpose()?;
                Some(server_tls(&read(cert)?, &read(key)?, ca.as_deref(), &[])?)
            }
            _ => None,
        };
        let signer = match self.signature {
            SignatureScheme::HmacSha256 => None,
            scheme => {
                let settings = SignatureSettings {
                    scheme,
                    private_key_file: self.signing_key.clone(),
                    biller_keys: self.peer_keys.clone(),
                    ..Default::default()
                };
                Some(std::sync::Arc::new(Signer::from_settings(
                    &settings,
                    "",
                    &PlainKeyFiles,
                )?))
            }
        };
        Ok(SimSecurity { tls, signer })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.biller {
        Biller::Water(args) => run_water(args).await,
        Biller::Hub(args) => run_hub(args).await,
        Biller::Gas(args) => run_gas(args).await,
        Biller::Power(args) => run_power(args).await,
        Biller::Coop(args) => run_coop(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("biller-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
