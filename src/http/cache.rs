//! Reads already answered, served again while the catalog is unchanged: a repeated
//! `GET /v1/health/service/web` costs a lookup and a reference count instead of a walk of
//! the catalog and JSON encoding. Pure and bounded; the agent state owns it.
//!
//! A read is a function of its path and query (less `index` and `wait`, which say only how
//! long to wait) and of the catalog, which [`Catalog::generation`] names; a new generation
//! empties the cache, and so does a config reload.
//!
//! Bounds: at most [`MAX_ENTRIES`] replies and [`MAX_BYTES`] of keys and bodies; when either
//! would be passed, the cache starts over empty.
//!
//! [`Catalog::generation`]: crate::catalog::Catalog::generation

use std::collections::HashMap;

use http::Method;

use super::request::{Reply, Request};
use super::watch::Watch;

pub const MAX_ENTRIES: usize = 1024;
pub const MAX_BYTES: usize = 8 << 20;

/// A read's reply with what a blocking query needs to know about it.
#[derive(Clone, Debug)]
pub struct Kept {
    pub reply: Reply,
    pub index: u64,
    pub watch: Watch,
}

#[derive(Default)]
pub struct ReadCache {
    generation: u64,
    map: HashMap<String, Kept>,
    bytes: usize,
}

impl ReadCache {
    /// The key of a GET or HEAD: its path and its query without `index` and `wait`.
    pub fn key(req: &Request) -> Option<String> {
        if req.method != Method::GET && req.method != Method::HEAD {
            return None;
        }
        let mut k = req.path.clone();
        for (name, value) in &req.query {
            if name != "index" && name != "wait" {
                k.push('\0');
                k.push_str(name);
                k.push('=');
                k.push_str(value);
            }
        }
        Some(k)
    }

    pub fn get(&mut self, generation: u64, key: &str) -> Option<Kept> {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
            return None;
        }
        self.map.get(key).cloned()
    }

    pub fn insert(&mut self, generation: u64, key: String, kept: Kept) {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
        }
        let size = key.len() + kept.reply.body.len();
        if self.map.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES {
            self.clear();
        }
        if size <= MAX_BYTES {
            self.bytes += size;
            self.map.insert(key, kept);
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Topic;

    fn kept(body: &str) -> Kept {
        Kept {
            reply: Reply::json(&body, false),
            index: 1,
            watch: Watch::Topic(Topic::Nodes),
        }
    }

    #[test]
    fn keys_ignore_how_long_to_wait_but_not_what_to_read() {
        let k = |q| ReadCache::key(&Request::new(Method::GET, "/v1/kv/a", Some(q), vec![]));
        assert_eq!(k("index=5&wait=1s&recurse"), k("recurse&index=9"));
        assert_ne!(k("recurse"), k("keys"));
        assert_ne!(k("recurse"), k("recurse&pretty"));
        assert_eq!(
            ReadCache::key(&Request::new(Method::PUT, "/v1/kv/a", None, vec![])),
            None
        );
    }

    #[test]
    fn a_new_generation_empties_it_and_the_bounds_hold() {
        let mut c = ReadCache::default();
        c.insert(1, "a".into(), kept("x"));
        assert!(c.get(1, "a").is_some());
        assert!(c.get(2, "a").is_none());
        assert!(c.is_empty());
        for i in 0..3 * MAX_ENTRIES {
            c.insert(2, format!("k{i}"), kept("x"));
            assert!(c.len() <= MAX_ENTRIES);
        }
        let big = "y".repeat(MAX_BYTES / 3);
        for i in 0..10 {
            c.insert(2, format!("b{i}"), kept(&big));
            assert!(c.bytes <= MAX_BYTES);
        }
    }
}
