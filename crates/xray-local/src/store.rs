//! The traces the local daemon stand-in keeps: every accepted document, merged into its trace
//! (segments, in-progress documents replaced by their complete version, independent
//! subsegments attached to their parents), bounded in number with the oldest evicted, and each
//! trace bounded in documents ([`MAX_DOCUMENTS_PER_TRACE`]), what is dropped counted.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// What the store has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Documents accepted.
    pub accepted: u64,
    /// Datagrams rejected (bad header, no document, not JSON, no id or trace id), and OTLP
    /// spans refused.
    pub rejected: u64,
    /// Traces evicted to stay within the bound.
    pub evicted: u64,
    /// Documents dropped because their trace already held [`MAX_DOCUMENTS_PER_TRACE`] others
    /// (a document replacing one of the same id is never dropped).
    pub documents_over_trace_cap: u64,
    /// OTLP spans refused unread because their request carried more than
    /// [`crate::otlp_ingest::MAX_SPANS_PER_REQUEST`] (also in the request's `rejected_spans`).
    pub spans_over_request_cap: u64,
    /// Traces kept now.
    pub traces: usize,
}

/// One stored document: kept as its JSON text (a parsed value costs several times the memory),
/// with what merging needs to know.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    /// The entity id.
    pub id: String,
    /// Whether it is complete (has an `end_time`).
    pub complete: bool,
    /// The document.
    pub json: String,
}

/// One trace: its documents by id, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct StoredTrace {
    /// The trace id.
    pub id: String,
    /// The documents, by entity id (a later document with the same id replaces the earlier).
    pub documents: Vec<StoredDocument>,
    /// When the first document arrived (epoch seconds), for eviction and listing.
    pub received_at: f64,
}

impl StoredTrace {
    /// Segments (not independent subsegments), with independent subsegments nested back into
    /// their parents, so each segment reads as one tree.
    pub fn assembled_segments(&self) -> Vec<Value> {
        let mut segments: Vec<Value> = Vec::new();
        let mut loose: Vec<Value> = Vec::new();
        for document in self.raw_documents() {
            if document.get("type").and_then(Value::as_str) == Some("subsegment") {
                loose.push(document.clone());
            } else {
                segments.push(document.clone());
            }
        }
        // Attach independent subsegments to their parent, repeatedly, since a subsegment's
        // parent may itself be an independent subsegment.
        let mut progress = true;
        while progress && !loose.is_empty() {
            progress = false;
            let mut still_loose = Vec::new();
            for mut subsegment in loose {
                let parent = subsegment
                    .get("parent_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Some(object) = subsegment.as_object_mut() {
                    for key in ["type", "trace_id", "parent_id"] {
                        object.remove(key);
                    }
                }
                if attach(&mut segments, &parent, &mut Some(subsegment.clone())) {
                    progress = true;
                } else {
                    // Put the keys back for the next round.
                    subsegment["type"] = Value::String("subsegment".into());
                    subsegment["trace_id"] = Value::String(self.id.clone());
                    subsegment["parent_id"] = Value::String(parent);
                    still_loose.push(subsegment);
                }
            }
            loose = still_loose;
        }
        segments
    }

    /// Every document, parsed.
    pub fn raw_documents(&self) -> impl Iterator<Item = Value> + '_ {
        self.documents
            .iter()
            .filter_map(|d| serde_json::from_str(&d.json).ok())
    }
}

fn attach(entities: &mut [Value], parent: &str, subsegment: &mut Option<Value>) -> bool {
    for entity in entities.iter_mut() {
        if entity.get("id").and_then(Value::as_str) == Some(parent) {
            let children = entity.as_object_mut().map(|o| {
                o.entry("subsegments")
                    .or_insert_with(|| Value::Array(Vec::new()))
            });
            if let Some(Value::Array(children)) = children {
                let child = subsegment.take().expect("attached once");
                let id = child.get("id").cloned();
                children.retain(|c| c.get("id") != id.as_ref());
                children.push(child);
                return true;
            }
        }
        if let Some(Value::Array(children)) = entity.get_mut("subsegments")
            && attach(children, parent, subsegment)
        {
            return true;
        }
    }
    false
}

