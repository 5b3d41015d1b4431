//! The `resend` resolution at work: gathers what proves a payment never
//! arrived, asks both routes by our reference, records the re-send, sends
//! it once through the new route and records the answer. The rules are in
//! [`crate::domain::recon::resend`]; every other staff action goes straight
//! to the store.
//!
//! Order matters: the approval is checked (workflow, case, answers) before
//! anything is recorded, the re-send is recorded before the call, and the
//! answer after it. A process that dies during the call leaves the re-send
//! open: it may have arrived, so it is never made again.

use std::sync::Arc;
use std::time::Duration;

use biller_connectors::{ConnectorError, RemoteStatus};
use chrono::{DateTime, Days, Utc};

use crate::dispatch::worker::pay_order;
use crate::dispatch::Connectors;
use crate::domain::ids::PaymentId;
use crate::domain::payment::Payment;
use crate::domain::recon::breaks::{
    decide, Action, Actor, BreakStatus, ResolutionKind, WorkState, WorkflowError,
};
use crate::domain::recon::resend::{
    check_answers, check_case, Answer, ResendCase, ResendOutcome, ResendRefused,
};
use crate::domain::routing::route_order;
use crate::domain::staff::StaffRole;
use crate::store::recon::{BreakRow, ResendStart, ResendStarted};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("{0}")]
    Workflow(#[from] WorkflowError),
    /// The re-send is refused: not proven, or a route knows the payment.
    #[error("resend refused: {0}")]
    Resend(#[from] ResendRefused),
    #[error("no break {0}")]
    NoBreak(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One staff action on a break. A `resend` is checked when it is proposed,
/// and made when it is approved; anything else is the store's.
pub async fn act(
    store: &Arc<dyn Store>,
    connectors: &Connectors,
    id: i64,
    actor: &Actor,
    action: &Action,
    now: DateTime<Utc>,
) -> Result<BreakRow, ActError> {
    let (b, _) = store.break_detail(id).await?.ok_or(ActError::NoBreak(id))?;
    if b.status == BreakStatus::Resending && matches!(action, Action::Approve) {
        return settle_stalled(store, connectors, &b, actor, now).await;
    }
    let state = WorkState {
        category: b.category,
        status: b.status,
        owner: b.owner.clone(),
        proposal: b.proposal.clone(),
    };
    // The workflow first (role, state, maker-checker): a refused approval
    // calls nobody. Checked again under the row lock when recorded.
    decide(&state, actor, action)?;
    let target = match action {
        Action::Propose(p) if p.kind == ResolutionKind::Resend => p.connector.clone(),
        Action::Approve => b
            .proposal
            .as_ref()
            .filter(|p| p.kind == ResolutionKind::Resend)
            .and_then(|p| p.connector.clone()),
        _ => None,
    };
    let Some(target) = target else {
        return Ok(store.act_on_break(id, actor, action, now).await?);
    };
    let payment = payment_of(store, &b).await?;
    let c = case(store, connectors, &b, &payment, &target).await?;
    check_case(&c)?;
    if matches!(action, Action::Propose(_)) {
        return Ok(store.act_on_break(id, actor, action, now).await?);
    }
    resend(store, connectors, &b, actor, &payment, &c, now).await
}

async fn payment_of(store: &Arc<dyn Store>, b: &BreakRow) -> Result<Payment, ActError> {
    let id = uuid::Uuid::parse_str(&b.our_reference)
        .map(PaymentId)
        .map_err(|_| {
            ResendRefused(format!(
                "break {} names no payment of ours ({:?})",
                b.id, b.our_reference
            ))
        })?;
    let (payment, _) = store
        .delivery(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("payment {id}")))?;
    Ok(payment)
}

/// What the rules need to know, read from the store and the configuration.
async fn case(
    store: &Arc<dyn Store>,
    connectors: &Connectors,
    b: &BreakRow,
    payment: &Payment,
    target: &str,
) -> Result<ResendCase, ActError> {
    let billers = store.load_billers().await?;
    // In the order they are tried: the preferred one first.
    let biller_routes = billers
        .iter()
        .find(|x| x.id.as_str() == payment.biller_id.as_str())
        .map(|x| {
            let routes: Vec<String> = x.routes.iter().map(|r| r.to_string()).collect();
            let preferred = x.preferred_route.as_ref().map(|r| r.to_string());
            route_order(&routes, preferred.as_deref())
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let dates = [b.business_date, b.business_date + Days::new(1)];
    let original = payment.connector_id.clone();
    let files: Vec<_> = store
        .current_files(&dates)
        .await?
        .into_iter()
        .filter(|f| {
            connectors.file_kind_routes().connector(f.kind) == original.as_deref()
                && (f.biller_id.is_none() || f.biller_id.as_deref() == Some(b.scope.as_str()))
        })
        .collect();
    let have = |date| files.iter().any(|f| f.business_date == date);
    // The run that last found the break must have read every one of them.
    let finding_run = match b.found_by_run {
        Some(run) => store.run(run).await?,
        None => None,
    };
    let read_by_finding_run = finding_run.is_some_and(|r| {
        r.finished_at.is_some()
            && r.failed.is_none()
            && files.iter().all(|f| r.file_ids.contains(&f.id))
    });
    Ok(ResendCase {
        category: b.category,
        business_date: b.business_date,
        payment_status: payment.status,
        original: original.clone(),
        target: target.to_string(),
        biller_routes,
        target_online: connectors.get(target).is_some(),
        original_files: [have(dates[0]), have(dates[1])],
        read_by_finding_run,
        earlier: store.resend_of(payment.id).await?,
    })
}

/// How long a call through `id` may take before it is given up (its own
/// timeout plus a margin: the connector enforces its timeout itself).
fn limit(connectors: &Connectors, id: &str) -> Duration {
    connectors.timeout(id) + Duration::from_secs(2)
}

/// Asks a route about the payment by our reference.
async fn ask(connectors: &Connectors, id: &str, payment: &Payment) -> Answer {
    match status_of(connectors, id, payment).await {
        Err(why) => Answer::Unreachable { why },
        Ok(RemoteStatus::NotFound) => Answer::NotFound,
        Ok(RemoteStatus::Pending) => Answer::Knows {
            what: "has it, not yet decided".into(),
        },
        Ok(RemoteStatus::Credited(c)) => Answer::Knows {
            what: format!("credited, receipt {}", c.biller_reference),
        },
        Ok(RemoteStatus::Rejected(r)) => Answer::Knows {
            what: format!("refused it, code {}: {}", r.code, r.message),
        },
    }
}

/// One status inquiry through `id` by our reference, bounded by the
/// route's timeout; Err says why the route could not be asked.
async fn status_of(
    connectors: &Connectors,
    id: &str,
    payment: &Payment,
) -> Result<RemoteStatus, String> {
    let c = connectors
        .get(id)
        .ok_or_else(|| format!("{id} is not an online connector of this process"))?;
    match tokio::time::timeout(limit(connectors, id), c.status(&pay_order(payment))).await {
        Err(_) => Err("no answer in time".into()),
        Ok(r) => r.map_err(|e| e.to_string()),
    }
}

async fn resend(
    store: &Arc<dyn Store>,
    connectors: &Connectors,
    b: &BreakRow,
    actor: &Actor,
    payment: &Payment,
    c: &ResendCase,
    now: DateTime<Utc>,
) -> Result<BreakRow, ActError> {
    let original = c.original.clone().unwrap_or_default();
    let target = c.target.as_str();
    let (from_original, from_target) = tokio::join!(
        ask(connectors, &original, payment),
        ask(connectors, target, payment)
    );
    // Still the route the biller is reached by first (its preferred one,
    // else its first): in service.
    let in_service = c.biller_routes.first() == Some(&original);
    let proof = serde_json::json!({
        "break": b.id,
        "business_date": b.business_date,
        "found_by_run": b.found_by_run,
        "files": format!(
            "{original}'s files of {} and the day after, read by run {}",
            b.business_date,
            b.found_by_run.unwrap_or_default()
        ),
        "original": { "connector": original, "in_service": in_service, "answer": from_original },
        "target": { "connector": target, "answer": from_target },
    });
    if let Err(refused) = check_answers(&original, &from_original, in_service, target, &from_target)
    {
        store
            .note_resend_refused(b.id, &actor.user, &refused.0, &proof, now)
            .await?;
        return Err(refused.into());
    }
    let started = store
        .begin_resend(&ResendStart {
            break_id: b.id,
            actor: actor.clone(),
            payment_id: payment.id,
            from_connector: c.original.clone(),
            connector: target.to_string(),
            found_by_run: b.found_by_run,
            proof,
            at: now,
        })
        .await?;
    tracing::info!(payment = %payment.id, break_id = b.id, target, "re-sending a payment proven absent");
    // The call and its record run on their own task: a caller that goes
    // away (an HTTP client that hangs up) does not abandon them.
    let task = {
        let store = store.clone();
        let connectors = connectors.clone();
        let payment = payment.clone();
        let target = target.to_string();
        tokio::spawn(async move {
            let outcome = send(&connectors, &target, &payment).await;
            finish(&store, started, &outcome).await
        })
    };
    task.await
        .map_err(|e| StoreError::Unavailable(format!("the re-send's task: {e}")))?
}

/// Sends once and says how it ended.
async fn send(connectors: &Connectors, target: &str, payment: &Payment) -> ResendOutcome {
    let Some(connector) = connectors.get(target) else {
        return ResendOutcome::NotApplied {
            reason: format!("{target} is not an online connector of this process"),
        };
    };
    let order = pay_order(payment);
    match tokio::time::timeout(limit(connectors, target), connector.pay(&order)).await {
        Ok(Ok(credit)) => ResendOutcome::Credited {
            receipt: credit.biller_reference,
        },
        Ok(Err(ConnectorError::Fail(r))) => ResendOutcome::Refused {
            code: r.code,
            message: r.message,
        },
        Ok(Err(ConnectorError::Retry { reason })) => ResendOutcome::NotApplied { reason },
        Ok(Err(ConnectorError::Unknown { reason })) => {
            unknown(connectors, target, payment, reason).await
        }
        Err(_) => unknown(connectors, target, payment, "no answer in time".into()).await,
    }
}

/// Records the answer, retrying while the store is unavailable (the call
/// was made: its answer must not be lost to a passing outage).
async fn finish(
    store: &Arc<dyn Store>,
    started: ResendStarted,
    outcome: &ResendOutcome,
) -> Result<BreakRow, ActError> {
    let mut wait = Duration::from_millis(200);
    for _ in 0..8 {
        match store.finish_resend(started, outcome, Utc::now()).await {
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(
                    resend = started.resend_id,
                    "recording the re-send's answer: {e}; retrying"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return Ok(other?),
        }
    }
    Ok(store.finish_resend(started, outcome, Utc::now()).await?)
}

/// A break left `resending` by a process that stopped during the call (or
/// before recording its answer). An approver settles it: once the call
/// cannot still be running, the new route is asked by our reference; a
/// credit resolves the break, anything else records the outcome as
/// unknown (it may have arrived: never sent again).
async fn settle_stalled(
    store: &Arc<dyn Store>,
    connectors: &Connectors,
    b: &BreakRow,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<BreakRow, ActError> {
    if !actor.role.allows(StaffRole::Approver) {
        return Err(WorkflowError::Role {
            action: "approve",
            needed: StaffRole::Approver.as_str(),
            user: actor.user.clone(),
            has: actor.role.as_str(),
        }
        .into());
    }
    let Some((started, target, since)) = store.open_resend(b.id).await? else {
        return Err(StoreError::Conflict(format!(
            "break {} is resending but has no open re-send",
            b.id
        ))
        .into());
    };
    let settle_after = limit(connectors, &target) + Duration::from_secs(30);
    if now < since + chrono::Duration::from_std(settle_after).unwrap_or_default() {
        return Err(StoreError::Conflict(format!(
            "the re-send through {target} started at {since} may still be running; ask again after {}",
            since + chrono::Duration::from_std(settle_after).unwrap_or_default()
        ))
        .into());
    }
    let payment = payment_of(store, b).await?;
    let outcome = unknown(
        connectors,
        &target,
        &payment,
        "the process making it stopped before recording its answer".into(),
    )
    .await;
    finish(store, started, &outcome).await
}

/// The re-send may have been applied: asked once by our reference, a credit
/// settles it; anything else leaves it unknown (never sent again).
async fn unknown(
    connectors: &Connectors,
    target: &str,
    payment: &Payment,
    reason: String,
) -> ResendOutcome {
    tokio::time::sleep(Duration::from_millis(200)).await;
    match status_of(connectors, target, payment).await {
        Ok(RemoteStatus::Credited(credit)) => ResendOutcome::Credited {
            receipt: credit.biller_reference,
        },
        Ok(other) => ResendOutcome::Unknown {
            reason: format!("{reason}; asked after: {other:?}"),
        },
        Err(why) => ResendOutcome::Unknown {
            reason: format!("{reason}; asked after: {why}"),
        },
    }
}
