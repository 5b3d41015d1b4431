//! The intermediary hub simulator: a real HTTP server speaking the hub API
//! of [`biller_connectors::hub::codec`] in front of several billers, with its own book,
//! its own transaction references (`hubTxnId`), its daily statement file,
//! and the admin endpoints under `/_sim/`.
//!
//! * The billers it serves are those its book has accounts for; any other
//!   `billerCode` is refused with `1001` (recorded as a failed transaction).
//! * Payments are idempotent on `partnerRef` (OUR reference): the same
//!   reference with the same details gets the original answer again
//!   (`repeated: true`); with other details `2009`, nothing applied.
//! * Business refusals (`1001`, `2001`-`2004`) are recorded as failed
//!   transactions (they have a `hubTxnId`, appear in the statement and in
//!   the status inquiry) and in [`HubSim::rejections`].
//! * [`CreditRecord::biller_reference`] is the `hubTxnId`; the biller's own
//!   receipt is in [`HubTxn::biller_receipt`].
//!
//! # Faults
//!
//! Every [`Faults`] switch, as in the water simulator, with the hub's
//! codes: `outage` → 503 / `5031` (hub maintenance), nothing applied;
//! `error_rate` → 503 / `5030` (biller unavailable behind the hub), not
//! applied; `blackhole`, `latency_ms`, `drop_response_rate`,
//! `drop_response_next`, `misecho_next` as in the water simulator.
//! `duplicate_answer_next` and `out_of_order` are ignored (HTTP answers
//! each request once, in its own exchange).
//!
//! Hub-specific switches ([`HubSwitches`], `PUT /_sim/hub`):
//! * `cut_off`: the hub suspends our merchant: every signed request is
//!   answered HTTP 403 / `4030` ("merchant suspended"), nothing applied.
//! * `billers_down`: payments and bill inquiries for these biller ids are
//!   answered 503 / `5030`, not applied (a repeated payment already decided
//!   is still answered from the hub's records; status inquiries work).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{FixedOffset, NaiveDate, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::book::Book;
use crate::http::{accept_loop, admin_routes, stopped, Admin, SimSecurity};
use crate::{lock, Account, CreditRecord, Faults, RejectRecord};
use biller_connectors::hub::codec::{
    self, BillsAnswer, BillsInquiry, HubBill, PaymentAnswer, PaymentRequest, PaymentStatus, Reply,
    StatusAnswer, TxnState,
};
pub use biller_connectors::hub::statement::{
    write as statement_csv, HubTxn, COLUMNS as STATEMENT_COLUMNS, MARK as STATEMENT_MARK,
};
use biller_connectors::transport::mask_account;

/// The billers the `biller-sim hub` binary fronts by default.
pub const HUB_BILLERS: &[&str] = &[
    "sh-water",
    "pudong-water",
    "sh-power",
    "sh-gas",
    "minhang-gas",
];

/// The default book of the hub: [`crate::book_for`] of [`HUB_BILLERS`],
/// the same customers as the direct simulators know.
pub fn default_hub_book(today: NaiveDate) -> Vec<(String, Account)> {
    crate::book_for(HUB_BILLERS, today)
}

/// The largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a request is held when its answer is withheld (blackhole,
/// dropped answer); the client has given up long before.
const HOLD: Duration = Duration::from_secs(600);
/// How far a request's timestamp (ms) may be from the simulator's clock.
const TIMESTAMP_WINDOW_MS: i64 = 300_000;
/// The largest payment accepted.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// Bounds of the `billers_down` switch.
const MAX_BILLERS_DOWN: usize = 64;
const MAX_BILLER_ID_LEN: usize = 64;

/// How the hub simulator is set up.
#[derive(Debug, Clone)]
pub struct HubSimConfig {
    /// Our merchant id at the hub (the key id billclear signs with).
    pub key_id: String,
    /// The shared HMAC secret (requests and answers).
    pub secret: String,
    /// TLS and a signature scheme other than the HMAC secret (default:
    /// plaintext, HMAC).
    pub security: SimSecurity,
    /// The only currency accepted, e.g. "CNY".
    pub currency: String,
    /// The hub's offset: its times, its business day and its `hubTxnId`
    /// dates (+08:00 by default).
    pub utc_offset: FixedOffset,
    /// The hub's id, written in the statement file's header.
    pub hub_id: String,
    /// The initial book: (biller id, account). The hub serves the billers
    /// it has accounts for.
    pub book: Vec<(String, Account)>,
}

