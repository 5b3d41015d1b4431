//! Configuration: a TOML file plus `BILLCLEAR_*` environment overrides
//! (nested keys with `__`: `BILLCLEAR_DATABASE__URL`). Every key is
//! documented in `ops/billclear.example.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use biller_connectors::ConnectorSettings;

pub mod billers_file;

use crate::domain::dispatch::Backoff;
use crate::domain::settlement::BankAccount;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub intake: IntakeConfig,
    pub security: SecurityConfig,
    pub dispatch: DispatchConfig,
    pub callbacks: CallbackConfig,
    pub inquiry: InquiryConfig,
    pub routing: RoutingConfig,
    /// Connectors by id (the ids billers name in their routes). A route
    /// whose connector is not configured here is skipped.
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorSettings>,
    pub settlement: SettlementConfig,
    pub recon: ReconConfig,
    pub amqp: AmqpConfig,
    /// The finance console under `/console/`.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Duties held by one process of a fleet at a time, under a lease.
    #[serde(default)]
    pub duties: DutiesConfig,
    /// The fleet's live processes (shares of fleet-wide limits).
    #[serde(default)]
    pub fleet: FleetConfig,
    /// Complaints from payment apps: investigation and turn-around times.
    #[serde(default)]
    pub complaints: ComplaintsConfig,
    pub log: LogConfig,
}

/// Duties that one process of a fleet runs at a time (closing dates,
/// relaying the settlement outbox, file routes, pruning), each under a
/// lease in the database; a dead holder's duty is taken over within
/// `lease_ms + check_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DutiesConfig {
    /// How long a lease lasts without renewal.
    pub lease_ms: u64,
    /// How often each process asks for (or renews) each lease.
    pub check_ms: u64,
}

impl Default for DutiesConfig {
    fn default() -> Self {
        DutiesConfig {
            lease_ms: 15_000,
            check_ms: 5_000,
        }
    }
}

/// The processes of a fleet on one database, seen on their heartbeats:
/// fleet-wide limits (a biller's inquiry budget) are split between the
/// live ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// How often each process says it is alive and reads who else is.
    pub heartbeat_ms: u64,
    /// A process not seen for this long is taken for dead (its share goes
    /// to the others); a process whose heartbeats are this late, less a
    /// second, stops using its share; a process joining waits this long
    /// before it takes one.
    pub stale_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            heartbeat_ms: 1_000,
            stale_ms: 3_000,
        }
    }
}

/// Complaints payment apps raise (`/v1/complaints`): how the machine
/// investigates them and how long each type may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplaintsConfig {
    /// How often the investigator looks for complaints to investigate and
    /// for complaints past their time (a duty: one process of the fleet).
    pub poll_ms: u64,
    /// How long after an unanswered status inquiry the biller is asked
    /// again (PENDING_BILLER).
    pub recheck_ms: u64,
    /// Business days to resolve each type in (not_credited,
    /// credited_to_wrong_account, paid_twice, amount_differs,
    /// refund_not_received); a type not named keeps its default (3, 7, 5,
    /// 5, 5).
    pub turnaround_days: BTreeMap<String, u32>,
    /// Holidays of every biller's calendar (besides Saturdays and Sundays),
    /// e.g. ["2027-01-01"].
    pub holidays: Vec<chrono::NaiveDate>,
    /// A biller's own holidays, added to `holidays`.
    pub biller_holidays: BTreeMap<String, Vec<chrono::NaiveDate>>,
}

impl Default for ComplaintsConfig {
    fn default() -> Self {
        ComplaintsConfig {
            poll_ms: 1_000,
            recheck_ms: 60_000,
            turnaround_days: BTreeMap::new(),
            holidays: Vec::new(),
            biller_holidays: BTreeMap::new(),
        }
    }
}

impl ComplaintsConfig {
    pub fn turnaround_days(&self, kind: crate::domain::complaint::ComplaintKind) -> u32 {
        self.turnaround_days
            .get(kind.as_str())
            .copied()
            .unwrap_or(kind.default_turnaround_days())
    }

