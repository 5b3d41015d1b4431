//! The electricity company simulator: a real HTTP server speaking the XML
//! protocol of [`biller_connectors::power::codec`] at `POST /power/gateway` (one
//! endpoint, dispatched on `MsgType`), with the admin endpoints under
//! `/_sim/` (the same as the water simulator's, except that the daily
//! confirmation file is XML).
//!
//! Every answer carries a MAC under the simulator's secret and, when the
//! request could be read that far, `InReplyTo` = the request's MsgId. A
//! request that cannot be read as an envelope is answered `ECHO_RSP` with
//! code E100 and no `InReplyTo` (its type and id are unknown).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, FixedOffset, NaiveDate, SubsecRound, Utc};
use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::book::Book;
use crate::http::{accept_loop, admin_routes, stopped, Admin, SimSecurity};
use crate::{lock, Account, CreditRecord, Faults, RejectRecord};
use biller_connectors::power::codec::{
    self, BillsAnswer, BillsRequest, Confirmation, ConfirmedCredit, Element, Message, MsgType,
    Node, OutHeader, PayAnswer, PayRequest, PaymentState, QueryAnswer, QueryRequest, RetStatus,
    WireBill,
};
use biller_connectors::transport::mask_account;

/// The largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a request is held when its answer is withheld (blackhole,
/// dropped answer); the client has given up long before.
const HOLD: Duration = Duration::from_secs(600);
/// How far a request's timestamp may be from the simulator's clock.
const TIMESTAMP_WINDOW_SECS: i64 = 300;
/// The largest payment accepted.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// The `Sender` of the simulator's answers.
pub const SIM_SENDER: &str = "sh-power-gateway";

/// How the electricity simulator is set up.
#[derive(Debug, Clone)]
pub struct PowerSimConfig {
    /// The key id billclear sends as `Sender`.
    pub key_id: String,
    /// The shared MAC secret (requests and answers).
    pub secret: String,
    /// TLS and a signature scheme other than the HMAC secret (default:
    /// plaintext, HMAC).
    pub security: SimSecurity,
    /// The only currency accepted, e.g. "CNY".
    pub currency: String,
    /// The offset of the simulator's clock in messages, and whose calendar
    /// day is the confirmation file's business day (+08:00 by default).
    pub utc_offset: FixedOffset,
    /// The initial book: (biller id, account).
    pub book: Vec<(String, Account)>,
}

impl PowerSimConfig {
    /// A config with currency CNY, offset +08:00 and an empty book.
    pub fn new(key_id: &str, secret: &str) -> PowerSimConfig {
        PowerSimConfig {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            security: SimSecurity::default(),
            currency: "CNY".to_string(),
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
            book: Vec::new(),
        }
    }
}

/// A running electricity company simulator. Dropping it shuts it down.
pub struct PowerSim {
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
    stop: watch::Receiver<bool>,
}

/// The simulated biller's books.
#[derive(Default)]
struct Ledger {
    payments: HashMap<String, Payment>,
    book: Book,
}

/// A payment request the biller decided on, kept under its TxnRef.
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

