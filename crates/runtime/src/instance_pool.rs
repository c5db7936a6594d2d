//! The instances of one served component version: when one is made, how many requests it
//! serves (one after another, and at once), and when it is dropped.
//!
//! wasmtime's instance handler (`wasmtime_wasi_http::handler`) does the dispatching; this file
//! gives it the host's policy:
//!
//! - [`InstanceReuse`]: the `wasmtime serve` flags, with its defaults per ABI: a WASI 0.3
//!   instance serves up to 128 requests, 16 at a time; a WASI 0.2 instance one (a fresh
//!   instance per request, as before reuse existed). An idle instance is kept one second.
//! - [`InstanceFactory`]: a new store (the service's limits, environment and capabilities) and
//!   instance, instantiation bounded by the request timeout; taken ready from the version's
//!   warm pool ([`crate::warm_instances`]) when it has one.
//! - [`InstanceWorker`]: registers each accepted request's trace under its task (so capability
//!   calls are attributed, see [`crate::task_traces`]), gives each its deadline, and logs an
//!   instance that failed. A trap or memory exhaustion in a shared instance fails the requests
//!   in flight on it, and the instance is dropped; the next request gets a new one.
//! - [`InstanceExpiry`]: drops an instance idle past the idle timeout, or one whose requests
//!   are all past their deadline by a second's grace, so that each request's own deadline
//!   answers it first (a guest that never yields cannot keep it). Its timer is re-armed
//!   lazily ([`crate::lazy_timer`]).
//!
//! A swap makes a new [`ServedComponent`] with its own instances: requests that started on the
//! old version finish there, and its instances are dropped once idle; its warm instances are
//! dropped at once ([`ServedComponent::retire`]).

use crate::guest_metrics::GuestMetrics;
use crate::host_state::{self, HostState, StoreFactory};
use crate::lazy_timer;
use crate::memory_budget;
use crate::metric_sources;
use crate::metrics::VersionMetrics;
use crate::pool_metrics::{PendingCause, PoolMetrics, RetireCause};
use crate::runtime::{Abi, LoadedComponent};
use crate::warm_instances::{MakeInstance, WarmPool, WarmPoolReport};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use xray::active_trace::ActiveTrace;

/// Instance reuse, as `wasmtime serve` configures it; `None` takes the default for the
/// component's ABI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests one instance serves before it is dropped (`--max-instance-reuse-count`).
    pub max_reuse_count: Option<usize>,
    /// Requests one instance serves at once (`--max-instance-concurrent-reuse-count`); WASI
    /// 0.2 instances serve one at a time whatever this says.
    pub max_concurrent_reuse_count: Option<usize>,
    /// How long an idle instance is kept for the next request (`--idle-instance-timeout`).
    pub idle_timeout: Option<Duration>,
    /// Instances made ahead of requests and kept ready (`--warm-instances`; 0 makes none).
    pub warm_instances: Option<usize>,
}

/// The defaults of `wasmtime serve` 48.
const P3_REUSE: usize = 128;
const P3_CONCURRENT: usize = 16;
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Instances kept ready for a version whose instances serve one request each: enough for a
/// burst of two requests to start without instantiating, few enough to cost little memory
/// (two instances of a JavaScript engine, about 20 MB).
const WARM_SINGLE_USE: usize = 2;

/// Instance reuse as it applies to one component: every setting decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseLimits {
    /// Requests one instance serves before it is dropped.
    pub requests_per_instance: usize,
    /// Requests one instance serves at once.
    pub requests_at_once: usize,
    /// How long an idle instance is kept.
    pub idle_timeout: Duration,
    /// Instances made ahead of requests and kept ready.
    pub warm_instances: usize,
}

impl InstanceReuse {
    /// The most instances a version of any ABI keeps ready under these settings (what the
    /// pooling allocator must have slots for besides the requests').
    pub fn warm_instances_at_most(&self) -> usize {
        self.warm_instances.unwrap_or(WARM_SINGLE_USE)
    }

