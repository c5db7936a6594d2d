//! Which request a capability call belongs to, when one instance serves several requests.
//!
//! With instance reuse, a store lives for many requests, and a WASI 0.3 instance runs up to
//! `--max-instance-concurrent-reuse-count` of them at once. Every request is a component-model
//! task started by the host (`wasi:http/handler.handle`); wasmtime reports that task's id when
//! the request starts, and, during any import call, the chain of tasks that led to it. The
//! oldest task of that chain is the request's `handle` task, so a call is attributed to the
//! request that made it, whichever of the instance's requests is running (subtasks and spawned
//! work included).
//!
//! A call that cannot be attributed (no task is running, or its request has already ended)
//! records into a detached trace, which is never sent: a component can neither see nor change
//! another request's trace.

use wasmtime::AsContextMut;
use wasmtime::component::GuestTaskId;
use xray::active_trace::ActiveTrace;

/// The traces of the requests an instance has been given, by their `handle` task.
#[derive(Default)]
pub struct TaskTraces {
    /// Few entries (at most the reuse count of the instance; pruned as requests end), so a
    /// vector beats a map.
    entries: Vec<(GuestTaskId, ActiveTrace)>,
}

impl TaskTraces {
    /// Records that `task` serves the request traced by `trace`. Entries of requests that have
    /// ended (nothing else holds their trace) are dropped first; a task id the instance reuses
    /// for a later request is replaced.
    pub fn insert(&mut self, task: GuestTaskId, trace: ActiveTrace) {
        self.entries
            .retain(|(id, trace)| *id != task && !trace.is_unreferenced());
        self.entries.push((task, trace));
    }

    /// The trace of the request whose task `task` is.
    pub fn get(&self, task: GuestTaskId) -> Option<&ActiveTrace> {
        self.entries
            .iter()
            .find(|(id, _)| *id == task)
            .map(|(_, trace)| trace)
    }

    /// How many requests are recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The trace of the request whose `handle` task is `task` (see [`calling_request`]); a
    /// detached trace, which records nothing anyone sees, when there is none.
    pub fn trace_of(&self, task: Option<GuestTaskId>) -> ActiveTrace {
        task.and_then(|task| self.get(task))
            .cloned()
            .unwrap_or_else(ActiveTrace::detached)
    }
}

/// The `handle` task of the request making the current import call in `store`: the oldest task
/// of the call's async call stack.
pub fn calling_request(mut store: impl AsContextMut) -> Option<GuestTaskId> {
    // Youngest first: the last task of the stack is the export call the host started.
    store.as_context_mut().async_call_stack().ok()?.last()
}
