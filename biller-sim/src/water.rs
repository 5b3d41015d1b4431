//! The water company simulator: a real HTTP server speaking the protocol of
//! [`biller_connectors::water::codec`], with the admin endpoints under `/_sim/`.

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
use axum::Router;
use chrono::{DateTime, FixedOffset, NaiveDate, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::book::Book;
use crate::http::{accept_loop, admin_routes, stopped, Admin, SimSecurity};
use crate::{lock, Account, CreditRecord, Faults, RejectRecord};
use biller_connectors::transport::mask_account;
use biller_connectors::water::codec::{
    self, BillsAnswer, BillsRequest, PayAnswer, PayRequest, PaymentQueryAnswer,
    PaymentQueryRequest, PaymentState, Reply, WireBill,
};

/// The largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a request is held when its answer is withheld (blackhole,
/// dropped answer); the client has given up long before.
const HOLD: Duration = Duration::from_secs(600);
/// How far a request's timestamp may be from the simulator's clock.
const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// The largest payment accepted.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// How the water simulator is set up.
#[derive(Debug, Clone)]
pub struct WaterSimConfig {
    /// The key id billclear signs with.
    pub key_id: String,
    /// The shared HMAC secret (requests and answers).
    pub secret: String,
    /// TLS and a signature scheme other than the HMAC secret (default:
    /// plaintext, HMAC).
    pub security: SimSecurity,
    /// The only currency accepted, e.g. "CNY".
    pub currency: String,
    /// The offset whose calendar day is the confirmation file's business
    /// day (+08:00 by default).
    pub utc_offset: FixedOffset,
    /// The initial book: (biller id, account).
    pub book: Vec<(String, Account)>,
}

impl WaterSimConfig {
    /// A config with currency CNY, offset +08:00 and an empty book.
    pub fn new(key_id: &str, secret: &str) -> WaterSimConfig {
        WaterSimConfig {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            security: SimSecurity::default(),
            currency: "CNY".to_string(),
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
            book: Vec::new(),
        }
    }
}

/// A running water company simulator. Dropping it shuts it down.
pub struct WaterSim {
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
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    pay_requests: AtomicU64,
    bill_requests: AtomicU64,
    /// Bill inquiries per second of the wall clock (unix seconds): what a
    /// biller protecting itself measures.
    bills_per_second: crate::PerSecond,
    pays_per_second: crate::PerSecond,
    stop: watch::Receiver<bool>,
}

/// The simulated biller's books.
#[derive(Default)]
struct Ledger {
    payments: HashMap<String, Payment>,
    book: Book,
}

/// A payment request the biller decided on, kept under its txn_ref.
struct Payment {
    request: PayRequest,
    amount: Decimal,
    outcome: Outcome,
}

enum Outcome {
    Credited {
        receipt_no: String,
        credited_at: DateTime<Utc>,
    },
    Rejected {
        code: &'static str,
        message: String,
    },
}

impl WaterSim {
    /// Starts serving on `listener` (spawned on the current runtime).
    pub async fn start(listener: TcpListener, config: WaterSimConfig) -> std::io::Result<WaterSim> {
        if config.secret.is_empty() || config.key_id.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "water simulator: key id and secret must not be empty",
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
            faults: Mutex::new(Faults::default()),
            ledger: Mutex::new(ledger),
            pay_requests: AtomicU64::new(0),
            bill_requests: AtomicU64::new(0),
            bills_per_second: crate::PerSecond::default(),
            pays_per_second: crate::PerSecond::default(),
            stop: stop_rx.clone(),
        });
        let scheme = config.security.http_scheme();
        let traffic = Arc::new(crate::http::Traffic::default());
        tokio::spawn(accept_loop(
            "water",
            listener,
            router(shared.clone()),
            stop_rx,
            config.security.tls.clone(),
            traffic.clone(),
        ));
        tracing::info!(%addr, "water simulator listening");
        Ok(WaterSim {
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

    /// Every payment credited, in order.
    pub fn credits(&self) -> Vec<CreditRecord> {
        lock(&self.shared.ledger).book.credits.clone()
    }

    /// Every payment refused (and recorded), in order.
    pub fn rejections(&self) -> Vec<RejectRecord> {
        lock(&self.shared.ledger).book.rejections.clone()
    }

    /// Pay requests received, duplicates and faulted ones included.
    pub fn pay_requests(&self) -> u64 {
        self.shared.pay_requests.load(Ordering::SeqCst)
    }

    /// Pay requests per second of the wall clock, as they arrive (unix
    /// second, count).
    pub fn pay_requests_per_second(&self) -> Vec<(i64, u64)> {
        self.shared.pays_per_second.seconds()
    }

    /// Bill inquiries received, faulted ones included.
    pub fn bill_requests(&self) -> u64 {
        self.shared.bill_requests.load(Ordering::SeqCst)
    }

    /// The most bill inquiries received in one second of the wall clock.
    pub fn max_bill_requests_per_second(&self) -> u64 {
        self.shared.bills_per_second.max()
    }

    /// Bill inquiries per second of the wall clock (unix second, count).
    pub fn bill_requests_per_second(&self) -> Vec<(i64, u64)> {
        self.shared.bills_per_second.seconds()
    }

    /// Adds (or replaces) an account in the book of `biller_id`.
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

    /// The biller's daily confirmation file for `date` (see
    /// [`super::confirmation_csv`]).
    pub fn confirmation_csv(&self, biller_id: &str, date: NaiveDate) -> String {
        self.shared.confirmation_csv(biller_id, date)
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

impl Drop for WaterSim {
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
        .route(codec::PATH_PAY, post(pay))
        .route(codec::PATH_PAY_QUERY, post(pay_query))
        .route(codec::PATH_HEALTH, get(health))
        .merge(admin_routes::<Shared>())
        .route(
            "/_sim/confirmations/{biller_id}/{date}",
            get(get_confirmations),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

// ------------------------------------------------------- signed endpoints

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Bills,
    Pay,
    PayQuery,
    Health,
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
            result_code: code.to_string(),
            result_msg: msg.to_string(),
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
    sim.bill_requests.fetch_add(1, Ordering::SeqCst);
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
    sim.pays_per_second.hit();
    signed(sim, Endpoint::Pay, Method::POST, uri, headers, body).await
}

async fn pay_query(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(sim, Endpoint::PayQuery, Method::POST, uri, headers, body).await
}

async fn health(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(sim, Endpoint::Health, Method::GET, uri, headers, body).await
}

/// Authentication, then faults in order (outage, blackhole, error rate,
/// latency), then processing, detached from the connection.
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
    if let Err((code, msg, signable)) = sim.authenticate(&method, uri.path(), &headers, &body) {
        tracing::info!(code, "refused authentication: {msg}");
        let p = Processed::code(StatusCode::UNAUTHORIZED, code, msg);
        return sim.respond(p, &nonce, signable);
    }
    let faults = sim.faults();
    if faults.outage {
        return sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "9002", "service down"),
            &nonce,
            true,
        );
    }
    if faults.blackhole {
        return sim.hold(&nonce).await;
    }
    if endpoint == Endpoint::Pay && faults.silent_pay_next > 0 {
        let silent = {
            let mut f = lock(&sim.faults);
            let silent = f.silent_pay_next > 0;
            f.silent_pay_next = f.silent_pay_next.saturating_sub(1);
            silent
        };
        if silent {
            return sim.hold(&nonce).await;
        }
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        return sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "9001", "system busy"),
            &nonce,
            true,
        );
    }
    let task = tokio::spawn(process(sim.clone(), endpoint, body, faults.latency_ms));
    match task.await {
        Ok(Some(p)) if p.withhold => sim.hold(&nonce).await,
        Ok(Some(p)) => sim.respond(p, &nonce, true),
        Ok(None) => sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "9002", "shutting down"),
            &nonce,
            true,
        ),
        Err(e) => {
            tracing::error!("processing failed: {e}");
            sim.respond(
                Processed::code(StatusCode::INTERNAL_SERVER_ERROR, "9999", "internal error"),
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
        Endpoint::PayQuery => sim.query_payment(&body),
        Endpoint::Bills => sim.query_bills(&body),
        Endpoint::Health => Processed::code(StatusCode::OK, "0000", "ok"),
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request body that is not what the protocol says. Never applied.
fn malformed(what: impl std::fmt::Display) -> Processed {
    Processed::code(
        StatusCode::BAD_REQUEST,
        "1000",
        &format!("malformed request: {what}"),
    )
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Checks key, timestamp, nonce and signature. On refusal: the code,
    /// the message, and whether the answer can be signed (the key is ours).
    fn authenticate(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), (&'static str, &'static str, bool)> {
        if header_str(headers, codec::HEADER_KEY) != Some(self.key_id.as_str()) {
            return Err(("4003", "unknown key", false));
        }
        let nonce = header_str(headers, codec::HEADER_NONCE).unwrap_or_default();
        if nonce.is_empty() || nonce.len() > 128 {
            return Err(("4001", "missing or oversized nonce", true));
        }
        let timestamp = header_str(headers, codec::HEADER_TIMESTAMP)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(("4002", "missing or unreadable timestamp", true))?;
        if (Utc::now().timestamp() - timestamp).abs() > TIMESTAMP_WINDOW_SECS {
            return Err(("4002", "timestamp outside window", true));
        }
        let signature = header_str(headers, codec::HEADER_SIGNATURE).unwrap_or_default();
        let to_sign = codec::request_string_to_sign(method.as_str(), path, timestamp, nonce, body);
        if !codec::verify(&self.signer, &to_sign, signature) {
            return Err(("4001", "signature rejected", true));
        }
        Ok(())
    }

    /// The HTTP answer, signed over status, time, the request's nonce and
    /// the body when `signable`.
    fn respond(&self, p: Processed, nonce: &str, signable: bool) -> Response {
        let mut response = (
            p.status,
            [(header::CONTENT_TYPE, "application/json")],
            p.body.clone(),
        )
            .into_response();
        if signable {
            let timestamp = Utc::now().timestamp();
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
            Processed::code(StatusCode::GATEWAY_TIMEOUT, "9999", "request held too long"),
            nonce,
            true,
        )
    }

    fn apply_pay(&self, body: &[u8]) -> Processed {
        let request: PayRequest = match parse_pay_request(body) {
            Ok(r) => r,
            Err(p) => return p,
        };
        let mut ledger = lock(&self.ledger);
        let processed = match ledger.payments.get(&request.txn_ref) {
            Some(previous) if same_details(&previous.request, &request) => self.repeat(previous),
            Some(_) => Processed::code(
                StatusCode::OK,
                "1009",
                "reference reused with other details",
            ),
            None => self.decide(&mut ledger, request),
        };
        drop(ledger);
        self.response_faults(processed)
    }

    /// The original answer to a payment sent again.
    fn repeat(&self, previous: &Payment) -> Processed {
        match &previous.outcome {
            Outcome::Credited {
                receipt_no,
                credited_at,
            } => self.credited(
                &previous.request,
                previous.amount,
                receipt_no,
                *credited_at,
                true,
            ),
            Outcome::Rejected { code, message } => Processed::code(StatusCode::OK, code, message),
        }
    }

    fn credited(
        &self,
        request: &PayRequest,
        amount: Decimal,
        receipt_no: &str,
        credited_at: DateTime<Utc>,
        duplicate: bool,
    ) -> Processed {
        let answer = PayAnswer {
            txn_ref: request.txn_ref.clone(),
            account_no: request.account_no.clone(),
            amount,
            currency: request.currency.clone(),
            receipt_no: receipt_no.to_string(),
            credited_at,
            duplicate,
        };
        Processed::reply(StatusCode::OK, "0000", "success", Some(answer))
    }

    /// Decides a new payment: refuses (recorded) or credits it.
    fn decide(&self, ledger: &mut Ledger, request: PayRequest) -> Processed {
        let Some(amount) = codec::parse_amount(&request.amount) else {
            return Processed::code(StatusCode::OK, "1003", "amount is not a decimal string");
        };
        let refusal = match ledger
            .book
            .accounts
            .get(&request.biller_code)
            .and_then(|a| a.get(&request.account_no))
        {
            None => Some(("1001", "account not found".to_string())),
            Some(a) if !a.open => Some(("1002", "account closed".to_string())),
            Some(_) if request.currency != self.currency => {
                Some(("1004", format!("only {} accepted", self.currency)))
            }
            Some(_) if !acceptable_amount(amount) => Some((
                "1003",
                "amount must be positive, at most 2 decimals and at most 1000000".to_string(),
            )),
            Some(_) => None,
        };
        let now = Utc::now().trunc_subsecs(3);
        if let Some((code, message)) = refusal {
            tracing::debug!(reference = %request.txn_ref, account = %mask_account(&request.account_no), code, "payment refused");
            ledger.book.rejections.push(RejectRecord {
                our_reference: request.txn_ref.clone(),
                biller_id: request.biller_code.clone(),
                account_number: request.account_no.clone(),
                amount,
                currency: request.currency.clone(),
                code: code.to_string(),
                message: message.clone(),
                at: now,
            });
            let p = Processed::code(StatusCode::OK, code, &message);
            ledger.payments.insert(
                request.txn_ref.clone(),
                Payment {
                    request,
                    amount,
                    outcome: Outcome::Rejected { code, message },
                },
            );
            return p;
        }
        ledger.book.receipts += 1;
        let receipt_no = format!("W{:012}", ledger.book.receipts);
        ledger.book.reduce_bill(
            &request.biller_code,
            &request.account_no,
            request.bill_no.as_deref(),
            amount,
        );
        ledger.book.credits.push(CreditRecord {
            our_reference: request.txn_ref.clone(),
            biller_reference: receipt_no.clone(),
            biller_id: request.biller_code.clone(),
            account_number: request.account_no.clone(),
            amount,
            currency: request.currency.clone(),
            bill_reference: request.bill_no.clone(),
            credited_at: now,
        });
        tracing::debug!(reference = %request.txn_ref, account = %mask_account(&request.account_no), receipt = %receipt_no, %amount, "payment credited");
        let p = self.credited(&request, amount, &receipt_no, now, false);
        ledger.payments.insert(
            request.txn_ref.clone(),
            Payment {
                request,
                amount,
                outcome: Outcome::Credited {
                    receipt_no,
                    credited_at: now,
                },
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

    fn query_payment(&self, body: &[u8]) -> Processed {
        let request: PaymentQueryRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return malformed(e),
        };
        let ledger = lock(&self.ledger);
        let Some(payment) = ledger
            .payments
            .get(&request.txn_ref)
            .filter(|p| p.request.biller_code == request.biller_code)
        else {
            return Processed::code(StatusCode::OK, "1404", "payment not found");
        };
        let mut answer = PaymentQueryAnswer {
            txn_ref: payment.request.txn_ref.clone(),
            state: PaymentState::Pending,
            account_no: payment.request.account_no.clone(),
            amount: payment.amount,
            currency: payment.request.currency.clone(),
            receipt_no: None,
            credited_at: None,
            reject_code: None,
            reject_msg: None,
        };
        match &payment.outcome {
            Outcome::Credited {
                receipt_no,
                credited_at,
            } => {
                answer.state = PaymentState::Credited;
                answer.receipt_no = Some(receipt_no.clone());
                answer.credited_at = Some(*credited_at);
            }
            Outcome::Rejected { code, message } => {
                answer.state = PaymentState::Rejected;
                answer.reject_code = Some(code.to_string());
                answer.reject_msg = Some(message.clone());
            }
        }
        Processed::reply(StatusCode::OK, "0000", "success", Some(answer))
    }

    fn query_bills(&self, body: &[u8]) -> Processed {
        let request: BillsRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return malformed(e),
        };
        let ledger = lock(&self.ledger);
        let Some(account) = ledger
            .book
            .accounts
            .get(&request.biller_code)
            .and_then(|a| a.get(&request.account_no))
        else {
            return Processed::code(StatusCode::OK, "1001", "account not found");
        };
        if !account.open {
            return Processed::code(StatusCode::OK, "1002", "account closed");
        }
        let answer = BillsAnswer {
            account_no: account.account_number.clone(),
            customer_name: account.customer_name.clone(),
            bills: account
                .bills
                .iter()
                .filter(|b| b.amount_due > Decimal::ZERO)
                .map(|b| WireBill {
                    bill_no: b.bill_reference.clone(),
                    amount_due: b.amount_due,
                    currency: self.currency.clone(),
                    due_date: b.due_date,
                })
                .collect(),
        };
        Processed::reply(StatusCode::OK, "0000", "success", Some(answer))
    }

    fn confirmation_csv(&self, biller_id: &str, date: NaiveDate) -> String {
        let ledger = lock(&self.ledger);
        super::confirmation_csv(&ledger.book.credits, biller_id, date, self.utc_offset)
    }
}

/// Parses a pay request; an amount that is not a JSON string is "amount
/// not accepted" (1003), anything else malformed.
fn parse_pay_request(body: &[u8]) -> Result<PayRequest, Processed> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(malformed)?;
    if value.get("amount").is_some_and(|a| !a.is_string()) {
        return Err(Processed::code(
            StatusCode::OK,
            "1003",
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
fn same_details(a: &PayRequest, b: &PayRequest) -> bool {
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

/// A successful pay answer with its amount 0.01 higher, if `body` is one.
fn misecho(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("result_code")?.as_str()? != "0000" {
        return None;
    }
    let amount = codec::parse_amount(value.get("amount")?.as_str()?)?;
    value["amount"] = serde_json::Value::String((amount + Decimal::new(1, 2)).to_string());
    serde_json::to_vec(&value).ok()
}

// --------------------------------------------------------- admin endpoints

async fn get_confirmations(
    State(sim): State<Arc<Shared>>,
    Path((biller_id, date)): Path<(String, String)>,
) -> Response {
    match NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
        Ok(date) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            sim.confirmation_csv(&biller_id, date),
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn request(amount: &str) -> PayRequest {
        PayRequest {
            biller_code: "sh-water".into(),
            txn_ref: "p1".into(),
            account_no: "3100000011".into(),
            amount: amount.into(),
            currency: "CNY".into(),
            bill_no: None,
        }
    }

    #[test]
    fn amounts_are_checked() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert!(acceptable_amount(d("0.01")));
        assert!(acceptable_amount(d("1000000.00")));
        assert!(acceptable_amount(d("88.500")), "trailing zeros are fine");
        assert!(!acceptable_amount(d("0")));
        assert!(!acceptable_amount(d("-1")));
        assert!(!acceptable_amount(d("0.001")));
        assert!(!acceptable_amount(d("1000000.01")));
    }

    #[test]
    fn same_details_compares_amounts_as_decimals() {
        assert!(same_details(&request("88.5"), &request("88.50")));
        assert!(!same_details(&request("88.5"), &request("88.51")));
        let mut other = request("88.5");
        other.bill_no = Some("B".into());
        assert!(!same_details(&request("88.5"), &other));
    }

    #[test]
    fn pay_request_amount_must_be_a_string() {
        let p = parse_pay_request(br#"{"biller_code":"b","txn_ref":"t","account_no":"a","amount":1.5,"currency":"CNY","bill_no":null}"#)
            .err()
            .unwrap();
        assert!(String::from_utf8_lossy(&p.body).contains("1003"));
        let p = parse_pay_request(br#"{"txn_ref":"t"}"#).err().unwrap();
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn misecho_raises_the_amount_by_a_cent() {
        let body = br#"{"result_code":"0000","amount":"88.50"}"#;
        let changed = misecho(body).unwrap();
        assert!(String::from_utf8(changed)
            .unwrap()
            .contains(r#""amount":"88.51""#));
        assert!(misecho(br#"{"result_code":"1001"}"#).is_none());
    }
}
