//! The process's budget of component memory: what every instance of every service may hold
//! together.
//!
//! Each instance is bounded by `--max-memory-mib` (128 MiB), and a service serves up to
//! `--max-concurrent-requests` (256) at once: about 32 GiB on a task of 2 GiB. Past the task's
//! memory the kernel kills the whole process, every request with it. So the linear memories of
//! all instances also draw on one budget (`--instance-memory-budget-mib`, by default three
//! quarters of the container's memory limit when cgroups give one, the rest left to the host,
//! its compiled code and its buffers):
//!
//! - an instance's memory is reserved as it grows, and given back when the instance is dropped;
//! - a growth the budget cannot cover is refused: the component sees an allocation failure, and
//!   its request is answered 503 with `Retry-After` (`memory_budget`), not as its own fault;
//! - a request that needs a new instance while the budget has no room for one waits up to
//!   [`ADMISSION_WAIT`] for instances to be dropped, then gets the same 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a request that needs a new instance waits for room in the budget.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// The memory all instances of the process may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    /// Bytes; `usize::MAX` when there is no budget.
    limit: usize,
    used: AtomicUsize,
    /// Growths and new instances refused for want of room.
    refused: AtomicU64,
    freed: Notify,
}

/// Why a new instance was not made, or a growth not allowed: the process's budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted {
    /// The budget, in bytes.
    pub limit: usize,
}

impl std::fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the host's instances already hold its memory budget of {} MiB \
             (--instance-memory-budget-mib); retry shortly",
            self.limit / (1024 * 1024)
        )
    }
}

impl std::error::Error for BudgetExhausted {}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            freed: Notify::new(),
        })
    }

    /// No budget: only each instance's own limit applies.
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The budget, in bytes (`None` when unlimited).
    pub fn limit(&self) -> Option<usize> {
        (self.limit != usize::MAX).then_some(self.limit)
    }

    /// Bytes held by instances now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Growths and new instances refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// What `/stats` shows: the budget (null when unlimited), what instances hold, and what
    /// was refused.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "limit_bytes": self.limit(),
            "used_bytes": self.used(),
            "refused": self.refused(),
        })
    }

    /// Takes `bytes` if they fit.
    pub fn try_reserve(&self, bytes: usize) -> Result<(), BudgetExhausted> {
        let fits = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok();
        if fits {
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(BudgetExhausted { limit: self.limit })
        }
    }

    /// Gives `bytes` back.
    pub fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }

    /// Waits up to `wait` until `bytes` would fit (without taking them): the admission of a new
    /// instance, whose memory is then reserved as it grows.
    pub async fn wait_for_room(&self, bytes: usize, wait: Duration) -> Result<(), BudgetExhausted> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            if self.used().saturating_add(bytes) <= self.limit {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(BudgetExhausted { limit: self.limit });
            }
        }
    }
}

/// The container's memory limit in bytes, from cgroup v2 (`memory.max`) or v1
/// (`memory.limit_in_bytes`), when it sets one.
pub fn container_memory_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| parse_cgroup_memory_limit(&text))
}

/// A cgroup memory limit file's value: bytes, or `None` for `max` (v2) or the huge number v1
/// writes for "no limit" (anything from 2^62 up), or anything that is not a number.
pub fn parse_cgroup_memory_limit(text: &str) -> Option<u64> {
    let bytes: u64 = text.trim().parse().ok()?;
    (bytes > 0 && bytes < 1 << 62).then_some(bytes)
}

/// The default budget for a container limited to `limit` bytes: three quarters of it.
pub fn default_budget(limit: u64) -> usize {
    usize::try_from(limit / 4 * 3).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_are_given_back() {
        let budget = MemoryBudget::new(10);
        assert!(budget.try_reserve(6).is_ok());
        assert_eq!(
            budget.try_reserve(5),
            Err(BudgetExhausted { limit: 10 }),
            "6 + 5 > 10"
        );
        assert!(budget.try_reserve(4).is_ok());
        assert_eq!(budget.used(), 10);
        budget.release(6);
        assert_eq!(budget.used(), 4);
        assert_eq!(budget.refused(), 1);
        assert!(
            MemoryBudget::unlimited()
                .try_reserve(usize::MAX / 2)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_new_instance_waits_for_room_or_is_refused() {
        let budget = MemoryBudget::new(10);
        budget.try_reserve(8).unwrap();
        assert!(
            budget
                .wait_for_room(4, Duration::from_millis(50))
                .await
                .is_err()
        );
        let freeing = {
            let budget = budget.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                budget.release(8);
            })
        };
        assert!(
            budget
                .wait_for_room(4, Duration::from_secs(5))
                .await
                .is_ok()
        );
        freeing.await.unwrap();
    }

    #[test]
    fn cgroup_limits_are_read_in_both_versions() {
        assert_eq!(parse_cgroup_memory_limit("2147483648\n"), Some(2 << 30));
        assert_eq!(parse_cgroup_memory_limit("max\n"), None);
        assert_eq!(parse_cgroup_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_memory_limit("0"), None);
        assert_eq!(parse_cgroup_memory_limit("-1"), None);
        assert_eq!(default_budget(2 << 30), 1536 << 20);
    }
}