    /// The settings for a component of `abi`: what was configured, else `wasmtime serve`'s
    /// defaults for that ABI.
    pub fn resolve(&self, abi: Abi) -> ReuseLimits {
        let (reuse, concurrent) = match abi {
            Abi::P3 => (P3_REUSE, P3_CONCURRENT),
            Abi::P2 => (1, 1),
        };
        let requests_per_instance = self.max_reuse_count.unwrap_or(reuse).max(1);
        // A reused instance is made once per many requests: keeping spares of it ready would
        // cost memory for little. A single-use one is made for every request.
        let warm = if requests_per_instance == 1 {
            WARM_SINGLE_USE
        } else {
            0
        };
        ReuseLimits {
            requests_per_instance,
            requests_at_once: self.max_concurrent_reuse_count.unwrap_or(concurrent).max(1),
            idle_timeout: self.idle_timeout.unwrap_or(IDLE_TIMEOUT),
            warm_instances: self.warm_instances.unwrap_or(warm),
        }
    }
}

/// What the host attaches to a request it hands to the instance handler.
pub struct RequestTicket {
    /// The request's trace.
    pub trace: ActiveTrace,
    /// Filled in when an instance accepts the request: that instance's fate.
    pub served_by: Arc<OnceLock<Arc<InstanceFate>>>,
}

/// How an instance ended, for the requests it was serving when it failed.
#[derive(Default)]
pub struct InstanceFate {
    /// Whether the instance asked for more memory than its limit (set when it happens).
    pub memory_exhausted: Arc<AtomicBool>,
    /// Whether the process's memory budget refused the instance a growth (set when it
    /// happens): not the component's fault.
    pub budget_exhausted: Arc<AtomicBool>,
    /// How it ended, once it has: `Some(why)` when it failed, `None` when it was retired in
    /// good order.
    ended: OnceLock<Option<String>>,
    /// Woken when `ended` is set.
    ended_signal: tokio::sync::Notify,
    /// Set when a request learned that the instance trapped: it takes no further requests.
    retired: AtomicBool,
}

impl InstanceFate {
    /// Takes the instance out of service: a trapped instance cannot be entered again, and a
    /// WASI 0.2 request learns of its trap before the instance's handler does.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// Why the instance failed, if it did, waiting up to `wait` for it to end (a request learns
    /// that its instance is gone, or that it got no answer, slightly before the handler says
    /// why).
    pub async fn failure(&self, wait: Duration) -> Option<String> {
        let notified = self.ended_signal.notified();
        if let Some(ended) = self.ended.get() {
            return ended.clone();
        }
        let _ = tokio::time::timeout(wait, notified).await;
        self.ended.get().cloned().flatten()
    }

    fn end(&self, failure: Option<String>) {
        let _ = self.ended.set(failure);
        self.ended_signal.notify_waiters();
    }
}

/// One component version being served, with its instances.
pub struct ServedComponent {
    /// The component.
    pub component: Arc<LoadedComponent>,
    /// Its instances, and the requests queued for them.
    pub instances: ProxyHandler<InstanceFactory>,
    /// The S3 version id of the object it was read from, when its bucket is versioned.
    pub s3_version_id: Option<Arc<str>>,
    /// Its request metrics ([`crate::metrics`]).
    pub metrics: VersionMetrics,
}

impl std::ops::Deref for ServedComponent {
    type Target = LoadedComponent;

    fn deref(&self) -> &LoadedComponent {
        &self.component
    }
}

impl ServedComponent {
    /// Serves `component` with stores from `stores`, reusing instances as `reuse` says.
    pub fn new(
        service: &str,
        component: LoadedComponent,
        stores: Arc<StoreFactory>,
        reuse: &InstanceReuse,
    ) -> Self {
        let component = Arc::new(component);
        let metrics = VersionMetrics::register(service, component.content_hash.short());
        let limits = reuse.resolve(component.abi);
        // Listed for the reporters while the factory (and so this version) or an instance of
        // it is alive.
        let pool_metrics = Arc::new(PoolMetrics::new(service, component.content_hash.short()));
        metric_sources::register(pool_metrics.clone());
        let guest_metrics = Arc::new(GuestMetrics::new(service, component.content_hash.short()));
        metric_sources::register(guest_metrics.clone());
        let maker = Arc::new(InstanceMaker {
            metrics: pool_metrics,
            guest_metrics,
            service: service.into(),
            component: component.clone(),
            stores,
            initial_memory: AtomicUsize::new(0),
        });
        let factory = InstanceFactory {
            warm: WarmPool::start(service, limits.warm_instances, maker.clone()),
            maker,
            limits,
        };
        Self {
            component,
            instances: ProxyHandler::new(factory),
            s3_version_id: None,
            metrics,
        }
    }

