//! Trace and segment ids, drawn from the operating system's CSPRNG.
//!
//! Trace ids are echoed to clients in response headers, and predictable ones would let a client
//! forge a traced request, so they never come from a seeded PRNG.

use std::time::{SystemTime, UNIX_EPOCH};

/// A new trace id, `1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`.
pub fn new_trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("1-{:08x}-{}", seconds as u32, random_hex::<12>())
}

/// A new segment or subsegment id: 64 random bits as 16 lowercase hex digits.
pub fn new_segment_id() -> String {
    random_hex::<8>()
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // The OS generator only fails when the process cannot open it at all, which no request can
    // recover from; treat it like an allocation failure.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_the_x_ray_shapes() {
        let trace = new_trace_id();
        assert_eq!(trace.len(), 35);
        assert!(trace.starts_with("1-"));
        assert_eq!(&trace[10..11], "-");
        assert!(
            trace[2..10]
                .chars()
                .chain(trace[11..].chars())
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let segment = new_segment_id();
        assert_eq!(segment.len(), 16);
        assert!(segment.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_segment_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
