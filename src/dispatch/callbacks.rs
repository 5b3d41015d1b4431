//! Callbacks: final states POSTed to the channel's callback URL.
//!
//! Each event is signed like a channel's own requests (BC1-HMAC-SHA256 over
//! method, path and query, timestamp, nonce and body) with the channel's
//! newest active key, carries its `event_id` in the body and in the
//! `Billclear-Event-Id` header, and is retried with backoff until the
//! channel answers 2xx: at least once, so channels deduplicate on event_id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use tracing::Instrument;

use super::endpoints::{endpoint_of, EndpointPolicy, Endpoints, FailureNote};
use super::http::HttpClient;

use super::pool::Job;
use crate::auth::secrets::MasterKey;
use crate::auth::signing;
use crate::config::CallbackConfig;
use crate::domain::ids::ChannelId;
use crate::store::{CallbackTarget, Claim, OutboxNext, Store, StoreResult};

pub const EVENT_ID_HEADER: &str = "billclear-event-id";

pub struct CallbackSender {
    store: Arc<dyn Store>,
    /// Acknowledgements, group-committed with the dispatch workers' writes.
    commit: super::commit::Committer,
    master_key: MasterKey,
    config: CallbackConfig,
    http: HttpClient,
    /// Endpoints that cannot be reached: backed off as a whole, told
    /// about once.
    endpoints: Endpoints,
    /// Endpoints that answer but refuse: told about once per interval.
    refusing: Endpoints,
    /// Each channel's callback target, as last read, and when.
    targets: std::sync::Mutex<HashMap<ChannelId, (std::time::Instant, Arc<CallbackTarget>)>>,
}

/// How long a channel's callback URL and key are reused before they are
/// read again (a changed URL or a new key takes effect within this).
const TARGET_TTL: Duration = Duration::from_secs(1);

/// Why a delivery did not count.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// Will not work however often it is tried.
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Transient(String),
    /// The channel's endpoint could not be reached (no connection, no
    /// answer in time): retried, and counted against the endpoint, which is
    /// backed off as a whole.
    #[error("{why}")]
    Unreachable { endpoint: String, why: String },
    /// The endpoint answered, but not 2xx: retried on the event's own
    /// schedule (the endpoint is up); told about once per interval.
    #[error("{why}")]
    Refused { endpoint: String, why: String },
    /// The endpoint is backed off: not tried, not counted as a delivery.
    #[error("endpoint {endpoint} is backed off after failures; last: {last}")]
    Deferred {
        endpoint: String,
        until: std::time::Instant,
        last: String,
    },
}

impl CallbackSender {
    pub fn new(
        state: &super::Deps,
        commit: super::commit::Committer,
    ) -> anyhow::Result<CallbackSender> {
        let cfg = &state.config.callbacks;
        Ok(CallbackSender {
            store: state.store.clone(),
            commit,
            master_key: state.master_key.clone(),
            config: cfg.clone(),
            http: super::http::client(
                cfg.ca_file.as_deref(),
                Duration::from_millis(cfg.timeout_ms),
            )?,
            endpoints: Endpoints::new(EndpointPolicy {
                base: Duration::from_millis(cfg.retry.base_ms.max(1)),
                max: Duration::from_millis(cfg.endpoint_backoff_max_ms.max(1)),
                log_every: Duration::from_secs(cfg.log_every_s.max(1)),
                probe: Duration::from_millis(cfg.timeout_ms.saturating_mul(2).max(1)),
            }),
            refusing: Endpoints::new(EndpointPolicy {
                base: Duration::ZERO,
                max: Duration::ZERO,
                log_every: Duration::from_secs(cfg.log_every_s.max(1)),
                probe: Duration::ZERO,
            }),
            targets: Default::default(),
        })
    }

    /// The channel's callback URL and newest key, read at most once per
    /// [`TARGET_TTL`] per channel (a burst of callbacks to one channel
    /// costs one read, not one each).
    async fn target(&self, channel: &ChannelId) -> StoreResult<Option<Arc<CallbackTarget>>> {
        let now = std::time::Instant::now();
        if let Some((at, target)) = self.targets.lock().expect("targets").get(channel) {
            if now.duration_since(*at) < TARGET_TTL {
                return Ok(Some(target.clone()));
            }
        }
        let Some(target) = self.store.callback_target(channel).await? else {
            self.targets.lock().expect("targets").remove(channel);
            return Ok(None);
        };
        let target = Arc::new(target);
        self.targets
            .lock()
            .expect("targets")
            .insert(channel.clone(), (now, target.clone()));
        Ok(Some(target))
    }