    /// `biller`'s calendar in its time zone.
    pub fn calendar(
        &self,
        biller: &str,
        zone: chrono_tz::Tz,
    ) -> crate::domain::complaint::Calendar {
        let mut holidays: std::collections::BTreeSet<chrono::NaiveDate> =
            self.holidays.iter().copied().collect();
        if let Some(own) = self.biller_holidays.get(biller) {
            holidays.extend(own.iter().copied());
        }
        crate::domain::complaint::Calendar { zone, holidays }
    }
}

/// The finance console served by `billclear serve` under `/console/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// A session not used for this long ends (sign in again).
    pub idle_timeout_s: u64,
    /// A session ends this long after sign-in, used or not.
    pub max_session_s: u64,
    /// The time zone dates and times are shown in (the business's).
    pub time_zone: String,
    /// Mark the session cookie `Secure` even when the request did not
    /// come over TLS (behind a TLS-terminating proxy that does not send
    /// `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Rows per page of the breaks queue and other lists.
    pub page_size: u32,
    /// How long a one-time sign-in link (`billclear staff sign-in-link`)
    /// may be used.
    pub sign_in_link_ttl_s: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            idle_timeout_s: 30 * 60,
            max_session_s: 12 * 3600,
            time_zone: "Asia/Shanghai".into(),
            secure_cookies: false,
            page_size: 50,
            sign_in_link_ttl_s: 15 * 60,
        }
    }
}

impl ConsoleConfig {
    /// The business time zone (Asia/Shanghai when the name is unknown:
    /// `Config::validate` refuses unknown names first).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::Asia::Shanghai)
    }
}

/// Settlement: closing business dates, the files billers receive, and our
/// own bank account that pays them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementConfig {
    /// Where settlement files are written: one directory per biller
    /// (`<outbox_dir>/<biller id>/`) and per channel statement
    /// (`<outbox_dir>/channels/<channel id>/`).
    pub outbox_dir: PathBuf,
    /// Whether `billclear serve` closes each biller's business date at its
    /// cut-off by itself.
    pub schedule: bool,
    /// How often `serve` looks for business dates whose cut-off has passed.
    pub schedule_check_ms: u64,
    /// Batches closed late are still closed: dates whose cut-off passed up
    /// to this many days ago are closed by the schedule when still open.
    pub catch_up_days: u32,
    /// The settlement account that pays billers (the debtor of pain.001).
    pub debtor: BankAccount,
}

/// Daily reconciliation: where imported files and reports are kept, and
/// the rules that decide UNKNOWN payments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconConfig {
    /// Imported files are kept verbatim under `<dir>/files/<sha256>`;
    /// reports go to `<dir>/reports/<date>/`; `<dir>/inbox/` is read by
    /// `billclear recon import --inbox`.
    pub dir: PathBuf,
    /// An UNKNOWN payment absent from the file of the route it went
    /// through is rejected (and voided) once this many hours have passed
    /// since the end of its business date.
    pub unknown_grace_hours: u32,
    /// Records sorted in memory before a sorted run is spilled to disk.
    pub sort_buffer_records: usize,
    /// The currency of `settlement.debtor`, our settlement account: its
    /// statements are accepted in this currency only.
    #[serde(default = "default_settlement_currency")]
    pub settlement_currency: String,
    /// Our other bank accounts whose statements are accepted (each in its
    /// one currency). Statements of any other account are refused.
    #[serde(default)]
    pub bank_accounts: Vec<OurBankAccount>,
    /// Which connector's deliveries each counterparty file kind reports
    /// on: `water-csv`, `power-xml`, `gas-fixed`, `hub-statement`,
    /// `coop-ack` → a connector id.
    #[serde(default)]
    pub file_routes: crate::domain::recon::FileRoutes,
}

fn default_settlement_currency() -> String {
    "CNY".into()
}

/// One more bank account of ours (`[[recon.bank_accounts]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OurBankAccount {
    /// Account number or IBAN, as the bank writes it in statements.
    pub account: String,
    /// ISO 4217 code of the account's currency.
    pub currency: String,
}

