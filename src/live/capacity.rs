//! A read-capacity budget shared by every segment of a scan: a token bucket.
//!
//! Capacity is only known after a request (`ConsumedCapacity`), so the bucket
//! runs into debt: a request may start while the balance is not negative, and
//! its cost is taken when its answer arrives. The balance refills at `rate`
//! units per second and holds at most one second of it, so over any window of
//! T seconds at most `rate × (T + 1)` units, plus the pages in flight, are
//! consumed; scans keep their pages near `rate / segments` units each (see
//! [`Budget::page_items`]) so that overshoot stays within one second's budget.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct Budget {
    rate: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    balance: f64,
    at: Instant,
}

impl Budget {
    /// `rate` read capacity units per second (> 0).
    pub fn new(rate: f64) -> Budget {
        Budget { rate, state: Mutex::new(State { balance: 0.0, at: Instant::now() }) }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn refill(&self, s: &mut State) {
        let now = Instant::now();
        s.balance = (s.balance + now.duration_since(s.at).as_secs_f64() * self.rate).min(self.rate);
        s.at = now;
    }

    /// Wait until a request may start.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap();
                self.refill(&mut s);
                if s.balance >= 0.0 {
                    return;
                }
                Duration::from_secs_f64((-s.balance / self.rate).max(0.001))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A request consumed `units`.
    pub fn spend(&self, units: f64) {
        let mut s = self.state.lock().unwrap();
        self.refill(&mut s);
        s.balance -= units;
    }

    /// How many items a segment's next page should ask for, given what an
    /// item has cost so far (`units_per_item`) and how many segments share the budget.
    pub fn page_items(&self, units_per_item: f64, segments: u32) -> i32 {
        let share = self.rate / segments.max(1) as f64;
        (share / units_per_item.max(1e-6)).floor().clamp(1.0, 10_000.0) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_time() {
        let b = Budget::new(10.0);
        let start = tokio::time::Instant::now();
        let mut spent = 0.0;
        while spent < 100.0 {
            b.acquire().await;
            b.spend(4.0);
            spent += 4.0;
        }
        // 100 units at 10/s: the last request may start once the debt of the
        // ones before it (96 units) is paid off, 9.6 s in.
        let took = start.elapsed().as_secs_f64();
        assert!(took >= 8.5, "100 units at 10/s took only {took} s");
        assert!(b.page_items(0.5, 2) == 10, "5 units per segment at 0.5 per item");
    }
}
