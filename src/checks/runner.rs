//! The health check scheduler, pure: when each check's probe is due, what a result means for
//! its status, TTL expiry, and services to deregister after staying critical too long.
//!
//! # Run loop
//!
//! [`Runner`] owns no socket, process, clock or global randomness. The shell (see
//! [`super::drive`]) keeps one `Runner` and repeats:
//!
//! 1. Feed **one** input, with the current time:
//!    - [`Runner::set_checks`] when the agent's checks change (start-up, reload, API),
//!    - [`Runner::ttl_update`] when a TTL check is passed, warned or failed from outside,
//!    - [`Runner::handle_result`] when a probe finished,
//!    - [`Runner::handle_timeout`] when the deadline from `poll_timeout` has passed
//!      (calling it early is harmless: only deadlines at or before `now` fire).
//! 2. Drain the outputs: [`Runner::poll_probe`] until `None` (start each probe; report its
//!    result with `handle_result`), then [`Runner::poll_event`] until `None` (write status
//!    changes to the catalog; deregister services).
//! 3. Sleep until [`Runner::poll_timeout`], a probe result or the next input, whichever is
//!    first, then go to 1.
//!
//! Every timer is named by [`Timer`]; [`Runner::next_timer`] says which one is next.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::catalog::{Check, CheckDefinition, Health};

/// Largest output kept per check, in bytes (Consul's `check_output_max_size` default).
pub const OUTPUT_MAX: usize = 4096;
/// Shortest interval between two probes of a check; shorter ones are raised to it
/// (Consul's `checks.MinInterval`: more often risks fork-bombing the box with scripts).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Timeout of HTTP and TCP probes whose definition sets none (Consul's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of script probes whose definition sets none (Consul's `CheckMonitor` default).
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its timeout a probe may take before the check is reported critical. The
/// shell enforces the timeout itself (and then up to 5 s to reap a killed script), so only
/// a stuck probe, such as a process in uninterruptible sleep, ever reaches this.
pub const OVERDUE_GRACE: Duration = Duration::from_secs(10);
/// Longest interval, timeout, TTL or deregistration delay taken from a definition; longer
/// ones are cut to it, so that `now + duration` never overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The output of a script check while script checks are disabled.
pub const SCRIPTS_DISABLED: &str = "script checks are disabled on this agent: set \"enable_script_checks\": true in its config to run this check";

/// The runner's fixed settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Consul's `enable_script_checks`: run `args` checks, or hold them critical.
    pub enable_script_checks: bool,
    /// Largest output kept per check, in bytes; see [`OUTPUT_MAX`].
    pub output_max: usize,
    /// Seeds the stagger of first runs (the runner's only randomness).
    pub seed: u64,
}

impl Settings {
    /// Consul's defaults: scripts disabled, 4096 bytes of output.
    pub fn new(seed: u64) -> Settings {
        Settings {
            enable_script_checks: false,
            output_max: OUTPUT_MAX,
            seed,
        }
    }
}

/// Identifies one run of one probe. A result is applied only while the check still waits
/// for this run: results of removed or changed checks are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(u64);

impl ProbeId {
    /// Any ID, for probes run outside a runner in tests.
    #[cfg(test)]
    pub(crate) fn test(n: u64) -> ProbeId {
        ProbeId(n)
    }
}

/// A probe the shell should run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub id: ProbeId,
    pub check_id: String,
    pub kind: ProbeKind,
    /// Most output bytes worth reading; the runner cuts whatever comes back to this anyway.
    pub output_max: usize,
}

/// What to probe, and how long the probe may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// An HTTP request: 2xx is passing, 429 warning, anything else critical.
    Http {
        url: String,
        method: String,
        /// In the definition's order, a name repeated per value.
        headers: Vec<(String, String)>,
        timeout: Duration,
        /// Accept any certificate of an `https://` URL.
        tls_skip_verify: bool,
    },
    /// A TCP connect to `host:port`: connected is passing, anything else critical.
    Tcp { addr: String, timeout: Duration },
    /// A program run without a shell: exit 0 is passing, 1 warning, anything else critical.
    Script {
        args: Vec<String>,
        timeout: Duration,
    },
}