/// RabbitMQ (settlement messages): the topology billclear declares at start
/// and how the outbox relay and the settlement consumer use it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP 0-9-1 URL of the broker (of the first node of a cluster).
    pub url: String,
    /// The other nodes of a RabbitMQ cluster, tried in turn when a
    /// connection cannot be opened (or is lost): the relay and the
    /// consumer reconnect to another node when theirs goes away.
    #[serde(default)]
    pub other_urls: Vec<String>,
    /// Durable topic exchange settlement messages are published to.
    pub exchange: String,
    /// Durable quorum queue of settlement work (bound to `exchange`).
    pub queue: String,
    /// Dead-letter exchange and queue: poison messages and messages
    /// delivered `delivery_limit` times end there for an operator.
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    /// Deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// Unacknowledged messages one consumer holds at most.
    pub prefetch: u16,
    /// A publish not confirmed by the broker within this time is retried.
    pub confirm_timeout_ms: u64,
    /// Outbox rows the relay takes at a time, and how often it looks.
    pub relay_batch: u32,
    pub relay_poll_ms: u64,
    /// Reconnection backoff after the broker went away.
    pub reconnect: RetryConfig,
}

/// Bounded exponential backoff: base_ms * 2^(n-1), capped at max_ms, at
/// most max_attempts tries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    pub base_ms: u64,
    pub max_ms: u64,
    pub max_attempts: u32,
}

impl AmqpConfig {
    /// Every node's URL: `url` first, then `other_urls`.
    pub fn nodes(&self) -> Vec<&str> {
        std::iter::once(self.url.as_str())
            .chain(self.other_urls.iter().map(String::as_str))
            .collect()
    }

    /// The same broker with a topology of its own (names suffixed with
    /// `tag`): the demo and the benchmark use one so that a running
    /// `billclear serve` never takes their messages, nor they its.
    pub fn scoped(&self, tag: &str) -> AmqpConfig {
        AmqpConfig {
            exchange: format!("{}.{tag}", self.exchange),
            queue: format!("{}.{tag}", self.queue),
            dead_letter_exchange: format!("{}.{tag}", self.dead_letter_exchange),
            dead_letter_queue: format!("{}.{tag}", self.dead_letter_queue),
            ..self.clone()
        }
    }
}

impl RetryConfig {
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base_ms: self.base_ms,
            max_ms: self.max_ms,
            max_attempts: self.max_attempts,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// Payments being delivered at once by one process.
    pub concurrency: usize,
    /// Most outbox rows claimed in one query.
    pub claim_batch: u32,
    /// How often an idle worker looks for work.
    pub poll_ms: u64,
    /// How long claimed work is held. Work of a process that dies comes
    /// back after this; it must exceed every connector's timeout_ms.
    pub lease_ms: u64,
    /// Sends that certainly did not reach the biller (refused connection,
    /// busy): retried like this, then the payment is REJECTED.
    pub send_retry: RetryConfig,
    /// Status inquiries for an UNKNOWN payment; when exhausted the payment
    /// stays UNKNOWN for reconciliation.
    pub inquiry_retry: RetryConfig,
    /// An UNKNOWN payment the biller has no record of is REJECTED only after
    /// this many "not found" answers, the last at least not_found_grace_ms
    /// after the send.
    pub not_found_answers: u32,
    pub not_found_grace_ms: u64,
    /// How often file routes (the co-op) are checked: batches due at a
    /// biller's cut-off delivered, acknowledgements read.
    pub file_poll_ms: u64,
    /// The workers' writes (attempts, outcomes, acknowledgements) are
    /// committed in groups of at most this many...
    pub commit_max_batch: usize,
    /// ...with at most this many groups committing at once.
    pub commit_max_inflight: usize,
}

/// Route health: a circuit breaker per connector (see `domain::routing`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Consecutive failed calls (no usable answer) that open a route's breaker.
    pub failures_to_open: u32,
    /// How long an open breaker keeps new payments off the route before a
    /// probe may close it.
    pub open_ms: u64,
    /// How often every route is probed with a health check.
    pub heartbeat_ms: u64,
}

impl RoutingConfig {
    pub fn policy(&self) -> crate::domain::routing::BreakerPolicy {
        crate::domain::routing::BreakerPolicy {
            failures_to_open: self.failures_to_open.max(1),
            open_for: std::time::Duration::from_millis(self.open_ms),
        }
    }
}

