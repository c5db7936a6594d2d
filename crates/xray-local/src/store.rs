//! The traces the local daemon stand-in keeps: every accepted document, merged into its trace
//! (segments, in-progress documents replaced by their complete version, independent
//! subsegments attached to their parents), bounded in number with the oldest evicted.

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

struct Inner {
    traces: HashMap<String, StoredTrace>,
    order: VecDeque<String>,
    counts: StoreCounts,
}

/// The bounded store.
pub struct TraceStore {
    max_traces: usize,
    inner: Mutex<Inner>,
}

impl TraceStore {
    /// A store keeping at most `max_traces` traces.
    pub fn new(max_traces: usize) -> Self {
        Self {
            max_traces: max_traces.max(1),
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

    /// Adds a parsed document; refuses (and counts) one without `trace_id` or `id`.
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
}
