//! Instances made ahead of requests: a few instances of one component version, instantiated in
//! the background so that a request takes one that is ready instead of waiting for its own.
//!
//! A component version whose instances serve one request each (every WASI 0.2 component by
//! default, and the JavaScript ones always: docs/javascript-components.md) pays a whole
//! instantiation per request. For a JavaScript engine of about 13 MB that is the largest part of
//! the host's own work on the request path, so the pool keeps `--warm-instances` of them ready:
//!
//! - one task per version refills the pool, one instance at a time, so refilling never takes
//!   more than one core away from the requests;
//! - a request takes a ready instance when there is one, else it makes its own as before (the
//!   pool never makes a request wait);
//! - a ready instance holds its memory like any other, so it draws on the process's memory
//!   budget ([`crate::memory_budget`]); the pool makes one only while the budget has room for it
//!   and for one more instance besides, so that a request that finds the pool empty can still
//!   get an instance of its own;
//! - [`WarmPool::close`] (a swap, or the version dropped) stops the task and drops the ready
//!   instances at once, giving their memory back.
//!
//! The pool knows nothing of wasmtime: what an instance is and how one is made is the
//! [`MakeInstance`] its owner gives it ([`crate::instance_pool`]).

use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long the refill task waits before it tries again after an instance could not be made,
/// or while the memory budget has no room for one: it is woken earlier when an instance is
/// taken, never later.
const RETRY: Duration = Duration::from_millis(200);

/// How the pool makes an instance, and whether it may.
pub trait MakeInstance: Send + Sync + 'static {
    /// A ready instance.
    type Instance: Send + 'static;

    /// Whether the process's memory budget has room for one more instance held in reserve
    /// (and for one a request would make besides).
    fn has_room_for_a_spare(&self) -> bool;

    /// Makes one instance, as a request would.
    fn make(&self) -> impl Future<Output = anyhow::Result<Self::Instance>> + Send;
}

/// What `/stats` shows of one version's pool.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct WarmPoolReport {
    /// Instances the pool keeps ready (`--warm-instances`).
    pub target: usize,
    /// Instances ready now.
    pub ready: usize,
    /// Requests that took a ready instance.
    pub hits: u64,
    /// Requests that found the pool empty and made their own instance.
    pub misses: u64,
    /// Instances the pool made.
    pub made: u64,
    /// Instances the pool could not make (the error is logged once per run of failures).
    pub failed: u64,
    /// Times the pool waited because the memory budget had no room for a spare instance.
    pub waited_for_budget: u64,
    /// Mean time the pool took to make one instance, in microseconds (instantiation and memory
    /// initialization, off the request path).
    pub mean_instantiate_us: u64,
}

/// The ready instances of one component version, and the task that refills them.
pub struct WarmPool<I> {
    target: usize,
    ready: Mutex<Vec<I>>,
    /// Woken when an instance is taken or the pool is closed.
    wanted: Notify,
    closed: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    made: AtomicU64,
    failed: AtomicU64,
    waited_for_budget: AtomicU64,
    instantiate_us: AtomicU64,
}

