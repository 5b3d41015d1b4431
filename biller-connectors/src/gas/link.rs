//! The one persistent TCP link to the gas company, shared by every request
//! of a connector.
//!
//! * A supervisor task (started by the first request, stopped when the
//!   connector is dropped) keeps the link up: it connects, and when the
//!   link is lost it reconnects at once, then with a backoff doubling from
//!   [`MIN_BACKOFF`] to [`MAX_BACKOFF`]; a request waiting for the link cuts
//!   the backoff short.
//! * Requests are written whole by one writer task (a request given up
//!   never leaves half a frame on the wire) and their answers are matched
//!   by (answer type, reference, trace) as the reader task reads them, in
//!   whatever order they come. An answer nobody waits for (late, or a
//!   duplicate) is logged and dropped.
//! * When the link is lost, every request sent on it and not answered yet
//!   is told so at once ([`Trouble::NoAnswer`]); a request that could not
//!   be handed to a live link is [`Trouble::NotConnected`] (nothing sent).
//! * Over TLS (`tls://`), the link is up once the handshake is done; a
//!   server that refuses our certificate after it (TLS 1.3 judges client
//!   certificates late) never read what we sent, so the requests on that
//!   link are told [`Trouble::NotConnected`].
//! * At most `max_in_flight` requests at a time; a frame's length is bounded
//!   by [`codec::MAX_RECORD`] (a longer prefix ends the link: the stream
//!   cannot be trusted any more).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::codec::{self, Reader};
use super::Trouble;

/// The first wait before reconnecting after a failed attempt.
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What an answer is matched by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The answer's message type (`0210` for a `0200`).
    pub answer_type: &'static str,
    pub reference: String,
    pub trace: u64,
}

/// What a waiting request is told.
enum Incoming {
    /// Its answer (the record, MAC not checked yet).
    Record(Vec<u8>),
    /// The link it was sent on is gone.
    Lost(String),
    /// The server refused the TLS handshake: it never read the request.
    Refused(String),
}

struct Waiter {
    conn: u64,
    tx: oneshot::Sender<Incoming>,
}

/// One live connection.
struct Conn {
    id: u64,
    alive: AtomicBool,
    frames: mpsc::Sender<Vec<u8>>,
}

/// How the link speaks TLS: the connector and the name to verify.
pub struct LinkTls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

struct Inner {
    addr: String,
    tls: Option<LinkTls>,
    connect_timeout: Duration,
    max_in_flight: usize,
    pending: Mutex<HashMap<Key, Waiter>>,
    current: watch::Sender<Option<Arc<Conn>>>,
    last_error: Mutex<String>,
    wake: Notify,
    permits: Arc<Semaphore>,
}

