//! File routes: billers with no online interface (the co-op). Their
//! payments wait in `file_batch_lines`; at the biller's cut-off they are
//! put into one batch (recorded first, then written atomically into the
//! biller's drop directory: a file of that name already there means it was
//! delivered before); the biller's acknowledgement file then moves each
//! line to CONFIRMED or REJECTED in one transaction. A malformed
//! acknowledgement, or one that does not answer exactly its batch's lines,
//! changes nothing and stays where it is for an operator.

use std::sync::Arc;
use std::time::Duration;

use biller_connectors::coop::{self, Batch, BatchLine, CoopSettings, LineOutcome};
use chrono::{DateTime, NaiveDate, Utc};

use super::connectors::Connectors;
use crate::domain::dispatch::CallbackEvent;
use crate::domain::payment::{transition, PaymentStatus};
use crate::intake::BillerDirectory;
use crate::store::{FileBatch, FileOutcome, Store};

pub struct FileRouter {
    store: Arc<dyn Store>,
    connectors: Connectors,
    billers: BillerDirectory,
}

fn batch_of(settings: &CoopSettings, b: &FileBatch) -> Batch {
    Batch {
        coop_id: settings.coop_id.clone(),
        business_date: b.business_date,
        seq: b.seq,
        created_at: b.created_at,
        lines: b
            .lines
            .iter()
            .map(|p| BatchLine {
                our_reference: p.id.to_string(),
                account_number: p.account_number.clone(),
                amount: p.amount.amount(),
                currency: p.amount.currency().code().to_string(),
                bill_reference: p.bill_reference.clone(),
            })
            .collect(),
    }
}

impl FileRouter {
    pub fn new(state: &super::Deps) -> FileRouter {
        FileRouter {
            store: state.store.clone(),
            connectors: state.routes.connectors().clone(),
            billers: state.billers.clone(),
        }
    }

    /// Delivers what is due on every file route and applies every
    /// acknowledgement that arrived.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        for (id, settings) in self.connectors.file_routes() {
            let snapshot = self.billers.snapshot();
            let biller = snapshot
                .values()
                .find(|b| b.routes.iter().any(|r| r.as_str() == id));
            if let Some((up_to, date)) = biller.map(|b| b.cutoff.last_closed(now)) {
                self.deliver(id, settings, up_to, date).await?;
            }
            self.answers(id, settings).await?;
        }
        Ok(())
    }

    /// Puts everything queued on `route` into a batch now (before the
    /// cut-off: an operator's decision) and delivers it.
    pub async fn flush(&self, route: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        let settings = self
            .connectors
            .file_route(route)
            .ok_or_else(|| anyhow::anyhow!("{route} is not a configured file route"))?;
        self.deliver(route, settings, now, now.date_naive()).await
    }

    async fn deliver(
        &self,
        route: &str,
        settings: &CoopSettings,
        up_to: DateTime<Utc>,
        date: NaiveDate,
    ) -> anyhow::Result<()> {
        let coop_id = settings.coop_id.clone();
        let file_id = move |seq: u32| {
            Batch {
                coop_id: coop_id.clone(),
                business_date: date,
                seq,
                created_at: Utc::now(),
                lines: vec![],
            }
            .file_id()
        };
        self.store
            .prepare_file_batch(route, up_to, date, &file_id)
            .await?;
        for b in self.store.undelivered_file_batches(route).await? {
            std::fs::create_dir_all(&settings.drop_dir)?;
            match coop::write_batch(&settings.drop_dir, &batch_of(settings, &b)) {
                Ok(path) => {
                    tracing::info!(route, file = %path.display(), lines = b.lines.len(), "batch file delivered")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    tracing::info!(route, file_id = %b.file_id, "batch file was delivered before")
                }
                Err(e) => return Err(e.into()),
            }
            self.store.mark_file_batch_delivered(b.id).await?;
        }
        Ok(())
    }

    async fn answers(&self, route: &str, settings: &CoopSettings) -> anyhow::Result<()> {
        std::fs::create_dir_all(&settings.ack_dir)?;
        for (path, ack) in coop::read_acks(&settings.ack_dir)? {
            let ack = match ack {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(route, file = %path.display(), error = %e, "acknowledgement refused whole; left for an operator");
                    continue;
                }
            };
            let Some(b) = self.store.file_batch(&ack.batch_file_id).await? else {
                tracing::error!(route, file = %path.display(), "acknowledgement of a batch we never sent; left for an operator");
                continue;
            };
            if !b.answered {
                let outcomes = match coop::reconcile_ack(&batch_of(settings, &b), &ack) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(route, file = %path.display(), error = %e, "acknowledgement does not answer its batch; left for an operator");
                        continue;
                    }
                };
                let applied = self.outcomes(&b, &outcomes, ack.created_at)?;
                self.store.apply_file_outcomes(b.id, &applied).await?;
                tracing::info!(route, file = %path.display(), lines = applied.len(), "acknowledgement applied");
            }
            coop::mark_processed(&path)?;
        }
        Ok(())
    }

    fn outcomes(
        &self,
        b: &FileBatch,
        lines: &[LineOutcome],
        at: DateTime<Utc>,
    ) -> anyhow::Result<Vec<FileOutcome>> {
        let mut out = Vec::with_capacity(lines.len());
        for line in lines {
            let payment = b
                .lines
                .iter()
                .find(|p| p.id.to_string() == line.our_reference())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "line {} is not in batch {}",
                        line.our_reference(),
                        b.file_id
                    )
                })?;
            let (to, reason, credit) = match line {
                LineOutcome::Accepted { receipt, .. } => (
                    PaymentStatus::Confirmed,
                    format!(
                        "accepted in {}'s acknowledgement, receipt {receipt}",
                        b.file_id
                    ),
                    Some((receipt.clone(), at)),
                ),
                LineOutcome::Rejected { code, reason, .. } => (
                    PaymentStatus::Rejected,
                    format!(
                        "refused in {}'s acknowledgement (code {code}): {reason}",
                        b.file_id
                    ),
                    None,
                ),
            };
            let t = transition(payment.id, payment.status, to, reason, Utc::now())?;
            let callback = CallbackEvent::for_payment(
                payment,
                to,
                credit.as_ref().map(|(r, _)| r.as_str()),
                (to == PaymentStatus::Rejected).then_some(t.reason.as_str()),
                t.at,
            );
            out.push(FileOutcome {
                transition: t,
                credit,
                callback: Some(callback),
            });
        }
        Ok(out)
    }
}

/// Runs the file routes every `every` until aborted (the duty
/// `file-routes`, held by one process at a time).
pub async fn run(router: std::sync::Arc<FileRouter>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = router.tick(Utc::now()).await {
            tracing::warn!(error = %e, "file routes: will try again");
        }
    }
}
