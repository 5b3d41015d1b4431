//! Test helpers: a fresh database per test, the API on a random port, signed
//! clients for two channels, and a ledger audit at the end of every test.
#![allow(dead_code)]

use std::sync::Arc;

use billclear::auth::secrets::MasterKey;
use billclear::client::SignedClient;
use billclear::config::Config;
use billclear::config::ConnectorSettings;
use billclear::dispatch::Workers;
use billclear::domain::channel::{Channel, ChannelStatus};
use billclear::domain::ids::ChannelId;
use billclear::domain::ids::PaymentId;
use billclear::domain::payment::PaymentStatus;
use billclear::receiver::CallbackReceiver;
use billclear::startup::{Parts, Service};
use billclear::state::AppState;
use billclear::store::postgres::{self, PgStore};
use billclear::store::{BillerStore, LedgerStore, PaymentStore, Store};
use biller_sim::{
    book_for, default_book, CreditRecord, GasSim, GasSimConfig, HubSim, HubSimConfig, PowerSim,
    PowerSimConfig, WaterSim, WaterSimConfig,
};

pub fn server_url() -> String {
    std::env::var("BILLCLEAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestApp {
    pub base: String,
    pub db_name: String,
    pub store: Arc<PgStore>,
    pub state: AppState,
    /// Channel "alipay" and its client.
    pub alipay: SignedClient,
    /// Channel "wechat" and its client.
    pub wechat: SignedClient,
    pub master_key: MasterKey,
    /// The master key as `BILLCLEAR_SECURITY__MASTER_KEY` takes it (for
    /// `billclear` processes the test starts).
    pub master_key_base64: String,
    /// With `Options::dispatch`: the water simulator behind `water-direct`,
    /// the channels' callback receiver and this process's workers.
    pub sim: Option<WaterSim>,
    /// With `Options::hub`: the intermediary hub, the billers' first route.
    pub hub: Option<HubSim>,
    /// With `Options::direct_all`: the electricity and gas companies.
    pub power: Option<PowerSim>,
    pub gas: Option<GasSim>,
    /// With `Options::coop`: the co-op, reached by files (route `coop-file`).
    pub coop: Option<biller_sim::CoopSim>,
    pub coop_dir: Option<std::path::PathBuf>,
    pub receiver: Option<CallbackReceiver>,
    pub workers: Option<Workers>,
}

pub struct Options {
    pub key_cache_ttl_ms: u64,
    pub rate_limit_rps: u32,
    pub max_body_bytes: usize,
    /// Start the water simulator, the callback receiver and the workers.
    pub dispatch: bool,
    /// The connector's timeout and the dispatch lease.
    pub connector_timeout_ms: u64,
    pub lease_ms: u64,
    /// Callbacks over https to a receiver with a test CA's certificate;
    /// `trust_callback_ca` adds that CA to `callbacks.ca_file`.
    pub tls_callbacks: bool,
    pub trust_callback_ca: bool,
    /// Also start the hub simulator as connector `hub` (the first route of
    /// the water billers), with fast circuit breakers.
    pub hub: bool,
    /// Also start the electricity (XML) and gas (TCP) simulators as
    /// connectors `power-direct` and `gas-direct`.
    pub direct_all: bool,
    /// Also start the co-op simulator on a temporary directory, as the file
    /// route `coop-file`.
    pub coop: bool,
    /// The water route's `max_in_flight` and `max_per_second` (0: defaults).
    pub water_max_in_flight: u32,
    pub water_max_per_second: u32,
    /// Push-back: `intake.backlog_max_age_ms` and `backlog_refresh_ms`.
    pub backlog_max_age_ms: u64,
    pub backlog_refresh_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_cache_ttl_ms: 0,
            rate_limit_rps: 100_000,
            max_body_bytes: 16 * 1024,
            dispatch: false,
            connector_timeout_ms: 300,
            lease_ms: 1_600,
            tls_callbacks: false,
            trust_callback_ca: true,
            hub: false,
            direct_all: false,
            coop: false,
            water_max_in_flight: 0,
            water_max_per_second: 0,
            backlog_max_age_ms: 30_000,
            backlog_refresh_ms: 1_000,
        }
    }
}