impl HubSimConfig {
    /// A config with currency CNY, offset +08:00, hub id "SIMHUB" and an
    /// empty book (which serves no biller: add accounts, or use
    /// [`default_hub_book`]).
    pub fn new(key_id: &str, secret: &str) -> HubSimConfig {
        HubSimConfig {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            security: SimSecurity::default(),
            currency: "CNY".to_string(),
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
            hub_id: "SIMHUB".to_string(),
            book: Vec::new(),
        }
    }
}

/// The hub-specific switches (`GET`/`PUT /_sim/hub`; unlisted fields reset
/// to their defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSwitches {
    /// The hub refuses our merchant: 403 / `4030` on every signed request,
    /// nothing applied.
    pub cut_off: bool,
    /// Billers unavailable behind the hub: their payments and bill
    /// inquiries are answered 503 / `5030`, not applied.
    pub billers_down: Vec<String>,
}

impl HubSwitches {
    /// Refuses more than 64 billers down, or biller ids longer than 64.
    pub fn validate(&self) -> Result<(), String> {
        if self.billers_down.len() > MAX_BILLERS_DOWN {
            return Err(format!(
                "billers_down holds at most {MAX_BILLERS_DOWN} billers"
            ));
        }
        if let Some(b) = self
            .billers_down
            .iter()
            .find(|b| b.is_empty() || b.len() > MAX_BILLER_ID_LEN)
        {
            return Err(format!("billers_down: bad biller id {b:?}"));
        }
        Ok(())
    }
}

/// A running hub simulator. Dropping it shuts it down.
pub struct HubSim {
    traffic: Arc<crate::http::Traffic>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    scheme: &'static str,
    stop: watch::Sender<bool>,
    /// A second handle on the listening socket, so that `shutdown` closes
    /// it at once (connecting is refused as soon as it returns).
    #[cfg(unix)]
    listen_handle: Mutex<Option<std::net::TcpStream>>,
}

/// What the handlers share.
struct Shared {
    key_id: String,
    signer: Arc<biller_connectors::Signer>,
    currency: String,
    utc_offset: FixedOffset,
    hub_id: String,
    faults: Mutex<Faults>,
    switches: Mutex<HubSwitches>,
    ledger: Mutex<Ledger>,
    pay_requests: AtomicU64,
    /// Bill inquiries per second of the wall clock.
    bills_per_second: crate::PerSecond,
    stop: watch::Receiver<bool>,
}

/// The hub's books.
#[derive(Default)]
struct Ledger {
    /// Decided payments by partnerRef: the request and its transaction.
    payments: HashMap<String, Payment>,
    txns: Vec<HubTxn>,
    txn_seq: u64,
    book: Book,
}

struct Payment {
    request: PaymentRequest,
    /// Index into `Ledger::txns`.
    txn: usize,
}

