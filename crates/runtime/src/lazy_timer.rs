//! Timers that are re-armed lazily. A deadline that every request moves later (a connection's
//! keep-alive wait, an instance's idle expiry) would otherwise re-arm its timer once a request:
//! a removal from and an insertion into tokio's timer wheel, under its lock. Left where it is,
//! the timer fires early at most once a timeout and is re-armed then.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// Polls `sleep` as a timer for `deadline`, armed lazily: a deadline that moved later (every
/// request moves the keep-alive one) leaves the timer where it is, and only when it fires
/// early is it re-armed, so a busy connection re-arms it about once a timeout rather than
/// once a request. A deadline that moved earlier re-arms it at once.
pub fn poll_until(mut sleep: Pin<&mut Sleep>, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
    }
    loop {
        match sleep.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(()) if sleep.deadline() >= deadline => return Poll::Ready(()),
            // Fired at an earlier deadline: the real one is later.
            Poll::Ready(()) => sleep.as_mut().reset(deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn poll(sleep: Pin<&mut Sleep>, deadline: Instant) -> Poll<()> {
        let waker = std::task::Waker::noop();
        poll_until(sleep, deadline, &mut Context::from_waker(waker))
    }

    // Real time, in steps of a few tens of milliseconds (tokio's clock has millisecond ticks);
    // each assertion holds however late the test thread runs, because every step only waits
    // past a deadline, never races one.
    #[tokio::test]
    async fn a_later_deadline_leaves_the_timer_and_is_kept_when_it_fires_early() {
        let start = Instant::now();
        let first = start + Duration::from_millis(50);
        let later = start + Duration::from_millis(150);
        let mut sleep = Box::pin(tokio::time::sleep_until(first));
        if Instant::now() < first {
            assert!(poll(sleep.as_mut(), later).is_pending());
            // Not re-armed: still at its first deadline.
            assert_eq!(sleep.deadline(), first);
        }
        tokio::time::sleep_until(first + Duration::from_millis(20)).await;
        // It fired early: re-armed at the real deadline, not ready before it.
        if Instant::now() < later {
            assert!(poll(sleep.as_mut(), later).is_pending());
            assert_eq!(sleep.deadline(), later);
        }
        tokio::time::sleep_until(later + Duration::from_millis(20)).await;
        assert!(poll(sleep.as_mut(), later).is_ready());
        assert_eq!(sleep.deadline(), later);
    }

    #[tokio::test]
    async fn an_earlier_deadline_re_arms_the_timer_at_once() {
        let start = Instant::now();
        let mut sleep = Box::pin(tokio::time::sleep_until(start + Duration::from_secs(60)));
        let earlier = start + Duration::from_millis(50);
        let _ = poll(sleep.as_mut(), earlier);
        assert_eq!(sleep.deadline(), earlier);
        tokio::time::sleep_until(earlier + Duration::from_millis(20)).await;
        assert!(poll(sleep.as_mut(), earlier).is_ready());
    }
}
