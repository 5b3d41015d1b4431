//! Whether this process's background parts are alive, for `/readyz`: each
//! worker loop bumps a [`Heartbeat`]; the settlement relay and consumer
//! keep their RabbitMQ connection's state in a [`BrokerLink`]. The
//! [`Liveness`] of a process holds those of the parts it started.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// When a loop last went round.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Default for Heartbeat {
    fn default() -> Self {
        let h = Heartbeat(Arc::new(AtomicU64::new(0)));
        h.beat();
        h
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        self.0
            .store(epoch().elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.0.load(Ordering::Relaxed));
        epoch().elapsed().saturating_sub(last)
    }
}

/// The state of one RabbitMQ connection: connecting (never connected
/// yet), up or down.
#[derive(Debug, Clone, Default)]
pub struct BrokerLink(Arc<AtomicU8>);

impl BrokerLink {
    pub fn up(&self) {
        self.0.store(1, Ordering::Relaxed);
    }
    pub fn down(&self) {
        self.0.store(2, Ordering::Relaxed);
    }
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 1
    }
    /// Not running in this process (a duty another process holds): not a
    /// reason to be unready.
    pub fn standby(&self) {
        self.0.store(3, Ordering::Relaxed);
    }
    pub fn is_standby(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 3
    }
}

/// One check of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    Down,
    /// This process does not run that part.
    Off,
}

impl Check {
    pub fn as_str(&self) -> &'static str {
        match self {
            Check::Ok => "ok",
            Check::Down => "down",
            Check::Off => "off",
        }
    }
}

struct Watched {
    name: String,
    beat: Heartbeat,
    stale_after: Duration,
}

/// The parts of a process that `/readyz` looks at.
#[derive(Default)]
pub struct Liveness {
    workers: Mutex<Vec<Watched>>,
    broker: Mutex<Vec<(String, BrokerLink)>>,
}

impl Liveness {
    /// A worker loop that is not alive once its beat is older than
    /// `stale_after`.
    pub fn watch_worker(&self, name: impl Into<String>, beat: Heartbeat, stale_after: Duration) {
        self.workers.lock().expect("liveness lock").push(Watched {
            name: name.into(),
            beat,
            stale_after,
        });
    }

    pub fn watch_broker(&self, name: impl Into<String>, link: BrokerLink) {
        self.broker
            .lock()
            .expect("liveness lock")
            .push((name.into(), link));
    }

    /// `Off` without workers; `Down` when one of them is stale (named in
    /// the log, not in the answer).
    pub fn workers(&self) -> Check {
        let workers = self.workers.lock().expect("liveness lock");
        if workers.is_empty() {
            return Check::Off;
        }
        let stale: Vec<&str> = workers
            .iter()
            .filter(|w| w.beat.age() > w.stale_after)
            .map(|w| w.name.as_str())
            .collect();
        if stale.is_empty() {
            Check::Ok
        } else {
            tracing::warn!(workers = ?stale, "readiness: worker loops not alive");
            Check::Down
        }
    }

    /// `Off` without settlement; `Down` unless every connection is up.
    pub fn broker(&self) -> Check {
        let links = self.broker.lock().expect("liveness lock");
        if links.is_empty() {
            Check::Off
        } else if links.iter().all(|(_, l)| l.is_up() || l.is_standby()) {
            Check::Ok
        } else {
            Check::Down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_beats_and_links() {
        let l = Liveness::default();
        assert_eq!((l.workers(), l.broker()), (Check::Off, Check::Off));
        let beat = Heartbeat::default();
        l.watch_worker("w", beat.clone(), Duration::from_millis(20));
        assert_eq!(l.workers(), Check::Ok);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.workers(), Check::Down);
        beat.beat();
        assert_eq!(l.workers(), Check::Ok);
        let link = BrokerLink::default();
        l.watch_broker("relay", link.clone());
        assert_eq!(l.broker(), Check::Down);
        link.up();
        assert_eq!(l.broker(), Check::Ok);
        link.standby();
        assert_eq!(l.broker(), Check::Ok, "a relay held by another process");
        link.down();
        assert_eq!(l.broker(), Check::Down);
    }
}