impl HubSim {
    /// Starts serving on `listener` (spawned on the current runtime).
    pub async fn start(listener: TcpListener, config: HubSimConfig) -> std::io::Result<HubSim> {
        if config.secret.is_empty() || config.key_id.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "hub simulator: key id and secret must not be empty",
            ));
        }
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        #[cfg(unix)]
        let listen_handle = {
            use std::os::fd::AsFd;
            Mutex::new(Some(std::net::TcpStream::from(
                listener.as_fd().try_clone_to_owned()?,
            )))
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut ledger = Ledger::default();
        for (biller, account) in config.book {
            ledger.book.add_account(&biller, account);
        }
        let shared = Arc::new(Shared {
            key_id: config.key_id,
            signer: config.security.signer_or_hmac(&config.secret)?,
            currency: config.currency,
            utc_offset: config.utc_offset,
            hub_id: config.hub_id,
            faults: Mutex::new(Faults::default()),
            switches: Mutex::new(HubSwitches::default()),
            ledger: Mutex::new(ledger),
            pay_requests: AtomicU64::new(0),
            bills_per_second: crate::PerSecond::default(),
            stop: stop_rx.clone(),
        });
        let scheme = config.security.http_scheme();
        let traffic = Arc::new(crate::http::Traffic::default());
        tokio::spawn(accept_loop(
            "hub",
            listener,
            router(shared.clone()),
            stop_rx,
            config.security.tls.clone(),
            traffic.clone(),
        ));
        tracing::info!(%addr, "hub simulator listening");
        Ok(HubSim {
            shared,
            traffic,
            addr,
            scheme,
            stop,
            #[cfg(unix)]
            listen_handle,
        })
    }

    /// Where it listens: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// What its HTTP interface has seen (connections, calls, the most
    /// calls in flight at once).
    pub fn traffic(&self) -> &crate::http::Traffic {
        &self.traffic
    }

    /// Replaces the faults (validate them first with [`Faults::validate`]).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The faults in force (counters as counted down so far).
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Replaces the hub-specific switches (validate them first with
    /// [`HubSwitches::validate`]).
    pub fn set_switches(&self, switches: HubSwitches) {
        *lock(&self.shared.switches) = switches;
    }

    /// The hub-specific switches in force.
    pub fn switches(&self) -> HubSwitches {
        lock(&self.shared.switches).clone()
    }

    /// Cuts our merchant off (403 / `4030` on everything) or restores it.
    pub fn set_cut_off(&self, cut_off: bool) {
        lock(&self.shared.switches).cut_off = cut_off;
    }

    /// Marks one biller behind the hub unavailable (`5030`) or back.
    pub fn set_biller_down(&self, biller_id: &str, down: bool) {
        let mut switches = lock(&self.shared.switches);
        switches.billers_down.retain(|b| b != biller_id);
        if down {
            switches.billers_down.push(biller_id.to_string());
        }
    }

    /// Every payment credited, in order (`biller_reference` = hubTxnId,
    /// `our_reference` = partnerRef).
    pub fn credits(&self) -> Vec<CreditRecord> {
        lock(&self.shared.ledger).book.credits.clone()
    }

    /// Every payment refused (and recorded), in order.
    pub fn rejections(&self) -> Vec<RejectRecord> {
        lock(&self.shared.ledger).book.rejections.clone()
    }

    /// Every transaction of the hub (credited and refused), in order.
    pub fn transactions(&self) -> Vec<HubTxn> {
        lock(&self.shared.ledger).txns.clone()
    }

    /// The hub loses every trace of the payment with OUR reference
    /// `partner_ref`: its transaction, its credit, its answer to a status
    /// inquiry (`3004` from now on) and its row in the statement. The bill
    /// it reduced stays reduced. Returns whether there was one.
    pub fn lose_transaction(&self, partner_ref: &str) -> bool {
        let mut ledger = lock(&self.shared.ledger);
        let Some(lost) = ledger.payments.remove(partner_ref) else {
            return false;
        };
        ledger.txns.remove(lost.txn);
        for p in ledger.payments.values_mut() {
            if p.txn > lost.txn {
                p.txn -= 1;
            }
        }
        ledger
            .book
            .credits
            .retain(|c| c.our_reference != partner_ref);
        true
    }

    /// Pay requests received, duplicates and faulted ones included.
    pub fn pay_requests(&self) -> u64 {
        self.shared.pay_requests.load(Ordering::SeqCst)
    }

    /// The most bill inquiries received in one second of the wall clock.
    pub fn max_bill_requests_per_second(&self) -> u64 {
        self.shared.bills_per_second.max()
    }

    /// Bill inquiries per second of the wall clock (unix second, count).
    pub fn bill_requests_per_second(&self) -> Vec<(i64, u64)> {
        self.shared.bills_per_second.seconds()
    }

    /// Adds (or replaces) an account in the book of `biller_id` (the hub
    /// serves that biller from then on).
    pub fn add_account(&self, biller_id: &str, account: Account) {
        lock(&self.shared.ledger)
            .book
            .add_account(biller_id, account);
    }

    /// An account as it stands (bills reduced by payments).
    pub fn account(&self, biller_id: &str, account_number: &str) -> Option<Account> {
        lock(&self.shared.ledger)
            .book
            .accounts
            .get(biller_id)
            .and_then(|a| a.get(account_number))
            .cloned()
    }

    /// The hub's daily statement file for `date`, generated now (see
    /// [`statement_csv`]).
    pub fn statement_csv(&self, date: NaiveDate) -> String {
        self.shared.statement_csv(date)
    }

    /// Stops accepting, closes the listening socket at once (connecting is
    /// refused from here on), drops open connections and abandons held or
    /// delayed requests without applying them. Idempotent; also on drop.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        #[cfg(unix)]
        if let Some(handle) = lock(&self.listen_handle).take() {
            // shutdown(2) on a listening socket stops it listening.
            let _ = handle.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for HubSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Admin for Shared {
    fn faults_now(&self) -> Faults {
        lock(&self.faults).clone()
    }
    fn replace_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }
    fn with_book<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        f(&mut lock(&self.ledger).book)
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(codec::PATH_BILLS, post(bills))
        .route(codec::PATH_PAYMENTS, post(pay).get(payment_status))
        .route(codec::PATH_PING, get(ping))
        .route("/_sim/hub", get(get_switches).put(put_switches))
        .route("/_sim/transactions", get(get_transactions))
        .merge(admin_routes::<Shared>())
        .route("/_sim/statement/{date}", get(get_statement))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

// ------------------------------------------------------- signed endpoints

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Bills,
    Pay,
    Status,
    Ping,
}

/// What processing a request produced.
struct Processed {
    status: StatusCode,
    body: Vec<u8>,
    /// Applied, but the answer is withheld (drop-response fault).
    withhold: bool,
}

impl Processed {
    fn reply<T: Serialize>(
        status: StatusCode,
        code: &str,
        msg: &str,
        body: Option<T>,
    ) -> Processed {
        let reply = Reply {
            code: code.to_string(),
            message: msg.to_string(),
            body,
        };
        Processed {
            status,
            body: serde_json::to_vec(&reply).unwrap_or_default(),
            withhold: false,
        }
    }

    fn code(status: StatusCode, code: &str, msg: &str) -> Processed {
        Processed::reply::<()>(status, code, msg, None)
    }
}

async fn bills(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.bills_per_second.hit();
    signed(sim, Endpoint::Bills, Method::POST, uri, headers, body).await
}

async fn pay(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.pay_requests.fetch_add(1, Ordering::SeqCst);
    signed(sim, Endpoint::Pay, Method::POST, uri, headers, body).await
}

async fn payment_status(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(sim, Endpoint::Status, Method::GET, uri, headers, body).await
}

async fn ping(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(sim, Endpoint::Ping, Method::GET, uri, headers, body).await
}

/// Authentication, the cut-off, then faults in order (outage, blackhole,
/// error rate, latency), then processing, detached from the connection.
async fn signed(
    sim: Arc<Shared>,
    endpoint: Endpoint,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let nonce = header_str(&headers, codec::HEADER_NONCE)
        .unwrap_or_default()
        .to_string();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| uri.path());
    if let Err((msg, signable)) = sim.authenticate(&method, path_and_query, &headers, &body) {
        tracing::info!("refused authentication: {msg}");
        let p = Processed::code(StatusCode::UNAUTHORIZED, "4010", msg);
        return sim.respond(p, &nonce, signable);
    }
    if lock(&sim.switches).cut_off {
        return sim.respond(
            Processed::code(StatusCode::FORBIDDEN, "4030", "merchant suspended"),
            &nonce,
            true,
        );
    }
    let faults = sim.faults();
    if faults.outage {
        return sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "5031", "hub maintenance"),
            &nonce,
            true,
        );
    }
    if faults.blackhole {
        return sim.hold(&nonce).await;
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        return sim.respond(
            Processed::code(
                StatusCode::SERVICE_UNAVAILABLE,
                "5030",
                "biller unavailable behind the hub",
            ),
            &nonce,
            true,
        );
    }
    let query = uri.query().map(str::to_string);
    let task = tokio::spawn(process(
        sim.clone(),
        endpoint,
        body,
        query,
        faults.latency_ms,
    ));
    match task.await {
        Ok(Some(p)) if p.withhold => sim.hold(&nonce).await,
        Ok(Some(p)) => sim.respond(p, &nonce, true),
        Ok(None) => sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "5031", "shutting down"),
            &nonce,
            true,
        ),
        Err(e) => {
            tracing::error!("processing failed: {e}");
            sim.respond(
                Processed::code(StatusCode::INTERNAL_SERVER_ERROR, "5000", "internal error"),
                &nonce,
                true,
            )
        }
    }
}

