//! The gas company simulator: a TCP server speaking the fixed-length
//! messages of [`biller_connectors::gas::codec`] on persistent links, and a second,
//! HTTP listener for the admin endpoints under `/_sim/`.
//!
//! Faults ([`Faults`]) as the gas company's link expresses them:
//!
//! * `outage`: every request answered `92`, nothing applied;
//! * `blackhole`: requests read, never answered, nothing applied;
//! * `error_rate`: that share of requests answered `91`, not applied;
//! * `latency_ms`: processing waits that long (detached from the link: a
//!   client that gives up does not stop it; a simulator shut down does);
//! * `drop_response_rate` / `drop_response_next`: pay requests applied,
//!   never answered;
//! * `misecho_next`: successful pay answers echo the amount + 0.01;
//! * `duplicate_answer_next`: the next N answers are written twice, the
//!   copy [`DUPLICATE_DELAY`] later (a late duplicate);
//! * `out_of_order`: answers are held up to [`REORDER_WINDOW`] and the
//!   batch written in reverse order.
//!
//! A request with an unknown terminal id or a bad MAC is answered `63`
//! (MAC'd with the simulator's secret) and never applied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, FixedOffset, NaiveDate, SubsecRound, Utc};
use rust_decimal::Decimal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::book::Book;
use crate::http::{admin_routes, Admin};
use crate::{lock, Account, CreditRecord, Faults, RejectRecord};
use biller_connectors::gas::codec::{
    self, BillsAnswer, BillsRequest, EchoAnswer, EchoRequest, Header, PayAnswer, PayRequest,
    PaymentState, Reader, StatusAnswer, StatusRequest, WireBill,
};
pub use biller_connectors::gas::confirmation::write as confirmation_file;
use biller_connectors::transport::mask_account;

/// How long answers are held to be reordered (`out_of_order`).
pub const REORDER_WINDOW: Duration = Duration::from_millis(40);
/// How much later the copy of a duplicated answer is written.
pub const DUPLICATE_DELAY: Duration = Duration::from_millis(30);
/// Answers queued per link before the link is considered stuck.
const ANSWER_QUEUE: usize = 1024;
/// The largest payment accepted.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
/// The largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// How the gas simulator is set up.
#[derive(Debug, Clone)]
pub struct GasSimConfig {
    /// The terminal id billclear uses (its `key_id`).
    pub key_id: String,
    /// The shared MAC secret.
    pub secret: String,
    /// Serve the link over TLS with this configuration (see
    /// [`crate::http::server_tls`]); plaintext TCP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The only currency accepted, e.g. "CNY".
    pub currency: String,
    /// The offset whose calendar day is the confirmation file's business
    /// day (+08:00 by default).
    pub utc_offset: FixedOffset,
    /// The initial book: (biller id, account).
    pub book: Vec<(String, Account)>,
}

impl GasSimConfig {
    /// A config with currency CNY, offset +08:00 and an empty book.
    pub fn new(key_id: &str, secret: &str) -> GasSimConfig {
        GasSimConfig {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            tls: None,
            currency: "CNY".to_string(),
            utc_offset: FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset"),
            book: Vec::new(),
        }
    }
}

/// A running gas company simulator. Dropping it shuts it down.
pub struct GasSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// A second handle on the link listener, so that `shutdown` closes it
    /// at once (connecting is refused as soon as it returns).
    #[cfg(unix)]
    listen_handle: Mutex<Option<std::net::TcpStream>>,
}

/// What survives a restart: the biller's books, faults and counters.
#[derive(Default)]
struct Books {
    faults: Mutex<Faults>,
    ledger: Mutex<Ledger>,
    pay_requests: AtomicU64,
    links: AtomicU64,
    reordered: AtomicU64,
}

