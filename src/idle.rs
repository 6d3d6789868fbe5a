//! Work that can wait runs only while the runtime's thread would otherwise
//! sleep. A multi-source run (`relay`) defers the sources that wait for
//! their turn: on one thread, a source that parses ahead of its turn slows
//! the one at its turn (three parsers and their bodies share the caches;
//! against a fast server, 1.20x the CPU of the three pulls run alone, where
//! the same sources one after another in one run cost 1.06x), while against
//! a slow one the thread is idle most of the time and the deferred sources
//! still fetch ahead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

thread_local! {
    /// Woken each time this thread's runtime is about to park. Per thread:
    /// a current-thread runtime runs its tasks, and calls `on_park`, on its
    /// own thread, and another runtime's idle moments are not this one's.
    static IDLE: Arc<Notify> = Arc::new(Notify::new());
}

fn idle() -> Arc<Notify> {
    IDLE.with(Arc::clone)
}

/// For the runtime's `on_thread_park`: wakes what waits for an idle thread.
/// Tokio's current-thread scheduler does not park when this woke a task,
/// so the deferred work runs in the time the thread would have slept.
pub fn on_park() {
    IDLE.with(|idle| idle.notify_waiters());
}

/// Whether a source's fetches wait for an idle thread. Shared by the
/// source's fetcher (which waits) and the relay (which releases it when the
/// source's turn comes).
#[derive(Debug, Default)]
pub struct Deferral {
    deferred: AtomicBool,
}

impl Deferral {
    pub fn defer(&self) {
        self.deferred.store(true, Ordering::Relaxed);
    }

    /// From now on nothing waits; what is waiting now goes on.
    pub fn release(&self) {
        if self.deferred.swap(false, Ordering::Relaxed) {
            idle().notify_waiters();
        }
    }

    pub fn is_deferred(&self) -> bool {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Returns at once unless deferred; then at the thread's next idle
    /// moment (or at the release).
    pub async fn wait(&self) {
        if self.is_deferred() {
            idle().notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(on_park)
            .build()
            .unwrap()
    }

    #[test]
    fn a_released_deferral_does_not_wait() {
        runtime().block_on(async {
            let deferral = Deferral::default();
            deferral.wait().await;
            deferral.defer();
            deferral.release();
            assert!(!deferral.is_deferred());
            deferral.wait().await;
        });
    }

    /// A deferred wait ends only once the busy work has yielded its last
    /// and the thread would park: the busy task's 50 steps all come first.
    #[test]
    fn a_deferred_wait_ends_when_the_thread_would_sleep() {
        let local = tokio::task::LocalSet::new();
        runtime().block_on(local.run_until(async {
            let steps = Rc::new(Cell::new(0));
            let busy = {
                let steps = steps.clone();
                tokio::task::spawn_local(async move {
                    for _ in 0..50 {
                        steps.set(steps.get() + 1);
                        tokio::task::yield_now().await;
                    }
                })
            };
            let deferral = Deferral::default();
            deferral.defer();
            deferral.wait().await;
            assert_eq!(
                steps.get(),
                50,
                "the deferred wait ended while there was work"
            );
            busy.await.unwrap();
        }));
    }
}