/// Waits out the latency fault, then processes; `None` if the simulator
/// stopped first (nothing applied).
async fn process(
    sim: Arc<Shared>,
    endpoint: Endpoint,
    body: Bytes,
    query: Option<String>,
    latency_ms: u64,
) -> Option<Processed> {
    if latency_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(latency_ms)) => {}
            _ = stopped(sim.stop.clone()) => return None,
        }
    }
    if *sim.stop.borrow() {
        return None;
    }
    Some(match endpoint {
        Endpoint::Pay => sim.apply_pay(&body),
        Endpoint::Status => sim.query_payment(query.as_deref()),
        Endpoint::Bills => sim.query_bills(&body),
        Endpoint::Ping => Processed::code(StatusCode::OK, "0", "pong"),
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request that is not what the protocol says. Never applied.
fn malformed(what: impl std::fmt::Display) -> Processed {
    Processed::code(
        StatusCode::BAD_REQUEST,
        "1000",
        &format!("malformed request: {what}"),
    )
}

fn biller_down() -> Processed {
    Processed::code(
        StatusCode::SERVICE_UNAVAILABLE,
        "5030",
        "biller unavailable behind the hub",
    )
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    fn is_down(&self, biller: &str) -> bool {
        lock(&self.switches)
            .billers_down
            .iter()
            .any(|b| b == biller)
    }

    /// Checks merchant, nonce, timestamp and signature. On refusal (always
    /// code 4010): the message, and whether the answer can be signed (the
    /// merchant is ours).
    fn authenticate(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), (&'static str, bool)> {
        if header_str(headers, codec::HEADER_MERCHANT) != Some(self.key_id.as_str()) {
            return Err(("unknown merchant", false));
        }
        let nonce = header_str(headers, codec::HEADER_NONCE).unwrap_or_default();
        if nonce.is_empty() || nonce.len() > 128 {
            return Err(("missing or oversized nonce", true));
        }
        let timestamp = header_str(headers, codec::HEADER_TIMESTAMP)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(("missing or unreadable timestamp", true))?;
        if (Utc::now().timestamp_millis() - timestamp).abs() > TIMESTAMP_WINDOW_MS {
            return Err(("timestamp outside window", true));
        }
        let signature = header_str(headers, codec::HEADER_SIGNATURE).unwrap_or_default();
        let to_sign =
            codec::request_string_to_sign(method.as_str(), path_and_query, timestamp, nonce, body);
        if !codec::verify(&self.signer, &to_sign, signature) {
            return Err(("signature rejected", true));
        }
        Ok(())
    }

    /// The HTTP answer, signed over status, time (ms), the request's nonce
    /// and the body when `signable`.
    fn respond(&self, p: Processed, nonce: &str, signable: bool) -> Response {
        let mut response = (
            p.status,
            [(header::CONTENT_TYPE, "application/json")],
            p.body.clone(),
        )
            .into_response();
        if signable {
            let timestamp = Utc::now().timestamp_millis();
            let to_sign =
                codec::response_string_to_sign(p.status.as_u16(), timestamp, nonce, &p.body);
            let signature = codec::sign(&self.signer, &to_sign);
            let headers = response.headers_mut();
            if let (Ok(t), Ok(s)) = (timestamp.to_string().parse(), signature.parse()) {
                headers.insert(codec::HEADER_TIMESTAMP, t);
                headers.insert(codec::HEADER_SIGNATURE, s);
            }
        }
        response
    }

    /// Holds a request unanswered (bounded), then answers 504.
    async fn hold(&self, nonce: &str) -> Response {
        tokio::select! {
            _ = tokio::time::sleep(HOLD) => {}
            _ = stopped(self.stop.clone()) => {}
        }
        self.respond(
            // Held requests may have been applied (drop-response): never
            // answer them with a "not applied" code.
            Processed::code(StatusCode::GATEWAY_TIMEOUT, "5000", "request held too long"),
            nonce,
            true,
        )
    }

    fn apply_pay(&self, body: &[u8]) -> Processed {
        let request = match parse_payment_request(body) {
            Ok(r) => r,
            Err(p) => return p,
        };
        if request.merchant_id != self.key_id {
            return malformed("merchantId does not match the X-Hub-Merchant header");
        }
        let down = self.is_down(&request.biller_code);
        let mut ledger = lock(&self.ledger);
        let processed = match ledger.payments.get(&request.partner_ref) {
            Some(previous) if same_details(&previous.request, &request) => {
                self.payment_answer(&ledger.txns[previous.txn], true)
            }
            Some(_) => Processed::code(
                StatusCode::CONFLICT,
                "2009",
                "partnerRef reused with other details",
            ),
            None if down => biller_down(),
            None => self.decide(&mut ledger, request),
        };
        drop(ledger);
        self.response_faults(processed)
    }

    /// The payment answer for a decided transaction.
    fn payment_answer(&self, txn: &HubTxn, repeated: bool) -> Processed {
        let (status, code, message) = match txn.state {
            TxnState::Success => (PaymentStatus::Accepted, "0", "success"),
            _ => (
                PaymentStatus::Failed,
                txn.fail_code.as_deref().unwrap_or("5000"),
                txn.fail_message.as_deref().unwrap_or_default(),
            ),
        };
        let answer = PaymentAnswer {
            status,
            hub_txn_id: txn.hub_txn_id.clone(),
            partner_ref: txn.partner_ref.clone(),
            biller_code: txn.biller_id.clone(),
            account_no: txn.account_number.clone(),
            amount: txn.amount,
            currency: txn.currency.clone(),
            biller_receipt: txn.biller_receipt.clone(),
            completed_at: txn.completed_at.with_timezone(&self.utc_offset),
            repeated,
        };
        Processed::reply(StatusCode::OK, code, message, Some(answer))
    }

    /// Decides a new payment: refuses it or credits it; either way it
    /// becomes a transaction of the hub.
    fn decide(&self, ledger: &mut Ledger, request: PaymentRequest) -> Processed {
        let Some(amount) = codec::parse_amount(&request.amount) else {
            return Processed::code(StatusCode::OK, "2003", "amount is not a decimal string");
        };
        let refusal = match ledger.book.accounts.get(&request.biller_code) {
            None => Some((
                "1001",
                format!("biller {:?} not served by this hub", request.biller_code),
            )),
            Some(book) => match book.get(&request.account_no) {
                None => Some(("2001", "account not found".to_string())),
                Some(a) if !a.open => Some(("2002", "account closed".to_string())),
                Some(_) if request.currency != self.currency => {
                    Some(("2004", format!("only {} accepted", self.currency)))
                }
                Some(_) if !acceptable_amount(amount) => Some((
                    "2003",
                    "amount must be positive, at most 2 decimals and at most 1000000".to_string(),
                )),
                Some(_) => None,
            },
        };
        let now = Utc::now().trunc_subsecs(3);
        ledger.txn_seq += 1;
        let hub_txn_id = format!(
            "HUB{}{:08}",
            now.with_timezone(&self.utc_offset).format("%Y%m%d"),
            ledger.txn_seq
        );
        let mut txn = HubTxn {
            hub_txn_id: hub_txn_id.clone(),
            partner_ref: request.partner_ref.clone(),
            biller_id: request.biller_code.clone(),
            account_number: request.account_no.clone(),
            amount,
            currency: request.currency.clone(),
            bill_reference: request.bill_no.clone(),
            state: TxnState::Success,
            biller_receipt: None,
            fail_code: None,
            fail_message: None,
            completed_at: now,
        };
        if let Some((code, message)) = refusal {
            tracing::debug!(reference = %request.partner_ref, biller = %request.biller_code, account = %mask_account(&request.account_no), code, "payment refused");
            ledger.book.rejections.push(RejectRecord {
                our_reference: request.partner_ref.clone(),
                biller_id: request.biller_code.clone(),
                account_number: request.account_no.clone(),
                amount,
                currency: request.currency.clone(),
                code: code.to_string(),
                message: message.clone(),
                at: now,
            });
            txn.state = TxnState::Failed;
            txn.fail_code = Some(code.to_string());
            txn.fail_message = Some(message);
        } else {
            ledger.book.receipts += 1;
            let receipt = format!(
                "{}{:010}",
                receipt_prefix(&request.biller_code),
                ledger.book.receipts
            );
            ledger.book.reduce_bill(
                &request.biller_code,
                &request.account_no,
                request.bill_no.as_deref(),
                amount,
            );
            ledger.book.credits.push(CreditRecord {
                our_reference: request.partner_ref.clone(),
                biller_reference: hub_txn_id.clone(),
                biller_id: request.biller_code.clone(),
                account_number: request.account_no.clone(),
                amount,
                currency: request.currency.clone(),
                bill_reference: request.bill_no.clone(),
                credited_at: now,
            });
            tracing::debug!(reference = %request.partner_ref, biller = %request.biller_code, account = %mask_account(&request.account_no), hub_txn = %hub_txn_id, %receipt, %amount, "payment credited");
            txn.biller_receipt = Some(receipt);
        }
        let p = self.payment_answer(&txn, false);
        ledger.txns.push(txn);
        let index = ledger.txns.len() - 1;
        ledger.payments.insert(
            request.partner_ref.clone(),
            Payment {
                request,
                txn: index,
            },
        );
        p
    }

    /// Applies the pay-only faults to an answer: withhold it, or echo an
    /// amount 0.01 higher (successful answers only). Counters count down.
    fn response_faults(&self, mut p: Processed) -> Processed {
        let mut faults = lock(&self.faults);
        if faults.drop_response_next > 0 {
            faults.drop_response_next -= 1;
            p.withhold = true;
        } else if faults.drop_response_rate > 0.0
            && rand::random::<f64>() < faults.drop_response_rate
        {
            p.withhold = true;
        }
        if faults.misecho_next > 0 && p.status == StatusCode::OK {
            if let Some(body) = misecho(&p.body) {
                faults.misecho_next -= 1;
                p.body = body;
            }
        }
        p
    }

    fn query_payment(&self, query: Option<&str>) -> Processed {
        let partner_ref = match codec::partner_ref_from_query(query) {
            Ok(r) => r,
            Err(e) => return malformed(e.0),
        };
        let ledger = lock(&self.ledger);
        let Some(txn) = ledger
            .payments
            .get(&partner_ref)
            .and_then(|p| ledger.txns.get(p.txn))
        else {
            return Processed::code(StatusCode::NOT_FOUND, "3004", "transaction not found");
        };
        let answer = StatusAnswer {
            state: txn.state,
            hub_txn_id: txn.hub_txn_id.clone(),
            partner_ref: txn.partner_ref.clone(),
            biller_code: txn.biller_id.clone(),
            account_no: txn.account_number.clone(),
            amount: txn.amount,
            currency: txn.currency.clone(),
            biller_receipt: txn.biller_receipt.clone(),
            completed_at: Some(txn.completed_at.with_timezone(&self.utc_offset)),
            fail_code: txn.fail_code.clone(),
            fail_message: txn.fail_message.clone(),
        };
        Processed::reply(StatusCode::OK, "0", "success", Some(answer))
    }

    fn query_bills(&self, body: &[u8]) -> Processed {
        let request: BillsInquiry = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return malformed(e),
        };
        if request.merchant_id != self.key_id {
            return malformed("merchantId does not match the X-Hub-Merchant header");
        }
        if self.is_down(&request.biller_code) {
            return biller_down();
        }
        let ledger = lock(&self.ledger);
        let Some(book) = ledger.book.accounts.get(&request.biller_code) else {
            return Processed::code(
                StatusCode::OK,
                "1001",
                &format!("biller {:?} not served by this hub", request.biller_code),
            );
        };
        let Some(account) = book.get(&request.account_no) else {
            return Processed::code(StatusCode::OK, "2001", "account not found");
        };
        if !account.open {
            return Processed::code(StatusCode::OK, "2002", "account closed");
        }
        let answer = BillsAnswer {
            biller_code: request.biller_code.clone(),
            account_no: account.account_number.clone(),
            customer_name: account.customer_name.clone(),
            bills: account
                .bills
                .iter()
                .filter(|b| b.amount_due > Decimal::ZERO)
                .map(|b| HubBill {
                    bill_no: b.bill_reference.clone(),
                    amount_due: b.amount_due,
                    currency: self.currency.clone(),
                    due_date: b.due_date,
                })
                .collect(),
        };
        Processed::reply(StatusCode::OK, "0", "success", Some(answer))
    }

    fn statement_csv(&self, date: NaiveDate) -> String {
        let txns = lock(&self.ledger).txns.clone();
        statement_csv(&self.hub_id, &txns, date, self.utc_offset, Utc::now())
    }
}

/// The first letter of the receipts of the biller behind the hub.
fn receipt_prefix(biller: &str) -> char {
    if biller.contains("water") {
        'W'
    } else if biller.contains("power") {
        'E'
    } else if biller.contains("gas") {
        'G'
    } else {
        'R'
    }
}

/// Parses a payment request; an amount that is not a JSON string is
/// "amount not allowed" (2003), anything else malformed (1000).
fn parse_payment_request(body: &[u8]) -> Result<PaymentRequest, Processed> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(malformed)?;
    if value.get("amount").is_some_and(|a| !a.is_string()) {
        return Err(Processed::code(
            StatusCode::OK,
            "2003",
            "amount must be a decimal string",
        ));
    }
    serde_json::from_value(value).map_err(malformed)
}