    /// The same, naming the S3 version id it was read from.
    pub fn with_s3_version(mut self, s3_version_id: Option<String>) -> Self {
        self.s3_version_id = s3_version_id.map(Arc::from);
        self
    }

    /// The reuse settings its instances run with.
    pub fn reuse(&self) -> ReuseLimits {
        self.instances.state().limits
    }

    /// Its warm pool's figures, for `/stats`.
    pub fn warm_report(&self) -> WarmPoolReport {
        self.instances.state().warm.report()
    }

    /// Takes the version out of service (it was swapped out): its warm instances are dropped
    /// now, giving their memory back, rather than when its last request ends. Returns how many.
    pub fn retire(&self) -> usize {
        self.instances.state().warm.close()
    }
}

impl Drop for ServedComponent {
    fn drop(&mut self) {
        // The refill task holds the pool; closing it ends the task and drops what it made.
        self.retire();
    }
}

/// Gives wasmtime's instance handler the instances of one component version: from the warm
/// pool when it has one ready, else made on the spot.
pub struct InstanceFactory {
    maker: Arc<InstanceMaker>,
    limits: ReuseLimits,
    warm: Arc<WarmPool<ReadyInstance>>,
}

/// Makes instances of one component version, for requests and for the warm pool alike.
pub struct InstanceMaker {
    service: String,
    component: Arc<LoadedComponent>,
    stores: Arc<StoreFactory>,
    metrics: Arc<PoolMetrics>,
    /// What its instances export through wasi:otel.
    guest_metrics: Arc<GuestMetrics>,
    /// The most memory an instance of this component has held once instantiated: what a new
    /// one needs room for in the process's budget.
    initial_memory: AtomicUsize,
}

/// An instantiated component in its store, not yet serving.
pub struct ReadyInstance {
    store: Store<HostState>,
    proxy: Proxy,
    fate: Arc<InstanceFate>,
}

impl InstanceMaker {
    async fn instantiate(&self) -> wasmtime::Result<ReadyInstance> {
        let timeout = self.stores.limits().request_timeout;
        // Room in the process's budget for what an instance of this component starts with; its
        // growth is then drawn as it happens (see `crate::memory_budget`).
        self.stores
            .budget()
            .wait_for_room(
                self.initial_memory.load(Ordering::Relaxed),
                memory_budget::ADMISSION_WAIT,
            )
            .await?;
        let mut store = self.stores.new_store(self.component.content_hash.short());
        store.data_mut().guest_metrics = Some(self.guest_metrics.clone());
        let fate = Arc::new(InstanceFate {
            memory_exhausted: store.data().limiter.memory_exhausted_flag(),
            budget_exhausted: store.data().limiter.budget_exhausted_flag(),
            ..InstanceFate::default()
        });
        // A start function that loops is stopped with the request that waits for it.
        let started = Instant::now();
        let proxy = match tokio::time::timeout(
            timeout,
            self.component.pre.instantiate_async(&mut store),
        )
        .await
        {
            Err(_) => wasmtime::bail!(
                "the component did not finish instantiating within {timeout:?} (--request-timeout)"
            ),
            // Admission checked for room without taking it, so instances admitted together
            // can outgrow the budget while they start: that is the budget's refusal (503),
            // not the component's failure.
            Ok(Err(_)) if fate.budget_exhausted.load(Ordering::Relaxed) => {
                let limit = self.stores.budget().limit().unwrap_or(usize::MAX);
                return Err(memory_budget::BudgetExhausted { limit }.into());
            }
            Ok(instantiated) => instantiated?,
        };
        self.initial_memory
            .fetch_max(store.data().limiter.reserved(), Ordering::Relaxed);
        self.metrics.created(started.elapsed());
        Ok(ReadyInstance { store, proxy, fate })
    }
}

impl MakeInstance for InstanceMaker {
    type Instance = ReadyInstance;

