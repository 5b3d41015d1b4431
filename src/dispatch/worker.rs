//! The dispatch worker: one claimed payment at a time, one step each claim.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use biller_connectors::{Connector, ConnectorError, Credit, PayOrder, RemoteStatus};
use chrono::Utc;
use tracing::Instrument;

use super::commit::Committer;
use super::endpoints::{EndpointPolicy, Endpoints, FailureNote};
use super::pace::Turn;
use super::pool::Job;
use super::routes::{NoRoute, Routes};
use crate::config::Config;
use crate::domain::dispatch::{
    not_found_is_final, plan, AttemptKind, AttemptOutcome, Backoff, CallbackEvent, DeliveryHistory,
    Step,
};
use crate::domain::ids::PaymentId;
use crate::domain::payment::{transition, Payment, PaymentStatus, Transition};
use crate::intake::BillerDirectory;
use crate::store::{
    AttemptEnd, AttemptStart, Claim, DispatchUpdate, OutboxNext, Store, StoreError, StoreResult,
};

pub struct Dispatcher {
    store: Arc<dyn Store>,
    billers: BillerDirectory,
    routes: Arc<Routes>,
    config: Arc<Config>,
    worker: String,
    /// Every write of a step, group-committed with other workers' writes.
    commit: Committer,
    /// The same trouble repeated for many payments (a route not
    /// configured, a circuit open) is logged once, then as a count.
    told: Endpoints,
}

/// What one call to the biller concluded, ready to be recorded.
struct Conclusion {
    outcome: AttemptOutcome,
    result_code: Option<String>,
    detail: String,
    /// The state to move to (None: stay), with its reason.
    to: Option<(PaymentStatus, String)>,
    credit: Option<Credit>,
    /// When to look again, if the payment is not final.
    next: OutboxNext,
}

/// Text from a biller, made safe to store: no control characters, bounded.
fn clean(text: &str, max_chars: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect()
}

/// A credit whose receipt is stored cleaned (a receipt that cleans to
/// nothing is kept as none: the credit itself was checked by its echo).
fn cleaned(credit: Credit) -> Credit {
    Credit {
        biller_reference: clean(&credit.biller_reference, 128),
        credited_at: credit.credited_at,
    }
}

/// A payment that did not get its turn on a busy route within its lease
/// is looked at again after this.
const TURN_RETRY_MS: i64 = 200;

/// Safety margin kept between the end of a call and the end of the lease.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_millis(1_000);

fn jitter() -> f64 {
    rand::random::<f64>()
}

fn later(b: &Backoff, attempt: u32, error: impl Into<String>) -> OutboxNext {
    let at = Utc::now()
        + chrono::Duration::from_std(b.delay(attempt, jitter()))
            .unwrap_or(chrono::Duration::zero());
    OutboxNext::RetryAt {
        at,
        error: error.into(),
    }
}

impl Dispatcher {
    pub fn new(state: &super::Deps, worker: &str, commit: Committer) -> Dispatcher {
        Dispatcher {
            store: state.store.clone(),
            billers: state.billers.clone(),
            routes: state.routes.clone(),
            config: state.config.clone(),
            worker: worker.to_string(),
            commit,
            told: Endpoints::new(EndpointPolicy {
                base: Duration::ZERO,
                max: Duration::ZERO,
                log_every: Duration::from_secs(state.config.callbacks.log_every_s.max(1)),
                probe: Duration::ZERO,
            }),
        }
    }

    /// Logs a trouble that many payments share (keyed by `key`) when it is
    /// first seen, then as a count per interval; each payment's own line
    /// is at debug.
    fn tell(&self, key: &str, why: &str) {
        match self.told.failed(key, why, std::time::Instant::now()) {
            FailureNote::Started => tracing::warn!(%why, "{key}"),
            FailureNote::StillFailing {
                failures_since_last,
                for_s,
                ..
            } => tracing::warn!(%why, payments = failures_since_last, for_s, "{key} (still)"),
            FailureNote::Quiet => tracing::debug!("{why}"),
        }
    }