/// Positive, at most 2 decimals, at most 1,000,000.
fn acceptable_amount(amount: Decimal) -> bool {
    amount > Decimal::ZERO && amount.normalize().scale() <= 2 && amount <= MAX_AMOUNT
}

/// Whether a repeated request carries the same details as the original.
fn same_details(a: &PaymentRequest, b: &PaymentRequest) -> bool {
    let amounts_equal = match (
        codec::parse_amount(&a.amount),
        codec::parse_amount(&b.amount),
    ) {
        (Some(x), Some(y)) => x == y,
        _ => a.amount == b.amount,
    };
    a.biller_code == b.biller_code
        && a.account_no == b.account_no
        && amounts_equal
        && a.currency == b.currency
        && a.bill_no == b.bill_no
}

/// A successful payment answer with its amount 0.01 higher, if `body` is
/// one.
fn misecho(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("code")?.as_str()? != "0" {
        return None;
    }
    let amount = codec::parse_amount(value.get("amount")?.as_str()?)?;
    value["amount"] = serde_json::Value::String((amount + Decimal::new(1, 2)).to_string());
    serde_json::to_vec(&value).ok()
}

// --------------------------------------------------------- admin endpoints

async fn get_switches(State(sim): State<Arc<Shared>>) -> Json<HubSwitches> {
    Json(lock(&sim.switches).clone())
}