impl PowerSim {
    /// Starts serving on `listener` (spawned on the current runtime).
    pub async fn start(listener: TcpListener, config: PowerSimConfig) -> std::io::Result<PowerSim> {
        if config.secret.is_empty() || !codec::valid_header_value(&config.key_id) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "power simulator: the secret must not be empty and the key id must be \
                 1..=128 printable ASCII characters without `|`",
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
            stop: stop_rx.clone(),
        });
        let scheme = config.security.http_scheme();
        let traffic = Arc::new(crate::http::Traffic::default());
        tokio::spawn(accept_loop(
            "power",
            listener,
            router(shared.clone()),
            stop_rx,
            config.security.tls.clone(),
            traffic.clone(),
        ));
        tracing::info!(%addr, "power simulator listening");
        Ok(PowerSim {
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

    /// `PAY_REQ` messages received (readable envelopes), duplicates,
    /// unauthenticated and faulted ones included.
    pub fn pay_requests(&self) -> u64 {
        self.shared.pay_requests.load(Ordering::SeqCst)
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

    /// The biller's daily confirmation file for `date` (XML, see
    /// [`Confirmation::encode`]): the credits of `biller_id` whose credit
    /// time falls on `date` in the simulator's offset, in credit order.
    pub fn confirmation_xml(&self, biller_id: &str, date: NaiveDate) -> String {
        self.shared.confirmation(biller_id, date).encode()
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

impl Drop for PowerSim {
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
        .route(codec::PATH_GATEWAY, post(gateway))
        .merge(admin_routes::<Shared>())
        .route(
            "/_sim/confirmations/{biller_id}/{date}",
            get(get_confirmations),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

// ---------------------------------------------------------------- gateway

/// What processing a request produced: the HTTP status and the answer
/// body's elements (`RetCode`, `RetMsg`, fields).
struct Processed {
    status: StatusCode,
    nodes: Vec<Node>,
    /// Applied, but the answer is withheld (drop-response fault).
    withhold: bool,
}

impl Processed {
    fn reply(status: StatusCode, code: &str, msg: &str, fields: Vec<Node>) -> Processed {
        Processed {
            status,
            nodes: RetStatus::with(code, msg, fields),
            withhold: false,
        }
    }

    fn code(status: StatusCode, code: &str, msg: &str) -> Processed {
        Processed::reply(status, code, msg, Vec::new())
    }
}

/// A request that is not what the protocol says. Never applied.
fn malformed(what: impl std::fmt::Display) -> Processed {
    Processed::code(
        StatusCode::BAD_REQUEST,
        "E100",
        &format!("malformed request: {what}"),
    )
}

/// Whom an answer goes to: its type and the MsgId it answers.
#[derive(Clone)]
struct ReplyTo {
    msg_type: MsgType,
    msg_id: Option<String>,
}

/// Decoding, authentication, then faults in order (outage, blackhole,
/// error rate, latency), then processing, detached from the connection.
async fn gateway(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let message = match codec::decode_message(&body) {
        Ok(m) => m,
        Err(e) => {
            let to = ReplyTo {
                msg_type: MsgType::EchoRsp,
                msg_id: None,
            };
            return sim.respond(malformed(e.0), &to);
        }
    };
    let request_type = message.header.msg_type;
    if request_type == MsgType::PayReq {
        sim.pay_requests.fetch_add(1, Ordering::SeqCst);
    }
    let to = ReplyTo {
        msg_type: request_type.answer().unwrap_or(MsgType::EchoRsp),
        msg_id: Some(message.header.msg_id.clone()),
    };
    if let Err((code, msg)) = sim.authenticate(&message) {
        tracing::info!(code, "refused authentication: {msg}");
        return sim.respond(Processed::code(StatusCode::UNAUTHORIZED, code, msg), &to);
    }
    if request_type.answer().is_none() {
        return sim.respond(malformed(format!("{request_type} is not a request")), &to);
    }
    let faults = sim.faults();
    if faults.outage {
        let p = Processed::code(
            StatusCode::SERVICE_UNAVAILABLE,
            "S902",
            "down for maintenance",
        );
        return sim.respond(p, &to);
    }
    if faults.blackhole {
        return sim.hold(&to).await;
    }
    if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
        let p = Processed::code(StatusCode::SERVICE_UNAVAILABLE, "S901", "system busy");
        return sim.respond(p, &to);
    }
    let task = tokio::spawn(process(sim.clone(), message, faults.latency_ms));
    match task.await {
        Ok(Some(p)) if p.withhold => sim.hold(&to).await,
        Ok(Some(p)) => sim.respond(p, &to),
        Ok(None) => sim.respond(
            Processed::code(StatusCode::SERVICE_UNAVAILABLE, "S902", "shutting down"),
            &to,
        ),
        Err(e) => {
            tracing::error!("processing failed: {e}");
            sim.respond(
                Processed::code(StatusCode::INTERNAL_SERVER_ERROR, "S999", "internal error"),
                &to,
            )
        }
    }
}

/// Waits out the latency fault, then processes; `None` if the simulator
/// stopped first (nothing applied).
async fn process(sim: Arc<Shared>, message: Message, latency_ms: u64) -> Option<Processed> {
    if latency_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(latency_ms)) => {}
            _ = stopped(sim.stop.clone()) => return None,
        }
    }
    if *sim.stop.borrow() {
        return None;
    }
    let body = &message.body;
    Some(match message.header.msg_type {
        MsgType::PayReq => sim.apply_pay(body),
        MsgType::QryReq => sim.query_payment(body),
        MsgType::BillReq => sim.query_bills(body),
        _ => Processed::code(StatusCode::OK, "00", "success"),
    })
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Checks sender, timestamp and MAC. On refusal: the code and message.
    fn authenticate(&self, message: &Message) -> Result<(), (&'static str, &'static str)> {
        let h = &message.header;
        if h.sender != self.key_id {
            return Err(("E401", "unknown sender"));
        }
        let timestamp = DateTime::parse_from_rfc3339(&h.timestamp)
            .map_err(|_| ("E402", "unreadable timestamp"))?;
        if (Utc::now().timestamp() - timestamp.timestamp()).abs() > TIMESTAMP_WINDOW_SECS {
            return Err(("E402", "timestamp outside window"));
        }
        if !message.mac_verifies(&self.signer) {
            return Err(("E401", "MAC rejected"));
        }
        Ok(())
    }

    /// The HTTP answer: an envelope MAC'd under our secret, answering
    /// `to`'s MsgId.
    fn respond(&self, p: Processed, to: &ReplyTo) -> Response {
        let msg_id = codec::new_msg_id();
        let timestamp = codec::format_time(&Utc::now(), self.utc_offset);
        let header = OutHeader {
            msg_type: to.msg_type,
            sender: SIM_SENDER,
            msg_id: &msg_id,
            timestamp: &timestamp,
            in_reply_to: to.msg_id.as_deref(),
        };
        let xml = codec::encode_message(&header, &p.nodes, &self.signer);
        (p.status, [(header::CONTENT_TYPE, codec::CONTENT_TYPE)], xml).into_response()
    }

    /// Holds a request unanswered (bounded), then answers 504.
    async fn hold(&self, to: &ReplyTo) -> Response {
        tokio::select! {
            _ = tokio::time::sleep(HOLD) => {}
            _ = stopped(self.stop.clone()) => {}
        }
        // Held requests may have been applied (drop-response): never
        // answer them with a "not applied" code.
        let p = Processed::code(StatusCode::GATEWAY_TIMEOUT, "S999", "request held too long");
        self.respond(p, to)
    }

    fn apply_pay(&self, body: &Element) -> Processed {
        let request = match PayRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return malformed(e.0),
        };
        let mut ledger = lock(&self.ledger);
        let processed = match ledger.payments.get(&request.txn_ref) {
            Some(previous) if same_details(&previous.request, &request) => self.repeat(previous),
            Some(_) => Processed::code(
                StatusCode::OK,
                "E109",
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
            credited_at: credited_at.with_timezone(&self.utc_offset),
            duplicate,
        };
        Processed::reply(StatusCode::OK, "00", "success", answer.to_nodes())
    }

    /// Decides a new payment: refuses (recorded) or credits it. An amount
    /// that is not a decimal string is refused (E103) without a record:
    /// there is no amount to record.
    fn decide(&self, ledger: &mut Ledger, request: PayRequest) -> Processed {
        let Some(amount) = codec::parse_amount(&request.amount) else {
            return Processed::code(StatusCode::OK, "E103", "amount is not a decimal string");
        };
        let refusal = match ledger
            .book
            .accounts
            .get(&request.biller_code)
            .and_then(|a| a.get(&request.account_no))
        {
            None => Some(("E101", "account not found".to_string())),
            Some(a) if !a.open => Some(("E102", "account closed".to_string())),
            Some(_) if request.currency != self.currency => {
                Some(("E104", format!("only {} accepted", self.currency)))
            }
            Some(_) if !acceptable_amount(amount) => Some((
                "E103",
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
        let receipt_no = format!("PWR{:010}", ledger.book.receipts);
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
        if faults.misecho_next > 0 && p.status == StatusCode::OK && misecho(&mut p.nodes) {
            faults.misecho_next -= 1;
        }
        p
    }

    fn query_payment(&self, body: &Element) -> Processed {
        let request = match QueryRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return malformed(e.0),
        };
        let ledger = lock(&self.ledger);
        let Some(payment) = ledger
            .payments
            .get(&request.txn_ref)
            .filter(|p| p.request.biller_code == request.biller_code)
        else {
            return Processed::code(StatusCode::OK, "E404", "payment not found");
        };
        let mut answer = QueryAnswer {
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
                answer.credited_at = Some(credited_at.with_timezone(&self.utc_offset));
            }
            Outcome::Rejected { code, message } => {
                answer.state = PaymentState::Rejected;
                answer.reject_code = Some(code.to_string());
                answer.reject_msg = Some(message.clone());
            }
        }
        Processed::reply(StatusCode::OK, "00", "success", answer.to_nodes())
    }

    fn query_bills(&self, body: &Element) -> Processed {
        let request = match BillsRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return malformed(e.0),
        };
        let ledger = lock(&self.ledger);
        let Some(account) = ledger
            .book
            .accounts
            .get(&request.biller_code)
            .and_then(|a| a.get(&request.account_no))
        else {
            return Processed::code(StatusCode::OK, "E101", "account not found");
        };
        if !account.open {
            return Processed::code(StatusCode::OK, "E102", "account closed");
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
        Processed::reply(StatusCode::OK, "00", "success", answer.to_nodes())
    }

    fn confirmation(&self, biller_id: &str, date: NaiveDate) -> Confirmation {
        let ledger = lock(&self.ledger);
        let offset = self.utc_offset;
        let credits = ledger
            .book
            .credits
            .iter()
            .filter(|c| c.biller_id == biller_id)
            .map(|c| (c, c.credited_at.with_timezone(&offset)))
            .filter(|(_, at)| at.date_naive() == date)
            .map(|(c, at)| ConfirmedCredit {
                txn_ref: c.our_reference.clone(),
                receipt_no: c.biller_reference.clone(),
                account_no: c.account_number.clone(),
                amount: c.amount,
                currency: c.currency.clone(),
                credited_at: at,
            })
            .collect();
        Confirmation {
            biller_code: biller_id.to_string(),
            business_date: date,
            credits,
        }
    }
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

/// Raises the `Amount` of a successful pay answer by 0.01; whether it did.
fn misecho(nodes: &mut [Node]) -> bool {
    let success = nodes
        .iter()
        .any(|n| matches!(n, Node::Leaf("RetCode", code) if code == "00"));
    if !success {
        return false;
    }
    for node in nodes.iter_mut() {
        if let Node::Leaf("Amount", value) = node {
            if let Some(amount) = codec::parse_amount(value) {
                *value = (amount + Decimal::new(1, 2)).to_string();
                return true;
            }
        }
    }
    false
}

// --------------------------------------------------------- admin endpoints

async fn get_confirmations(
    State(sim): State<Arc<Shared>>,
    Path((biller_id, date)): Path<(String, String)>,
) -> Response {
    match NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
        Ok(date) => (
            [(header::CONTENT_TYPE, codec::CONTENT_TYPE)],
            sim.confirmation(&biller_id, date).encode(),
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
            biller_code: "sh-power".into(),
            txn_ref: "p1".into(),
            account_no: "0306406159".into(),
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
    fn misecho_raises_the_amount_by_a_cent_of_successes_only() {
        let mut nodes =
            RetStatus::with("00", "success", vec![Node::Leaf("Amount", "88.50".into())]);
        assert!(misecho(&mut nodes));
        assert_eq!(nodes[2], Node::Leaf("Amount", "88.51".into()));
        let mut refused = RetStatus::with("E101", "x", vec![Node::Leaf("Amount", "1".into())]);
        assert!(!misecho(&mut refused));
    }

    #[test]
    fn the_confirmation_file_lists_the_day_in_the_offset() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let credit = |r: &str, t: &str| CreditRecord {
            our_reference: r.into(),
            biller_reference: format!("R-{r}"),
            biller_id: "sh-power".into(),
            account_number: "0306406159".into(),
            amount: Decimal::new(8850, 2),
            currency: "CNY".into(),
            bill_reference: None,
            credited_at: at(t),
        };
        let (stop, stop_rx) = watch::channel(false);
        let shared = Shared {
            key_id: "k".into(),
            signer: Arc::new(biller_connectors::Signer::hmac(b"s").unwrap()),
            currency: "CNY".into(),
            utc_offset: offset,
            faults: Mutex::new(Faults::default()),
            ledger: Mutex::new(Ledger {
                book: Book {
                    credits: vec![
                        credit("late", "2026-11-28T16:00:00Z"),  // 00:00 on the 29th
                        credit("early", "2026-11-28T15:59:59Z"), // still the 28th
                        credit("other", "2026-11-29T01:00:00Z"),
                    ],
                    ..Book::default()
                },
                ..Ledger::default()
            }),
            pay_requests: AtomicU64::new(0),
            stop: stop_rx,
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let file = shared.confirmation("sh-power", day);
        let refs: Vec<_> = file.credits.iter().map(|c| c.txn_ref.as_str()).collect();
        assert_eq!(refs, ["late", "other"]);
        assert_eq!(
            codec::format_time(&file.credits[0].credited_at.with_timezone(&Utc), offset),
            "2026-11-29T00:00:00.000+08:00"
        );
        drop(stop);
    }
}