/// Bill inquiries: a budget per biller, a short cache and coalescing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InquiryConfig {
    /// Bill inquiries each biller receives per second of the wall clock
    /// from the whole fleet, at most (each live process takes its share);
    /// more get 429 with Retry-After.
    pub budget_per_s: u32,
    /// Budgets of particular billers (biller id = inquiries per second).
    #[serde(default)]
    pub budgets: BTreeMap<String, u32>,
    /// How long an answer (bills, or "no such account") is reused for the
    /// same biller and account; 0 = never.
    pub cache_ttl_ms: u64,
    pub cache_max_entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Callbacks being delivered at once by one process.
    pub concurrency: usize,
    /// A callback not answered 2xx within this time is retried.
    pub timeout_ms: u64,
    pub retry: RetryConfig,
    /// An endpoint that fails is backed off as a whole, for a time doubling
    /// from `retry.base_ms` up to this.
    pub endpoint_backoff_max_ms: u64,
    /// A failure that goes on is logged once when it starts, then as a
    /// count at most this often, then once when it ends.
    pub log_every_s: u64,
    /// PEM file of CA certificates trusted for https callbacks besides the
    /// public web roots (a channel behind a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of the system of record.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests answered at once by one process; more wait, then 503.
    pub max_concurrent_requests: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A request's timestamp may be this far from the server clock.
    pub max_clock_skew_s: i64,
    /// How long a key looked up in the database is trusted (disabling a
    /// key takes effect within this time in every process).
    pub key_cache_ttl_ms: u64,
    /// How long used nonces are kept (must exceed twice the clock skew).
    pub nonce_retention_s: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Payments waiting for a database commit; a full queue answers 503.
    pub queue_capacity: usize,
    /// Most payments committed in one database transaction.
    pub max_batch: usize,
    /// Batches being committed at once.
    pub max_inflight_batches: usize,
    /// While other batches commit, a batch with fewer payments than this
    /// waits up to `batch_fill_wait_us` for more (0 = never wait).
    pub batch_fill_target: usize,
    pub batch_fill_wait_us: u64,
    /// How often the biller directory is reloaded from the database.
    pub biller_refresh_ms: u64,
    /// Push-back: while a biller's oldest payment waiting for dispatch is
    /// older than this, new payments for it get 503 biller_backlogged
    /// with Retry-After (0 = never refuse).
    pub backlog_max_age_ms: u64,
    /// How often each biller's oldest waiting payment is read.
    pub backlog_refresh_ms: u64,
}

