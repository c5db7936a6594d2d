//! Randomness without a system call per request: the operating system's CSPRNG read in 4 KiB
//! at a time into a per-thread buffer (ids), and a per-thread fast generator seeded from it
//! (sampling draws).
//!
//! A request used to make three `getrandom` calls (two ids and a sampling draw), each a system
//! call costing more than the rest of the trace's start (issue 27). The buffer keeps ids what
//! they were, bytes of the OS generator, so they stay unpredictable and unique; only the number
//! of system calls changes (one per 4 KiB: about 200 traced requests). A sampling draw needs no
//! secrecy, only a uniform number, so it comes from xoshiro256++, seeded per thread from the
//! OS generator, with no lock and no shared state.
//!
//! Neither is shared between threads, so neither takes a lock. The process does not fork (a
//! forked child would repeat its parent's buffer); the host is a tokio process that never does.

use std::cell::{Cell, RefCell};

/// How many bytes of OS randomness a thread reads at a time.
const POOL_BYTES: usize = 4096;

/// A thread's unread OS randomness: `bytes[next..]`.
struct Pool {
    bytes: [u8; POOL_BYTES],
    next: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; POOL_BYTES],
            next: POOL_BYTES,
        })
    };
    /// The thread's xoshiro256++ state; all zero until first used (an all-zero state is the
    /// one xoshiro cannot leave, so it doubles as "not seeded").
    static FAST: Cell<[u64; 4]> = const { Cell::new([0; 4]) };
}

/// `N` bytes of the operating system's CSPRNG (`N` at most 4096), from this thread's buffer,
/// which is refilled from the OS when it runs out.
pub(crate) fn os_bytes<const N: usize>() -> [u8; N] {
    const { assert!(N <= POOL_BYTES) };
    let mut out = [0u8; N];
    let taken = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if POOL_BYTES - pool.next < N {
            fill_from_os(&mut pool.bytes);
            pool.next = 0;
        }
        let start = pool.next;
        let unread = &mut pool.bytes[start..start + N];
        out.copy_from_slice(unread);
        // Bytes handed out are wiped: what is left in memory says nothing about ids already
        // made.
        unread.fill(0);
        pool.next += N;
    });
    if taken.is_err() {
        // The thread is being torn down and its buffer is gone: straight from the OS.
        fill_from_os(&mut out);
    }
    out
}

/// A uniform number in `[0, 1)` from this thread's fast generator (not for secrets).
pub(crate) fn fast_f64() -> f64 {
    // 53 random bits: every value is an exact double in [0, 1).
    (fast_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The next 64 bits of this thread's xoshiro256++ (Blackman and Vigna), seeded from the OS
/// generator on first use.
fn fast_u64() -> u64 {
    let next = |state: &Cell<[u64; 4]>| {
        let mut s = state.get();
        if s == [0; 4] {
            s = seed();
        }
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        state.set(s);
        result
    };
    FAST.try_with(next)
        .unwrap_or_else(|_| next(&Cell::new([0; 4])))
}

/// A xoshiro256++ state from the OS generator, never all zero.
fn seed() -> [u64; 4] {
    loop {
        let bytes: [u8; 32] = os_bytes();
        let mut state = [0u64; 4];
        for (word, chunk) in state.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        if state != [0; 4] {
            return state;
        }
    }
}

fn fill_from_os(bytes: &mut [u8]) {
    // The OS generator only fails when the process cannot open it at all, which no request can
    // recover from; treat it like an allocation failure.
    getrandom::fill(bytes).expect("the operating system's random number generator failed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn os_bytes_do_not_repeat_across_refills_and_threads() {
        // Several refills' worth on each of two threads.
        let draw = || (0..2_000).map(|_| os_bytes::<12>()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw).join().unwrap();
        let all: HashSet<[u8; 12]> = draw().into_iter().chain(other).collect();
        assert_eq!(all.len(), 4_000);
    }

    #[test]
    fn fast_numbers_are_in_the_unit_interval_and_spread() {
        let values: Vec<f64> = (0..10_000).map(|_| fast_f64()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let below = values.iter().filter(|v| **v < 0.25).count();
        assert!(
            (2_000..3_000).contains(&below),
            "{below} of 10000 below 0.25"
        );
        // Each thread has its own sequence.
        let other: Vec<f64> = std::thread::spawn(|| (0..4).map(|_| fast_f64()).collect())
            .join()
            .unwrap();
        assert_ne!(other[..], values[..4]);
    }

    #[test]
    fn xoshiro_matches_its_reference_output() {
        // The reference implementation's first output from the state {1, 2, 3, 4}.
        FAST.with(|state| {
            let saved = state.replace([1, 2, 3, 4]);
            let first = fast_u64();
            state.set(saved);
            assert_eq!(first, 41_943_041);
        });
    }
}