/// What the link and admin handlers of one run share.
struct Shared {
    key_id: String,
    secret: Vec<u8>,
    tls: Option<Arc<rustls::ServerConfig>>,
    currency: String,
    utc_offset: FixedOffset,
    books: Arc<Books>,
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct Ledger {
    payments: HashMap<String, Payment>,
    book: Book,
}

/// A payment request the biller decided on, kept under our reference.
struct Payment {
    request: PayRequest,
    outcome: Outcome,
}

enum Outcome {
    Credited {
        receipt_no: String,
        credited_at: DateTime<Utc>,
    },
    Rejected {
        code: &'static str,
    },
}

impl GasSim {
    /// Starts serving the link on `link_listener` and the admin endpoints
    /// on `admin_listener` (spawned on the current runtime).
    pub async fn start(
        link_listener: TcpListener,
        admin_listener: TcpListener,
        config: GasSimConfig,
    ) -> std::io::Result<GasSim> {
        let books = Arc::new(Books::default());
        {
            let mut ledger = lock(&books.ledger);
            for (biller, account) in config.book.clone() {
                ledger.book.add_account(&biller, account);
            }
        }
        GasSim::run(link_listener, admin_listener, config, books).await
    }

    /// Shuts this simulator down (if it is not already) and starts it again
    /// on new listeners (e.g. bound to the same ports), keeping its books,
    /// faults and counters: a biller restarting, not a new biller.
    pub async fn restart(
        &self,
        link_listener: TcpListener,
        admin_listener: TcpListener,
    ) -> std::io::Result<GasSim> {
        self.shutdown();
        let config = GasSimConfig {
            key_id: self.shared.key_id.clone(),
            secret: String::from_utf8_lossy(&self.shared.secret).into_owned(),
            tls: self.shared.tls.clone(),
            currency: self.shared.currency.clone(),
            utc_offset: self.shared.utc_offset,
            book: Vec::new(),
        };
        GasSim::run(
            link_listener,
            admin_listener,
            config,
            self.shared.books.clone(),
        )
        .await
    }