impl IntakeConfig {
    pub fn backlog_policy(&self) -> crate::domain::backlog::BacklogPolicy {
        crate::domain::backlog::BacklogPolicy {
            max_age: (self.backlog_max_age_ms > 0)
                .then(|| std::time::Duration::from_millis(self.backlog_max_age_ms)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// File holding the base64 master key that seals channel secrets;
    /// created (mode 0600) on first use. `BILLCLEAR_SECURITY__MASTER_KEY`
    /// (the base64 key itself) takes precedence.
    pub master_key_file: PathBuf,
    pub master_key: Option<String>,
    /// Bearer token of the operators' API (`/ops/v1`); unset: that API is
    /// off. Prefer `BILLCLEAR_SECURITY__OPS_TOKEN` to writing it in a file.
    pub ops_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "billclear=debug,sqlx=warn".
    pub filter: String,
    /// "pretty" or "json".
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: DatabaseConfig {
                url: "postgres://postgres@127.0.0.1:5432/billclear".into(),
                max_connections: 32,
            },
            http: HttpConfig {
                listen: "127.0.0.1:8080".parse().expect("literal address"),
                max_body_bytes: 16 * 1024,
                max_concurrent_requests: 4096,
            },
            auth: AuthConfig {
                max_clock_skew_s: 300,
                key_cache_ttl_ms: 2_000,
                nonce_retention_s: 900,
            },
            intake: IntakeConfig {
                queue_capacity: 20_000,
                max_batch: 512,
                max_inflight_batches: 3,
                batch_fill_target: 64,
                batch_fill_wait_us: 2_000,
                biller_refresh_ms: 5_000,
                backlog_max_age_ms: 30_000,
                backlog_refresh_ms: 1_000,
            },
            security: SecurityConfig {
                master_key_file: ".billclear/master.key".into(),
                master_key: None,
                ops_token: None,
            },
            dispatch: DispatchConfig {
                concurrency: 256,
                claim_batch: 64,
                poll_ms: 100,
                lease_ms: 30_000,
                send_retry: RetryConfig {
                    base_ms: 1_000,
                    max_ms: 30_000,
                    max_attempts: 5,
                },
                inquiry_retry: RetryConfig {
                    base_ms: 2_000,
                    max_ms: 120_000,
                    max_attempts: 12,
                },
                not_found_answers: 2,
                not_found_grace_ms: 60_000,
                file_poll_ms: 5_000,
                commit_max_batch: 256,
                commit_max_inflight: 4,
            },
            callbacks: CallbackConfig {
                concurrency: 128,
                timeout_ms: 5_000,
                retry: RetryConfig {
                    base_ms: 1_000,
                    max_ms: 600_000,
                    max_attempts: 15,
                },
                endpoint_backoff_max_ms: 60_000,
                log_every_s: 60,
                ca_file: None,
            },
            inquiry: InquiryConfig {
                budget_per_s: 20,
                budgets: BTreeMap::new(),
                cache_ttl_ms: 30_000,
                cache_max_entries: 100_000,
            },
            routing: RoutingConfig {
                failures_to_open: 5,
                open_ms: 30_000,
                heartbeat_ms: 5_000,
            },
            connectors: BTreeMap::new(),
            recon: ReconConfig {
                dir: ".billclear/recon".into(),
                unknown_grace_hours: 24,
                sort_buffer_records: 200_000,
                settlement_currency: default_settlement_currency(),
                bank_accounts: Vec::new(),
                file_routes: Default::default(),
            },
            settlement: SettlementConfig {
                outbox_dir: ".billclear/settlement".into(),
                schedule: true,
                schedule_check_ms: 30_000,
                catch_up_days: 7,
                debtor: BankAccount {
                    name: "Billclear Clearing Services Co., Ltd.".into(),
                    account: "31050161373600000001".into(),
                    bic: "PCBCCNBJSHX".into(),
                },
            },
            amqp: AmqpConfig {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                other_urls: Vec::new(),
                exchange: "billclear.settlement".into(),
                queue: "billclear.settlement.work".into(),
                dead_letter_exchange: "billclear.settlement.dlx".into(),
                dead_letter_queue: "billclear.settlement.dead".into(),
                delivery_limit: 5,
                prefetch: 8,
                confirm_timeout_ms: 10_000,
                relay_batch: 64,
                relay_poll_ms: 500,
                reconnect: RetryConfig {
                    base_ms: 200,
                    max_ms: 10_000,
                    max_attempts: 1000,
                },
            },
            console: ConsoleConfig::default(),
            duties: DutiesConfig::default(),
            fleet: FleetConfig::default(),
            complaints: ComplaintsConfig::default(),
            log: LogConfig {
                filter: "info,sqlx=warn".into(),
                format: "pretty".into(),
            },
        }
    }
}

impl Config {
    /// Our bank accounts whose statements are accepted: `settlement.debtor`
    /// in `recon.settlement_currency`, then `recon.bank_accounts`.
    pub fn our_accounts(&self) -> anyhow::Result<Vec<crate::domain::recon::statement::OurAccount>> {
        use crate::domain::money::Currency;
        use crate::domain::recon::statement::OurAccount;
        let currency = |field: &str, code: &str| {
            Currency::from_code(code).map_err(|e| anyhow::anyhow!("{field} {code:?}: {e}"))
        };
        let mut out = vec![OurAccount {
            account: self.settlement.debtor.account.clone(),
            currency: currency("recon.settlement_currency", &self.recon.settlement_currency)?,
        }];
        for (i, a) in self.recon.bank_accounts.iter().enumerate() {
            if a.account.trim().is_empty() {
                anyhow::bail!("recon.bank_accounts[{i}].account is empty");
            }
            out.push(OurAccount {
                account: a.account.clone(),
                currency: currency(&format!("recon.bank_accounts[{i}].currency"), &a.currency)?,
            });
        }
        Ok(out)
    }

