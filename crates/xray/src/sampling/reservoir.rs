//! A per-second reservoir in one atomic word: how many requests were taken from it in the
//! current epoch second, shared by every thread without a lock.
//!
//! Local rules take up to `fixed_target` a second from theirs, centralized rules their quota or
//! one borrowed request. The second and the count in it are packed into one word, so that a
//! new second and its first take are one compare-and-swap: a request never counts against a
//! second that has passed.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests taken in one epoch second: `second << 32 | taken`.
#[derive(Debug, Default)]
pub(crate) struct Reservoir(AtomicU64);

impl Reservoir {
    /// Takes one request at time `now` (epoch seconds) from a reservoir of `limit` a second;
    /// false when this second's are all taken. A second other than the last one seen (later,
    /// or earlier when the clock stepped back) starts a full reservoir.
    pub(crate) fn take(&self, now: f64, limit: u64) -> bool {
        if limit == 0 {
            return false;
        }
        // Epoch seconds fit in 32 bits until 2106; a count past 32 bits a second is no limit.
        let second = now.floor() as u32;
        let limit = limit.min(u64::from(u32::MAX));
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let taken = if (current >> 32) as u32 == second {
                current & u64::from(u32::MAX)
            } else {
                0
            };
            if taken >= limit {
                return false;
            }
            let next = u64::from(second) << 32 | (taken + 1);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn takes_up_to_the_limit_each_second_and_a_new_second_refills_it() {
        let reservoir = Reservoir::default();
        assert!(reservoir.take(100.1, 2));
        assert!(reservoir.take(100.5, 2));
        assert!(!reservoir.take(100.9, 2));
        assert!(reservoir.take(101.0, 2));
        // The clock stepped back: a full reservoir again, as before the atomic.
        assert!(reservoir.take(100.2, 2));
        assert!(!Reservoir::default().take(5.0, 0));
    }

    #[test]
    fn threads_together_take_exactly_the_limit() {
        let reservoir = Arc::new(Reservoir::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let reservoir = reservoir.clone();
                std::thread::spawn(move || (0..1000).filter(|_| reservoir.take(7.5, 100)).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100);
    }
}