    fn send_backoff(&self) -> Backoff {
        self.config.dispatch.send_retry.backoff()
    }
    fn inquiry_backoff(&self) -> Backoff {
        self.config.dispatch.inquiry_retry.backoff()
    }

    async fn step(&self, claim: &Claim) -> StoreResult<()> {
        let id = PaymentId(claim.aggregate_id);
        let Some((payment, history)) = self.store.delivery(id).await? else {
            let next = OutboxNext::Abandon {
                error: format!("payment {id} does not exist"),
            };
            return self.commit.finish(claim, next).await;
        };
        match plan(payment.status, &history) {
            Step::Done => self.commit.finish(claim, OutboxNext::Done).await,
            Step::MarkUnknown => {
                let reason =
                    "the send's outcome is unknown: the process sending it stopped before it ended";
                tracing::warn!("{reason}; asking the biller by our reference");
                let t = self.decide(&payment, PaymentStatus::Unknown, reason)?;
                let next = later(&self.inquiry_backoff(), 1, reason);
                self.record(claim, &payment, None, Some(t), None, next)
                    .await
            }
            Step::Send => self.send(claim, &payment, &history).await,
            Step::Inquire { connector_id } => {
                self.inquire(claim, &payment, &history, &connector_id).await
            }
        }
    }

    fn decide(
        &self,
        payment: &Payment,
        to: PaymentStatus,
        reason: &str,
    ) -> StoreResult<Transition> {
        transition(payment.id, payment.status, to, reason, Utc::now())
            .map_err(|e| StoreError::Conflict(e.to_string()))
    }

    /// Records the end of a step in one transaction; a final state queues
    /// the channel's callback.
    async fn record(
        &self,
        claim: &Claim,
        payment: &Payment,
        attempt: Option<AttemptEnd>,
        t: Option<Transition>,
        credit: Option<Credit>,
        next: OutboxNext,
    ) -> StoreResult<()> {
        let callback = t.as_ref().filter(|t| t.to.is_final()).map(|t| {
            CallbackEvent::for_payment(
                payment,
                t.to,
                credit.as_ref().map(|c| c.biller_reference.as_str()),
                (t.to == PaymentStatus::Rejected).then_some(t.reason.as_str()),
                t.at,
            )
        });
        if let Some(t) = &t {
            tracing::debug!(from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "payment moved");
        }
        let final_state = t.as_ref().map(|t| t.to).filter(|to| to.is_final());
        let update = DispatchUpdate {
            attempt,
            transition: t,
            credit: credit
                .map(cleaned)
                .map(|c| (c.biller_reference, c.credited_at))
                .filter(|(r, _)| !r.is_empty()),
            callback,
            next,
        };
        self.commit.record(claim, update).await?;
        if let Some(to) = final_state {
            crate::metrics::payment_final(
                payment.biller_id.as_str(),
                payment.channel_id.as_str(),
                to.as_str(),
            );
        }
        Ok(())
    }

    async fn conclude(
        &self,
        claim: &Claim,
        payment: &Payment,
        attempt_id: i64,
        c: Conclusion,
    ) -> StoreResult<()> {
        let t = match &c.to {
            Some((to, reason)) => Some(self.decide(payment, *to, &clean(reason, 500))?),
            None => None,
        };
        let end = AttemptEnd {
            attempt_id,
            outcome: c.outcome,
            result_code: c.result_code.map(|r| clean(&r, 32)),
            detail: clean(&c.detail, 500),
            at: Utc::now(),
        };
        self.record(claim, payment, Some(end), t, c.credit, c.next)
            .await
    }