    /// Defaults, then the file (when given, or `billclear.toml` when present),
    /// then `BILLCLEAR_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(p) => {
                if !p.exists() {
                    anyhow::bail!("config file {} does not exist", p.display());
                }
                fig = fig.merge(Toml::file(p));
            }
            None if Path::new("billclear.toml").exists() => {
                fig = fig.merge(Toml::file("billclear.toml"))
            }
            None => {}
        }
        let cfg: Config = fig
            // Only nested keys (SECTION__KEY) are configuration; other
            // BILLCLEAR_* variables (BILLCLEAR_CONFIG, test settings) are not.
            .merge(
                Env::prefixed("BILLCLEAR_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            )
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.fleet.heartbeat_ms >= 50
                && self.fleet.stale_ms >= 2 * self.fleet.heartbeat_ms
                && self.fleet.stale_ms >= self.fleet.heartbeat_ms + 1_000,
            "fleet.stale_ms must be at least twice fleet.heartbeat_ms and at least fleet.heartbeat_ms + 1000 (a share is handed on only a second after its holder stopped)"
        );
        anyhow::ensure!(
            self.duties.check_ms >= 50 && self.duties.lease_ms >= 2 * self.duties.check_ms,
            "duties.lease_ms must be at least twice duties.check_ms (a holder renews several times per lease)"
        );
        anyhow::ensure!(
            self.complaints.poll_ms >= 10 && self.complaints.recheck_ms >= 10,
            "complaints.poll_ms and complaints.recheck_ms must be at least 10"
        );
        for (kind, days) in &self.complaints.turnaround_days {
            anyhow::ensure!(
                crate::domain::complaint::ComplaintKind::parse(kind).is_some(),
                "complaints.turnaround_days: unknown complaint type {kind:?} (types: not_credited, credited_to_wrong_account, paid_twice, amount_differs, refund_not_received)"
            );
            anyhow::ensure!(
                (1..=60).contains(days),
                "complaints.turnaround_days.{kind} must be 1..=60 business days"
            );
        }
        anyhow::ensure!(
            self.console.time_zone.parse::<chrono_tz::Tz>().is_ok(),
            "console.time_zone {:?} is not an IANA time zone name (e.g. Asia/Shanghai)",
            self.console.time_zone
        );
        anyhow::ensure!(
            self.console.idle_timeout_s >= 60
                && self.console.max_session_s >= self.console.idle_timeout_s,
            "console.idle_timeout_s must be at least 60 and at most console.max_session_s"
        );
        anyhow::ensure!(
            (10..=500).contains(&self.console.page_size),
            "console.page_size must be 10..=500"
        );
        anyhow::ensure!(
            self.database.max_connections >= 2,
            "database.max_connections must be at least 2"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.intake.max_batch),
            "intake.max_batch must be 1..=10000"
        );
        anyhow::ensure!(
            self.intake.batch_fill_wait_us <= 50_000,
            "intake.batch_fill_wait_us must be at most 50000 (50 ms)"
        );
        anyhow::ensure!(
            self.intake.max_inflight_batches >= 1,
            "intake.max_inflight_batches must be at least 1"
        );
        anyhow::ensure!(
            self.auth.nonce_retention_s > 2 * self.auth.max_clock_skew_s,
            "auth.nonce_retention_s must exceed twice auth.max_clock_skew_s, or a replay could slip through"
        );
        anyhow::ensure!(
            (1024..=1024 * 1024).contains(&self.http.max_body_bytes),
            "http.max_body_bytes must be 1 KiB..1 MiB"
        );
        for (name, r) in [
            ("dispatch.send_retry", &self.dispatch.send_retry),
            ("dispatch.inquiry_retry", &self.dispatch.inquiry_retry),
            ("callbacks.retry", &self.callbacks.retry),
            ("amqp.reconnect", &self.amqp.reconnect),
        ] {
            anyhow::ensure!(
                r.base_ms >= 1 && r.max_ms >= r.base_ms && (1..=1000).contains(&r.max_attempts),
                "{name}: need 1 <= base_ms <= max_ms and 1 <= max_attempts <= 1000"
            );
        }
        anyhow::ensure!(
            self.dispatch.concurrency >= 1 && self.callbacks.concurrency >= 1,
            "dispatch.concurrency and callbacks.concurrency must be at least 1"
        );
        anyhow::ensure!(
            (100..=60_000).contains(&self.intake.backlog_refresh_ms),
            "intake.backlog_refresh_ms must be 100 to 60000"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.dispatch.commit_max_batch)
                && (1..=16).contains(&self.dispatch.commit_max_inflight),
            "dispatch.commit_max_batch must be 1 to 10000 and dispatch.commit_max_inflight 1 to 16"
        );
        anyhow::ensure!(
            self.inquiry.budget_per_s >= 1 && self.inquiry.budgets.values().all(|b| *b >= 1),
            "inquiry budgets must be at least 1 per second"
        );
        anyhow::ensure!(
            self.routing.failures_to_open >= 1 && self.routing.heartbeat_ms >= 100,
            "routing.failures_to_open must be at least 1 and routing.heartbeat_ms at least 100"
        );
        anyhow::ensure!(
            self.dispatch.not_found_answers >= 1,
            "dispatch.not_found_answers must be at least 1"
        );
        // A worker that lost its lease mid-send must not be able to reach
        // the biller after another one took "not found" as final.
        anyhow::ensure!(
            self.dispatch.not_found_grace_ms >= self.dispatch.lease_ms,
            "dispatch.not_found_grace_ms must be at least dispatch.lease_ms"
        );
        anyhow::ensure!(
            self.amqp.delivery_limit >= 1 && self.amqp.prefetch >= 1 && self.amqp.relay_batch >= 1,
            "amqp.delivery_limit, amqp.prefetch and amqp.relay_batch must be at least 1"
        );
        self.settlement
            .debtor
            .check()
            .map_err(|e| anyhow::anyhow!("settlement.debtor: {e}"))?;
        anyhow::ensure!(
            self.settlement.schedule_check_ms >= 100,
            "settlement.schedule_check_ms must be at least 100"
        );
        for (id, c) in &self.connectors {
            crate::domain::ids::ConnectorId::parse(id)?;
            // A lease shorter than a call would let a second process take
            // work whose call is still running.
            anyhow::ensure!(
                self.dispatch.lease_ms >= 2 * c.timeout_ms + 1_000,
                "dispatch.lease_ms ({}) must be at least 2 x connectors.{id}.timeout_ms + 1000",
                self.dispatch.lease_ms
            );
        }
        Ok(())
    }
}

