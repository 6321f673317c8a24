//! Where blocking queries wait: one event per watched thing (a service name, a node, a KV
//! key or prefix, a whole table), notified only when a command changed that thing, so a
//! watcher wakes for its own data and costs one small listener while it sleeps.
//!
//! Bounds: one entry per distinct watched thing; entries whose watchers all left are swept
//! once the map has doubled since the last sweep.

use std::collections::HashMap;

use event_listener::{Event, EventListener};

use crate::catalog::Topic;

/// What a blocking read depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Watch {
    Topic(Topic),
    /// Every KV key that starts with this prefix.
    KvPrefix(String),
}

#[derive(Default)]
pub struct WatchHub {
    events: HashMap<Watch, Event>,
    /// Size of the map after the last sweep.
    swept: usize,
}

impl WatchHub {
    /// A listener that fires at the next change of `w`. Register it before reading the
    /// data (or, single-threaded, without an await in between) so no change is missed.
    pub fn listen(&mut self, w: Watch) -> EventListener {
        if self.events.len() > 2 * self.swept + 64 {
            self.events.retain(|_, e| e.total_listeners() > 0);
            self.swept = self.events.len();
        }
        self.events.entry(w).or_default().listen()
    }

    /// Wakes the watchers of everything a command changed (see [`Topic`]): a changed KV key
    /// also wakes the watchers of each of its prefixes.
    pub fn notify(&mut self, topics: &[Topic]) {
        for t in topics {
            if let Topic::Key(k) = t {
                let mut cut = 0;
                for (i, _) in k.char_indices().skip(1).chain([(k.len(), ' ')]) {
                    self.wake(&Watch::KvPrefix(k[..cut].to_string()));
                    cut = i;
                }
                self.wake(&Watch::KvPrefix(k.clone()));
            }
            self.wake(&Watch::Topic(t.clone()));
        }
    }

    fn wake(&mut self, w: &Watch) {
        if let Some(e) = self.events.remove(w) {
            e.notify(usize::MAX);
        }
    }

    /// Wakes every watcher (the whole catalog was replaced, as by a Raft snapshot).
    pub fn notify_all(&mut self) {
        for (_, e) in self.events.drain() {
            e.notify(usize::MAX);
        }
    }

    /// Distinct things watched (or recently watched).
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    fn fired(l: &mut EventListener) -> bool {
        future::block_on(future::poll_once(l)).is_some()
    }

    #[test]
    fn only_the_changed_thing_and_its_key_prefixes_wake() {
        let mut hub = WatchHub::default();
        let mut web = hub.listen(Watch::Topic(Topic::Service("web".into())));
        let mut db = hub.listen(Watch::Topic(Topic::Service("db".into())));
        let mut all = hub.listen(Watch::KvPrefix(String::new()));
        let mut app = hub.listen(Watch::KvPrefix("app/".into()));
        let mut other = hub.listen(Watch::KvPrefix("apx".into()));
        let mut exact = hub.listen(Watch::Topic(Topic::Key("app/x".into())));
        let mut whole = hub.listen(Watch::KvPrefix("app/x".into()));
        hub.notify(&[Topic::Service("web".into())]);
        assert!(fired(&mut web));
        assert!(!fired(&mut db));
        hub.notify(&[Topic::Key("app/x".into())]);
        assert!(fired(&mut all) && fired(&mut app) && fired(&mut exact) && fired(&mut whole));
        assert!(!fired(&mut other));
        assert!(!fired(&mut db));
    }

    #[test]
    fn abandoned_watches_are_swept() {
        let mut hub = WatchHub::default();
        for i in 0..10_000 {
            drop(hub.listen(Watch::Topic(Topic::Node(format!("n{i}")))));
        }
        assert!(hub.len() < 200, "{} entries kept", hub.len());
        let _kept = hub.listen(Watch::Topic(Topic::Nodes));
        assert!(!hub.is_empty());
    }
}