    async fn deliver(&self, claim: &Claim) -> Result<u16, DeliveryError> {
        use DeliveryError::*;
        let channel = claim.payload["channel_id"]
            .as_str()
            .and_then(|c| ChannelId::parse(c).ok())
            .ok_or_else(|| Permanent("callback work without a valid channel_id".into()))?;
        let event = &claim.payload["event"];
        let event_id = event["event_id"].as_str().unwrap_or_default().to_string();
        let target = self
            .target(&channel)
            .await
            .map_err(|e| Transient(e.to_string()))?
            // A channel between keys gets its callbacks once it has one.
            .ok_or_else(|| {
                Transient(format!(
                    "channel {channel} has no active key to sign callbacks with"
                ))
            })?;
        let uri: Uri = target
            .url
            .parse()
            .map_err(|e| Permanent(format!("callback URL {:?}: {e}", target.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(Permanent(format!(
                "callback URL {:?} is neither http nor https",
                target.url
            )));
        }
        let endpoint = endpoint_of(&uri);
        if let Err((until, last)) = self
            .endpoints
            .may_call(&endpoint, std::time::Instant::now())
        {
            return Err(Deferred {
                endpoint,
                until,
                last,
            });
        }
        let unreachable = |why: String| Unreachable {
            endpoint: endpoint.clone(),
            why,
        };
        let secret = self
            .master_key
            .open(&target.key_id, &target.sealed_secret)
            .map_err(|e| {
                Permanent(format!(
                    "channel key {} cannot be opened: {e}",
                    target.key_id
                ))
            })?;
        let body = serde_json::to_vec(event).map_err(|e| Permanent(e.to_string()))?;
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let ts = Utc::now().timestamp();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let auth = signing::authorization(
            &target.key_id,
            secret.expose(),
            "POST",
            path,
            ts,
            &nonce,
            &body,
        );
        let req = Request::post(uri)
            .header("content-type", "application/json")
            .header("authorization", auth)
            .header(EVENT_ID_HEADER, &event_id)
            .header(
                "user-agent",
                concat!("billclear-callbacks/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Permanent(e.to_string()))?;
        let call = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status();
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
                .collect()
                .await;
            Ok::<_, DeliveryError>(status)
        };
        let status = tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), call)
            .await
            .map_err(|_| {
                unreachable(format!("no answer within {} ms", self.config.timeout_ms))
            })??;
        if status.is_success() {
            let now = std::time::Instant::now();
            let refused = self.refusing.succeeded(&endpoint, now);
            if let Some(r) = self.endpoints.succeeded(&endpoint, now).or(refused) {
                tracing::info!(
                    %endpoint,
                    failures = r.failures,
                    for_s = r.for_s,
                    "callback endpoint answers again"
                );
            }
            Ok(status.as_u16())
        } else {
            Err(Refused {
                endpoint,
                why: format!("channel answered HTTP {}", status.as_u16()),
            })
        }
    }

    /// Counts a failure against its endpoint and logs it only when the
    /// failing starts and then once per interval.
    fn note_failure(&self, endpoints: &Endpoints, endpoint: &str, why: &str, tries: u32) {
        match endpoints.failed(endpoint, why, std::time::Instant::now()) {
            FailureNote::Started => tracing::warn!(
                %endpoint,
                %why,
                tries,
                "callback endpoint failing; its callbacks are retried (all together while it cannot be reached)"
            ),
            FailureNote::StillFailing {
                failures_since_last,
                failures,
                for_s,
            } => tracing::warn!(
                %endpoint,
                %why,
                failures_since_last,
                failures,
                for_s,
                "callback endpoint still failing"
            ),
            FailureNote::Quiet => {
                tracing::debug!(%endpoint, %why, tries, "callback not acknowledged; will retry")
            }
        }
    }

    async fn handle_one(&self, claim: &Claim) -> StoreResult<()> {
        let backoff = self.config.retry.backoff();
        let tries = claim.attempts.max(1) as u32;
        let retry_at = |wait: Duration| {
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero())
        };
        let next = match self.deliver(claim).await {
            Ok(status) => {
                tracing::debug!(status, tries, "callback acknowledged");
                OutboxNext::Done
            }
            Err(DeliveryError::Permanent(why)) => {
                tracing::error!(%why, "callback cannot be delivered");
                OutboxNext::Abandon { error: why }
            }
            Err(e @ DeliveryError::Deferred { .. }) => {
                // Not tried: this claim does not count as a delivery.
                let error = e.to_string();
                let DeliveryError::Deferred { until, .. } = e else {
                    unreachable!("matched as Deferred")
                };
                let wait = until.saturating_duration_since(std::time::Instant::now());
                let jitter = Duration::from_millis(rand::random::<u64>() % 250);
                OutboxNext::Defer {
                    at: retry_at(wait + jitter),
                    error,
                }
            }
            Err(e) if backoff.exhausted(tries) => {
                let why = e.to_string();
                tracing::error!(%why, tries, "callback given up after its retries");
                OutboxNext::Abandon {
                    error: format!("gave up after {tries} deliveries; last: {why}"),
                }
            }
            Err(e) => {
                let why = e.to_string();
                match &e {
                    DeliveryError::Unreachable { endpoint, .. } => {
                        self.note_failure(&self.endpoints, endpoint, &why, tries)
                    }
                    DeliveryError::Refused { endpoint, .. } => {
                        self.note_failure(&self.refusing, endpoint, &why, tries)
                    }
                    _ => tracing::warn!(%why, tries, "callback not delivered; will retry"),
                }
                let wait = backoff.delay(tries, rand::random::<f64>());
                OutboxNext::RetryAt {
                    at: retry_at(wait),
                    error: why,
                }
            }
        };
        self.commit.finish(claim, next).await
    }
}

#[async_trait]
impl Job for CallbackSender {
    async fn handle(self: Arc<Self>, claim: Claim) {
        let span = tracing::info_span!("callback", payment_id = %claim.aggregate_id, event_id = %claim.payload["event"]["event_id"]);
        async {
            if let Err(e) = self.handle_one(&claim).await {
                tracing::warn!(error = %e, "recording a callback delivery failed; it comes back after the lease");
            }
        }
        .instrument(span)
        .await
    }
}

/// An error with its causes ("client error (Connect): invalid peer certificate: UnknownIssuer").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