/// The documents one trace keeps: far above what X-Ray itself keeps of a trace, and a bound on
/// what one client sending endless subsegments of one trace can make the stand-in hold.
pub const MAX_DOCUMENTS_PER_TRACE: usize = 10_000;

struct Inner {
    traces: HashMap<String, StoredTrace>,
    order: VecDeque<String>,
    counts: StoreCounts,
}

/// The bounded store.
pub struct TraceStore {
    max_traces: usize,
    max_documents_per_trace: usize,
    inner: Mutex<Inner>,
}

impl TraceStore {
    /// A store keeping at most `max_traces` traces.
    pub fn new(max_traces: usize) -> Self {
        Self::with_max_documents_per_trace(max_traces, MAX_DOCUMENTS_PER_TRACE)
    }

    /// A store keeping at most `max_traces` traces of at most `max_documents` documents each.
    pub fn with_max_documents_per_trace(max_traces: usize, max_documents: usize) -> Self {
        Self {
            max_traces: max_traces.max(1),
            max_documents_per_trace: max_documents.max(1),
            inner: Mutex::new(Inner {
                traces: HashMap::new(),
                order: VecDeque::new(),
                counts: StoreCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a parsed document; refuses (and counts) one without `trace_id` or `id`, and one
    /// that would take its trace past its bound of documents.
    pub fn add(&self, document: Value, now: f64) -> Result<(), &'static str> {
        let trace_id = document
            .get("trace_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let id = document
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (Some(trace_id), Some(id)) = (trace_id, id) else {
            self.count_rejected();
            return Err("a segment document needs an id and a trace_id");
        };
        let mut inner = self.lock();
        if let Some(trace) = inner.traces.get(&trace_id)
            && trace.documents.len() >= self.max_documents_per_trace
            && !trace.documents.iter().any(|existing| existing.id == id)
        {
            inner.counts.documents_over_trace_cap += 1;
            return Err("the trace already holds as many documents as the stand-in keeps of one");
        }
        inner.counts.accepted += 1;
        if !inner.traces.contains_key(&trace_id) {
            while inner.traces.len() >= self.max_traces {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                if inner.traces.remove(&oldest).is_some() {
                    inner.counts.evicted += 1;
                }
            }
            inner.order.push_back(trace_id.clone());
            inner.traces.insert(
                trace_id.clone(),
                StoredTrace {
                    id: trace_id.clone(),
                    documents: Vec::new(),
                    received_at: now,
                },
            );
        }
        let complete = document.get("end_time").is_some();
        let stored = StoredDocument {
            id,
            complete,
            json: document.to_string(),
        };
        let trace = inner.traces.get_mut(&trace_id).expect("inserted above");
        match trace
            .documents
            .iter_mut()
            .find(|existing| existing.id == stored.id)
        {
            // A complete document replaces the in-progress one; an in-progress document never
            // replaces a complete one.
            Some(existing) => {
                if complete || !existing.complete {
                    *existing = stored;
                }
            }
            None => trace.documents.push(stored),
        }
        inner.counts.traces = inner.traces.len();
        Ok(())
    }

    /// Counts a rejected datagram or OTLP span.
    pub fn count_rejected(&self) {
        self.lock().counts.rejected += 1;
    }

    /// Counts OTLP spans refused past the cap on spans in one request.
    pub fn count_spans_over_request_cap(&self, spans: u64) {
        self.lock().counts.spans_over_request_cap += spans;
    }

    /// The counters.
    pub fn counts(&self) -> StoreCounts {
        let inner = self.lock();
        StoreCounts {
            traces: inner.traces.len(),
            ..inner.counts.clone()
        }
    }

    /// The traces, newest first.
    pub fn traces(&self) -> Vec<StoredTrace> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.traces.get(id).cloned())
            .collect()
    }

    /// One trace.
    pub fn trace(&self, id: &str) -> Option<StoredTrace> {
        self.lock().traces.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn merges_in_progress_complete_and_independent_documents() {
        let store = TraceStore::new(10);
        store.add(json!({"trace_id": TRACE, "id": "aaaaaaaaaaaaaaaa", "name": "BFF", "start_time": 1.0, "in_progress": true}), 0.0).unwrap();
        store.add(json!({"trace_id": TRACE, "id": "aaaaaaaaaaaaaaaa", "name": "BFF", "start_time": 1.0, "end_time": 2.0}), 0.0).unwrap();
        store.add(json!({"trace_id": TRACE, "id": "aaaaaaaaaaaaaaaa", "name": "BFF", "start_time": 1.0, "in_progress": true}), 0.0).unwrap();
        store.add(json!({"type": "subsegment", "trace_id": TRACE, "parent_id": "bbbbbbbbbbbbbbbb", "id": "cccccccccccccccc", "name": "inner", "start_time": 1.2, "end_time": 1.3}), 0.0).unwrap();
        store.add(json!({"type": "subsegment", "trace_id": TRACE, "parent_id": "aaaaaaaaaaaaaaaa", "id": "bbbbbbbbbbbbbbbb", "name": "outer", "start_time": 1.1, "end_time": 1.5}), 0.0).unwrap();
        let trace = store.trace(TRACE).unwrap();
        assert_eq!(trace.documents.len(), 3);
        let segments = trace.assembled_segments();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0]["end_time"], 2.0, "the complete document won");
        let outer = &segments[0]["subsegments"][0];
        assert_eq!(outer["name"], "outer");
        assert!(outer.get("parent_id").is_none());
        assert_eq!(outer["subsegments"][0]["name"], "inner");
    }

    #[test]
    fn keeps_a_bounded_number_of_traces_evicting_the_oldest() {
        let store = TraceStore::new(3);
        for i in 0..5 {
            let trace = format!("1-5759e988-bd862e3fe1be46a99427279{i}");
            store.add(json!({"trace_id": trace, "id": "aaaaaaaaaaaaaaaa", "name": "x", "start_time": 1.0, "end_time": 2.0}), i as f64).unwrap();
        }
        let counts = store.counts();
        assert_eq!((counts.traces, counts.evicted, counts.accepted), (3, 2, 5));
        let newest: Vec<String> = store.traces().into_iter().map(|t| t.id).collect();
        assert_eq!(newest[0], "1-5759e988-bd862e3fe1be46a994272794");
        assert!(store.trace("1-5759e988-bd862e3fe1be46a994272790").is_none());
        assert!(store.add(json!({"id": "x"}), 0.0).is_err());
        assert_eq!(store.counts().rejected, 1);
    }

    #[test]
    fn a_trace_keeps_a_bounded_number_of_documents_and_counts_the_rest() {
        let store = TraceStore::with_max_documents_per_trace(10, 3);
        let document = |id: &str, end: Option<f64>| {
            let mut document = json!({"trace_id": TRACE, "id": id, "name": "x", "start_time": 1.0});
            match end {
                Some(end) => document["end_time"] = json!(end),
                None => document["in_progress"] = json!(true),
            }
            document
        };
        store.add(document("aaaaaaaaaaaaaaa1", None), 0.0).unwrap();
        store
            .add(document("aaaaaaaaaaaaaaa2", Some(2.0)), 0.0)
            .unwrap();
        store
            .add(document("aaaaaaaaaaaaaaa3", Some(2.0)), 0.0)
            .unwrap();
        for extra in ["aaaaaaaaaaaaaaa4", "aaaaaaaaaaaaaaa5"] {
            assert!(store.add(document(extra, Some(2.0)), 0.0).is_err());
        }
        // At the bound a document still completes one the trace holds.
        store
            .add(document("aaaaaaaaaaaaaaa1", Some(3.0)), 0.0)
            .unwrap();
        let trace = store.trace(TRACE).unwrap();
        assert_eq!(trace.documents.len(), 3);
        assert!(trace.documents.iter().all(|d| d.complete));
        let counts = store.counts();
        assert_eq!(
            (
                counts.accepted,
                counts.documents_over_trace_cap,
                counts.rejected
            ),
            (4, 2, 0)
        );
        // Another trace has a bound of its own.
        let other = "1-5759e988-bd862e3fe1be46a994272790";
        store.add(json!({"trace_id": other, "id": "bbbbbbbbbbbbbbbb", "name": "y", "start_time": 1.0, "end_time": 2.0}), 0.0).unwrap();
        assert_eq!(store.trace(other).unwrap().documents.len(), 1);
        assert_eq!(
            TraceStore::new(1).max_documents_per_trace,
            MAX_DOCUMENTS_PER_TRACE
        );
    }
}
