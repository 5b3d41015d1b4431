//! Test helpers: a fresh database per test, the API on a random port, signed
//! clients for two channels, and a ledger audit at the end of every test.
#![allow(dead_code)]

use std::sync::Arc;

use billclear::api::AppState;
use billclear::auth::secrets::MasterKey;
use billclear::client::SignedClient;
use billclear::config::Config;
use billclear::domain::channel::{Channel, ChannelStatus};
use billclear::domain::ids::ChannelId;
use billclear::store::postgres::{self, PgStore};
use billclear::store::{BillerStore, LedgerStore, Store};

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
}

pub struct Options {
    pub key_cache_ttl_ms: u64,
    pub rate_limit_rps: u32,
    pub max_body_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            key_cache_ttl_ms: 0,
            rate_limit_rps: 100_000,
            max_body_bytes: 16 * 1024,
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> TestApp {
        let server = server_url();
        let db_name = format!("billclear_test_{}", uuid::Uuid::new_v4().simple());
        let url = postgres::create_database(&server, &db_name)
            .await
            .expect("create test database");
        let store = PgStore::connect(&url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let billers = billclear::cli::billers_file::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/billers.example.toml"),
        )
        .expect("seed billers");
        store
            .upsert_billers(&billers)
            .await
            .expect("import billers");
        let master_key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let mut clients = Vec::new();
        for (id, name) in [("alipay", "Alipay"), ("wechat", "WeChat Pay")] {
            let channel = Channel {
                id: ChannelId::parse(id).unwrap(),
                name: name.into(),
                callback_url: format!("http://127.0.0.1:9/{id}"),
                status: ChannelStatus::Active,
                rate_limit_rps: opts.rate_limit_rps,
            };
            let (key_id, secret) = billclear::cli::add_channel(&store, &master_key, &channel)
                .await
                .expect("add channel");
            clients.push((key_id, secret.expose_text().to_string()));
        }
        let mut config = Config::default();
        config.database.url = url;
        config.auth.key_cache_ttl_ms = opts.key_cache_ttl_ms;
        config.http.max_body_bytes = opts.max_body_bytes;
        let store = Arc::new(store);
        let dyn_store: Arc<dyn Store> = store.clone();
        let state = AppState::start(dyn_store, master_key.clone(), config)
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(billclear::api::serve(
            listener,
            state.clone(),
            std::future::pending(),
        ));
        TestApp {
            alipay: SignedClient::new(&base, &clients[0].0, &clients[0].1),
            wechat: SignedClient::new(&base, &clients[1].0, &clients[1].1),
            base,
            db_name,
            store,
            state,
            master_key,
        }
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

    /// Asserts the ledger balances and every payment has exactly one
    /// pending transfer, then drops the database.
    pub async fn finish(self) {
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

pub fn payment_body(reference: &str) -> serde_json::Value {
    serde_json::json!({
        "biller_id": "sh-water",
        "account_number": "3100000011",
        "amount": "88.50",
        "currency": "CNY",
        "channel_reference": reference,
    })
}