impl ProbeKind {
    pub fn timeout(&self) -> Duration {
        match self {
            ProbeKind::Http { timeout, .. }
            | ProbeKind::Tcp { timeout, .. }
            | ProbeKind::Script { timeout, .. } => *timeout,
        }
    }
}

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub status: Health,
    /// Cut to the runner's output limit when applied.
    pub output: String,
}

/// What the agent should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A check's status or output changed: write it to the catalog. Only changes are
    /// reported, so an unchanged passing check costs no catalog write.
    StatusChanged {
        check_id: String,
        status: Health,
        output: String,
    },
    /// A check of this service has been critical for its
    /// `deregister_critical_service_after`: remove the service (and its checks).
    DeregisterService { service_id: String },
}

/// Why the runner wants to wake up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The next probe of an HTTP, TCP or script check is due (the first one after a
    /// random stagger within the interval, then one interval after each result).
    Probe,
    /// A probe in flight has not reported within its timeout plus [`OVERDUE_GRACE`]: the
    /// check turns critical (the probe stays in flight; its late result still counts).
    ProbeOverdue,
    /// A TTL check was not updated within its TTL: it turns critical, "TTL expired".
    TtlExpiry,
    /// A check of a service has been critical for the definition's
    /// `deregister_critical_service_after`: the service is to be deregistered.
    DeregisterCritical,
}

/// [`Runner::ttl_update`] was refused. Doesn't affect the runner's state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TtlUpdateError {
    #[error("no check with ID {0:?} is run by this agent")]
    UnknownCheck(String),
    #[error("check {0:?} is not a TTL check; only TTL checks are updated from outside")]
    NotTtl(String),
}

/// How a check is run, derived from its definition.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    /// Probed every `interval`.
    Probe { kind: ProbeKind, interval: Duration },
    /// Updated from outside; critical when not updated within `ttl`.
    Ttl { ttl: Duration },
    /// Never run; held critical with this output.
    Refused(&'static str),
}

impl Plan {
    /// `None` for a definition with nothing to run (a check registered through the catalog
    /// API, whose health someone else reports).
    fn of(d: &CheckDefinition, scripts: bool) -> Option<Plan> {
        let ms = |v: u64| Duration::from_millis(v).min(MAX_DURATION);
        let interval = ms(d.interval_ms).max(MIN_INTERVAL);
        let timeout = |default: Duration| match d.timeout_ms {
            0 => default,
            t => ms(t),
        };
        let kind = if !d.http.is_empty() {
            ProbeKind::Http {
                url: d.http.clone(),
                method: if d.method.is_empty() {
                    "GET".into()
                } else {
                    d.method.clone()
                },
                headers: d
                    .header
                    .iter()
                    .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), v.clone())))
                    .collect(),
                timeout: timeout(DEFAULT_TIMEOUT),
                tls_skip_verify: d.tls_skip_verify,
            }
        } else if !d.tcp.is_empty() {
            ProbeKind::Tcp {
                addr: d.tcp.clone(),
                timeout: timeout(DEFAULT_TIMEOUT),
            }
        } else if !d.args.is_empty() {
            if !scripts {
                return Some(Plan::Refused(SCRIPTS_DISABLED));
            }
            ProbeKind::Script {
                args: d.args.clone(),
                timeout: timeout(DEFAULT_SCRIPT_TIMEOUT),
            }
        } else if d.ttl_ms > 0 {
            return Some(Plan::Ttl { ttl: ms(d.ttl_ms) });
        } else {
            return None;
        };
        Some(Plan::Probe { kind, interval })
    }
}

/// Where a probed check is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sched {
    /// Not probed (TTL and refused checks).
    Never,
    /// The next probe is due at this instant.
    Waiting(Instant),
    /// Due since this instant (when `handle_timeout` found it due), and queued for
    /// [`Runner::poll_probe`].
    Due(Instant),
    /// Running; overdue at `overdue_at` unless already reported so.
    InFlight {
        id: ProbeId,
        overdue_at: Instant,
        overdue_reported: bool,
    },
}

/// One check the runner runs.
#[derive(Clone, Debug)]
struct Entry {
    service_id: String,
    definition: CheckDefinition,
    plan: Plan,
    status: Health,
    output: String,
    sched: Sched,
    /// When a TTL check expires unless updated.
    ttl_deadline: Option<Instant>,
    /// Since when the status has been critical without a break.
    critical_since: Option<Instant>,
    /// `deregister_critical_service_after`, for a service's check that sets it.
    deregister_after: Option<Duration>,
    /// The deregistration was asked for during this critical spell.
    deregister_sent: bool,
}