    async fn run(
        link_listener: TcpListener,
        admin_listener: TcpListener,
        config: GasSimConfig,
        books: Arc<Books>,
    ) -> std::io::Result<GasSim> {
        if config.secret.is_empty() || config.key_id.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "gas simulator: key id and secret must not be empty",
            ));
        }
        let local = |l: &TcpListener| -> std::io::Result<SocketAddr> {
            let mut addr = l.local_addr()?;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Ok(addr)
        };
        let addr = local(&link_listener)?;
        let admin_addr = local(&admin_listener)?;
        #[cfg(unix)]
        let listen_handle = {
            use std::os::fd::AsFd;
            Mutex::new(Some(std::net::TcpStream::from(
                link_listener.as_fd().try_clone_to_owned()?,
            )))
        };
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            key_id: config.key_id,
            secret: config.secret.into_bytes(),
            tls: config.tls,
            currency: config.currency,
            utc_offset: config.utc_offset,
            books,
            stop: stop_rx.clone(),
        });
        tokio::spawn(accept_loop(link_listener, shared.clone()));
        let admin = admin_router(shared.clone());
        let admin_stop = stop_rx.clone();
        tokio::spawn(async move {
            let served = axum::serve(admin_listener, admin)
                .with_graceful_shutdown(stopped(admin_stop))
                .await;
            if let Err(e) = served {
                tracing::warn!("gas simulator admin server ended: {e}");
            }
        });
        tracing::info!(%addr, %admin_addr, "gas simulator listening");
        Ok(GasSim {
            shared,
            addr,
            admin_addr,
            stop,
            #[cfg(unix)]
            listen_handle,
        })
    }

    /// Where the link listens: `tcp://127.0.0.1:PORT`, or `tls://…` when
    /// the link is secured (a `base_url`).
    pub fn address(&self) -> String {
        let scheme = if self.shared.tls.is_some() {
            "tls"
        } else {
            "tcp"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The link's socket address.
    pub fn link_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the admin endpoints listen: `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Replaces the faults (validate them first with [`Faults::validate`]).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.books.faults) = faults;
    }

    /// The faults in force (counters as counted down so far).
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Every payment credited, in order.
    pub fn credits(&self) -> Vec<CreditRecord> {
        lock(&self.shared.books.ledger).book.credits.clone()
    }

    /// Every payment refused (and recorded), in order.
    pub fn rejections(&self) -> Vec<RejectRecord> {
        lock(&self.shared.books.ledger).book.rejections.clone()
    }

    /// Pay requests received, duplicates and faulted ones included.
    pub fn pay_requests(&self) -> u64 {
        self.shared.books.pay_requests.load(Ordering::SeqCst)
    }

    /// Links (TCP connections) accepted so far, restarts included.
    pub fn links_accepted(&self) -> u64 {
        self.shared.books.links.load(Ordering::SeqCst)
    }

    /// Batches of 2 or more answers written in reverse order so far
    /// (`out_of_order`).
    pub fn reordered_batches(&self) -> u64 {
        self.shared.books.reordered.load(Ordering::SeqCst)
    }

    /// Adds (or replaces) an account in the book of `biller_id`.
    pub fn add_account(&self, biller_id: &str, account: Account) {
        lock(&self.shared.books.ledger)
            .book
            .add_account(biller_id, account);
    }

    /// An account as it stands (bills reduced by payments).
    pub fn account(&self, biller_id: &str, account_number: &str) -> Option<Account> {
        lock(&self.shared.books.ledger)
            .book
            .accounts
            .get(biller_id)
            .and_then(|a| a.get(account_number))
            .cloned()
    }

    /// The biller's daily confirmation file for `date` (fixed-width, see
    /// [`biller_connectors::gas::codec`]).
    pub fn confirmation_file(&self, biller_id: &str, date: NaiveDate) -> String {
        self.shared.confirmation_file(biller_id, date)
    }

    /// Stops accepting, closes the link listener at once (connecting is
    /// refused from here on), closes every open link and the admin
    /// listener, and abandons delayed requests without applying them.
    /// Idempotent; also on drop.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        #[cfg(unix)]
        if let Some(handle) = lock(&self.listen_handle).take() {
            // shutdown(2) on a listening socket stops it listening.
            let _ = handle.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for GasSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Resolves once the simulator is stopping.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(listener: TcpListener, sim: Arc<Shared>) {
    let stop = sim.stop.clone();
    let acceptor = sim.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = stopped(stop.clone()) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                sim.books.links.fetch_add(1, Ordering::SeqCst);
                tracing::info!(%peer, "gas link accepted");
                tokio::spawn(open_link(sim.clone(), stream, acceptor.clone()));
            }
            Err(e) if *stop.borrow() => {
                tracing::debug!("accept stopped: {e}");
                break;
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("gas simulator stopped");
}

/// Opens one link: the TLS handshake first when the link is secured.
async fn open_link(sim: Arc<Shared>, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_link(sim, stream).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_link(sim, tls).await,
                Ok(Err(e)) => tracing::info!("gas link TLS handshake refused: {e}"),
                Err(_) => tracing::info!("gas link TLS handshake timed out"),
            }
        }
    }
}

/// One link: reads requests, hands answers to its writer task.
async fn serve_link<S>(sim: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut read, write) = tokio::io::split(stream);
    let (answers, queue) = mpsc::channel(ANSWER_QUEUE);
    let writer = tokio::spawn(write_answers(sim.clone(), write, queue));
    loop {
        let frame = tokio::select! {
            _ = stopped(sim.stop.clone()) => break,
            frame = read_frame(&mut read) => frame,
        };
        match frame {
            Ok(record) => sim.clone().handle(record, answers.clone()),
            Err(why) => {
                tracing::info!("gas link closed: {why}");
                break;
            }
        }
    }
    drop(read);
    if *sim.stop.borrow() {
        writer.abort();
    }
}

async fn read_frame<R: AsyncRead + Unpin>(read: &mut R) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; codec::PREFIX_WIDTH];
    read.read_exact(&mut prefix)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let len = codec::parse_prefix(prefix).map_err(|e| e.to_string())?;
    let mut record = vec![0u8; len];
    read.read_exact(&mut record)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(record)
}

/// Writes answers in order, or held and reversed (`out_of_order`).
async fn write_answers<W: AsyncWrite + Unpin>(
    sim: Arc<Shared>,
    mut write: W,
    mut queue: mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let first = tokio::select! {
            _ = stopped(sim.stop.clone()) => return,
            next = queue.recv() => match next {
                Some(frame) => frame,
                None => return,
            },
        };
        let mut batch = vec![first];
        if sim.faults().out_of_order {
            let until = Instant::now() + REORDER_WINDOW;
            while batch.len() < 64 {
                match tokio::time::timeout_at(until, queue.recv()).await {
                    Ok(Some(frame)) => batch.push(frame),
                    Ok(None) | Err(_) => break,
                }
            }
            if batch.len() > 1 {
                batch.reverse();
                sim.books.reordered.fetch_add(1, Ordering::SeqCst);
            }
        }
        for frame in batch {
            if *sim.stop.borrow() {
                return;
            }
            if let Err(e) = write.write_all(&frame).await {
                tracing::info!("gas link write failed: {e}");
                return;
            }
        }
        if let Err(e) = write.flush().await {
            tracing::info!("gas link flush failed: {e}");
            return;
        }
    }
}

/// A request as read.
enum Request {
    Pay(PayRequest),
    Status(StatusRequest),
    Bills(BillsRequest),
    Echo(EchoRequest),
}

/// What processing a request produced.
struct Processed {
    frame: Vec<u8>,
    /// Applied, but the answer is withheld (drop-response fault).
    withhold: bool,
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.books.faults).clone()
    }

    /// Authentication, then faults in order (outage, blackhole, error
    /// rate, latency), then processing, detached from the link.
    fn handle(self: Arc<Self>, record: Vec<u8>, answers: mpsc::Sender<Vec<u8>>) {
        let reader = match Reader::new(&record) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("gas simulator: unreadable request dropped: {e}");
                return;
            }
        };
        let msg_type = reader.layout().msg_type;
        let Some(answer_type) = codec::answer_type(msg_type) else {
            tracing::warn!(msg_type, "gas simulator: not a request, dropped");
            return;
        };
        let Ok(header) = reader.header() else {
            tracing::warn!(msg_type, "gas simulator: unreadable header, dropped");
            return;
        };
        if msg_type == codec::MSG_PAY {
            self.books.pay_requests.fetch_add(1, Ordering::SeqCst);
        }
        if header.terminal_id != self.key_id || !reader.mac_ok(&self.secret) {
            tracing::info!(terminal = %header.terminal_id, "refused authentication: code 63");
            return self.send(&answers, self.blank(answer_type, &header, "63"));
        }
        let request = match decode_request(&reader) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!("malformed request: {e}");
                return self.send(&answers, self.blank(answer_type, &header, "30"));
            }
        };
        let faults = self.faults();
        if faults.outage {
            return self.send(&answers, self.code_answer(&request, "92"));
        }
        if faults.blackhole {
            tracing::info!(reference = %header.reference, "blackholed");
            return;
        }
        if faults.error_rate > 0.0 && rand::random::<f64>() < faults.error_rate {
            return self.send(&answers, self.code_answer(&request, "91"));
        }
        let stop = self.stop.clone();
        tokio::spawn(async move {
            if faults.latency_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(faults.latency_ms)) => {}
                    _ = stopped(stop.clone()) => return,
                }
            }
            if *stop.borrow() {
                return;
            }
            let processed = match &request {
                Request::Pay(p) => self.apply_pay(p),
                Request::Status(s) => self.query_payment(s),
                Request::Bills(b) => self.query_bills(b),
                Request::Echo(e) => self.code_answer(&Request::Echo(e.clone()), "00"),
            };
            self.send(&answers, processed);
        });
    }

    /// Queues an answer (twice, the copy later, under
    /// `duplicate_answer_next`), unless it is withheld.
    fn send(&self, answers: &mpsc::Sender<Vec<u8>>, p: Processed) {
        if p.withhold {
            return;
        }
        let twice = {
            let mut faults = lock(&self.books.faults);
            let twice = faults.duplicate_answer_next > 0;
            faults.duplicate_answer_next = faults.duplicate_answer_next.saturating_sub(1);
            twice
        };
        if twice {
            let copy = p.frame.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DUPLICATE_DELAY).await;
                let _ = answers.send(copy).await;
            });
        }
        if answers.try_send(p.frame).is_err() {
            tracing::warn!("gas link answer queue full or closed: answer dropped");
        }
    }

    fn encoded(
        &self,
        result: Result<Vec<u8>, codec::EncodeError>,
        header: &Header,
        answer_type: &'static str,
    ) -> Processed {
        match result {
            Ok(frame) => Processed {
                frame,
                withhold: false,
            },
            Err(e) => {
                tracing::error!("gas simulator cannot encode its answer: {e}");
                self.blank(answer_type, header, "96")
            }
        }
    }

    /// An answer carrying only the header and a result code (other fields
    /// blank): for requests that cannot be read further.
    fn blank(&self, answer_type: &'static str, header: &Header, code: &str) -> Processed {
        let layout = codec::layout_for(answer_type).unwrap_or(&codec::ECHO_ANSWER);
        let mut w = codec::Writer::new(layout);
        let written = w
            .alpha("terminal_id", &header.terminal_id)
            .and_then(|w| w.alpha("reference", &header.reference))
            .and_then(|w| w.numeric("trace", header.trace))
            .and_then(|w| w.alpha("result_code", code))
            .map(|_| ());
        let frame = written
            .and_then(|()| w.finish(&self.secret))
            .unwrap_or_default();
        Processed {
            frame,
            withhold: false,
        }
    }

    /// The answer to `request` with `code` and the request's fields echoed.
    fn code_answer(&self, request: &Request, code: &str) -> Processed {
        match request {
            Request::Pay(p) => self.pay_answer(p, code, None, false),
            Request::Status(s) => {
                let answer = StatusAnswer {
                    header: s.header.clone(),
                    result_code: code.to_string(),
                    state: None,
                    biller_id: s.biller_id.clone(),
                    account: String::new(),
                    amount: Decimal::ZERO,
                    currency: String::new(),
                    receipt_no: String::new(),
                    credited_at: None,
                    reject_code: String::new(),
                };
                self.encoded(
                    answer.encode(&self.secret),
                    &s.header,
                    codec::MSG_STATUS_ANSWER,
                )
            }
            Request::Bills(b) => {
                let answer = BillsAnswer {
                    header: b.header.clone(),
                    result_code: code.to_string(),
                    biller_id: b.biller_id.clone(),
                    account: b.account.clone(),
                    customer_name: String::new(),
                    currency: String::new(),
                    bills: Vec::new(),
                };
                self.encoded(
                    answer.encode(&self.secret),
                    &b.header,
                    codec::MSG_BILLS_ANSWER,
                )
            }
            Request::Echo(e) => {
                let answer = EchoAnswer {
                    header: e.header.clone(),
                    result_code: code.to_string(),
                };
                self.encoded(
                    answer.encode(&self.secret),
                    &e.header,
                    codec::MSG_ECHO_ANSWER,
                )
            }
        }
    }

    fn pay_answer(
        &self,
        request: &PayRequest,
        code: &str,
        credit: Option<(&str, DateTime<Utc>)>,
        duplicate: bool,
    ) -> Processed {
        let answer = PayAnswer {
            header: request.header.clone(),
            result_code: code.to_string(),
            biller_id: request.biller_id.clone(),
            account: request.account.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
            receipt_no: credit.map(|c| c.0.to_string()).unwrap_or_default(),
            credited_at: credit.map(|c| c.1),
            duplicate,
        };
        self.encoded(
            answer.encode(&self.secret),
            &request.header,
            codec::MSG_PAY_ANSWER,
        )
    }

    fn apply_pay(&self, request: &PayRequest) -> Processed {
        let mut ledger = lock(&self.books.ledger);
        let processed = match ledger.payments.get(&request.header.reference) {
            Some(previous) if same_details(&previous.request, request) => match &previous.outcome {
                Outcome::Credited {
                    receipt_no,
                    credited_at,
                } => self.pay_answer(request, "00", Some((receipt_no, *credited_at)), true),
                Outcome::Rejected { code } => self.pay_answer(request, code, None, true),
            },
            Some(_) => self.pay_answer(request, "19", None, false),
            None => self.decide(&mut ledger, request),
        };
        drop(ledger);
        self.response_faults(request, processed)
    }

    /// Decides a new payment: refuses (recorded) or credits it.
    fn decide(&self, ledger: &mut Ledger, request: &PayRequest) -> Processed {
        let refusal = match ledger
            .book
            .accounts
            .get(&request.biller_id)
            .and_then(|a| a.get(&request.account))
        {
            None => Some(("14", "account not found".to_string())),
            Some(a) if !a.open => Some(("15", "account closed".to_string())),
            Some(_) if request.currency != self.currency => {
                Some(("16", format!("only {} accepted", self.currency)))
            }
            Some(_) if request.amount <= Decimal::ZERO || request.amount > MAX_AMOUNT => Some((
                "13",
                "amount must be positive and at most 1000000".to_string(),
            )),
            Some(_) => None,
        };
        let now = Utc::now().trunc_subsecs(0);
        let reference = request.header.reference.clone();
        if let Some((code, message)) = refusal {
            tracing::debug!(%reference, account = %mask_account(&request.account), code, "payment refused");
            ledger.book.rejections.push(RejectRecord {
                our_reference: reference.clone(),
                biller_id: request.biller_id.clone(),
                account_number: request.account.clone(),
                amount: request.amount,
                currency: request.currency.clone(),
                code: code.to_string(),
                message,
                at: now,
            });
            ledger.payments.insert(
                reference,
                Payment {
                    request: request.clone(),
                    outcome: Outcome::Rejected { code },
                },
            );
            return self.pay_answer(request, code, None, false);
        }
        ledger.book.receipts += 1;
        let receipt_no = format!("G{:012}", ledger.book.receipts);
        ledger.book.reduce_bill(
            &request.biller_id,
            &request.account,
            request.bill_no.as_deref(),
            request.amount,
        );
        ledger.book.credits.push(CreditRecord {
            our_reference: reference.clone(),
            biller_reference: receipt_no.clone(),
            biller_id: request.biller_id.clone(),
            account_number: request.account.clone(),
            amount: request.amount,
            currency: request.currency.clone(),
            bill_reference: request.bill_no.clone(),
            credited_at: now,
        });
        tracing::debug!(%reference, account = %mask_account(&request.account), receipt = %receipt_no, amount = %request.amount, "payment credited");
        let p = self.pay_answer(request, "00", Some((&receipt_no, now)), false);
        ledger.payments.insert(
            reference,
            Payment {
                request: request.clone(),
                outcome: Outcome::Credited {
                    receipt_no,
                    credited_at: now,
                },
            },
        );
        p
    }

    /// The pay-only faults: withhold the answer, or echo an amount 0.01
    /// higher (successful answers only). Counters count down.
    fn response_faults(&self, request: &PayRequest, mut p: Processed) -> Processed {
        let mut faults = lock(&self.books.faults);
        if faults.drop_response_next > 0 {
            faults.drop_response_next -= 1;
            p.withhold = true;
        } else if faults.drop_response_rate > 0.0
            && rand::random::<f64>() < faults.drop_response_rate
        {
            p.withhold = true;
        }
        if faults.misecho_next > 0 {
            let answer = codec::unframe(&p.frame)
                .and_then(|(record, _)| Reader::new(record).and_then(|r| PayAnswer::decode(&r)));
            if let Some(mut answer) = answer.ok().filter(|a| a.result_code == "00") {
                faults.misecho_next -= 1;
                answer.amount += Decimal::new(1, 2);
                let withhold = p.withhold;
                p = self.encoded(
                    answer.encode(&self.secret),
                    &request.header,
                    codec::MSG_PAY_ANSWER,
                );
                p.withhold = withhold;
            }
        }
        p
    }

    fn query_payment(&self, request: &StatusRequest) -> Processed {
        let ledger = lock(&self.books.ledger);
        let Some(payment) = ledger
            .payments
            .get(&request.header.reference)
            .filter(|p| p.request.biller_id == request.biller_id)
        else {
            return self.code_answer(&Request::Status(request.clone()), "25");
        };
        let mut answer = StatusAnswer {
            header: request.header.clone(),
            result_code: "00".into(),
            state: Some(PaymentState::Pending),
            biller_id: payment.request.biller_id.clone(),
            account: payment.request.account.clone(),
            amount: payment.request.amount,
            currency: payment.request.currency.clone(),
            receipt_no: String::new(),
            credited_at: None,
            reject_code: String::new(),
        };
        match &payment.outcome {
            Outcome::Credited {
                receipt_no,
                credited_at,
            } => {
                answer.state = Some(PaymentState::Credited);
                answer.receipt_no = receipt_no.clone();
                answer.credited_at = Some(*credited_at);
            }
            Outcome::Rejected { code } => {
                answer.state = Some(PaymentState::Rejected);
                answer.reject_code = code.to_string();
            }
        }
        self.encoded(
            answer.encode(&self.secret),
            &request.header,
            codec::MSG_STATUS_ANSWER,
        )
    }

    fn query_bills(&self, request: &BillsRequest) -> Processed {
        let ledger = lock(&self.books.ledger);
        let Some(account) = ledger
            .book
            .accounts
            .get(&request.biller_id)
            .and_then(|a| a.get(&request.account))
        else {
            return self.code_answer(&Request::Bills(request.clone()), "14");
        };
        if !account.open {
            return self.code_answer(&Request::Bills(request.clone()), "15");
        }
        let mut outstanding: Vec<_> = account
            .bills
            .iter()
            .filter(|b| b.amount_due > Decimal::ZERO)
            .collect();
        outstanding.sort_by_key(|b| b.due_date);
        let answer = BillsAnswer {
            header: request.header.clone(),
            result_code: "00".into(),
            biller_id: request.biller_id.clone(),
            account: account.account_number.clone(),
            customer_name: account.customer_name.clone(),
            currency: self.currency.clone(),
            bills: outstanding
                .into_iter()
                .take(codec::MAX_BILLS)
                .map(|b| WireBill {
                    bill_no: b.bill_reference.clone(),
                    amount_due: b.amount_due,
                    due_date: b.due_date,
                })
                .collect(),
        };
        self.encoded(
            answer.encode(&self.secret),
            &request.header,
            codec::MSG_BILLS_ANSWER,
        )
    }

    fn confirmation_file(&self, biller_id: &str, date: NaiveDate) -> String {
        let ledger = lock(&self.books.ledger);
        confirmation_file(
            &ledger.book.credits,
            biller_id,
            date,
            self.utc_offset,
            &self.currency,
        )
    }
}

fn decode_request(reader: &Reader<'_>) -> Result<Request, codec::DecodeError> {
    Ok(match reader.layout().msg_type {
        codec::MSG_PAY => Request::Pay(PayRequest::decode(reader)?),
        codec::MSG_STATUS => Request::Status(StatusRequest::decode(reader)?),
        codec::MSG_BILLS => Request::Bills(BillsRequest::decode(reader)?),
        _ => Request::Echo(EchoRequest::decode(reader)?),
    })
}

/// Whether a repeated request carries the same details as the original.
fn same_details(a: &PayRequest, b: &PayRequest) -> bool {
    a.biller_id == b.biller_id
        && a.account == b.account
        && a.amount == b.amount
        && a.currency == b.currency
        && a.bill_no == b.bill_no
}

// --------------------------------------------------------- admin endpoints

impl Admin for Shared {
    fn faults_now(&self) -> Faults {
        lock(&self.books.faults).clone()
    }
    fn replace_faults(&self, faults: Faults) {
        *lock(&self.books.faults) = faults;
    }
    fn with_book<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        f(&mut lock(&self.books.ledger).book)
    }
}

fn admin_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(admin_routes::<Shared>())
        .route(
            "/_sim/confirmations/{biller_id}/{date}",
            get(get_confirmations),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .with_state(shared)
}

async fn get_confirmations(
    State(sim): State<Arc<Shared>>,
    Path((biller_id, date)): Path<(String, String)>,
) -> Response {
    match NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
        Ok(date) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            sim.confirmation_file(&biller_id, date),
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biller_connectors::gas::codec::ConfirmationLine;
    use std::str::FromStr;

    fn credit(reference: &str, amount: &str, at: &str) -> CreditRecord {
        CreditRecord {
            our_reference: reference.into(),
            biller_reference: format!("G{reference}"),
            biller_id: "sh-gas".into(),
            account_number: "310012345677".into(),
            amount: Decimal::from_str(amount).unwrap(),
            currency: "CNY".into(),
            bill_reference: None,
            credited_at: DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn confirmation_file_is_fixed_width_with_trailer() {
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        let credits = [
            credit("r1", "88.50", "2026-11-28T16:00:00Z"), // 00:00 on the 29th, +08:00
            credit("r2", "11.5", "2026-11-29T15:59:59Z"),  // 23:59:59 on the 29th
            credit("r3", "1.00", "2026-11-29T16:00:00Z"),  // the 30th
        ];
        let day = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let file = confirmation_file(&credits, "sh-gas", day, offset, "CNY");
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 4, "{file}");
        assert!(lines.iter().all(|l| l.len() == codec::CONFIRMATION_WIDTH));
        assert_eq!(lines[0].trim_end(), "Hsh-gas          20261129CNY");
        assert_eq!(
            lines[1].trim_end(),
            format!(
                "D{:36}{:20}{:20}000000008850CNY20261128160000",
                "r1", "Gr1", "310012345677"
            )
        );
        assert_eq!(lines[3].trim_end(), "T00000002000000000010000");
        assert_eq!(
            ConfirmationLine::decode(lines[3].as_bytes()).unwrap(),
            ConfirmationLine::Trailer {
                count: 2,
                total: Decimal::from_str("100.00").unwrap()
            }
        );
    }

    #[test]
    fn same_details_compares_every_field() {
        let header = Header {
            terminal_id: "t".into(),
            reference: "r".into(),
            trace: 1,
        };
        let a = PayRequest {
            header: header.clone(),
            biller_id: "sh-gas".into(),
            account: "310012345677".into(),
            amount: Decimal::from_str("88.5").unwrap(),
            currency: "CNY".into(),
            bill_no: None,
        };
        let b = PayRequest {
            header: Header { trace: 2, ..header },
            amount: Decimal::from_str("88.50").unwrap(),
            ..a.clone()
        };
        assert!(same_details(&a, &b), "trace differs, details do not");
        let c = PayRequest {
            bill_no: Some("B".into()),
            ..a.clone()
        };
        assert!(!same_details(&a, &c));
    }
}