    /// Waits for the call's turn on its route (`dispatch::pace`), then
    /// records an attempt before a call through `connector_id` (with the
    /// transition it implies) and returns its id with the turn, to be held
    /// until the call ends; or None when the call must not be made: too
    /// little of the lease is left for the call to end before another
    /// worker could take the work (then the work is given back, or, if this
    /// process stalled while recording, left for the next claim, whose open
    /// attempt makes the payment UNKNOWN: never a re-send).
    async fn begin_call(
        &self,
        claim: &Claim,
        payment: &Payment,
        kind: AttemptKind,
        connector_id: &str,
        transition: Option<Transition>,
    ) -> StoreResult<Option<(i64, Option<Turn>)>> {
        let needed = self.routes.connectors().timeout(connector_id) + LEASE_MARGIN;
        // Nothing is recorded while waiting: a payment waiting for its turn
        // has not been sent. It waits only as long as its lease leaves time
        // for the call; then the work is given back, to wait its turn again
        // shortly (not counted as a send).
        let wait = claim.lease_left().saturating_sub(needed);
        let turn =
            match tokio::time::timeout(wait, self.routes.connectors().turn(connector_id)).await {
                Ok(turn) => turn,
                Err(_) => {
                    let next = OutboxNext::RetryAt {
                        at: Utc::now() + chrono::Duration::milliseconds(TURN_RETRY_MS),
                        error: format!(
                            "route {connector_id} busy (its max_in_flight or max_per_second)"
                        ),
                    };
                    self.commit.finish(claim, next).await?;
                    return Ok(None);
                }
            };
        if claim.lease_left() < needed {
            let next = OutboxNext::RetryAt {
                at: Utc::now(),
                error: "lease too short for a call".into(),
            };
            self.commit.finish(claim, next).await?;
            return Ok(None);
        }
        let start = AttemptStart {
            payment_id: payment.id,
            kind,
            connector_id: connector_id.to_string(),
            worker: self.worker.clone(),
            at: Utc::now(),
            transition,
            min_lease_left_ms: needed.as_millis() as u64,
        };
        let attempt_id = self.commit.start_attempt(claim, start).await?;
        if claim.lease_left() < needed - LEASE_MARGIN / 2 {
            tracing::warn!("lease nearly over after recording the attempt; not calling");
            return Ok(None);
        }
        Ok(Some((attempt_id, turn)))
    }

    /// Every send so far was answered "not applied" (or none can be made):
    /// before the payment is voided the biller is asked, since a biller's
    /// code may be wrong.
    async fn ask_before_voiding(
        &self,
        claim: &Claim,
        payment: &Payment,
        why: String,
    ) -> StoreResult<()> {
        let t = self.decide(payment, PaymentStatus::Unknown, &why)?;
        let next = later(&self.inquiry_backoff(), 1, why);
        self.record(claim, payment, None, Some(t), None, next).await
    }

    /// No route is configured for the payment: retried with backoff (a
    /// configuration may be fixed), then rejected if it was never sent, or
    /// asked about if it was.
    async fn without_route(
        &self,
        claim: &Claim,
        payment: &Payment,
        why: String,
        backoff: &Backoff,
    ) -> StoreResult<()> {
        self.tell("payments without a route they can take", &why);
        if backoff.exhausted(claim.attempts as u32) {
            if payment.status == PaymentStatus::Submitted {
                // Sent before (answered "not applied"): ask, then void.
                return self.ask_before_voiding(claim, payment, why).await;
            }
            return self
                .reject_undelivered(claim, payment, format!("never sent: {why}"))
                .await;
        }
        let next = later(backoff, claim.attempts as u32, why);
        self.commit.finish(claim, next).await
    }

    async fn reject_undelivered(
        &self,
        claim: &Claim,
        payment: &Payment,
        reason: String,
    ) -> StoreResult<()> {
        let t = self.decide(payment, PaymentStatus::Rejected, &reason)?;
        self.record(claim, payment, None, Some(t), None, OutboxNext::Done)
            .await
    }

