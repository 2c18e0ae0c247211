//! When consumers run: a delivery task only while a consumer has work, and one timer task for
//! every consumer's deadlines.
//!
//! Most consumers are idle most of the time (an MQTT gateway holds one per persistent
//! session). A task and a timer each would make every idle consumer cost their memory, so a
//! consumer owns neither: when it is woken and no delivery task runs, [`Scheduler::wake`]
//! spawns one; the task lingers for [`LINGER`] after its last pass (a busy consumer keeps one
//! task), then ends. A consumer's [`DeliveryState`] keeps the task's phase, so that one pass
//! runs at a time and a wake-up during a pass makes another. Deadlines (ack wait, request
//! expiry, heartbeats, pacing) are registered with the [`Scheduler`], whose single task wakes
//! each consumer when its deadline comes. A wake-up may be early (a consumer keeps an earlier
//! registration rather than moving it later); a pass with nothing due just registers the next
//! deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Consumer;

/// How long a delivery task waits for more work before it ends.
pub const LINGER: Duration = Duration::from_secs(1);

/// No delivery task.
const IDLE: u8 = 0;
/// A task was spawned, or a lingering one notified, and has not started its pass yet.
const SCHEDULED: u8 = 1;
/// A task is making a pass.
const RUNNING: u8 = 2;
/// Woken during a pass: the task makes another one.
const AGAIN: u8 = 3;
/// A task is lingering, waiting for a wake-up.
const LINGERING: u8 = 4;

/// A consumer's side of the scheduling: whether it has a delivery task and in which phase,
/// and the deadline it registered.
pub struct DeliveryState {
    phase: AtomicU8,
    stopped: AtomicBool,
    /// Wakes a lingering task.
    linger: Notify,
    /// The deadline registered with the scheduler (its key there), if any.
    timer: Mutex<Option<Instant>>,
    /// Key of this consumer's timers.
    id: u64,
}

impl DeliveryState {
    pub fn new() -> DeliveryState {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        DeliveryState {
            phase: AtomicU8::new(IDLE),
            stopped: AtomicBool::new(false),
            linger: Notify::new(),
            timer: Mutex::new(None),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// No more passes; a lingering task ends.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.linger.notify_one();
    }
}

impl Default for DeliveryState {
    fn default() -> Self {
        DeliveryState::new()
    }
}

/// Consumers' deadlines, and the runtime their delivery tasks run on.
pub struct Scheduler {
    runtime: tokio::runtime::Handle,
    timers: Mutex<BTreeMap<(Instant, u64), Weak<Consumer>>>,
    /// An earlier deadline than the timer task sleeps for, or shutdown.
    changed: Notify,
    shut: AtomicBool,
}

impl Scheduler {
    /// A scheduler whose timer task runs on `runtime` until [`Scheduler::shutdown`].
    pub fn start(runtime: tokio::runtime::Handle) -> Arc<Scheduler> {
        let scheduler = Arc::new(Scheduler {
            runtime: runtime.clone(),
            timers: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            shut: AtomicBool::new(false),
        });
        runtime.spawn(Arc::clone(&scheduler).run_timers());
        scheduler
    }

    /// Deadlines registered now (monitoring and tests).
    pub fn pending_timers(&self) -> usize {
        self.timers.lock().len()
    }

    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    /// Makes `consumer` run a delivery pass soon: spawns its task, or tells the running or
    /// lingering one.
    pub fn wake(&self, consumer: &Arc<Consumer>) {
        let state = &consumer.delivery;
        if state.is_stopped() {
            return;
        }
        let mut phase = state.phase.load(Ordering::Acquire);
        loop {
            let next = match phase {
                IDLE | LINGERING => SCHEDULED,
                RUNNING => AGAIN,
                _ => return,
            };
            match state.phase.compare_exchange_weak(phase, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if phase == IDLE {
                        self.runtime.spawn(deliver(Arc::clone(consumer)));
                    } else if phase == LINGERING {
                        state.linger.notify_one();
                    }
                    return;
                }
                Err(actual) => phase = actual,
            }
        }
    }

    /// Registers when `consumer` next needs a pass (`None`: only when woken). An earlier
    /// registration still in the future is kept: the pass it causes registers again.
    fn set_timer(&self, consumer: &Arc<Consumer>, at: Option<Instant>) {
        let Some(at) = at else { return };
        let state = &consumer.delivery;
        let mut registered = state.timer.lock();
        if registered.is_some_and(|r| r <= at && r > Instant::now()) {
            return;
        }
        let mut timers = self.timers.lock();
        if let Some(old) = registered.take() {
            timers.remove(&(old, state.id));
        }
        let earliest = timers.keys().next().is_none_or(|(first, _)| at < *first);
        timers.insert((at, state.id), Arc::downgrade(consumer));
        *registered = Some(at);
        drop(timers);
        drop(registered);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Forgets `consumer`'s deadline (it stopped): a deleted consumer with a long ack wait
    /// must not stay in the timers until then.
    pub(super) fn clear_timer(&self, consumer: &Consumer) {
        let state = &consumer.delivery;
        if let Some(at) = state.timer.lock().take() {
            self.timers.lock().remove(&(at, state.id));
        }
    }

    /// The timer task: wakes consumers whose deadlines passed.
    async fn run_timers(self: Arc<Self>) {
        while !self.shut.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut due = Vec::new();
            let next = {
                let mut timers = self.timers.lock();
                while let Some(entry) = timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                timers.keys().next().map(|(at, _)| *at)
            };
            for consumer in due.iter().filter_map(Weak::upgrade) {
                {
                    let mut registered = consumer.delivery.timer.lock();
                    if registered.is_some_and(|at| at <= now) {
                        *registered = None;
                    }
                }
                self.wake(&consumer);
            }
            let changed = self.changed.notified();
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// A consumer's delivery task: passes while there is work, then lingers, then ends.
async fn deliver(consumer: Arc<Consumer>) {
    let state = &consumer.delivery;
    let scheduler = Arc::clone(&consumer.scheduler);
    loop {
        state.phase.store(RUNNING, Ordering::Release);
        loop {
            if state.is_stopped() {
                scheduler.clear_timer(&consumer);
                state.phase.store(IDLE, Ordering::Release);
                return;
            }
            let Some(stream) = consumer.stream.upgrade() else {
                state.phase.store(IDLE, Ordering::Release);
                return;
            };
            let (next_wake, more) = consumer.pump(&stream);
            drop(stream);
            if more {
                tokio::task::yield_now().await;
                continue;
            }
            scheduler.set_timer(&consumer, next_wake);
            break;
        }
        if state.phase.compare_exchange(RUNNING, LINGERING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Woken during the pass (AGAIN): make another.
            continue;
        }
        let woken = tokio::time::timeout(LINGER, state.linger.notified()).await.is_ok();
        if state.is_stopped() {
            continue;
        }
        if !woken
            && state.phase.compare_exchange(LINGERING, IDLE, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            return;
        }
        // Woken (SCHEDULED), or woken as the linger ran out: go on. A spurious wake-up of a
        // later linger (the permit of a notification that raced the timeout) costs one pass.
    }
}
