//! Three `billclear serve` processes (the real binary, each its own OS
//! process) on one database, under a steady load of payments and a storm of
//! bill inquiries spread over them, while the process holding the duties is
//! killed with SIGKILL every few seconds and started again. Afterwards:
//! every acknowledged payment is there and final, none was credited twice at
//! the biller, the ledger balances, the biller never saw more bill
//! inquiries in a second than its budget, and every duty the killed process
//! held was taken over within `duties.lease_ms + duties.check_ms`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billclear::domain::payment::PaymentStatus;
use billclear::startup::duty;
use billclear::store::lease::LeaseStore;
use common::{Options, TestApp};
use tokio::process::{Child, Command};

/// How long the load runs, and how often the duty holder is killed.
const CHAOS: Duration = Duration::from_secs(30);
const KILL_EVERY: Duration = Duration::from_secs(4);
/// A killed process is started again after this.
const DOWN_FOR: Duration = Duration::from_millis(1_000);
/// Slack on top of the lease's bound for a machine this loaded (two cores,
/// three services, the load and the simulator).
const TAKEOVER_SLACK: Duration = Duration::from_millis(2_000);

struct Instance {
    child: Child,
    base: String,
}

/// The three processes: their configuration and who is running.
struct Processes {
    dir: PathBuf,
    config: PathBuf,
    master_key: String,
    slots: Vec<Option<Instance>>,
    starts: usize,
    /// Asks a started process whether it answers.
    probe: billclear::client::SignedClient,
}

impl Processes {
    async fn start(&mut self, slot: usize) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!(
            "instance-{}-{}.log",
            slot + 1,
            self.starts
        )))
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_billclear"));
        // Killed with the test: a test run that is itself killed leaves no
        // process behind to load the next run's machine.
        // SAFETY: prctl is async-signal-safe and touches nothing else.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            // Nothing of the test's environment (a BILLCLEAR_DATABASE__URL
            // would point it elsewhere).
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOSTNAME", "chaos")
            .env("BILLCLEAR_SECURITY__MASTER_KEY", &self.master_key)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("billclear serve starts");
        let base = format!("http://127.0.0.1:{port}");
        self.probe.set_base(&base);
        let started = Instant::now();
        loop {
            if let Ok(r) = self.probe.get("/healthz").await {
                if r.status.is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "instance {} did not answer within 30 s (see {})",
                slot + 1,
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.slots[slot] = Some(Instance { child, base });
    }

    /// SIGKILL: no shutdown, no lease released, calls cut mid-way.
    async fn kill(&mut self, slot: usize) {
        if let Some(mut i) = self.slots[slot].take() {
            i.child.kill().await.expect("SIGKILL");
        }
    }

    fn bases(&self) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .map(|i| i.base.clone())
            .collect()
    }

    fn pid(&self, slot: usize) -> Option<u32> {
        self.slots[slot].as_ref().and_then(|i| i.child.id())
    }
}

/// The payments a client was told were accepted (201), by reference.
type Acknowledged = Arc<Mutex<BTreeMap<String, String>>>;
/// Why sends were not acknowledged, counted by kind (shown on failure).
type Refusals = Arc<Mutex<BTreeMap<String, u64>>>;

/// A call to a process that accepted it and went quiet is given up after
/// this and sent again (same key) to the next process.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A payment not acknowledged this long after it was first sent fails the
/// test.
const ACK_WITHIN: Duration = Duration::from_secs(60);