    async fn send(
        &self,
        claim: &Claim,
        payment: &Payment,
        history: &DeliveryHistory,
    ) -> StoreResult<()> {
        let backoff = self.send_backoff();
        let biller = self
            .billers
            .snapshot()
            .get(payment.biller_id.as_str())
            .cloned();
        // A payment never sent goes to the first healthy route. One sent
        // before (every send answered "not applied": nothing reached a
        // biller) is sent on its route again while that route takes calls,
        // and moves to a healthy route when its circuit is open (a hub that
        // cut us off, say).
        let route = match &biller {
            Some(b) => match (&payment.connector_id, history.pay_attempts) {
                (Some(id), 1..) => match self.routes.callable(id) {
                    Ok(c) => Ok((id.clone(), c)),
                    Err(_) => self.routes.choose(b, true),
                },
                _ => self.routes.choose(b, true),
            },
            None => Err(NoRoute {
                passed: vec![],
                retry_in: None,
            }),
        };
        let (connector_id, connector) = match route {
            Ok(r) => r,
            // Routes exist but their circuits are open: wait for one to
            // close (this does not count against the payment's sends).
            Err(NoRoute {
                retry_in: Some(wait),
                passed,
            }) => {
                let why = format!(
                    "biller {}: {}",
                    payment.biller_id,
                    NoRoute {
                        passed,
                        retry_in: None
                    }
                );
                let at = Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                return self
                    .commit
                    .finish(claim, OutboxNext::RetryAt { at, error: why })
                    .await;
            }
            Err(no_route) => {
                // A biller without an online route may have a file route:
                // a payment never sent waits for its next batch file.
                let file = biller.as_ref().and_then(|b| {
                    b.routes
                        .iter()
                        .find(|r| self.routes.connectors().file_route(r.as_str()).is_some())
                });
                if let (Some(route), 0) = (file, history.pay_attempts) {
                    let t = self.decide(
                        payment,
                        PaymentStatus::Submitted,
                        &format!("queued for {route}'s next batch file"),
                    )?;
                    return self
                        .store
                        .queue_for_file(claim, &t, route.as_str(), payment.biller_id.as_str())
                        .await;
                }
                let why = format!("biller {}: {no_route}", payment.biller_id);
                return self.without_route(claim, payment, why, &backoff).await;
            }
        };
        if backoff.exhausted(history.pay_attempts) {
            let why = format!(
                "not delivered after {} sends, each answered as not applied; asking the biller before voiding",
                history.pay_attempts
            );
            return self.ask_before_voiding(claim, payment, why).await;
        }
        let first = (payment.status == PaymentStatus::Received).then(|| {
            self.decide(
                payment,
                PaymentStatus::Submitted,
                &format!("sent to the biller through {connector_id}"),
            )
        });
        let first = first.transpose()?;
        let Some((attempt_id, turn)) = self
            .begin_call(claim, payment, AttemptKind::Pay, &connector_id, first)
            .await?
        else {
            return Ok(());
        };
        let mut payment = payment.clone();
        payment.status = PaymentStatus::Submitted;
        let started = std::time::Instant::now();
        let result = connector.pay(&pay_order(&payment)).await;
        let took = started.elapsed();
        drop(turn);
        self.routes.record(&connector_id, &result);
        let sends = history.pay_attempts + 1;
        let c = self.pay_conclusion(result, &connector_id, sends, &backoff);
        crate::metrics::dispatched(&connector_id, c.outcome.as_str(), took);
        self.conclude(claim, &payment, attempt_id, c).await
    }

