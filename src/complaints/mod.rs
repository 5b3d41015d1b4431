//! Complaints payment apps raise about their payments: the investigation
//! by machine (evidence gathered at once, the biller asked by our
//! reference within its inquiry budget), refunds by rule, escalation when
//! a complaint's turn-around time runs out, and staff's actions.
//!
//! The investigator runs as a duty (one process of the fleet at a time):
//! every `complaints.poll_ms` it escalates what is past its time, then
//! looks at each complaint due for a look (new ones at once; those waiting
//! for the biller every `complaints.recheck_ms`). What it decides comes
//! from `domain::complaint::decide`; every change is written with the
//! app's callback in the same transaction.

pub mod report;
pub mod view;

use std::time::Duration;

use biller_connectors::RemoteStatus;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use crate::domain::complaint::{
    decide, BillerAnswer, Calendar, ComplaintKind, ComplaintStatus, Decision, Evidence, Outcome,
    PaymentFacts,
};
use crate::domain::ids::BillerId;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::state::AppState;
use crate::store::complaint::{ComplaintRecord, MachineChange, RefundOrder};
use crate::store::StoreError;

/// The biller's calendar (its zone, configured holidays).
pub fn calendar(state: &AppState, biller: &str) -> Calendar {
    let zone = BillerId::parse(biller)
        .ok()
        .and_then(|id| {
            state
                .billers
                .snapshot()
                .get(id.as_str())
                .map(|b| b.cutoff.zone)
        })
        .unwrap_or(chrono_tz::Asia::Shanghai);
    state.config.complaints.calendar(biller, zone)
}

/// When a complaint of `kind` against `biller` registered `at` is due.
pub fn due_at(
    state: &AppState,
    biller: &str,
    kind: ComplaintKind,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    calendar(state, biller).due(at, state.config.complaints.turnaround_days(kind))
}

/// The biller's business date at `at` (the statement a refund is listed on).
pub fn business_date(state: &AppState, biller: &str, at: DateTime<Utc>) -> NaiveDate {
    state
        .billers
        .snapshot()
        .get(biller)
        .map(|b| b.cutoff.business_date_of(at))
        .unwrap_or_else(|| at.with_timezone(&chrono_tz::Asia::Shanghai).date_naive())
}

/// Why staff's action on a complaint was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("{0}")]
    Role(String),
    /// The maker of a refund cannot approve or decline it.
    #[error("{0}")]
    MakerChecker(String),
    #[error("no complaint {0}")]
    NotFound(uuid::Uuid),
    /// Not possible in the complaint's state (closed, nothing proposed...).
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Store(StoreError),
}

/// A staff action on a complaint, for the JSON staff API and the console
/// alike: roles, maker-checker, then the store (which checks the workflow
/// again under the row lock and writes trail, callback and any refund).
pub async fn act(
    state: &AppState,
    user: &crate::domain::staff::StaffUser,
    id: uuid::Uuid,
    action: &crate::domain::complaint::StaffAction,
) -> Result<ComplaintRecord, ActError> {
    use crate::domain::complaint::StaffAction as A;
    use crate::domain::staff::StaffRole;
    if !user.role.allows(StaffRole::Operator) {
        return Err(ActError::Role(format!(
            "working a complaint needs the operator role; {} is {}",
            user.id, user.role
        )));
    }
    let before = state
        .store
        .complaint(id)
        .await
        .map_err(ActError::Store)?
        .ok_or(ActError::NotFound(id))?;
    let is_approver = user.role.allows(StaffRole::Approver);
    if matches!(action, A::ApproveRefund | A::DeclineRefund { .. }) {
        if !is_approver {
            return Err(ActError::Role(format!(
                "approving or declining a refund needs the approver role; {} is {}",
                user.id, user.role
            )));
        }
        if before.proposed_by.as_deref() == Some(user.id.as_str()) {
            return Err(ActError::MakerChecker(format!(
                "{} proposed this refund: another approver must approve or decline it",
                user.id
            )));
        }
    }
    let now = Utc::now();
    let refund_date = business_date(state, &before.biller_id, now);
    let after = state
        .store
        .complaint_staff_action(id, &user.id, is_approver, action, refund_date, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(why) => ActError::State(why),
            StoreError::NotFound(_) => ActError::NotFound(id),
            e => ActError::Store(e),
        })?;
    if !after.status.is_open() && before.status.is_open() {
        crate::metrics::complaint_resolved(&after.biller_id, after.kind.as_str(), "staff");
    }
    Ok(after)
}

/// The investigator's loop (the duty's body).
pub async fn run(state: AppState) {
    let every = Duration::from_millis(state.config.complaints.poll_ms.max(10));
    loop {
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "complaints: a round failed; trying again");
        }
        tokio::time::sleep(every).await;
    }
}