impl<I: Send + 'static> WarmPool<I> {
    /// A pool that keeps `target` instances made by `maker` ready, refilled by a task on the
    /// current tokio runtime; `target` 0 makes none (and starts no task). `service` names the
    /// pool's service in its log lines.
    pub fn start<M>(service: &str, target: usize, maker: Arc<M>) -> Arc<Self>
    where
        M: MakeInstance<Instance = I>,
    {
        let pool = Arc::new(Self {
            target,
            ready: Mutex::new(Vec::with_capacity(target)),
            wanted: Notify::new(),
            closed: AtomicBool::new(target == 0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            made: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            waited_for_budget: AtomicU64::new(0),
            instantiate_us: AtomicU64::new(0),
        });
        if target > 0 {
            tokio::spawn(refill(service.to_string(), pool.clone(), maker));
        }
        pool
    }

    /// A ready instance, if there is one; the refill task is asked for another.
    pub fn take(&self) -> Option<I> {
        if self.target == 0 {
            return None;
        }
        let taken = self.lock().pop();
        match taken {
            Some(instance) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.wanted.notify_one();
                Some(instance)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stops refilling and drops the ready instances (their memory goes back to the budget);
    /// returns how many were dropped. Later calls drop nothing.
    pub fn close(&self) -> usize {
        self.closed.store(true, Ordering::Release);
        self.wanted.notify_one();
        let dropped = std::mem::take(&mut *self.lock());
        dropped.len()
    }

    /// The pool's figures, for `/stats`.
    pub fn report(&self) -> WarmPoolReport {
        let made = self.made.load(Ordering::Relaxed);
        WarmPoolReport {
            target: self.target,
            ready: self.lock().len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            made,
            failed: self.failed.load(Ordering::Relaxed),
            waited_for_budget: self.waited_for_budget.load(Ordering::Relaxed),
            mean_instantiate_us: self
                .instantiate_us
                .load(Ordering::Relaxed)
                .checked_div(made)
                .unwrap_or(0),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<I>> {
        // A panic while the list was held leaves a list of whole instances: still usable.
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a made instance unless the pool was closed meanwhile (then it is dropped here).
    fn put(&self, instance: I) {
        let mut ready = self.lock();
        if !self.is_closed() {
            ready.push(instance);
        }
    }
}

/// The refill task: one instance at a time, while the pool is short and open.
async fn refill<I, M>(service: String, pool: Arc<WarmPool<I>>, maker: Arc<M>)
where
    I: Send + 'static,
    M: MakeInstance<Instance = I>,
{
    let mut failing = false;
    loop {
        // Registered before the checks, so a `take` or `close` between them is not missed.
        let wanted = pool.wanted.notified();
        if pool.is_closed() {
            return;
        }
        if pool.lock().len() >= pool.target {
            wanted.await;
            continue;
        }
        if !maker.has_room_for_a_spare() {
            pool.waited_for_budget.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(RETRY, wanted).await;
            continue;
        }
        let started = Instant::now();
        match maker.make().await {
            Ok(instance) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                pool.instantiate_us.fetch_add(us, Ordering::Relaxed);
                pool.made.fetch_add(1, Ordering::Relaxed);
                pool.put(instance);
                failing = false;
            }
            Err(error) => {
                pool.failed.fetch_add(1, Ordering::Relaxed);
                // One line per run of failures: requests make their own instances meanwhile,
                // and say why if they cannot.
                if !failing {
                    tracing::warn!(
                        service = %service,
                        "could not make an instance ahead of requests (requests make their \
                         own meanwhile; retrying): {error:#}"
                    );
                }
                failing = true;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Makes numbered instances, with room for `room` of them in all.
    struct Counter {
        made: AtomicUsize,
        room: usize,
        alive: Arc<AtomicUsize>,
    }

    /// An instance that counts itself alive until dropped.
    struct Numbered(Arc<AtomicUsize>);

    impl Drop for Numbered {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }

    impl MakeInstance for Counter {
        type Instance = Numbered;

        fn has_room_for_a_spare(&self) -> bool {
            self.alive.load(Ordering::Relaxed) < self.room
        }

        async fn make(&self) -> anyhow::Result<Numbered> {
            self.made.fetch_add(1, Ordering::Relaxed);
            self.alive.fetch_add(1, Ordering::Relaxed);
            Ok(Numbered(self.alive.clone()))
        }
    }

    fn counter(room: usize) -> Arc<Counter> {
        Arc::new(Counter {
            made: AtomicUsize::new(0),
            room,
            alive: Arc::new(AtomicUsize::new(0)),
        })
    }

    async fn settle<I: Send + 'static>(pool: &WarmPool<I>, ready: usize) {
        for _ in 0..200 {
            if pool.report().ready == ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the pool has {} ready, not {ready}", pool.report().ready);
    }

    #[tokio::test]
    async fn taken_instances_are_replaced_and_a_closed_pool_drops_its_own() {
        let maker = counter(usize::MAX);
        let pool = WarmPool::start("test", 3, maker.clone());
        settle(&pool, 3).await;
        let taken = pool.take().expect("a ready instance");
        settle(&pool, 3).await;
        assert_eq!(maker.made.load(Ordering::Relaxed), 4);
        assert_eq!(pool.report().hits, 1);
        assert_eq!(pool.close(), 3);
        assert_eq!(
            maker.alive.load(Ordering::Relaxed),
            1,
            "only the taken one lives"
        );
        drop(taken);
        assert!(pool.take().is_none());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            maker.made.load(Ordering::Relaxed),
            4,
            "a closed pool makes none"
        );
    }

    #[tokio::test]
    async fn the_budget_bounds_the_pool_and_a_disabled_pool_makes_nothing() {
        let maker = counter(2);
        let pool = WarmPool::start("test", 5, maker.clone());
        settle(&pool, 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.report().ready, 2, "no room for a third");
        assert!(pool.report().waited_for_budget >= 1);

        let maker = counter(usize::MAX);
        let pool = WarmPool::start("test", 0, maker.clone());
        assert!(pool.take().is_none());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(maker.made.load(Ordering::Relaxed), 0);
        assert_eq!(pool.report().misses, 0, "a disabled pool counts no misses");
    }
}