/// The link of one connector.
pub struct Link {
    inner: Arc<Inner>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    /// Dropped with the link: the supervisor then closes the connection.
    stop: watch::Sender<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Link {
    /// A link to `addr` (`host:port`); nothing happens until the first call.
    pub fn new(
        addr: &str,
        tls: Option<LinkTls>,
        connect_timeout: Duration,
        max_in_flight: usize,
    ) -> Link {
        let (current, _) = watch::channel(None);
        let (stop, _) = watch::channel(());
        Link {
            inner: Arc::new(Inner {
                addr: addr.to_string(),
                tls,
                connect_timeout,
                max_in_flight,
                pending: Mutex::new(HashMap::new()),
                current,
                last_error: Mutex::new("not connected yet".into()),
                wake: Notify::new(),
                permits: Arc::new(Semaphore::new(max_in_flight)),
            }),
            supervisor: Mutex::new(None),
            stop,
        }
    }

    /// Starts the supervisor on the current runtime if it is not running
    /// (the first call, or the runtime that ran it is gone).
    fn ensure_supervised(&self) {
        let mut sup = lock(&self.supervisor);
        if sup.as_ref().is_none_or(JoinHandle::is_finished) {
            *sup = Some(tokio::spawn(supervise(
                self.inner.clone(),
                self.stop.subscribe(),
            )));
        }
    }

    /// Sends `frame` and waits for the answer matched by `key`, at most
    /// `timeout` in all; waiting for the link gets at most `connect_wait`
    /// of it (then nothing was sent).
    pub async fn call(
        &self,
        frame: Vec<u8>,
        key: Key,
        timeout: Duration,
        connect_wait: Duration,
    ) -> Result<Vec<u8>, Trouble> {
        let start = Instant::now();
        let deadline = start + timeout;
        self.ensure_supervised();
        let _permit = self
            .inner
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Trouble::NotConnected(format!(
                    "{} requests already in flight on the link",
                    self.inner.max_in_flight
                ))
            })?;
        let conn = self.connection(start + connect_wait.min(timeout)).await?;
        let (tx, rx) = oneshot::channel();
        let _registered = Registration::new(&self.inner, key, conn.id, tx);
        // Registered first, then checked: if the link dies after this check,
        // the supervisor (which clears `alive` before it drains) finds us.
        if !conn.alive.load(Ordering::SeqCst) {
            return Err(Trouble::NotConnected("link lost before sending".into()));
        }
        conn.frames.try_send(frame).map_err(|e| {
            Trouble::NotConnected(match e {
                mpsc::error::TrySendError::Full(_) => "link send queue full".into(),
                mpsc::error::TrySendError::Closed(_) => "link lost before sending".into(),
            })
        })?;
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(Trouble::NoAnswer(format!("no answer within {timeout:?}"))),
            Ok(Ok(Incoming::Record(record))) => Ok(record),
            Ok(Ok(Incoming::Lost(why))) => Err(Trouble::NoAnswer(format!(
                "link lost before the answer came: {why}"
            ))),
            Ok(Err(_)) => Err(Trouble::NoAnswer("link closed before the answer".into())),
            Ok(Ok(Incoming::Refused(why))) => Err(Trouble::NotConnected(why)),
        }
    }

    /// A live connection, waiting for the supervisor until `until`.
    async fn connection(&self, until: Instant) -> Result<Arc<Conn>, Trouble> {
        let mut rx = self.inner.current.subscribe();
        let mut woke = false;
        loop {
            let live = rx
                .borrow_and_update()
                .clone()
                .filter(|c| c.alive.load(Ordering::SeqCst));
            if let Some(conn) = live {
                return Ok(conn);
            }
            if !woke {
                self.inner.wake.notify_one();
                woke = true;
            }
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => {
                    return Err(Trouble::NotConnected(lock(&self.inner.last_error).clone()))
                }
            }
        }
    }

    /// Requests waiting for an answer (for tests and metrics).
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.pending).len()
    }
}

/// A waiting request's entry; removed when the request ends, however.
struct Registration<'a> {
    inner: &'a Inner,
    key: Key,
}

impl<'a> Registration<'a> {
    fn new(inner: &'a Inner, key: Key, conn: u64, tx: oneshot::Sender<Incoming>) -> Self {
        lock(&inner.pending).insert(key.clone(), Waiter { conn, tx });
        Registration { inner, key }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.key);
    }
}

impl Inner {
    /// Tells every request waiting on `conn` (all, if `None`) that the link
    /// is gone.
    fn drain(&self, conn: Option<u64>, why: &str, refused: bool) {
        let lost: Vec<Waiter> = {
            let mut pending = lock(&self.pending);
            let keys: Vec<Key> = pending
                .iter()
                .filter(|(_, w)| conn.is_none_or(|c| w.conn == c))
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| pending.remove(k)).collect()
        };
        if !lost.is_empty() {
            tracing::warn!(
                addr = %self.addr,
                requests = lost.len(),
                "gas link lost with requests unanswered: {why}"
            );
        }
        for w in lost {
            let told = if refused {
                Incoming::Refused(why.to_string())
            } else {
                Incoming::Lost(why.to_string())
            };
            let _ = w.tx.send(told);
        }
    }

    /// Hands an answer to the request it answers, if one waits for it.
    fn dispatch(&self, conn: u64, record: Vec<u8>) {
        let key = match Reader::new(&record).and_then(|r| {
            let h = r.header()?;
            Ok(Key {
                answer_type: r.layout().msg_type,
                reference: h.reference,
                trace: h.trace,
            })
        }) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(addr = %self.addr, "gas link: unreadable frame dropped: {e}");
                return;
            }
        };
        let waiter = {
            let mut pending = lock(&self.pending);
            match pending.get(&key) {
                Some(w) if w.conn == conn => pending.remove(&key),
                _ => None,
            }
        };
        match waiter {
            Some(w) => {
                let _ = w.tx.send(Incoming::Record(record));
            }
            None => tracing::info!(
                addr = %self.addr,
                msg_type = key.answer_type,
                reference = %key.reference,
                trace = key.trace,
                "gas link: answer nobody waits for (late or duplicate) dropped"
            ),
        }
    }
}