/// One round: escalations, then the complaints due for a look.
pub async fn tick(state: &AppState) -> anyhow::Result<()> {
    let now = Utc::now();
    for c in state.store.escalate_due(now).await? {
        tracing::warn!(complaint = %c.id, biller = %c.biller_id, kind = c.kind.as_str(), "complaint escalated: its turn-around time ran out");
    }
    let todo = state.store.complaints_to_check(now, 32).await?;
    let mut jobs = tokio::task::JoinSet::new();
    for c in todo {
        let state = state.clone();
        jobs.spawn(async move {
            let id = c.id;
            if let Err(e) = investigate(&state, c).await {
                // Looked at again later, not at every round: a complaint
                // that fails must not hold the head of the queue.
                let later = Utc::now()
                    + chrono::Duration::milliseconds(state.config.complaints.recheck_ms as i64);
                let _ = state.store.complaint_defer(id, later).await;
                tracing::warn!(complaint = %id, error = %e, "complaint investigation failed; it is looked at again after complaints.recheck_ms");
            }
        });
    }
    while jobs.join_next().await.is_some() {}
    Ok(())
}

/// Gathers the evidence on one complaint and acts on what it decides.
pub async fn investigate(state: &AppState, c: ComplaintRecord) -> anyhow::Result<()> {
    let Some(ev) = state.store.payment_evidence(c.payment_id).await? else {
        anyhow::bail!("payment {} not found", c.payment_id);
    };
    let p = &ev.payment;
    // The biller is asked only where its answer decides (not credited).
    let asked = c.kind == ComplaintKind::NotCredited && p.status != PaymentStatus::Rejected;
    let biller = if asked {
        ask_biller(state, p).await
    } else {
        BillerAnswer::NotFound
    };
    let evidence = Evidence {
        payment: PaymentFacts {
            status: p.status,
            refunded: ev.refund.is_some(),
        },
        biller: biller.clone(),
        credited_twice: !ev.credited_duplicates.is_empty(),
    };
    let detail = json!({
        "payment_status": p.status.as_str(),
        "connector": p.connector_id,
        "biller_answer": asked.then(|| describe(&biller)),
        "refund": ev.refund.as_ref().map(|r| r.id),
        "credited_duplicates": ev.credited_duplicates.iter().map(|d| d.0.to_string()).collect::<Vec<_>>(),
        "recon_breaks": ev.breaks.iter().map(|(id, cat)| json!({"id": id, "category": cat})).collect::<Vec<_>>(),
        "recon_decision": ev.recon_decision,
        "settled_in_batch": ev.settled_in,
    });
    let now = Utc::now();
    let change =
        |to, outcome: Option<Outcome>, reason: Option<String>, next, note: String| MachineChange {
            to,
            outcome,
            reason,
            next_check_at: next,
            note,
            detail: detail.clone(),
        };
    // For finance staff (INVESTIGATING), with what they should look at.
    let to_staff = |reason: String| {
        let reason: String = reason.chars().take(1000).collect();
        let ch = change(
            ComplaintStatus::Investigating,
            None,
            Some(reason.clone()),
            None,
            format!("for finance staff: {reason}"),
        );
        async move {
            state
                .store
                .complaint_machine_change(c.id, c.status, &ch, Utc::now())
                .await
                .map(|_| ())
        }
    };
    let applied = match decide(c.kind, &evidence) {
        Decision::Resolve(outcome) => {
            let note = match &outcome {
                Outcome::CreditConfirmed {
                    biller_reference,
                    credited_at,
                } => format!(
                    "the biller confirms the credit: receipt {biller_reference}, credited at {}",
                    credited_at.to_rfc3339()
                ),
                Outcome::NothingTaken => {
                    "the payment was rejected and its money never taken".to_string()
                }
                Outcome::Refunded => {
                    "this payment was given back already (a refund on record)".to_string()
                }
                o => o.as_str().to_string(),
            };
            let r = state
                .store
                .complaint_machine_change(
                    c.id,
                    c.status,
                    &change(
                        ComplaintStatus::Resolved,
                        Some(outcome),
                        Some(note.clone()),
                        None,
                        note,
                    ),
                    now,
                )
                .await;
            if r.is_ok() {
                crate::metrics::complaint_resolved(&c.biller_id, c.kind.as_str(), "machine");
            }
            r.map(|_| ())
        }
        Decision::Refund { reason } => {
            // One payment of the pair goes back, once: the one refunded
            // already if there is one (the refund is then only named),
            // else the later of them, whichever the complaint names.
            let target = ev
                .credited_duplicates
                .iter()
                .find(|d| d.2)
                .map(|d| d.0)
                .or_else(|| {
                    ev.credited_duplicates
                        .iter()
                        .map(|d| (d.1, d.0))
                        .chain([(p.created_at, p.id)])
                        .max()
                        .map(|(_, id)| id)
                })
                .unwrap_or(p.id);
            let order = RefundOrder {
                payment_id: target,
                complaint_id: c.id,
                staff: None,
                reason: reason.to_string(),
                business_date: business_date(state, p.biller_id.as_str(), now),
            };
            let r = state
                .store
                .complaint_refund(&order, c.status, "system", now)
                .await;
            if r.is_ok() {
                crate::metrics::complaint_resolved(&c.biller_id, c.kind.as_str(), "machine");
            }
            r.map(|_| ())
        }
        Decision::WaitForBiller => {
            let next =
                now + chrono::Duration::milliseconds(state.config.complaints.recheck_ms as i64);
            state
                .store
                .complaint_machine_change(
                    c.id,
                    c.status,
                    &change(
                        ComplaintStatus::PendingBiller,
                        None,
                        None,
                        Some(next),
                        if asked {
                            format!("waiting for the biller: {}", describe(&biller))
                        } else {
                            "waiting for the payment's delivery to end".to_string()
                        },
                    ),
                    now,
                )
                .await
                .map(|_| ())
        }
        Decision::ToStaff { reason } => to_staff(reason.to_string()).await,
    };
    match applied {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(why)) => {
            // Changed meanwhile (staff took it): nothing to do. Still as it
            // was: what was decided could not be done (a payment that
            // cannot be refunded): for staff, with why.
            let now_c = state.store.complaint(c.id).await?;
            if now_c.as_ref().map(|x| x.status) == Some(c.status) {
                let moved = to_staff(format!("the machine could not act: {why}")).await;
                if let Err(e) = moved {
                    tracing::debug!(complaint = %c.id, error = %e, "complaint changed meanwhile");
                }
            } else {
                tracing::debug!(complaint = %c.id, why, "complaint changed meanwhile");
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn describe(a: &BillerAnswer) -> String {
    match a {
        BillerAnswer::Credited {
            biller_reference, ..
        } => format!("credited, receipt {biller_reference}"),
        BillerAnswer::NotFound => "no record of the payment".into(),
        BillerAnswer::Refused { reason } => format!("refused: {reason}"),
        BillerAnswer::Pending => "has the payment, not decided yet".into(),
        BillerAnswer::Unavailable => "could not be asked (unreachable or busy)".into(),
    }
}

/// Asks the biller what became of `p`, by our reference, through the route
/// that delivered it: within the biller's inquiry budget (waiting for it,
/// never overdrawing it) and the route's pace.
async fn ask_biller(state: &AppState, p: &Payment) -> BillerAnswer {
    let Some(route) = p.connector_id.as_deref() else {
        // Never sent: the biller cannot know it.
        return BillerAnswer::NotFound;
    };
    let Ok(connector) = state.routes.callable(route) else {
        return BillerAnswer::Unavailable;
    };
    let timeout = state.routes.connectors().timeout(route);
    // Wait for a unit of the biller's budget, at most a few seconds (the
    // duty waits for its jobs): none in time is "ask again later".
    let budget_wait = timeout.max(Duration::from_secs(3));
    if !state
        .inquiry
        .spend_waiting(p.biller_id.as_str(), budget_wait)
        .await
    {
        return BillerAnswer::Unavailable;
    }
    let Ok(Some(turn)) = tokio::time::timeout(timeout, state.routes.connectors().turn(route)).await
    else {
        return BillerAnswer::Unavailable;
    };
    let order = crate::dispatch::worker::pay_order(p);
    let result = tokio::time::timeout(timeout, connector.status(&order))
        .await
        .unwrap_or_else(|_| {
            Err(biller_connectors::ConnectorError::unknown(
                "no answer in time",
            ))
        });
    drop(turn);
    state.routes.record(route, &result);
    match result {
        Ok(RemoteStatus::Credited(c)) => BillerAnswer::Credited {
            biller_reference: c.biller_reference,
            credited_at: c.credited_at,
        },
        Ok(RemoteStatus::NotFound) => BillerAnswer::NotFound,
        Ok(RemoteStatus::Pending) => BillerAnswer::Pending,
        Ok(RemoteStatus::Rejected(r)) => BillerAnswer::Refused {
            reason: format!("{} ({})", r.message, r.code),
        },
        Err(e) => {
            tracing::debug!(payment = %p.id, route, error = %e, "complaint: status inquiry failed");
            BillerAnswer::Unavailable
        }
    }
}