impl Entry {
    fn new(
        now: Instant,
        c: &Check,
        plan: Plan,
        output_max: usize,
        rng: &mut fastrand::Rng,
    ) -> Entry {
        let d = &c.definition;
        let deregister_after =
            (!c.service_id.is_empty() && d.deregister_critical_service_after_ms > 0).then(|| {
                Duration::from_millis(d.deregister_critical_service_after_ms).min(MAX_DURATION)
            });
        let (sched, ttl_deadline) = match &plan {
            Plan::Probe { interval, .. } => {
                // Consul's lib.RandomStagger: uniform in [0, interval).
                let span = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
                let stagger = Duration::from_nanos(rng.u64(0..span));
                (Sched::Waiting(now + stagger), None)
            }
            Plan::Ttl { ttl } => (Sched::Never, Some(now + *ttl)),
            Plan::Refused(_) => (Sched::Never, None),
        };
        Entry {
            service_id: c.service_id.clone(),
            definition: c.definition.clone(),
            plan,
            status: c.status,
            output: cut_output(&c.output, output_max).to_string(),
            sched,
            ttl_deadline,
            critical_since: (c.status == Health::Critical).then_some(now),
            deregister_after,
            deregister_sent: false,
        }
    }

    /// Sets status and output; true when either changed.
    fn set(&mut self, now: Instant, status: Health, output: String) -> bool {
        if status == Health::Critical {
            self.critical_since.get_or_insert(now);
        } else {
            self.critical_since = None;
            self.deregister_sent = false;
        }
        let changed = status != self.status || output != self.output;
        self.status = status;
        self.output = output;
        changed
    }

    fn deregister_at(&self) -> Option<Instant> {
        match (self.deregister_after, self.critical_since) {
            (Some(after), Some(since)) if !self.deregister_sent => Some(since + after),
            _ => None,
        }
    }

    /// This check's earliest deadline.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let probe = match self.sched {
            Sched::Waiting(at) => Some((at, Timer::Probe)),
            Sched::InFlight {
                overdue_at,
                overdue_reported: false,
                ..
            } => Some((overdue_at, Timer::ProbeOverdue)),
            _ => None,
        };
        [
            probe,
            self.ttl_deadline.map(|t| (t, Timer::TtlExpiry)),
            self.deregister_at().map(|t| (t, Timer::DeregisterCritical)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }
}

/// The health check scheduler of one agent. See the module doc for how to drive it.
///
/// Bounds: one entry per check given to [`set_checks`](Runner::set_checks); at most one
/// probe in flight per check; at most one pending [`Event::StatusChanged`] per check (a
/// newer one replaces it) and one [`Event::DeregisterService`] per service; outputs at most
/// [`Settings::output_max`] bytes. Timers are found by a scan of all checks (tens, not
/// thousands, on an edge box).
#[derive(Debug)]
pub struct Runner {
    settings: Settings,
    rng: fastrand::Rng,
    checks: BTreeMap<String, Entry>,
    /// IDs of the checks in [`Sched::Due`], each once, oldest first.
    due: VecDeque<String>,
    events: VecDeque<Event>,
    next_probe_id: u64,
}

impl Runner {
    pub fn new(settings: Settings) -> Runner {
        Runner {
            rng: fastrand::Rng::with_seed(settings.seed),
            settings,
            checks: BTreeMap::new(),
            due: VecDeque::new(),
            events: VecDeque::new(),
            next_probe_id: 0,
        }
    }

