//! The demo's complaints scene: the apps raise a complaint of each type on
//! their payments; the machine resolves what the evidence settles (the
//! biller's answer to a status inquiry, a rejected payment, a bill paid
//! twice refunded by rule), finance staff work the rest through the staff
//! API (a refund proposed by one and approved by another).

use std::time::{Duration, Instant};

use biller_sim::Account;
use serde::Serialize;
use serde_json::{json, Value};

use super::{say, Stack};
use crate::client::{Extra, Reply, SignedClient};
use crate::domain::payment::PaymentStatus;

/// What the scene did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoComplaints {
    pub raised: u64,
    /// Resolved or rejected by the investigator alone.
    pub resolved_automatically: u64,
    /// Answered for good (RESOLVED or REJECTED) before they were due.
    pub within_time: u64,
    /// Still open when the scene ended (0 on a good run).
    pub still_open: u64,
    pub refunds: u64,
    /// Each complaint: type, status, outcome.
    pub outcomes: Vec<String>,
}

async fn raise(client: &SignedClient, key: &str, body: &Value) -> anyhow::Result<Reply> {
    client.post_idempotent("/v1/complaints", key, body).await
}

async fn staff(base: &str, token: &str, id: &str, body: Value) -> anyhow::Result<Reply> {
    SignedClient::new(base, "", "")
        .send(
            hyper::Method::POST,
            &format!("/v1/staff/complaints/{id}/actions"),
            body.to_string().into_bytes(),
            Extra {
                authorization: Some(format!("Bearer {token}")),
                headers: vec![("content-type".into(), "application/json".into())],
                ..Extra::default()
            },
        )
        .await
}