pub const SIM_KEY_ID: &str = "billclear-test";
/// The operators' API token of every test app.
pub const OPS_TOKEN: &str = "test-ops-token-0123456789";
pub const SIM_SECRET: &str = "water-sim-test-secret";

/// Fast retries so that tests see many rounds in little time.
pub fn dispatch_config(config: &mut Config, sim: &WaterSim, opts: &Options) {
    config.connectors.insert(
        "water-direct".into(),
        ConnectorSettings {
            kind: biller_connectors::ConnectorKind::WaterJson,
            allow_plaintext: true,
            base_url: sim.base_url(),
            key_id: SIM_KEY_ID.into(),
            secret: SIM_SECRET.into(),
            timeout_ms: opts.connector_timeout_ms,
            max_in_flight: opts.water_max_in_flight,
            max_per_second: opts.water_max_per_second,
            ..Default::default()
        },
    );
    let d = &mut config.dispatch;
    d.poll_ms = 20;
    d.lease_ms = opts.lease_ms;
    d.send_retry.base_ms = 50;
    d.send_retry.max_ms = 400;
    d.send_retry.max_attempts = 5;
    d.inquiry_retry.base_ms = 100;
    d.inquiry_retry.max_ms = 400;
    d.inquiry_retry.max_attempts = 30;
    d.not_found_answers = 2;
    // At least the lease, and longer than any latency the tests give the
    // biller: a request still being processed must not be taken for one
    // never received.
    d.not_found_grace_ms = 2_000;
    d.file_poll_ms = 100;
    // Circuits that open and probe in fractions of a second.
    config.routing.failures_to_open = 3;
    config.routing.open_ms = 500;
    config.routing.heartbeat_ms = 100;
    config.callbacks.timeout_ms = 1_000;
    config.callbacks.retry.base_ms = 50;
    config.callbacks.retry.max_ms = 400;
    config.callbacks.retry.max_attempts = 8;
    config.callbacks.endpoint_backoff_max_ms = 400;
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        // RUST_LOG=billclear=debug shows the service's logs in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let server = server_url();
        let db_name = format!("billclear_test_{}", uuid::Uuid::new_v4().simple());
        let url = postgres::create_database(&server, &db_name)
            .await
            .expect("create test database");
        let store = PgStore::connect(&url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let billers = billclear::config::billers_file::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml"),
        )
        .expect("seed billers");
        store
            .upsert_billers(&billers)
            .await
            .expect("import billers");
        let master_key_base64 = MasterKey::generate_base64();
        let master_key = MasterKey::from_base64(&master_key_base64).unwrap();
        let (sim, receiver) = if opts.dispatch {
            let mut cfg = WaterSimConfig::new(SIM_KEY_ID, SIM_SECRET);
            cfg.book = default_book();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let sim = WaterSim::start(listener, cfg)
                .await
                .expect("water simulator");
            let receiver = if opts.tls_callbacks {
                let (cert, key) = test_certificate();
                CallbackReceiver::start_tls(&cert, &key)
                    .await
                    .expect("tls receiver")
            } else {
                CallbackReceiver::start().await.expect("receiver")
            };
            (Some(sim), Some(receiver))
        } else {
            (None, None)
        };
        let hub = if opts.hub {
            let mut cfg = HubSimConfig::new(SIM_KEY_ID, SIM_SECRET);
            cfg.book = biller_sim::hub::default_hub_book(chrono::Utc::now().date_naive());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            Some(HubSim::start(listener, cfg).await.expect("hub simulator"))
        } else {
            None
        };
        let (power, gas) = if opts.direct_all {
            let today = chrono::Utc::now().date_naive();
            let mut pc = PowerSimConfig::new(SIM_KEY_ID, SIM_SECRET);
            pc.book = book_for(&["sh-power"], today);
            let power = PowerSim::start(
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                pc,
            )
            .await
            .expect("power simulator");
            let mut gc = GasSimConfig::new(SIM_KEY_ID, SIM_SECRET);
            gc.book = book_for(&["sh-gas", "minhang-gas"], today);
            let gas = GasSim::start(
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                gc,
            )
            .await
            .expect("gas simulator");
            (Some(power), Some(gas))
        } else {
            (None, None)
        };
        let coop_dir = opts
            .coop
            .then(|| std::env::temp_dir().join(format!("{db_name}-coop")));
        let coop = match &coop_dir {
            Some(dir) => {
                let mut cc = biller_sim::CoopSimConfig::new(dir.join("drop"), dir.join("ack"));
                cc.poll_ms = 50;
                cc.book = book_for(&["chongming-coop"], chrono::Utc::now().date_naive());
                Some(biller_sim::CoopSim::start(cc).expect("co-op simulator"))
            }
            None => None,
        };
        let mut clients = Vec::new();
        for (id, name) in [("alipay", "Alipay"), ("wechat", "WeChat Pay")] {
            let channel = Channel {
                id: ChannelId::parse(id).unwrap(),
                name: name.into(),
                callback_url: receiver
                    .as_ref()
                    .map(|r| r.url(id))
                    .unwrap_or_else(|| format!("http://127.0.0.1:9/{id}")),
                status: ChannelStatus::Active,
                rate_limit_rps: opts.rate_limit_rps,
            };
            let (key_id, secret) =
                billclear::auth::channel_keys::create_channel(&store, &master_key, &channel)
                    .await
                    .expect("add channel");
            if let Some(r) = &receiver {
                r.add_key(&key_id, secret.expose_text());
            }
            clients.push((key_id, secret.expose_text().to_string()));
        }
        let mut config = Config::default();
        config.database.url = url;
        config.auth.key_cache_ttl_ms = opts.key_cache_ttl_ms;
        config.http.max_body_bytes = opts.max_body_bytes;
        config.intake.backlog_max_age_ms = opts.backlog_max_age_ms;
        config.intake.backlog_refresh_ms = opts.backlog_refresh_ms;
        config.security.ops_token = Some(OPS_TOKEN.into());
        // Settlement files in a directory, and RabbitMQ names, of this test's own.
        config.settlement.outbox_dir = std::env::temp_dir().join(format!("{db_name}-settlement"));
        config.settlement.schedule = false;
        // Duties (relay, file routes, closing) change hands quickly in
        // tests that stop one process and start another.
        config.duties.lease_ms = 1_500;
        config.duties.check_ms = 250;
        // Complaints looked at quickly, a silent biller asked again soon.
        config.complaints.poll_ms = 50;
        config.complaints.recheck_ms = 200;
        config.recon.dir = std::env::temp_dir().join(format!("{db_name}-recon"));
        config.amqp = config.amqp.scoped(&db_name);
        if let Some(sim) = &sim {
            dispatch_config(&mut config, sim, &opts);
            if let Some(hub) = &hub {
                config.connectors.insert(
                    "hub".into(),
                    ConnectorSettings {
                        kind: biller_connectors::ConnectorKind::HubJson,
                        allow_plaintext: true,
                        base_url: hub.base_url(),
                        key_id: SIM_KEY_ID.into(),
                        secret: SIM_SECRET.into(),
                        timeout_ms: opts.connector_timeout_ms,
                        ..Default::default()
                    },
                );
            }
            if let Some(dir) = &coop_dir {
                config.connectors.insert(
                    "coop-file".into(),
                    ConnectorSettings {
                        kind: biller_connectors::ConnectorKind::CoopFile,
                        allow_plaintext: true,
                        base_url: format!("file://{}", dir.display()),
                        key_id: "chongming-coop".into(),
                        secret: "-".into(),
                        timeout_ms: opts.connector_timeout_ms,
                        ..Default::default()
                    },
                );
            }
            for (id, kind, base_url) in [
                (
                    "power-direct",
                    "power-xml",
                    power.as_ref().map(|p| p.base_url()),
                ),
                ("gas-direct", "gas-tcp", gas.as_ref().map(|g| g.address())),
            ] {
                if let Some(base_url) = base_url {
                    config.connectors.insert(
                        id.into(),
                        ConnectorSettings {
                            kind: kind.parse().expect("a connector kind"),
                            allow_plaintext: true,
                            base_url,
                            key_id: SIM_KEY_ID.into(),
                            secret: SIM_SECRET.into(),
                            timeout_ms: opts.connector_timeout_ms,
                            ..Default::default()
                        },
                    );
                }
            }
            if opts.tls_callbacks && opts.trust_callback_ca {
                let path = std::env::temp_dir().join(format!("{db_name}-ca.pem"));
                std::fs::write(&path, test_certificate().0).unwrap();
                config.callbacks.ca_file = Some(path);
            }
            config.check().expect("test config is valid");
        }
        let store = Arc::new(store);
        let dyn_store: Arc<dyn Store> = store.clone();
        let parts = Parts {
            worker: "test-worker-1".into(),
            dispatch: opts.dispatch,
            ..Parts::api_only()
        };
        let service = Service::start(dyn_store, master_key.clone(), config, parts)
            .await
            .expect("the service starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = service.spawn_api(listener).unwrap();
        let Service { state, workers, .. } = service;
        TestApp {
            alipay: SignedClient::new(&base, &clients[0].0, &clients[0].1),
            wechat: SignedClient::new(&base, &clients[1].0, &clients[1].1),
            base,
            db_name,
            store,
            state,
            master_key,
            master_key_base64,
            sim,
            hub,
            power,
            gas,
            coop,
            coop_dir,
            receiver,
            workers,
        }
    }

    /// Every simulator's credits together: a payment credited once
    /// through the hub and once direct is a double credit.
    pub fn all_credits(&self) -> Vec<CreditRecord> {
        let mut credits = Vec::new();
        credits.extend(self.sim.iter().flat_map(|s| s.credits()));
        credits.extend(self.hub.iter().flat_map(|s| s.credits()));
        credits.extend(self.power.iter().flat_map(|s| s.credits()));
        credits.extend(self.gas.iter().flat_map(|s| s.credits()));
        credits.extend(self.coop.iter().flat_map(|s| s.credits()));
        credits
    }

    pub fn sim(&self) -> &WaterSim {
        self.sim.as_ref().expect("spawned with dispatch")
    }

    pub fn receiver(&self) -> &CallbackReceiver {
        self.receiver.as_ref().expect("spawned with dispatch")
    }

    /// Submits a water payment from alipay; returns its id.
    pub async fn pay(&self, account: &str, amount: &str) -> PaymentId {
        self.pay_to("sh-water", account, amount).await
    }

    /// Submits a payment to any biller from alipay; returns its id.
    pub async fn pay_to(&self, biller: &str, account: &str, amount: &str) -> PaymentId {
        let reference = uuid::Uuid::new_v4().simple().to_string();
        let body = serde_json::json!({
            "biller_id": biller,
            "account_number": account,
            "amount": amount,
            "currency": "CNY",
            "channel_reference": reference,
        });
        let r = self.alipay.post_payment(&reference, &body).await.unwrap();
        assert_eq!(r.status, 201, "payment accepted: {:?}", r.json());
        PaymentId(r.json()["id"].as_str().unwrap().parse().unwrap())
    }

    /// Pays sh-water `amounts` and waits until each is CONFIRMED.
    pub async fn pay_confirmed(&self, amounts: &[&str]) -> Vec<PaymentId> {
        let mut ids = Vec::new();
        for a in amounts {
            ids.push(self.pay("3100000011", a).await);
        }
        for id in &ids {
            self.wait_for(*id, &[PaymentStatus::Confirmed], 20).await;
        }
        ids
    }

    pub async fn status(&self, id: PaymentId) -> PaymentStatus {
        let channel = ChannelId::parse("alipay").unwrap();
        self.store
            .payment(&channel, id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Waits until the payment is in one of `want` (panics after `secs`).
    pub async fn wait_for(
        &self,
        id: PaymentId,
        want: &[PaymentStatus],
        secs: u64,
    ) -> PaymentStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let s = self.status(id).await;
            if want.contains(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "payment {id} is {s:?} after {secs} s, wanted {want:?}; events: {:?}",
                self.store.payment_events(id).await.unwrap()
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Waits until the channel acknowledged `n` distinct callback events.
    pub async fn wait_callbacks(&self, n: usize, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while self.receiver().acknowledged().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} callbacks acknowledged after {secs} s",
                self.receiver().acknowledged().len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// (kind, outcome) of every attempt for a payment, in order.
    pub async fn attempts(&self, id: PaymentId) -> Vec<(String, Option<String>)> {
        sqlx::query_as(
            "SELECT kind, outcome FROM dispatch_attempts WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.store.pool())
        .await
        .unwrap()
    }

    /// Moves a payment's confirmation time (cut-off tests).
    pub async fn set_confirmed_at(&self, id: PaymentId, at: chrono::DateTime<chrono::Utc>) {
        // Both the biller's credit time and ours (updated_at of a CONFIRMED
        // payment is when we committed the confirmation).
        sqlx::query("UPDATE payments SET confirmed_at = $2, updated_at = $2 WHERE id = $1")
            .bind(id.0)
            .bind(at)
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    /// The billers as stored (with their settlement terms).
    pub async fn store_billers(&self) -> Vec<billclear::domain::biller::Biller> {
        self.store.load_billers().await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    /// Pending and posted balance of a ledger account that must exist.
    pub async fn balance(&self, account: &str) -> billclear::domain::ledger::Balance {
        self.store
            .balance(account)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no account {account}"))
    }

    /// Counts of everything a request could have written.
    pub async fn footprint(&self) -> [i64; 6] {
        [
            self.count("payments").await,
            self.count("idempotency_keys").await,
            self.count("ledger_journals").await,
            self.count("ledger_entries").await,
            self.count("payment_events").await,
            self.count("outbox").await,
        ]
    }

    /// The simulator's book against ours (`demo::books::compare`): every
    /// CONFIRMED payment credited exactly once for its amount, nothing else
    /// credited, each biller's posted payable equal to its credits.
    pub async fn assert_books_match(&self) {
        let Some(sim) = &self.sim else { return };
        let _ = sim;
        let credits = self.all_credits();
        let comparison = billclear::demo::books::compare(
            &self.store,
            &[
                "sh-water",
                "pudong-water",
                "sh-power",
                "sh-gas",
                "minhang-gas",
                "chongming-coop",
            ],
            &credits,
        )
        .await
        .unwrap();
        assert!(
            comparison.agrees(),
            "our books and the biller's differ: {comparison:?}"
        );
    }

    pub async fn finish(self) {
        if let Some(w) = &self.workers {
            w.abort();
        }
        self.assert_books_match().await;
        self.close().await;
    }

    /// Stops everything, checks the ledger's own invariants and drops the
    /// database; for a test whose books must differ from the billers' (it
    /// compares them itself).
    pub async fn close(self) {
        if let Some(w) = &self.workers {
            w.abort();
        }
        if let Some(sim) = &self.sim {
            sim.shutdown();
        }
        if let Some(hub) = &self.hub {
            hub.shutdown();
        }
        if let Some(power) = &self.power {
            power.shutdown();
        }
        if let Some(gas) = &self.gas {
            gas.shutdown();
        }
        if let Some(coop) = &self.coop {
            coop.shutdown();
        }
        if let Some(dir) = &self.coop_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_dir_all(&self.state.config.settlement.outbox_dir);
        let _ = std::fs::remove_dir_all(&self.state.config.recon.dir);
        if let Some(r) = &self.receiver {
            r.stop();
        }
        let audit = self.store.audit().await.expect("audit");
        assert!(audit.balanced(), "ledger does not balance: {audit:?}");
        assert!(
            audit.payments_exactly_once(),
            "payments without exactly one transfer: {audit:?}"
        );
        self.store.pool().close().await;
        let _ = postgres::drop_database(&server_url(), &self.db_name).await;
    }
}

/// A self-signed certificate for 127.0.0.1 (PEM certificate, PEM key),
/// made once per test binary; the certificate is its own CA.
pub fn test_certificate() -> (String, String) {
    static CERT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("test certificate");
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    })
    .clone()
}

pub fn payment_body(reference: &str) -> serde_json::Value {
    serde_json::json!({
        "biller_id": "sh-water",
        "account_number": "3100000011",
        "amount": "88.50",
        "currency": "CNY",
        "channel_reference": reference,
    })
}

/// Shanghai time (the example billers' cut-off zone).
pub fn shanghai() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

/// Midnight starting `date` in Shanghai, in UTC.
pub fn midnight(date: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    shanghai()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

impl TestApp {
    /// A call with a staff bearer token (a JSON body unless `body` is null).
    pub async fn staff_call(
        &self,
        method: hyper::Method,
        path: &str,
        body: serde_json::Value,
        token: &str,
    ) -> billclear::client::Reply {
        SignedClient::new(&self.base, "", "")
            .send(
                method,
                path,
                if body.is_null() {
                    Vec::new()
                } else {
                    body.to_string().into_bytes()
                },
                billclear::client::Extra {
                    authorization: Some(format!("Bearer {token}")),
                    headers: vec![("content-type".into(), "application/json".into())],
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    /// The route a payment went (or was re-sent) through.
    pub async fn connector_of(&self, id: PaymentId) -> Option<String> {
        sqlx::query_scalar("SELECT connector_id FROM payments WHERE id = $1")
            .bind(id.0)
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }

    /// Writes `text` as `dir/name` and imports it as a file of `source`
    /// for `date` into the recon directory `dir/recon`.
    pub async fn import_recon_file(
        &self,
        dir: &std::path::Path,
        source: &str,
        name: &str,
        date: chrono::NaiveDate,
        text: &str,
    ) -> billclear::reconcile::import::Imported {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        billclear::reconcile::import::import_file(
            self.store.as_ref(),
            &dir.join("recon"),
            &our_accounts(),
            source,
            &path,
            None,
            Some(date),
            "test",
            chrono::Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Another process on this app's database, as a second `billclear
    /// serve` would be: its own pool, caches and fleet membership, `config`
    /// (the app's, changed as a test needs) and `parts`.
    pub async fn another_process(&self, config: Config, parts: Parts) -> Service {
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect(&postgres::with_database(&server_url(), &self.db_name), 8)
                .await
                .unwrap(),
        );
        Service::start(store, self.master_key.clone(), config, parts)
            .await
            .unwrap()
    }

    /// A planned route switch, as an operator makes it: over the operators'
    /// API. The route becomes the biller's preferred one.
    pub async fn switch_route(&self, biller: &str, route: &str) {
        let r = self
            .alipay
            .send(
                hyper::Method::PUT,
                &format!("/ops/v1/billers/{biller}/route"),
                format!(r#"{{"route":"{route}"}}"#).into_bytes(),
                billclear::client::Extra {
                    authorization: Some(format!("Bearer {OPS_TOKEN}")),
                    headers: vec![("content-type".into(), "application/json".into())],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["routes"][0]["id"], route);
        assert_eq!(r.json()["routes"][0]["preferred"], true);
    }
}

/// Our bank accounts as the example configuration has them (the settlement
/// account in CNY).
pub fn our_accounts() -> Vec<billclear::domain::recon::statement::OurAccount> {
    billclear::config::Config::default()
        .our_accounts()
        .expect("the default accounts")
}

impl TestApp {
    /// A break as a reconciliation run records it (a run row and the break,
    /// open), for console tests that need breaks without a whole run.
    pub async fn seed_break(
        &self,
        scope: &str,
        category: &str,
        subject: &str,
        ours: Option<i64>,
        theirs: Option<i64>,
        detail: &str,
    ) -> i64 {
        let pool = self.store.pool();
        let date = chrono::Utc::now().date_naive();
        let run: i64 = sqlx::query_scalar(
            "INSERT INTO recon_runs (business_date, scope, started_at, finished_at, run_by, file_ids)
             VALUES ($1, $2, now(), now(), 'test', '{}') RETURNING id",
        )
        .bind(date)
        .bind(scope)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query_scalar(
            "INSERT INTO recon_breaks (business_date, scope, category, subject, our_reference, their_reference,
                                       our_amount_minor, their_amount_minor, currency, detail, evidence, status,
                                       first_run, last_run, found_by_run, opened_at, updated_at)
             VALUES ($1, $2, $3, $4, $4, '', $5, $6, 'CNY', $7, '[]', 'open', $8, $8, $8, now(), now())
             RETURNING id",
        )
        .bind(date)
        .bind(scope)
        .bind(category)
        .bind(subject)
        .bind(ours)
        .bind(theirs)
        .bind(detail)
        .bind(run)
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// A console client signed in as a new staff user of `role`; returns
    /// the client and the user's token.
    pub async fn console_as(
        &self,
        id: &str,
        role: billclear::domain::staff::StaffRole,
    ) -> (billclear::client::ConsoleClient, String) {
        let (_, token) = billclear::cli::staff::add_staff(&*self.store, id, id, role)
            .await
            .unwrap();
        let token = token.expose_text().to_string();
        let mut c = billclear::client::ConsoleClient::new(&self.base);
        let r = c.sign_in(&token).await.unwrap();
        assert_eq!(r.status, 303, "sign-in as {id}: {}", r.text());
        (c, token)
    }
}
