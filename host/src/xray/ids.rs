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
    let mut id = String::with_capacity(35);
    id.push_str("1-");
    push_hex(&mut id, &(seconds as u32).to_be_bytes());
    id.push('-');
    push_hex(&mut id, &random_bytes::<12>());
    id
}

/// A new segment or subsegment id: 64 random bits as 16 lowercase hex digits.
pub fn new_segment_id() -> String {
    let mut id = String::with_capacity(16);
    push_hex(&mut id, &random_bytes::<8>());
    id
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS generator only fails when the process cannot open it at all, which no request can
    // recover from; treat it like an allocation failure.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Appends `bytes` as lowercase hex. By hand rather than `format!("{b:02x}")` per byte: ids are
/// made on every request, and the formatting machinery cost more than the random bytes (the
/// profile in scripts/profile-request.sh).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
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
    fn the_trace_id_starts_with_the_current_epoch_second() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let trace = new_trace_id();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let seconds = u64::from_str_radix(&trace[2..10], 16).unwrap();
        assert!((before..=after).contains(&seconds), "{trace}");
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_segment_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