/// Waits until complaint `id` is out of OPEN (and, when `closed`, answered
/// for good); returns it.
async fn settled(client: &SignedClient, id: &str, closed: bool) -> anyhow::Result<Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let c = client.get(&format!("/v1/complaints/{id}")).await?.json();
        let s = c["status"].as_str().unwrap_or_default();
        let done = if closed {
            s == "RESOLVED" || s == "REJECTED"
        } else {
            s != "OPEN"
        };
        if done || Instant::now() > until {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until payment `id` is final (at most 30 s); returns its status,
/// `None` when it is still not final then.
async fn final_state(client: &SignedClient, id: &str) -> anyhow::Result<Option<PaymentStatus>> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let p = client.get(&format!("/v1/payments/{id}")).await?.json();
        let status = PaymentStatus::parse(p["status"].as_str().unwrap_or_default());
        if let Some(s) = status.filter(PaymentStatus::is_final) {
            return Ok(Some(s));
        }
        if Instant::now() > until {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pays the same bill twice (same account and amount, two references);
/// returns both payments once both are credited. A payment of a pair may
/// be rejected (a pay call the biller never got, on a loaded machine): a
/// new pair is paid then, at most three times.
async fn pay_twice(
    client: &SignedClient,
    open: &[(String, Account)],
    rng: &mut impl rand::Rng,
) -> anyhow::Result<[String; 2]> {
    let mut last = Vec::new();
    for _ in 0..3 {
        let first = super::random_payment_as(
            open,
            rng,
            &format!("twice-{}", uuid::Uuid::new_v4().simple()),
        );
        let mut second = first.clone();
        second["channel_reference"] = json!(format!("twice-{}", uuid::Uuid::new_v4().simple()));
        let mut twice = Vec::new();
        for body in [&first, &second] {
            let key = body["channel_reference"].as_str().unwrap_or_default();
            let r = client.post_payment(key, body).await?;
            anyhow::ensure!(r.status == 201, "payment refused: {}", r.text());
            twice.push(r.json()["id"].as_str().unwrap_or_default().to_string());
        }
        last.clear();
        for id in &twice {
            last.push(final_state(client, id).await?);
        }
        if last
            .iter()
            .all(|s| matches!(s, Some(PaymentStatus::Confirmed | PaymentStatus::Settled)))
        {
            return Ok([twice[0].clone(), twice[1].clone()]);
        }
    }
    anyhow::bail!("no bill paid twice was credited twice in three tries (last pair: {last:?})")
}

/// A payment of `channel` in one of `statuses`.
async fn a_payment(
    stack: &Stack,
    channel: &str,
    statuses: &[&str],
) -> anyhow::Result<Option<String>> {
    let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
    Ok(sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM payment_states WHERE channel_id = $1 AND status = ANY($2)
          ORDER BY created_at LIMIT 1",
    )
    .bind(channel)
    .bind(&statuses)
    .fetch_optional(stack.store.pool())
    .await?
    .map(|u| u.to_string()))
}

/// `approver`: the demo approver's staff token.
pub(crate) async fn play(
    stack: &Stack,
    open: &[(String, Account)],
    closed: &[(String, Account)],
    approver: &crate::auth::staff_token::StaffToken,
    json_out: bool,
) -> anyhow::Result<DemoComplaints> {
    let mut out = DemoComplaints::default();
    let (channel, client) = (&stack.clients[0].0, &stack.clients[0].1);
    let complaint = |payment: &str, kind: &str, words: &str| json!({"payment_id": payment, "type": kind, "description": words});
    let mut ids: Vec<String> = Vec::new();
    let raise_one = |body: Value| {
        let key = format!("complaint-{}", uuid::Uuid::new_v4().simple());
        async move {
            let r = raise(client, &key, &body).await?;
            anyhow::ensure!(
                r.status == 201,
                "complaint refused: {} {}",
                r.status,
                r.text()
            );
            Ok::<String, anyhow::Error>(r.json()["id"].as_str().unwrap_or_default().to_string())
        }
    };
    // 1. "I paid and the biller says I didn't": the biller is asked.
    if let Some(p) = a_payment(stack, channel, &["SETTLED", "CONFIRMED"]).await? {
        ids.push(
            raise_one(complaint(
                &p,
                "not_credited",
                "the water company says the bill is unpaid",
            ))
            .await?,
        );
    }
    // 2. The same about a rejected payment (to a closed account, paid
    //    now): nothing was taken.
    let mut rng = rand::thread_rng();
    let refused = super::random_payment_as(
        closed,
        &mut rng,
        &format!("closed-{}", uuid::Uuid::new_v4().simple()),
    );
    let key = refused["channel_reference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = client.post_payment(&key, &refused).await?;
    anyhow::ensure!(r.status == 201, "payment refused: {}", r.text());
    let refused_id = r.json()["id"].as_str().unwrap_or_default().to_string();
    final_state(client, &refused_id).await?;
    if let Some(p) = a_payment(stack, channel, &["REJECTED"]).await? {
        ids.push(raise_one(complaint(&p, "not_credited", "my money is gone")).await?);
    }
    // 3. The same bill paid twice (same account and amount): both payments
    //    are complained about at once; one is refunded, once.
    let twice = pay_twice(client, open, &mut rng).await?;
    let (a, b) = futures_util::future::join(
        raise(
            client,
            &format!("twice-a-{}", twice[0]),
            &complaint(&twice[0], "paid_twice", "charged twice for one bill"),
        ),
        raise(
            client,
            &format!("twice-b-{}", twice[1]),
            &complaint(&twice[1], "paid_twice", "charged twice for one bill"),
        ),
    )
    .await;
    let mut pair = Vec::new();
    for r in [a?, b?] {
        anyhow::ensure!(r.status == 201, "complaint refused: {}", r.text());
        pair.push(r.json()["id"].as_str().unwrap_or_default().to_string());
    }
    ids.extend(pair.iter().cloned());
    // 4. Types only people can settle: a wrong account, a wrong amount.
    let credited = a_payment(stack, channel, &["SETTLED", "CONFIRMED"]).await?;
    let mut for_staff = Vec::new();
    if let Some(p) = &credited {
        for (kind, words) in [
            (
                "credited_to_wrong_account",
                "credited to my neighbour's account",
            ),
            (
                "amount_differs",
                "the water company shows a different amount",
            ),
        ] {
            let id = raise_one(complaint(p, kind, words)).await?;
            for_staff.push(id.clone());
            ids.push(id);
        }
    }
    // 5. "I did not get my refund": about the payment the investigator
    //    refunded (once the paid-twice pair is answered).
    for id in &pair {
        settled(client, id, true).await?;
    }
    let refunded: Option<String> = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT payment_id FROM refunds WHERE payment_id = ANY($1::uuid[]) LIMIT 1",
    )
    .bind(
        twice
            .iter()
            .filter_map(|t| t.parse::<uuid::Uuid>().ok())
            .collect::<Vec<_>>(),
    )
    .fetch_optional(stack.store.pool())
    .await?
    .map(|u| u.to_string());
    if let Some(p) = &refunded {
        let id = raise_one(complaint(
            p,
            "refund_not_received",
            "the refund is not in my account",
        ))
        .await?;
        for_staff.push(id.clone());
        ids.push(id);
    }
    out.raised = ids.len() as u64;
    say(
        json_out,
        format!(
            "• complaints   {} raised, one of each type; the investigator looks at each at once",
            ids.len()
        ),
    );
    // 6. Finance staff work what the machine handed them: an operator
    //    proposes, an approver approves (a refund); the rest resolved or
    //    rejected with words.
    let (_, operator) = crate::cli::staff::add_staff(
        &*stack.store,
        "demo.operator",
        "Demo operator",
        crate::domain::staff::StaffRole::Operator,
    )
    .await?;
    for id in &for_staff {
        let c = settled(client, id, false).await?;
        let kind = c["type"].as_str().unwrap_or_default();
        let steps: Vec<(&str, Value)> = match kind {
            "credited_to_wrong_account" => vec![
                (
                    operator.expose_text(),
                    json!({"action": "propose-refund", "note": "the biller cannot move the credit: give the money back"}),
                ),
                (approver.expose_text(), json!({"action": "approve-refund"})),
            ],
            "amount_differs" => vec![(
                operator.expose_text(),
                json!({"action": "resolve", "outcome": "credit_confirmed", "note": "the biller's receipt shows the amount we sent"}),
            )],
            _ => vec![(
                operator.expose_text(),
                json!({"action": "reject", "reason": "the refund was made and is listed on the app's statement"}),
            )],
        };
        for (token, body) in steps {
            let r = staff(&stack.base, token, id, body).await?;
            anyhow::ensure!(
                r.status == 200,
                "staff action refused: {} {}",
                r.status,
                r.text()
            );
        }
    }
    for id in &ids {
        let c = settled(client, id, true).await?;
        let status = c["status"].as_str().unwrap_or_default();
        if status == "RESOLVED" || status == "REJECTED" {
            let resolved: Option<String> = c["resolved_at"].as_str().map(str::to_string);
            let due: Option<String> = c["due_at"].as_str().map(str::to_string);
            if let (Some(r), Some(d)) = (resolved, due) {
                let r: chrono::DateTime<chrono::Utc> = r.parse()?;
                let d: chrono::DateTime<chrono::Utc> = d.parse()?;
                if r <= d {
                    out.within_time += 1;
                }
            }
        } else {
            out.still_open += 1;
        }
        out.outcomes.push(format!(
            "{}: {} {}",
            c["type"].as_str().unwrap_or_default(),
            status,
            c["outcome"].as_str().unwrap_or_default()
        ));
    }
    out.resolved_automatically = sqlx::query_scalar::<_, i64>(
        "SELECT count(DISTINCT complaint_id) FROM complaint_events
          WHERE actor = 'system' AND to_status IN ('RESOLVED', 'REJECTED')",
    )
    .fetch_one(stack.store.pool())
    .await? as u64;
    out.refunds = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refunds")
        .fetch_one(stack.store.pool())
        .await? as u64;
    say(
        json_out,
        format!(
            "               {} resolved by the machine alone, {} within their time, {} refund(s) ({})",
            out.resolved_automatically,
            out.within_time,
            out.refunds,
            out.outcomes.join("; ")
        ),
    );
    Ok(out)
}