    fn pay_conclusion(
        &self,
        result: Result<Credit, ConnectorError>,
        connector_id: &str,
        sends: u32,
        backoff: &Backoff,
    ) -> Conclusion {
        match result {
            Ok(credit) => Conclusion {
                outcome: AttemptOutcome::Credited,
                result_code: None,
                detail: format!("credited, receipt {}", credit.biller_reference),
                to: Some((
                    PaymentStatus::Confirmed,
                    format!("confirmed by the biller through {connector_id}, receipt {}", credit.biller_reference),
                )),
                credit: Some(credit),
                next: OutboxNext::Done,
            },
            Err(ConnectorError::Fail(r)) => Conclusion {
                outcome: AttemptOutcome::Refused,
                detail: r.message.clone(),
                to: Some((
                    PaymentStatus::Rejected,
                    format!("refused by the biller (code {}): {}", r.code, r.message),
                )),
                result_code: Some(r.code),
                credit: None,
                next: OutboxNext::Done,
            },
            // Every send answered "not applied": the biller is asked before
            // the payment is voided (a biller's code may be wrong).
            Err(ConnectorError::Retry { reason }) if backoff.exhausted(sends) => Conclusion {
                outcome: AttemptOutcome::NotApplied,
                result_code: None,
                to: Some((
                    PaymentStatus::Unknown,
                    format!("not delivered after {sends} sends, each answered as not applied (last: {reason}); asking the biller before voiding"),
                )),
                next: later(&self.inquiry_backoff(), 1, reason.clone()),
                detail: reason,
                credit: None,
            },
            Err(ConnectorError::Retry { reason }) => Conclusion {
                outcome: AttemptOutcome::NotApplied,
                result_code: None,
                to: None,
                next: later(backoff, sends, reason.clone()),
                detail: reason,
                credit: None,
            },
            Err(ConnectorError::Unknown { reason }) => Conclusion {
                outcome: AttemptOutcome::Unknown,
                result_code: None,
                to: Some((
                    PaymentStatus::Unknown,
                    format!("outcome unknown ({reason}); asking the biller by our reference"),
                )),
                next: later(&self.inquiry_backoff(), 1, reason.clone()),
                detail: reason,
                credit: None,
            },
        }
    }

    async fn inquire(
        &self,
        claim: &Claim,
        payment: &Payment,
        history: &DeliveryHistory,
        connector_id: &str,
    ) -> StoreResult<()> {
        let backoff = self.inquiry_backoff();
        if backoff.exhausted(history.status_attempts) {
            let why = format!(
                "status inquiries exhausted after {} tries; the payment stays UNKNOWN for reconciliation",
                history.status_attempts
            );
            tracing::error!("{why}");
            return self
                .commit
                .finish(claim, OutboxNext::Abandon { error: why })
                .await;
        }
        // Never another route: only the one the payment went to can say.
        let connector = match self.routes.callable(connector_id) {
            Ok(c) => c,
            Err(wait) => {
                let why = match wait {
                    Some(_) => format!("the payment's route {connector_id} has its circuit open"),
                    None => format!(
                        "the payment's route {connector_id} is not configured in this process"
                    ),
                };
                self.tell(
                    &format!("status inquiries waiting for route {connector_id}"),
                    &why,
                );
                let next = match wait {
                    Some(w) => OutboxNext::RetryAt {
                        at: Utc::now()
                            + chrono::Duration::from_std(w).unwrap_or(chrono::Duration::zero()),
                        error: why,
                    },
                    None => later(&backoff, claim.attempts as u32, why),
                };
                return self.commit.finish(claim, next).await;
            }
        };
        let Some((attempt_id, turn)) = self
            .begin_call(claim, payment, AttemptKind::Status, connector_id, None)
            .await?
        else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let result = connector.status(&pay_order(payment)).await;
        let took = started.elapsed();
        drop(turn);
        self.routes.record(connector_id, &result);
        let c = self.status_conclusion(result, &*connector, history, &backoff);
        crate::metrics::dispatched(connector_id, c.outcome.as_str(), took);
        self.conclude(claim, payment, attempt_id, c).await
    }

