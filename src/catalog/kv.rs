//! The key/value store, replicated with the catalog through the same commands: entries by
//! key in order (prefix reads are range scans) and tombstones, so that the index of a
//! prefix never goes back when a key under it is deleted (blocking queries rely on that).
//!
//! Bounds: values of at most [`MAX_VALUE`] bytes, keys of at most [`MAX_KEY`] bytes, at most
//! [`MAX_TOMBSTONES`] tombstones (past that they are folded into one floor index).

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

/// Largest value, as Consul's `kv_max_value_size` default.
pub const MAX_VALUE: usize = 512 * 1024;
/// Longest key.
pub const MAX_KEY: usize = 1024;
/// Tombstones kept before they are folded into one floor index.
pub const MAX_TOMBSTONES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    pub key: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    /// Sessions and locks are not supported; always 0.
    pub lock_index: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Kv {
    pub(super) entries: BTreeMap<String, KvEntry>,
    /// Deleted keys and the index they were deleted at.
    pub(super) tombstones: BTreeMap<String, u64>,
    /// Every index of a key or prefix is at least this: the index of the last delete whose
    /// tombstone was folded away.
    pub(super) floor: u64,
    /// Index of the last change to any key.
    pub(super) index: u64,
}

/// The entries whose key starts with `prefix`, in key order.
fn range<'a, V>(
    map: &'a BTreeMap<String, V>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl Kv {
    pub fn get(&self, key: &str) -> Option<&KvEntry> {
        self.entries.get(key)
    }

    /// Entries under `prefix`, in key order.
    pub fn list<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a KvEntry> + 'a {
        range(&self.entries, prefix).map(|(_, e)| e)
    }

    /// Consul's `?keys`: the keys under `prefix`, each cut just after the first `separator`
    /// that follows the prefix (so a "directory" is listed once), in order.
    pub fn keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, _) in range(&self.entries, prefix) {
            let cut = separator.filter(|s| !s.is_empty()).and_then(|s| {
                k[prefix.len()..]
                    .find(s)
                    .map(|i| prefix.len() + i + s.len())
            });
            let k = cut.map_or(k.as_str(), |c| &k[..c]);
            if out.last().map(String::as_str) != Some(k) {
                out.push(k.to_string());
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the last change to any key.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// An index for what a read of `prefix` (or of the one key, if `exact`) returns: it moves
    /// forward whenever that result changes, including deletions, and never goes back.
    pub fn index_of(&self, prefix: &str, exact: bool) -> u64 {
        let live = if exact {
            self.entries.get(prefix).map_or(0, |e| e.modify_index)
        } else {
            range(&self.entries, prefix)
                .map(|(_, e)| e.modify_index)
                .max()
                .unwrap_or(0)
        };
        let dead = if exact {
            self.tombstones.get(prefix).copied().unwrap_or(0)
        } else {
            range(&self.tombstones, prefix)
                .map(|(_, &i)| i)
                .max()
                .unwrap_or(0)
        };
        live.max(dead).max(self.floor)
    }

    /// Whether a set with `cas` would be accepted: 0 means "only if absent", N means "only
    /// if its modify index is N".
    pub fn cas_ok(&self, key: &str, cas: u64) -> bool {
        match self.entries.get(key) {
            None => cas == 0,
            Some(e) => e.modify_index == cas,
        }
    }

    pub(super) fn set(&mut self, index: u64, key: &str, value: &[u8], flags: u64) {
        self.index = index;
        self.tombstones.remove(key);
        match self.entries.get_mut(key) {
            Some(e) => {
                e.value = value.to_vec();
                e.flags = flags;
                e.modify_index = index;
            }
            None => {
                self.entries.insert(
                    key.to_string(),
                    KvEntry {
                        key: key.to_string(),
                        value: value.to_vec(),
                        flags,
                        create_index: index,
                        modify_index: index,
                        lock_index: 0,
                    },
                );
            }
        }
    }

    /// Deletes `key`, or every key under it if `recurse`; returns the keys deleted.
    pub(super) fn delete(&mut self, index: u64, key: &str, recurse: bool) -> Vec<String> {
        let gone: Vec<String> = if recurse {
            range(&self.entries, key).map(|(k, _)| k.clone()).collect()
        } else {
            self.entries
                .get_key_value(key)
                .map(|(k, _)| k.clone())
                .into_iter()
                .collect()
        };
        if gone.is_empty() {
            return gone;
        }
        self.index = index;
        for k in &gone {
            self.entries.remove(k);
            self.tombstones.insert(k.clone(), index);
        }
        if self.tombstones.len() > MAX_TOMBSTONES {
            self.tombstones.clear();
            self.floor = index;
        }
        gone
    }
}