    /// Makes `checks` the set the runner runs (the agent's own checks, from config or API).
    ///
    /// A check whose service and definition are unchanged keeps its schedule, TTL, status
    /// and output; a changed one starts over (its probe in flight, if any, is forgotten and
    /// its result will be dropped); a check not in `checks` is forgotten, with its pending
    /// status event. A new check starts from the status and output given, its first probe
    /// staggered randomly within its interval, or its TTL counting from `now`. Checks with
    /// no definition to run (no `http`, `tcp`, `args` or `ttl`) are left out. An ID given
    /// twice: the last wins.
    pub fn set_checks<'a>(&mut self, now: Instant, checks: impl IntoIterator<Item = &'a Check>) {
        let mut old = std::mem::take(&mut self.checks);
        for c in checks {
            let Some(plan) = Plan::of(&c.definition, self.settings.enable_script_checks) else {
                continue;
            };
            let kept = old
                .remove(&c.id)
                .filter(|e| e.definition == c.definition && e.service_id == c.service_id);
            let entry = match kept {
                Some(e) => e,
                None => {
                    self.forget_events(&c.id);
                    let e = Entry::new(now, c, plan, self.settings.output_max, &mut self.rng);
                    self.start(now, &c.id, e)
                }
            };
            self.checks.insert(c.id.clone(), entry);
        }
        for id in old.keys() {
            self.forget_events(id);
        }
        self.purge_due();
    }

    /// Turns script checks on or off; every script check starts over with its current
    /// status and output.
    pub fn set_enable_script_checks(&mut self, now: Instant, enable: bool) {
        if self.settings.enable_script_checks == enable {
            return;
        }
        self.settings.enable_script_checks = enable;
        let scripts: Vec<Check> = self
            .checks
            .iter()
            .filter(|(_, e)| !e.definition.args.is_empty())
            .map(|(id, e)| Check {
                id: id.clone(),
                name: id.clone(),
                status: e.status,
                notes: String::new(),
                output: e.output.clone(),
                service_id: e.service_id.clone(),
                definition: e.definition.clone(),
            })
            .collect();
        for c in &scripts {
            if let Some(plan) = Plan::of(&c.definition, enable) {
                let e = Entry::new(now, c, plan, self.settings.output_max, &mut self.rng);
                let e = self.start(now, &c.id, e);
                self.checks.insert(c.id.clone(), e);
            }
        }
        self.purge_due();
    }

    /// Sets a TTL check's status and output (cut to the output limit) and restarts its TTL.
    /// This is what the agent's `/v1/agent/check/{pass,warn,fail,update}` endpoints call.
    pub fn ttl_update(
        &mut self,
        now: Instant,
        check_id: &str,
        status: Health,
        output: &str,
    ) -> Result<(), TtlUpdateError> {
        let e = self
            .checks
            .get_mut(check_id)
            .ok_or_else(|| TtlUpdateError::UnknownCheck(check_id.into()))?;
        let Plan::Ttl { ttl } = e.plan else {
            return Err(TtlUpdateError::NotTtl(check_id.into()));
        };
        e.ttl_deadline = Some(now + ttl);
        let output = cut_output(output, self.settings.output_max).to_string();
        if e.set(now, status, output) {
            push_status(&mut self.events, check_id, e);
        }
        Ok(())
    }

    /// Fires every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (id, e) in &mut self.checks {
            match e.sched {
                Sched::Waiting(at) if at <= now => {
                    e.sched = Sched::Due(now);
                    self.due.push_back(id.clone());
                }
                Sched::InFlight {
                    id: probe,
                    overdue_at,
                    overdue_reported: false,
                } if overdue_at <= now => {
                    e.sched = Sched::InFlight {
                        id: probe,
                        overdue_at,
                        overdue_reported: true,
                    };
                    let limit = match &e.plan {
                        Plan::Probe { kind, .. } => kind.timeout() + OVERDUE_GRACE,
                        _ => OVERDUE_GRACE,
                    };
                    let output = format!(
                        "the probe has not finished within {limit:?}; waiting for it before the next one"
                    );
                    if e.set(now, Health::Critical, output) {
                        push_status(&mut self.events, id, e);
                    }
                }
                _ => {}
            }
            if let Some(at) = e.ttl_deadline
                && at <= now
            {
                e.ttl_deadline = None;
                let output = if e.output.is_empty() {
                    "TTL expired".to_string()
                } else {
                    let o = format!(
                        "TTL expired (last output before timeout follows): {}",
                        e.output
                    );
                    cut_output(&o, self.settings.output_max).to_string()
                };
                if e.set(now, Health::Critical, output) {
                    push_status(&mut self.events, id, e);
                }
            }
            if let Some(at) = e.deregister_at()
                && at <= now
            {
                e.deregister_sent = true;
                let ev = Event::DeregisterService {
                    service_id: e.service_id.clone(),
                };
                if !self.events.contains(&ev) {
                    self.events.push_back(ev);
                }
            }
        }
    }

    /// The next probe to run now, if any. The check waits for its result (at most one probe
    /// in flight per check).
    pub fn poll_probe(&mut self) -> Option<Probe> {
        while let Some(check_id) = self.due.pop_front() {
            let Some(e) = self.checks.get_mut(&check_id) else {
                continue;
            };
            let (Sched::Due(started), Plan::Probe { kind, .. }) = (e.sched, &e.plan) else {
                continue;
            };
            let id = ProbeId(self.next_probe_id);
            self.next_probe_id += 1;
            // poll_probe takes no time: the overdue timer counts from when the check was
            // found due, which is when the shell drains this (the run loop's step 2).
            e.sched = Sched::InFlight {
                id,
                overdue_at: started + kind.timeout() + OVERDUE_GRACE,
                overdue_reported: false,
            };
            return Some(Probe {
                id,
                check_id,
                kind: kind.clone(),
                output_max: self.settings.output_max,
            });
        }
        None
    }

    /// Applies a probe's result: the check's status and output (cut to the output limit),
    /// and its next probe one interval from `now`. Returns false, changing nothing, when
    /// the result is stale: its check was removed or changed since the probe started.
    pub fn handle_result(&mut self, now: Instant, probe: ProbeId, result: ProbeResult) -> bool {
        let Some((id, e)) = self
            .checks
            .iter_mut()
            .find(|(_, e)| matches!(e.sched, Sched::InFlight { id, .. } if id == probe))
        else {
            return false;
        };
        let Plan::Probe { interval, .. } = e.plan else {
            return false;
        };
        e.sched = Sched::Waiting(now + interval);
        let output = cut_output(&result.output, self.settings.output_max).to_string();
        if e.set(now, result.status, output) {
            push_status(&mut self.events, id, e);
        }
        true
    }

    /// The next thing for the agent to do, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Runner::handle_timeout) next; `None` while no timer
    /// is set.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _, _)| at)
    }

    /// The earliest timer: when, which, and for which check.
    pub fn next_timer(&self) -> Option<(Instant, Timer, &str)> {
        self.checks
            .iter()
            .filter_map(|(id, e)| e.next_timer().map(|(at, t)| (at, t, id.as_str())))
            .min_by_key(|(at, _, _)| *at)
    }

    /// A check's current status and output, as last reported or given.
    pub fn status(&self, check_id: &str) -> Option<(Health, &str)> {
        self.checks
            .get(check_id)
            .map(|e| (e.status, e.output.as_str()))
    }

    /// IDs of the checks the runner runs.
    pub fn check_ids(&self) -> impl Iterator<Item = &str> {
        self.checks.keys().map(String::as_str)
    }

    /// A new entry's first output: a refused check reports why.
    fn start(&mut self, now: Instant, id: &str, mut e: Entry) -> Entry {
        if let Plan::Refused(why) = e.plan
            && e.set(now, Health::Critical, why.to_string())
        {
            push_status(&mut self.events, id, &e);
        }
        e
    }

    fn forget_events(&mut self, check_id: &str) {
        self.events
            .retain(|ev| !matches!(ev, Event::StatusChanged { check_id: c, .. } if c == check_id));
    }

    /// Keeps the due queue to exactly the checks in [`Sched::Due`], each once.
    fn purge_due(&mut self) {
        let checks = &self.checks;
        let mut seen = std::collections::BTreeSet::new();
        self.due.retain(|id| {
            matches!(checks.get(id), Some(e) if matches!(e.sched, Sched::Due(_)))
                && seen.insert(id.clone())
        });
    }
}

/// Queues a status event for `e`, replacing one still pending for the same check.
fn push_status(events: &mut VecDeque<Event>, check_id: &str, e: &Entry) {
    let ev = Event::StatusChanged {
        check_id: check_id.into(),
        status: e.status,
        output: e.output.clone(),
    };
    for pending in events.iter_mut() {
        if matches!(pending, Event::StatusChanged { check_id: c, .. } if c == check_id) {
            *pending = ev;
            return;
        }
    }
    events.push_back(ev);
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a char boundary.
pub fn cut_output(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests;