    fn status_conclusion(
        &self,
        result: Result<RemoteStatus, ConnectorError>,
        connector: &dyn Connector,
        history: &DeliveryHistory,
        backoff: &Backoff,
    ) -> Conclusion {
        let n = history.status_attempts + 1;
        let again = |why: String| {
            if backoff.exhausted(n) {
                OutboxNext::Abandon {
                    error: format!("status inquiries exhausted after {n} tries; the payment stays UNKNOWN for reconciliation; last: {why}"),
                }
            } else {
                later(backoff, n, why)
            }
        };
        let stay = |outcome, code, detail: String| Conclusion {
            outcome,
            result_code: code,
            next: again(detail.clone()),
            detail,
            to: None,
            credit: None,
        };
        match result {
            Ok(RemoteStatus::Credited(credit)) => Conclusion {
                outcome: AttemptOutcome::Credited,
                result_code: None,
                detail: format!("credited, receipt {}", credit.biller_reference),
                to: Some((
                    PaymentStatus::Confirmed,
                    format!(
                        "status inquiry through {}: credited, receipt {}",
                        connector.id(),
                        credit.biller_reference
                    ),
                )),
                credit: Some(credit),
                next: OutboxNext::Done,
            },
            Ok(RemoteStatus::Rejected(r)) => Conclusion {
                outcome: AttemptOutcome::Refused,
                detail: r.message.clone(),
                to: Some((
                    PaymentStatus::Rejected,
                    format!(
                        "status inquiry: refused by the biller (code {}): {}",
                        r.code, r.message
                    ),
                )),
                result_code: Some(r.code),
                credit: None,
                next: OutboxNext::Done,
            },
            Ok(RemoteStatus::NotFound) => {
                let answers = history.not_found_answers + 1;
                let grace =
                    std::time::Duration::from_millis(self.config.dispatch.not_found_grace_ms);
                let needed = self.config.dispatch.not_found_answers;
                if not_found_is_final(history, answers, needed, grace) {
                    Conclusion {
                        outcome: AttemptOutcome::NotFound,
                        result_code: None,
                        detail: "the biller has no record of our reference".into(),
                        to: Some((
                            PaymentStatus::Rejected,
                            format!("the biller has no record of the payment after {answers} status inquiries"),
                        )),
                        credit: None,
                        next: OutboxNext::Done,
                    }
                } else {
                    stay(
                        AttemptOutcome::NotFound,
                        None,
                        "the biller has no record of our reference (yet)".into(),
                    )
                }
            }
            Ok(RemoteStatus::Pending) => stay(
                AttemptOutcome::Pending,
                None,
                "the biller has not decided yet".into(),
            ),
            Err(ConnectorError::Retry { reason }) => stay(AttemptOutcome::NotApplied, None, reason),
            Err(ConnectorError::Unknown { reason }) => stay(AttemptOutcome::Unknown, None, reason),
            Err(ConnectorError::Fail(r)) => stay(
                AttemptOutcome::Unknown,
                Some(r.code.clone()),
                format!("status inquiry refused ({}): {}", r.code, r.message),
            ),
        }
    }
}

#[async_trait]
impl Job for Dispatcher {
    async fn handle(self: Arc<Self>, claim: Claim) {
        let span = tracing::info_span!("dispatch", payment_id = %claim.aggregate_id, claim = claim.attempts);
        async {
            match self.step(&claim).await {
                Ok(()) => {}
                Err(StoreError::Conflict(why)) => {
                    // Another worker moved the payment or took the work:
                    // look again from the stored state.
                    tracing::info!(%why, "dispatch step superseded");
                    let _ = self
                        .commit
                        .finish(
                            &claim,
                            OutboxNext::RetryAt {
                                at: Utc::now(),
                                error: why,
                            },
                        )
                        .await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "dispatch step failed; retrying after the lease");
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A payment as its biller must see it (also used by a re-send).
pub fn pay_order(payment: &Payment) -> PayOrder {
    PayOrder {
        our_reference: payment.id.to_string(),
        biller_id: payment.biller_id.to_string(),
        account_number: payment.account_number.clone(),
        amount: payment.amount.amount(),
        currency: payment.amount.currency().code().to_string(),
        bill_reference: payment.bill_reference.clone(),
    }
}