/// Keeps the link up until the connector is dropped.
async fn supervise(inner: Arc<Inner>, mut stop: watch::Receiver<()>) {
    let mut backoff = MIN_BACKOFF;
    let mut next_id = 0u64;
    loop {
        let attempt = tokio::select! {
            _ = stop.changed() => break,
            r = tokio::time::timeout(inner.connect_timeout, connect(&inner)) => r,
        };
        match attempt {
            Ok(Ok(stream)) => {
                next_id += 1;
                backoff = MIN_BACKOFF;
                let (why, stopping) = match stream {
                    Stream::Plain(s) => run_connection(&inner, next_id, s, &mut stop).await,
                    Stream::Tls(s) => run_connection(&inner, next_id, *s, &mut stop).await,
                };
                *lock(&inner.last_error) = format!("link lost: {why}");
                if stopping {
                    break;
                }
                tracing::warn!(addr = %inner.addr, link = next_id, "gas link lost: {why}");
                continue; // reconnect at once
            }
            Ok(Err(e)) => {
                *lock(&inner.last_error) = format!("could not connect to {}: {e}", inner.addr);
            }
            Err(_) => {
                *lock(&inner.last_error) = format!(
                    "could not connect to {} within {:?}",
                    inner.addr, inner.connect_timeout
                );
            }
        }
        tracing::debug!(addr = %inner.addr, ?backoff, "{}", lock(&inner.last_error));
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(backoff) => {}
            _ = inner.wake.notified() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    inner.current.send_replace(None);
    inner.drain(None, "connector dropped", false);
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A TCP connection, through the TLS handshake when the link speaks TLS.
async fn connect(inner: &Inner) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(&inner.addr).await?;
    let _ = tcp.set_nodelay(true);
    match &inner.tls {
        None => Ok(Stream::Plain(tcp)),
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "TLS handshake failed: {}",
                        crate::transport::error_chain(&e)
                    ))
                })?;
            Ok(Stream::Tls(Box::new(stream)))
        }
    }
}

/// Serves one connection until it is lost (or the connector is dropped:
/// then `true`).
async fn run_connection<S: AsyncRead + AsyncWrite + Send>(
    inner: &Arc<Inner>,
    id: u64,
    stream: S,
    stop: &mut watch::Receiver<()>,
) -> (String, bool) {
    let (read, write) = tokio::io::split(stream);
    let (frames, queue) = mpsc::channel(inner.max_in_flight.max(1));
    let conn = Arc::new(Conn {
        id,
        alive: AtomicBool::new(true),
        frames,
    });
    inner.current.send_replace(Some(conn.clone()));
    tracing::info!(addr = %inner.addr, link = id, "gas link up");
    let ((why, refused), stopping) = tokio::select! {
        why = read_loop(inner, id, read) => (why, false),
        why = write_loop(write, queue) => (why, false),
        _ = stop.changed() => (("connector dropped".to_string(), false), true),
    };
    conn.alive.store(false, Ordering::SeqCst);
    inner.current.send_replace(None);
    inner.drain(Some(id), &why, refused);
    (why, stopping)
}

/// Reads answers until the link fails: why, and whether the server
/// refused the TLS handshake (nothing we sent was read).
async fn read_loop<S: AsyncRead>(inner: &Inner, id: u64, mut read: ReadHalf<S>) -> (String, bool) {
    loop {
        let mut prefix = [0u8; codec::PREFIX_WIDTH];
        if let Err(e) = read.read_exact(&mut prefix).await {
            return read_error(e);
        }
        let len = match codec::parse_prefix(prefix) {
            Ok(len) => len,
            Err(e) => return (format!("protocol error, link dropped: {e}"), false),
        };
        let mut record = vec![0u8; len];
        if let Err(e) = read.read_exact(&mut record).await {
            return read_error(e);
        }
        inner.dispatch(id, record);
    }
}

fn read_error(e: std::io::Error) -> (String, bool) {
    if let Some(refusal) = crate::transport::tls::is_handshake_refusal(&e) {
        (refusal, true)
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ("closed by the biller".into(), false)
    } else {
        (format!("read failed: {e}"), false)
    }
}

async fn write_loop<S: AsyncWrite>(
    mut write: WriteHalf<S>,
    mut queue: mpsc::Receiver<Vec<u8>>,
) -> (String, bool) {
    while let Some(frame) = queue.recv().await {
        if let Err(e) = write.write_all(&frame).await {
            return (format!("write failed: {e}"), false);
        }
        if let Err(e) = write.flush().await {
            return (format!("write failed: {e}"), false);
        }
    }
    // Never while the connection is current: it holds a sender.
    ("send queue closed".into(), false)
}