/// Hides a password in a database or broker URL (`postgres://user:***@…`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_password_in_a_url_is_hidden() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            super::redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
    }

    use super::*;

    #[test]
    fn example_file_is_complete_and_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billclear.example.toml");
        let cfg: Config = Figment::new()
            .merge(Toml::file(&example))
            .extract()
            .expect("example config parses with no defaults");
        cfg.check().unwrap();
        // The example documents the defaults: the two must not drift apart
        // (the master key itself is never written in the example).
        let as_toml = |c: &Config| toml::Value::try_from(c).expect("config serializes");
        assert_eq!(
            as_toml(&cfg),
            as_toml(&Config::default()),
            "ops/billclear.example.toml differs from Config::default()"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[database]\nurl = \"postgres://a/b\"\n")?;
            jail.set_env("BILLCLEAR_DATABASE__MAX_CONNECTIONS", "7");
            jail.set_env("BILLCLEAR_CONFIG", "c.toml");
            jail.set_env("BILLCLEAR_TEST_DATABASE_URL", "postgres://elsewhere/x");
            let cfg = Config::load(Some(Path::new("c.toml"))).expect("loads");
            assert_eq!(cfg.database.url, "postgres://a/b");
            assert_eq!(cfg.database.max_connections, 7);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn a_file_kind_is_pointed_at_another_connector_by_configuration() {
        use crate::domain::recon::FileKind;
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[recon.file_routes]\nwater-csv = \"qingpu-water\"\n",
            )?;
            let cfg = Config::load(Some(Path::new("c.toml"))).expect("loads");
            let routes = &cfg.recon.file_routes;
            assert_eq!(routes.connector(FileKind::WaterCsv), Some("qingpu-water"));
            // The others keep their defaults; bank files report on none.
            assert_eq!(routes.connector(FileKind::HubStatement), Some("hub"));
            assert_eq!(routes.connector(FileKind::Camt053), None);
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[recon.file_routes]\nwater-xls = \"x\"\n")?;
            assert!(
                Config::load(Some(Path::new("c.toml"))).is_err(),
                "unknown kind"
            );
            Ok(())
        });
    }
}
