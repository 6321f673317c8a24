//! Health checks the agent runs: HTTP, TCP, TTL and script checks, with Consul's semantics.
//! [`runner`] decides what runs when and what results mean (pure); [`probe`] runs probes;
//! [`drive`] joins the two on the agent's smol executor.

pub mod probe;
pub mod runner;

use std::cell::{Ref, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use async_io::Timer as IoTimer;
use futures_lite::future;

pub use probe::run_probe;
pub use runner::{
    Event, OUTPUT_MAX, Probe, ProbeId, ProbeKind, ProbeResult, Runner, Settings, Timer,
    TtlUpdateError, cut_output,
};

/// The runner as the agent shares it: every input goes through [`Checks::input`], which
/// wakes [`drive`] to run the probes and deliver the events that input caused.
pub struct Checks {
    runner: RefCell<Runner>,
    wake: event_listener::Event,
}

impl Checks {
    pub fn new(runner: Runner) -> Rc<Checks> {
        Rc::new(Checks {
            runner: RefCell::new(runner),
            wake: event_listener::Event::new(),
        })
    }

    /// Feeds one input to the runner, such as
    /// `checks.input(|r| r.ttl_update(Instant::now(), id, Health::Passing, ""))` or
    /// `checks.input(|r| r.set_checks(Instant::now(), &list))`, and wakes the driver.
    /// Panics if called from inside `f` (the runner is borrowed while `f` runs).
    pub fn input<R>(&self, f: impl FnOnce(&mut Runner) -> R) -> R {
        let r = f(&mut self.runner.borrow_mut());
        self.wake.notify(usize::MAX);
        r
    }

    /// The runner, to read: statuses, check IDs, the next timer.
    pub fn runner(&self) -> Ref<'_, Runner> {
        self.runner.borrow()
    }
}

/// Runs the checks forever: probes with [`run_probe`], events handed to `on_event` (write
/// status changes to the catalog, deregister services). Stop it by dropping the future:
/// probes in flight are dropped with it (a script's process is killed).
///
/// `on_event` runs while the runner is not borrowed, so it may call [`Checks::input`],
/// for instance to remove the checks of a service it just deregistered.
pub async fn drive(checks: Rc<Checks>, on_event: impl FnMut(Event)) {
    drive_with(checks, on_event, run_probe).await
}

/// [`drive`] with another way to run probes (tests, or a probe wrapper that logs).
pub async fn drive_with<F, Fut>(checks: Rc<Checks>, mut on_event: impl FnMut(Event), mut run: F)
where
    F: FnMut(Probe) -> Fut,
    Fut: Future<Output = ProbeResult> + 'static,
{
    // At most one per check: the runner hands out a check's next probe only after the
    // result of the previous one.
    let mut running: Vec<(ProbeId, Pin<Box<Fut>>)> = Vec::new();
    let mut finished: Option<(ProbeId, ProbeResult)> = None;
    loop {
        // Listen before looking, so an input made from here on is not missed.
        let listener = checks.wake.listen();
        let (probes, events, deadline) = {
            let mut r = checks.runner.borrow_mut();
            let now = Instant::now();
            if let Some((id, result)) = finished.take() {
                r.handle_result(now, id, result);
            }
            r.handle_timeout(now);
            let probes: Vec<Probe> = std::iter::from_fn(|| r.poll_probe()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| r.poll_event()).collect();
            (probes, events, r.poll_timeout())
        };
        for p in probes {
            running.push((p.id, Box::pin(run(p))));
        }
        for e in events {
            on_event(e);
        }
        let probe_done = future::poll_fn(|cx| {
            for i in 0..running.len() {
                if let Poll::Ready(result) = running[i].1.as_mut().poll(cx) {
                    let (id, _) = running.swap_remove(i);
                    return Poll::Ready(Some((id, result)));
                }
            }
            Poll::Pending
        });
        let woken = async {
            listener.await;
            None
        };
        let timer = async {
            match deadline {
                Some(at) => IoTimer::at(at).await,
                None => IoTimer::never().await,
            };
            None
        };
        finished = future::or(probe_done, future::or(woken, timer)).await;
    }
}

#[cfg(test)]
mod tests;