/// Sends one payment until some process acknowledges it: a refused
/// connection, a call with no answer within [`CALL_TIMEOUT`] or a 5xx (a
/// process killed mid-request) is sent again, with the same key, to the
/// next process.
async fn pay_until_acknowledged(
    mut client: billclear::client::SignedClient,
    bases: Arc<Mutex<Vec<String>>>,
    n: usize,
    acked: Acknowledged,
    refusals: Refusals,
) {
    let reference = format!("chaos-{n}-{}", uuid::Uuid::new_v4().simple());
    let body = serde_json::json!({
        "biller_id": "sh-water",
        "account_number": "3100000011",
        "amount": format!("{}.{:02}", 1 + n % 7, n % 100),
        "currency": "CNY",
        "channel_reference": reference,
    });
    client.set_timeout(CALL_TIMEOUT);
    let refused = |why: String| *refusals.lock().unwrap().entry(why).or_default() += 1;
    let began = Instant::now();
    let mut attempt = 0;
    while began.elapsed() < ACK_WITHIN {
        let base = {
            let b = bases.lock().unwrap();
            (!b.is_empty()).then(|| b[(n + attempt) % b.len()].clone())
        };
        attempt += 1;
        if let Some(base) = base {
            client.set_base(&base);
            match client.post_payment(&reference, &body).await {
                Ok(r) if r.status == 201 => {
                    let id = r.json()["id"].as_str().unwrap().to_string();
                    acked.lock().unwrap().insert(reference, id);
                    return;
                }
                Ok(r) => {
                    assert!(
                        r.status.is_server_error() || r.status == 429,
                        "payment {reference} refused: HTTP {} {:?}",
                        r.status,
                        r.json()
                    );
                    refused(format!("HTTP {} {}", r.status.as_u16(), r.code()));
                }
                Err(e) if e.is::<tokio::time::error::Elapsed>() => {
                    refused("no answer in time".into())
                }
                Err(_) => refused("connection failed".into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refused(format!("never acknowledged ({attempt} sends)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_one_killed_every_few_seconds() {
    let app = TestApp::spawn_with(Options {
        dispatch: true,
        ..Options::default()
    })
    .await;
    // The test's own service only prepared the database: its workers and
    // its place in the fleet stop, the three processes do the work.
    if let Some(w) = &app.workers {
        w.abort();
    }
    app.state.stop_background();

    let dir = std::env::temp_dir().join(format!("{}-chaos", app.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = (*app.state.config).clone();
    config.database.url =
        billclear::store::postgres::with_database(&common::server_url(), &app.db_name);
    config.fleet.heartbeat_ms = 250;
    config.fleet.stale_ms = 1_500;
    config.log.filter = "info".into();
    let config_path = dir.join("billclear.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let lease = Duration::from_millis(config.duties.lease_ms);
    let check = Duration::from_millis(config.duties.check_ms);
    let budget = app.state.inquiry.budget_per_s("sh-water") as u64;

    let mut procs = Processes {
        dir: dir.clone(),
        config: config_path,
        master_key: app.master_key_base64.clone(),
        slots: vec![None, None, None],
        starts: 0,
        probe: app.alipay.clone(),
    };
    for slot in 0..3 {
        procs.start(slot).await;
    }
    let bases = Arc::new(Mutex::new(procs.bases()));
    let acked: Acknowledged = Arc::default();
    let refusals: Refusals = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Payments: about 25 a second, each until acknowledged.
    let payments = {
        let (bases, acked, stop) = (bases.clone(), acked.clone(), stop.clone());
        let refusals = refusals.clone();
        let client = app.alipay.clone();
        tokio::spawn(async move {
            let mut sent = tokio::task::JoinSet::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                sent.spawn(pay_until_acknowledged(
                    client.clone(),
                    bases.clone(),
                    n,
                    acked.clone(),
                    refusals.clone(),
                ));
                n += 1;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            while let Some(r) = sent.join_next().await {
                r.unwrap();
            }
            n
        })
    };
    // Bill inquiries: distinct accounts (no cache, no coalescing), 16 at a
    // time over the live processes.
    let storm = {
        let (bases, stop) = (bases.clone(), stop.clone());
        let client = app.wechat.clone();
        tokio::spawn(async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(16));
            let mut calls = tokio::task::JoinSet::new();
            let mut answers = BTreeMap::<u16, u64>::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let permit = gate.clone().acquire_owned().await.unwrap();
                let base = {
                    let b = bases.lock().unwrap();
                    (!b.is_empty()).then(|| b[i as usize % b.len()].clone())
                };
                let Some(base) = base else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let mut client = client.clone();
                client.set_base(&base);
                client.set_timeout(CALL_TIMEOUT);
                let payload = format!("43{:07}", i % 10_000_000);
                let account = format!(
                    "{payload}{}",
                    biller_sim::luhn_check_digit(&payload).unwrap()
                );
                calls.spawn(async move {
                    let r = client
                        .get(&format!("/v1/billers/sh-water/bills?account={account}"))
                        .await;
                    drop(permit);
                    r.map(|r| r.status.as_u16()).unwrap_or(0)
                });
                i += 1;
                while let Some(done) = calls.try_join_next() {
                    *answers.entry(done.unwrap()).or_default() += 1;
                }
            }
            while let Some(done) = calls.join_next().await {
                *answers.entry(done.unwrap()).or_default() += 1;
            }
            answers
        })
    };

    // The chaos: every few seconds, SIGKILL the process holding the
    // settlement relay (else the next in turn), start it again shortly.
    let mut kills: Vec<(chrono::DateTime<chrono::Utc>, u32, Vec<String>)> = Vec::new();
    let began = Instant::now();
    let mut turn = 0usize;
    while began.elapsed() < CHAOS {
        tokio::time::sleep(KILL_EVERY).await;
        let leases = app.store.leases().await.unwrap();
        let held_by = |pid: u32| -> Vec<String> {
            leases
                .iter()
                .filter(|l| !l.expired && l.holder.contains(&format!("-{pid}-")))
                .map(|l| l.duty.clone())
                .collect()
        };
        let slot = (0..3)
            .find(|s| {
                procs
                    .pid(*s)
                    .is_some_and(|pid| held_by(pid).iter().any(|d| d == duty::SETTLEMENT_RELAY))
            })
            .unwrap_or(turn % 3);
        turn += 1;
        let Some(pid) = procs.pid(slot) else { continue };
        let duties = held_by(pid);
        let at = chrono::Utc::now();
        procs.kill(slot).await;
        kills.push((at, pid, duties));
        *bases.lock().unwrap() = procs.bases();
        tokio::time::sleep(DOWN_FOR).await;
        procs.start(slot).await;
        *bases.lock().unwrap() = procs.bases();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let submitted = payments.await.unwrap();
    let answers = storm.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let refusals = refusals.lock().unwrap().clone();
    eprintln!(
        "{} kills in {:?}; {submitted} payments sent, {} acknowledged; sends not acknowledged: {refusals:?}; inquiries answered {answers:?}",
        kills.len(),
        began.elapsed(),
        acked.len()
    );
    assert!(kills.len() >= 5, "{} kills", kills.len());
    assert_eq!(
        acked.len(),
        submitted,
        "every payment was acknowledged within {ACK_WITHIN:?}; sends not acknowledged: {refusals:?} (instances' logs in {})",
        dir.display()
    );

    // Every acknowledged payment is there, and reaches a final state.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT channel_reference, status FROM payments WHERE channel_reference LIKE 'chaos-%'",
        )
        .fetch_all(app.store.pool())
        .await
        .unwrap();
        let by_ref: BTreeMap<String, String> = rows.into_iter().collect();
        for reference in acked.keys() {
            assert!(
                by_ref.contains_key(reference),
                "acknowledged payment {reference} is lost"
            );
        }
        let open: Vec<_> = by_ref
            .iter()
            .filter(|(_, s)| {
                ![
                    PaymentStatus::Confirmed.as_str(),
                    PaymentStatus::Rejected.as_str(),
                ]
                .contains(&s.as_str())
            })
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} payments not final 90 s after the load: {:?}",
            open.len(),
            open.iter().take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // None credited twice by the biller.
    let mut credits = BTreeMap::<String, u32>::new();
    for c in app.sim().credits() {
        *credits.entry(c.our_reference).or_default() += 1;
    }
    let twice: Vec<_> = credits.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "credited twice: {twice:?}");

    // The biller's budget held every second, and was used.
    let per_second = app.sim().bill_requests_per_second();
    let max = app.sim().max_bill_requests_per_second();
    eprintln!("bill inquiries the biller saw per second: {per_second:?} (budget {budget})");
    assert!(
        max <= budget,
        "the biller saw {max} bill inquiries in one second, budget {budget}"
    );
    assert!(
        max * 2 >= budget,
        "the budget was hardly used: {per_second:?}"
    );

    // Every duty the killed process held was taken over within its bound.
    let bound = lease + check;
    let mut taken = Vec::new();
    for (at, pid, duties) in &kills {
        for d in duties {
            // The last kill can be a moment ago: wait out its bound before
            // calling a duty never taken over.
            let give_up = *at + chrono::Duration::from_std(bound + TAKEOVER_SLACK).unwrap();
            let next = loop {
                let handovers = app.store.handovers(d).await.unwrap();
                let found = handovers.into_iter().find(|h| {
                    h.at > *at
                        && h.previous_holder
                            .as_ref()
                            .is_some_and(|p| p.contains(&format!("-{pid}-")))
                });
                match found {
                    Some(h) => break h,
                    None if chrono::Utc::now() < give_up => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    None => panic!("{d} held by killed {pid} was never taken over"),
                }
            };
            let after = (next.at - *at).to_std().unwrap_or_default();
            taken.push((d.clone(), after));
            assert!(
                after <= bound + TAKEOVER_SLACK,
                "{d} taken over {after:?} after the kill (bound {bound:?})"
            );
        }
    }
    eprintln!("duties taken over after each kill: {taken:?} (bound {bound:?})");
    assert!(
        taken.iter().any(|(d, _)| d == duty::SETTLEMENT_RELAY),
        "the relay's holder was killed at least once"
    );

    for slot in 0..3 {
        procs.kill(slot).await;
    }
    remove(&dir);
    // The ledger audit and our books against the biller's.
    app.finish().await;
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
