//! The limits every request runs under, and the store limiter that enforces the memory one
//! (per instance: with reuse, the requests an instance serves share its memory) and draws the
//! instance's memory from the process's [`MemoryBudget`].

use crate::memory_budget::MemoryBudget;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Limits applied to every request a service handles.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; a larger one is answered 413.
    pub max_request_body_bytes: u64,
    /// Largest request head (request line and headers) accepted; a larger one is answered 431.
    pub max_header_bytes: usize,
    /// Largest linear memory one component instance may grow to.
    pub max_memory_bytes: usize,
    /// Wall-clock time a request may take, including waits on outgoing calls; then 504.
    pub request_timeout: Duration,
    /// Requests served at once by one service; the next one is answered 503 at once.
    pub max_concurrent_requests: usize,
    /// Lines of a component's stdout and stderr written a second, per service, with bursts of
    /// five seconds' worth; more are dropped and counted (0 drops them all).
    pub guest_output_lines_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_memory_bytes: 128 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 256,
            guest_output_lines_per_second: crate::guest_output::DEFAULT_LINES_PER_SECOND,
        }
    }
}

/// Enforces [`Limits::max_memory_bytes`] on one store and remembers whether the component ran
/// into it, so that the failure can be reported as "out of memory" rather than as the trap
/// (usually `unreachable`) that the guest's allocator turns it into.
pub struct InstanceLimiter {
    inner: StoreLimits,
    /// Shared with the requests the instance serves, which read it when the instance fails.
    memory_exhausted: Arc<AtomicBool>,
    /// The process's budget, and what this instance holds of it (given back on drop).
    budget: Arc<MemoryBudget>,
    reserved: usize,
    /// Set when a growth was refused because the process's budget had no room (not the
    /// instance's own limit): shared like `memory_exhausted`.
    budget_exhausted: Arc<AtomicBool>,
}

impl Drop for InstanceLimiter {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

impl InstanceLimiter {
    /// A limiter for one instance, drawing on `budget`.
    pub fn new(limits: &Limits, budget: Arc<MemoryBudget>) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .table_elements(1_000_000)
                .instances(64)
                .tables(64)
                .memories(16)
                .build(),
            memory_exhausted: Arc::default(),
            budget,
            reserved: 0,
            budget_exhausted: Arc::default(),
        }
    }

    /// The flag set when the process's budget refused this instance a growth.
    pub fn budget_exhausted_flag(&self) -> Arc<AtomicBool> {
        self.budget_exhausted.clone()
    }

    /// Bytes this instance holds of the process's budget.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Whether the component asked for more memory than allowed.
    pub fn memory_exhausted(&self) -> bool {
        self.memory_exhausted.load(Ordering::Relaxed)
    }

    /// The flag [`memory_exhausted`](Self::memory_exhausted) reads, for whoever outlives the
    /// store (a request whose instance failed).
    pub fn memory_exhausted_flag(&self) -> Arc<AtomicBool> {
        self.memory_exhausted.clone()
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_exhausted.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        if self.budget.try_reserve(more).is_err() {
            self.budget_exhausted.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        self.reserved += more;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_refused_memory_growth() {
        let limits = Limits {
            max_memory_bytes: 1 << 20,
            ..Limits::default()
        };
        let mut limiter = InstanceLimiter::new(&limits, MemoryBudget::unlimited());
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.memory_exhausted());
        assert!(!limiter.memory_growing(1 << 20, 2 << 20, None).unwrap());
        assert!(limiter.memory_exhausted());
    }

    #[test]
    fn instances_draw_on_the_process_budget_and_give_it_back() {
        let budget = MemoryBudget::new(3 << 20);
        let limits = Limits::default();
        let mut first = InstanceLimiter::new(&limits, budget.clone());
        let mut second = InstanceLimiter::new(&limits, budget.clone());
        assert!(first.memory_growing(0, 2 << 20, None).unwrap());
        assert!(!second.memory_growing(0, 2 << 20, None).unwrap());
        assert!(second.budget_exhausted.load(Ordering::Relaxed));
        assert!(!second.memory_exhausted(), "not the instance's own limit");
        drop(first);
        assert_eq!(budget.used(), 0);
        assert!(second.memory_growing(0, 2 << 20, None).unwrap());
    }
}