    fn has_room_for_a_spare(&self) -> bool {
        let budget = self.stores.budget();
        let Some(limit) = budget.limit() else {
            return true;
        };
        // The spare, and one more that a request finding the pool empty would make.
        let two = self
            .initial_memory
            .load(Ordering::Relaxed)
            .saturating_mul(2);
        budget.used().saturating_add(two) <= limit
    }

    async fn make(&self) -> anyhow::Result<ReadyInstance> {
        self.instantiate().await.map_err(anyhow::Error::from)
    }
}

impl HandlerState for InstanceFactory {
    type StoreData = HostState;
    type WorkerExpiration = InstanceExpiry;
    type WorkerState = InstanceWorker;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<HostState, InstanceExpiry, InstanceWorker>> {
        let ReadyInstance {
            mut store,
            proxy,
            fate,
        } = match self.warm.take() {
            Some(ready) => ready,
            None => self.maker.instantiate().await?,
        };
        // A warm instance's time slice was counted from when it was made.
        host_state::restart_time_slice(&mut store);
        let timeout = self.maker.stores.limits().request_timeout;
        let cause = Arc::new(PendingCause::default());
        Ok(Instance {
            store,
            proxy,
            view: HostState::http_view,
            expiration: InstanceExpiry {
                idle_timeout: self.limits.idle_timeout,
                request_timeout: timeout,
                timer: None,
                cause: cause.clone(),
            },
            state: InstanceWorker {
                service: self.maker.service.clone(),
                abi: self.maker.component.abi,
                max_reuse: self.limits.requests_per_instance,
                max_concurrent: self.limits.requests_at_once,
                request_timeout: timeout,
                fate,
                metrics: self.maker.metrics.clone(),
                cause,
                served: AtomicU64::new(0),
            },
        })
    }
}

/// The host's side of one instance while it serves.
pub struct InstanceWorker {
    service: String,
    /// WASI 0.2 instances serve one request at a time, and their outgoing calls are that
    /// request's.
    abi: Abi,
    max_reuse: usize,
    max_concurrent: usize,
    request_timeout: Duration,
    fate: Arc<InstanceFate>,
    metrics: Arc<PoolMetrics>,
    /// Why it will be dropped, as first seen here or by its expiry.
    cause: Arc<PendingCause>,
    /// Requests it accepted.
    served: AtomicU64,
}

impl WorkerState for InstanceWorker {
    type StoreData = HostState;
    type RequestData = RequestTicket;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse || self.fate.retired.load(Ordering::Relaxed) {
            if !self.fate.retired.load(Ordering::Relaxed) {
                self.cause.note(RetireCause::ReuseLimit);
            }
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        ticket: RequestTicket,
        task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        self.served.fetch_add(1, Ordering::Relaxed);
        let state = store.data_mut();
        state.traces.insert(task, ticket.trace.clone());
        if self.abi == Abi::P2 {
            state.output.serve_one_request(ticket.trace.trace_id());
            state.outbound.serve_one_request(ticket.trace);
        }
        state.deadline = Some(Instant::now() + self.request_timeout);
        let _ = ticket.served_by.set(self.fate.clone());
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, _store: Store<HostState>, result: wasmtime::Result<()>) {
        if result.as_ref().is_err_and(was_cancelled) {
            // The worker's task was dropped, not failed: the runtime is shutting down after the
            // in-flight requests finished or were cut off (which the server logs). An instance
            // dropped then is no failure worth a warning with a backtrace.
            self.metrics
                .retired(RetireCause::Other, self.served.load(Ordering::Relaxed));
            tracing::debug!(service = %self.service, "an instance was dropped at shutdown");
            self.fate.end(Some("the host shut down".to_string()));
            return;
        }
        let cause = if result.is_err() || self.fate.retired.load(Ordering::Relaxed) {
            RetireCause::Failed
        } else {
            self.cause.get()
        };
        self.metrics
            .retired(cause, self.served.load(Ordering::Relaxed));
        let failure = result.err().map(|error| {
            tracing::warn!(
                service = %self.service,
                "an instance failed and was dropped with the requests it was serving: {error:?}"
            );
            match error.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => trap.to_string(),
                None => format!("{error:#}"),
            }
        });
        self.fate.end(failure);
    }
}

