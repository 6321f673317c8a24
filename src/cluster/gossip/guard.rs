//! The two bounds in front of foca: a token bucket per source address (a flooding member
//! costs at most its rate) and a replay window per sender session (a packet is processed
//! once). Both on the caller's clock, both with a bounded table.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Micro-tokens in one packet's worth: integer arithmetic keeps the simulator exact.
const TOKEN: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    micro_tokens: u64,
    last: Instant,
}

/// Token buckets per source address: `rate` packets a second, bursts of `burst`. At most
/// `max_sources` addresses are tracked; past that, buckets that refilled are dropped first,
/// then the one with the lowest address.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: BTreeMap<SocketAddr, Bucket>,
    rate: u64,
    burst: u64,
    max_sources: usize,
}

impl RateLimiter {
    /// A limiter of `rate` packets a second and bursts of `burst` per source.
    pub fn new(rate: u32, burst: u32, max_sources: usize) -> RateLimiter {
        RateLimiter {
            buckets: BTreeMap::new(),
            rate: u64::from(rate),
            burst: u64::from(burst.max(1)),
            max_sources: max_sources.max(1),
        }
    }

    /// Takes a token for one packet from `from` at `now`; false when its bucket is empty.
    pub fn allow(&mut self, from: SocketAddr, now: Instant) -> bool {
        let cap = self.burst * TOKEN;
        if !self.buckets.contains_key(&from) && self.buckets.len() >= self.max_sources {
            self.make_room(now);
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(from).or_insert(Bucket {
            micro_tokens: cap,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last);
        bucket.last = bucket.last.max(now);
        let refill = refill(elapsed, rate);
        bucket.micro_tokens = bucket.micro_tokens.saturating_add(refill).min(cap);
        if bucket.micro_tokens >= TOKEN {
            bucket.micro_tokens -= TOKEN;
            true
        } else {
            false
        }
    }

    fn make_room(&mut self, now: Instant) {
        let cap = self.burst * TOKEN;
        let rate = self.rate;
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last);
            b.micro_tokens.saturating_add(refill(elapsed, rate)) < cap
        });
        if self.buckets.len() >= self.max_sources {
            self.buckets.pop_first();
        }
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

fn refill(elapsed: Duration, rate: u64) -> u64 {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    micros.saturating_mul(rate)
}

/// Packets of a session remembered behind the newest one.
const WINDOW: u64 = 128;

#[derive(Clone, Copy, Debug)]
struct Window {
    /// Highest sequence number seen.
    top: u64,
    /// Bit `i` set: `top - i` seen.
    seen: u128,
    last: Instant,
}

/// Sliding windows (as IPsec's) over the packet numbers of each sender session: a packet
/// seen before, or older than the 128 newest, is refused. At most `max_sessions` sessions are
/// tracked; the one heard from longest ago makes room (a replay of a session forgotten that
/// way is accepted again: a restarted sender's old identity, which the cluster ignores).
#[derive(Debug)]
pub struct ReplayGuard {
    sessions: BTreeMap<u64, Window>,
    max_sessions: usize,
}

impl ReplayGuard {
    /// A guard tracking at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> ReplayGuard {
        ReplayGuard {
            sessions: BTreeMap::new(),
            max_sessions: max_sessions.max(1),
        }
    }

    /// Records packet `seq` of `session`; false if it was seen already or is too old.
    pub fn check(&mut self, session: u64, seq: u64, now: Instant) -> bool {
        if !self.sessions.contains_key(&session) && self.sessions.len() >= self.max_sessions {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, w)| w.last)
                .map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.sessions.remove(&s);
            }
        }
        let w = self.sessions.entry(session).or_insert(Window {
            top: seq,
            seen: 0,
            last: now,
        });
        w.last = w.last.max(now);
        if seq > w.top || w.seen == 0 {
            let shift = seq.saturating_sub(w.top);
            w.seen = if w.seen != 0 && shift < WINDOW {
                (w.seen << shift) | 1
            } else {
                1
            };
            w.top = seq;
            return true;
        }
        let back = w.top - seq;
        if back >= WINDOW {
            return false;
        }
        let bit = 1u128 << back;
        if w.seen & bit != 0 {
            return false;
        }
        w.seen |= bit;
        true
    }

    /// Sessions tracked now.
    pub fn tracked(&self) -> usize {
        self.sessions.len()
    }
}
