//! Limits that hold for a fleet of processes as a whole (pure).
//!
//! A fleet-wide limit of `total` a second (a biller's inquiry budget, a
//! channel's rate limit) is split between the live processes: each takes
//! its [`share`], and the shares add up to `total` exactly. Each process
//! then enforces its share per second of the wall clock ([`SecondWindow`]),
//! so that what a counterparty counts per second never exceeds the total
//! however the requests are spread over the processes.

/// This process's share of `total`: `total / n`, and one more for the
/// first `total % n` processes in name order (`rank` is this process's
/// place among the `n` live ones, from 0). Shares of all ranks add up to
/// `total`; with fewer units than processes some get none.
pub fn share(total: u32, n: usize, rank: usize) -> u32 {
    let n = n.max(1) as u32;
    let rank = (rank as u32).min(n - 1);
    total / n + u32::from(rank < total % n)
}

/// Nothing is let through in the last this many milliseconds of a second:
/// a call let through in a second reaches its counterparty in the same
/// second when its way there (recording the attempt, the network) takes
/// less than this, so the counterparty counts it in the second we did.
pub const SECOND_TAIL_MS: i64 = 100;

/// At most `limit` a second of the wall clock (unix seconds), and nothing
/// in a second's last [`SECOND_TAIL_MS`]: the count starts again at each
/// second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondWindow {
    second: i64,
    used: u32,
}

impl SecondWindow {
    /// Takes one unit at `now_ms` (unix milliseconds) within `limit` for
    /// that second; otherwise the milliseconds until the next second.
    pub fn take(&mut self, now_ms: i64, limit: u32) -> Result<(), u64> {
        let second = now_ms.div_euclid(1000);
        let into = now_ms.rem_euclid(1000);
        if into >= 1000 - SECOND_TAIL_MS {
            return Err((1000 - into) as u64);
        }
        if second != self.second {
            self.second = second;
            self.used = 0;
        }
        if self.used < limit {
            self.used += 1;
            Ok(())
        } else {
            Err((1000 - now_ms.rem_euclid(1000)) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for total in 0..40 {
            for n in 1..9 {
                let sum: u32 = (0..n).map(|r| share(total, n, r)).sum();
                assert_eq!(sum, total, "total {total}, n {n}");
                for r in 0..n {
                    let s = share(total, n, r);
                    assert!(s == total / n as u32 || s == total / n as u32 + 1);
                }
            }
        }
        assert_eq!(share(5, 3, 0), 2);
        assert_eq!(share(5, 3, 1), 2);
        assert_eq!(share(5, 3, 2), 1);
        assert_eq!(share(2, 3, 2), 0, "fewer units than processes");
        assert_eq!(share(7, 0, 0), 7, "alone");
    }

    #[test]
    fn a_window_counts_per_second_of_the_wall_clock() {
        let mut w = SecondWindow::default();
        assert!(w.take(10_000, 2).is_ok());
        assert!(w.take(10_400, 2).is_ok());
        assert_eq!(w.take(10_750, 2), Err(250));
        // The next second starts again.
        assert!(w.take(11_000, 2).is_ok());
        assert!(w.take(11_899, 2).is_ok());
        assert_eq!(w.take(11_899, 2), Err(101));
        assert_eq!(w.take(12_000, 0), Err(1000), "a share of none");
        // Nothing in a second's last 100 ms, whatever is left.
        assert_eq!(w.take(12_900, 5), Err(100));
        assert_eq!(w.take(12_999, 5), Err(1));
        assert!(w.take(13_000, 5).is_ok());
    }
}