/// The error wasmtime's instance handler hands [`WorkerState::drop`] when the worker's task
/// ended without finishing, whether it panicked or was dropped.
const WORKER_ENDED_EARLY: &str = "worker panicked";

/// Set once the server has stopped serving: from then on the runtime drops the workers' tasks.
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);

/// Notes that the process stopped serving (its in-flight requests finished or were cut off):
/// instances dropped from now on are dropped by the runtime's shutdown, not failed.
pub fn note_shutdown() {
    SHUT_DOWN.store(true, Ordering::Relaxed);
}

/// Whether `error` is the runtime dropping the worker's task at shutdown. The handler reports a
/// dropped task and a panicked one alike (a panic, too, drops the task after tokio catches
/// it), so only the shutdown tells them apart.
fn was_cancelled(error: &wasmtime::Error) -> bool {
    SHUT_DOWN.load(Ordering::Relaxed)
        && error.chain().count() == 1
        && error.to_string() == WORKER_ENDED_EARLY
}

/// How long past its newest request's deadline a busy instance is dropped. Without it the
/// instance's expiry and that request's deadline fall due at the same moment, and whichever is
/// seen first decides between a 504 for that request and a 500 for every request on the
/// instance.
const EXPIRY_GRACE: Duration = Duration::from_secs(1);

/// When an instance is dropped: idle past the idle timeout, or busy past every deadline.
pub struct InstanceExpiry {
    idle_timeout: Duration,
    request_timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Shared with the instance's worker, which counts the retirement.
    cause: Arc<PendingCause>,
}

impl WorkerExpiration for InstanceExpiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let expires = start
            + match status {
                WorkerStatus::Idle => self.idle_timeout,
                // `start` is when the most recent request was accepted: past its deadline, every
                // request of the instance is. The grace lets each request's own deadline answer
                // it first (504, and the instance serves on); only an instance whose requests
                // could not be stopped by their deadlines is dropped, failing them all.
                WorkerStatus::Requests | WorkerStatus::PostReturn => {
                    self.request_timeout + EXPIRY_GRACE
                }
            };
        if Instant::now() >= expires {
            self.cause.note(match status {
                WorkerStatus::Idle => RetireCause::Idle,
                WorkerStatus::Requests | WorkerStatus::PostReturn => RetireCause::Deadline,
            });
            return Poll::Ready(());
        }
        // One timer for the instance's life, re-armed lazily (each accepted request moves the
        // expiry later).
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(expires.into())));
        lazy_timer::poll_until(timer.as_mut(), expires.into(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiry(request_timeout: Duration) -> Pin<Box<InstanceExpiry>> {
        Box::pin(InstanceExpiry {
            idle_timeout: Duration::from_secs(1),
            request_timeout,
            timer: None,
            cause: Arc::default(),
        })
    }

    fn poll(expiry: &mut Pin<Box<InstanceExpiry>>, status: WorkerStatus, start: Instant) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        expiry.as_mut().poll(&mut cx, status, start).is_ready()
    }

    #[tokio::test]
    async fn a_busy_instance_outlives_its_newest_requests_deadline_by_the_grace() {
        let timeout = Duration::from_secs(30);
        let mut expiry = expiry(timeout);
        // The newest request is just past its deadline: its own timer answers it, and the
        // instance stays.
        let at_deadline = Instant::now() - timeout - Duration::from_millis(10);
        assert!(!poll(&mut expiry, WorkerStatus::Requests, at_deadline));
        // Past the grace too: the instance is dropped, counted as past its deadlines.
        let past_grace = Instant::now() - timeout - EXPIRY_GRACE - Duration::from_millis(10);
        assert!(poll(&mut expiry, WorkerStatus::Requests, past_grace));
        assert_eq!(expiry.cause.get(), RetireCause::Deadline);
    }

    #[tokio::test]
    async fn an_idle_instance_expires_at_the_idle_timeout() {
        let mut expiry = expiry(Duration::from_secs(30));
        assert!(!poll(&mut expiry, WorkerStatus::Idle, Instant::now()));
        let idle_since = Instant::now() - Duration::from_millis(1010);
        assert!(poll(&mut expiry, WorkerStatus::Idle, idle_since));
        assert_eq!(expiry.cause.get(), RetireCause::Idle);
    }
}
