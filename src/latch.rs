//! [`Latch`]: a one-way flag tasks can wait for.
//!
//! Like `tokio_util`'s `CancellationToken` without the tree of child tokens, and held inline
//! instead of in a shared allocation: connections keep several, and an idle MQTT session
//! should not pay a hundred bytes of heap for each.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Latch {
    set: AtomicBool,
    notify: Notify,
}

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    /// Sets the flag and wakes every waiter; later calls do nothing.
    pub fn set(&self) {
        if !self.set.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the flag is set (at once if it already is).
    pub fn wait(&self) -> LatchWait<'_> {
        LatchWait { latch: self, notified: self.notify.notified() }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Latch::wait`]: written out rather than an `async fn`, whose state took a
    /// third more room in every connection's futures that wait on a latch.
    pub struct LatchWait<'a> {
        latch: &'a Latch,
        #[pin]
        notified: Notified<'a>,
    }
}

impl Future for LatchWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // Registered before the check: a `set` between the two still wakes this waiter.
        this.notified.as_mut().enable();
        if this.latch.is_set() {
            return Poll::Ready(());
        }
        this.notified.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Latch;

    #[tokio::test]
    async fn waiters_before_and_after_the_set_all_resolve() {
        let latch = Arc::new(Latch::new());
        let early: Vec<_> = (0..3)
            .map(|_| {
                let latch = Arc::clone(&latch);
                tokio::spawn(async move { latch.wait().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!latch.is_set());
        assert!(tokio::time::timeout(Duration::from_millis(20), latch.wait()).await.is_err());
        latch.set();
        latch.set();
        for waiter in early {
            tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        }
        tokio::time::timeout(Duration::from_millis(100), latch.wait()).await.unwrap();
        assert!(latch.is_set());
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_wait_is_a_notification_and_a_reference() {
        let latch = Latch::new();
        let waiting = latch.wait();
        let notified = latch.notify.notified();
        assert!(std::mem::size_of_val(&waiting) <= std::mem::size_of_val(&notified) + 8);
    }
}