async fn put_switches(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let switches: HubSwitches = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("bad hub switches: {e}\n")).into_response()
        }
    };
    if let Err(e) = switches.validate() {
        return (StatusCode::BAD_REQUEST, format!("bad hub switches: {e}\n")).into_response();
    }
    tracing::info!(?switches, "hub switches set");
    *lock(&sim.switches) = switches.clone();
    Json(switches).into_response()
}

async fn get_transactions(State(sim): State<Arc<Shared>>) -> Json<Vec<HubTxn>> {
    Json(lock(&sim.ledger).txns.clone())
}

async fn get_statement(State(sim): State<Arc<Shared>>, Path(date): Path<String>) -> Response {
    match NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
        Ok(date) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            sim.statement_csv(date),
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn request(amount: &str) -> PaymentRequest {
        PaymentRequest {
            merchant_id: "billclear".into(),
            biller_code: "sh-gas".into(),
            partner_ref: "p1".into(),
            account_no: "310012345677".into(),
            amount: amount.into(),
            currency: "CNY".into(),
            bill_no: None,
        }
    }

    #[test]
    fn same_details_compares_amounts_as_decimals() {
        assert!(same_details(&request("88.5"), &request("88.50")));
        assert!(!same_details(&request("88.5"), &request("88.51")));
        let mut other = request("88.5");
        other.biller_code = "sh-water".into();
        assert!(!same_details(&request("88.5"), &other));
    }

    #[test]
    fn payment_request_amount_must_be_a_string() {
        let p = parse_payment_request(br#"{"merchantId":"m","billerCode":"b","partnerRef":"t","accountNo":"a","amount":1.5,"currency":"CNY","billNo":null}"#)
            .err()
            .unwrap();
        assert!(String::from_utf8_lossy(&p.body).contains("2003"));
        let p = parse_payment_request(br#"{"partnerRef":"t"}"#)
            .err()
            .unwrap();
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&p.body).contains("1000"));
    }

    #[test]
    fn misecho_raises_the_amount_by_a_cent() {
        let changed = misecho(br#"{"code":"0","amount":"88.50"}"#).unwrap();
        assert!(String::from_utf8(changed)
            .unwrap()
            .contains(r#""amount":"88.51""#));
        assert!(misecho(br#"{"code":"2001","amount":"88.50"}"#).is_none());
    }

    #[test]
    fn switches_are_bounded() {
        assert!(HubSwitches::default().validate().is_ok());
        let many = HubSwitches {
            billers_down: (0..65).map(|i| format!("b{i}")).collect(),
            ..HubSwitches::default()
        };
        assert!(many.validate().is_err());
        let empty = HubSwitches {
            billers_down: vec![String::new()],
            ..HubSwitches::default()
        };
        assert!(empty.validate().is_err());
        assert!(serde_json::from_str::<HubSwitches>(r#"{"cutoff":true}"#).is_err());
    }

    #[test]
    fn statement_file_is_pinned() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&Utc)
        };
        let txn = |id: &str, r: &str, state, amount: &str, at: &str| HubTxn {
            hub_txn_id: id.into(),
            partner_ref: r.into(),
            biller_id: "sh-power".into(),
            account_number: "0306406159".into(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
            state,
            biller_receipt: None,
            fail_code: None,
            fail_message: None,
            completed_at: t(at),
        };
        let txns = [
            // 2026-11-28 23:59:59.999 in +08:00: the day before.
            txn(
                "HUB1",
                "p0",
                TxnState::Success,
                "5",
                "2026-11-28T15:59:59.999Z",
            ),
            txn(
                "HUB2",
                "p1",
                TxnState::Success,
                "88.5",
                "2026-11-28T16:00:00Z",
            ),
            txn(
                "HUB3",
                "p,2",
                TxnState::Failed,
                "10.00",
                "2026-11-29T01:02:03.004Z",
            ),
            txn(
                "HUB4",
                "p3",
                TxnState::Success,
                "11.25",
                "2026-11-29T15:59:59.999Z",
            ),
        ];
        let csv = statement_csv(
            "SIMHUB",
            &txns,
            NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            offset,
            t("2026-11-30T01:00:00Z"),
        );
        assert_eq!(
            csv,
            "HUBSTATEMENT,SIMHUB,2026-11-29,2026-11-30T09:00:00.000+08:00\n\
             hubTxnId,partnerRef,billerCode,accountNo,amount,currency,status,completedAt\n\
             HUB2,p1,sh-power,0306406159,88.50,CNY,SUCCESS,2026-11-29T00:00:00.000+08:00\n\
             HUB3,\"p,2\",sh-power,0306406159,10.00,CNY,FAILED,2026-11-29T09:02:03.004+08:00\n\
             HUB4,p3,sh-power,0306406159,11.25,CNY,SUCCESS,2026-11-29T23:59:59.999+08:00\n\
             TRAILER,3,2,99.75\n"
        );
    }
}
