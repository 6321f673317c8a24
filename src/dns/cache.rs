//! Replies already built, served again while the catalog and the settings are unchanged: a
//! repeated question costs a hash lookup and a copy instead of parsing, a catalog lookup and
//! name compression. Pure and bounded; the responder owns it.
//!
//! A reply is a function of the query bytes after the ID, the transport, the settings, the
//! catalog and the round-robin order. The key is the first two; a settings change clears the
//! cache and a catalog change (a new [`Catalog::generation`](crate::catalog::Catalog)) empties
//! it on the next lookup. Round-robin stays random: a reply whose answers are shuffled is kept
//! only when its answer records can be shuffled as bytes (A or AAAA records, one per
//! instance, none cut), and every hit shuffles them anew, as building it again would.
//!
//! Bounds: at most [`MAX_ENTRIES`] replies of at most [`MAX_REPLY`] bytes and
//! [`MAX_BYTES`] in all (keys included); when full, a random entry makes room.

use std::collections::HashMap;

use super::responder::Transport;

/// Most replies kept.
pub const MAX_ENTRIES: usize = 16_384;
/// Bytes of keys and replies kept in all.
pub const MAX_BYTES: usize = 4 << 20;
/// Larger replies are built every time.
pub const MAX_REPLY: usize = 1232;

/// Answer records that a hit shuffles: `count` records of `rr_len` bytes from offset `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shuffle {
    at: usize,
    rr_len: usize,
    count: usize,
}

impl Shuffle {
    /// Finds the answer section of `reply` and checks that it is `count` records of one type
    /// and length whose owner is a compression pointer, so that any order of them is the same
    /// valid reply. None if it is not.
    pub fn of(reply: &[u8], count: usize) -> Option<Shuffle> {
        let u16_at = |i: usize| -> Option<usize> {
            Some(usize::from(u16::from_be_bytes([
                *reply.get(i)?,
                *reply.get(i + 1)?,
            ])))
        };
        if u16_at(4)? != 1 || u16_at(6)? != count || count < 2 {
            return None;
        }
        // The one question: a name (labels, possibly ending in a pointer), type and class.
        let mut i = 12;
        loop {
            let len = usize::from(*reply.get(i)?);
            match len {
                0 => {
                    i += 1;
                    break;
                }
                1..=63 => i += 1 + len,
                _ if len & 0xc0 == 0xc0 => {
                    i += 2;
                    break;
                }
                _ => return None,
            }
        }
        let at = i + 4;
        // Owner pointer (2), type, class, TTL (4), RDLENGTH, RDATA.
        let rdlen = u16_at(at + 10)?;
        let rr_len = 12 + rdlen;
        let rtype = u16_at(at + 2)?;
        for k in 0..count {
            let r = at + k * rr_len;
            if reply.get(r)? & 0xc0 != 0xc0 || u16_at(r + 2)? != rtype || u16_at(r + 10)? != rdlen {
                return None;
            }
        }
        (at + count * rr_len <= reply.len()).then_some(Shuffle { at, rr_len, count })
    }

    /// Puts the records in a random order (Fisher-Yates on whole records).
    fn apply(&self, reply: &mut [u8], rng: &mut fastrand::Rng) {
        let Some(area) = reply.get_mut(self.at..self.at + self.count * self.rr_len) else {
            return;
        };
        for i in (1..self.count).rev() {
            let j = rng.usize(..=i);
            if i != j {
                let (head, tail) = area.split_at_mut(i * self.rr_len);
                head[j * self.rr_len..(j + 1) * self.rr_len]
                    .swap_with_slice(&mut tail[..self.rr_len]);
            }
        }
    }
}

struct Entry {
    transport: Transport,
    key: Box<[u8]>,
    reply: Box<[u8]>,
    shuffle: Option<Shuffle>,
}

/// See the module comment.
#[derive(Default)]
pub struct ReplyCache {
    /// The catalog generation the entries were built from.
    generation: u64,
    /// Slot in `entries` by the query bytes after the ID, one map per transport.
    udp: HashMap<Box<[u8]>, usize>,
    tcp: HashMap<Box<[u8]>, usize>,
    entries: Vec<Entry>,
    bytes: usize,
}

impl ReplyCache {
    pub fn clear(&mut self) {
        self.udp.clear();
        self.tcp.clear();
        self.entries.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn map(&mut self, transport: Transport) -> &mut HashMap<Box<[u8]>, usize> {
        match transport {
            Transport::Udp => &mut self.udp,
            Transport::Tcp => &mut self.tcp,
        }
    }

    /// Writes the kept reply to `query` into `out` (cleared first) with the query's ID, and
    /// returns true; false if none is kept for this catalog `generation`.
    pub fn answer(
        &mut self,
        generation: u64,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
        rng: &mut fastrand::Rng,
    ) -> bool {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
            return false;
        }
        let (Some(id), Some(key)) = (query.get(..2), query.get(2..)) else {
            return false;
        };
        let Some(&slot) = self.map(transport).get(key) else {
            return false;
        };
        let Some(e) = self.entries.get(slot) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(&e.reply);
        out[..2].copy_from_slice(id);
        if let Some(s) = e.shuffle {
            s.apply(out, rng);
        }
        true
    }

    /// Keeps `reply` (to `query`, built from the catalog at `generation`) if it fits the
    /// bounds, making room by dropping random entries.
    pub fn insert(
        &mut self,
        generation: u64,
        query: &[u8],
        transport: Transport,
        reply: &[u8],
        shuffle: Option<Shuffle>,
        rng: &mut fastrand::Rng,
    ) {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
        }
        let Some(key) = query.get(2..) else { return };
        if reply.len() < 12 || reply.len() > MAX_REPLY || self.map(transport).contains_key(key) {
            return;
        }
        // The key is held twice: by the map and by the entry.
        let size = 2 * key.len() + reply.len();
        while !self.entries.is_empty()
            && (self.entries.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES)
        {
            self.evict(rng.usize(..self.entries.len()));
        }
        let key: Box<[u8]> = key.into();
        let slot = self.entries.len();
        self.map(transport).insert(key.clone(), slot);
        self.entries.push(Entry {
            transport,
            key,
            reply: reply.into(),
            shuffle,
        });
        self.bytes += size;
    }

    fn evict(&mut self, slot: usize) {
        let e = self.entries.swap_remove(slot);
        self.bytes -= 2 * e.key.len() + e.reply.len();
        self.map(e.transport).remove(&e.key);
        if let Some(moved) = self.entries.get(slot) {
            let map = match moved.transport {
                Transport::Udp => &mut self.udp,
                Transport::Tcp => &mut self.tcp,
            };
            if let Some(s) = map.get_mut(&moved.key) {
                *s = slot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply-shaped packet of `len` bytes: header with one question, nothing else.
    fn reply(id: u16, len: usize) -> Vec<u8> {
        let mut r = vec![0u8; len.max(12)];
        r[..2].copy_from_slice(&id.to_be_bytes());
        r[5] = 1;
        r
    }

    fn query(n: usize) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(format!("\x0aq{n:09}\x00\x00\x01\x00\x01").as_bytes());
        q
    }

    #[test]
    fn entries_and_bytes_stay_bounded_and_every_kept_entry_answers() {
        let mut c = ReplyCache::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 0..MAX_ENTRIES + 500 {
            c.insert(1, &query(n), Transport::Udp, &reply(0, 100), None, &mut rng);
            assert!(c.len() <= MAX_ENTRIES);
            assert!(c.bytes <= MAX_BYTES);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        let mut hits = 0;
        let mut out = Vec::new();
        for n in 0..MAX_ENTRIES + 500 {
            if c.answer(1, &query(n), Transport::Udp, &mut out, &mut rng) {
                hits += 1;
                assert_eq!(out[..2], [0xab, 0xcd]);
            }
        }
        assert_eq!(hits, MAX_ENTRIES);
        assert_eq!(c.udp.len(), MAX_ENTRIES);
        for (slot, e) in c.entries.iter().enumerate() {
            assert_eq!(c.udp.get(&e.key), Some(&slot));
        }
        // Large replies: the byte budget binds before the count does.
        c.clear();
        for n in 0..2000 {
            c.insert(
                1,
                &query(n),
                Transport::Tcp,
                &reply(0, MAX_REPLY),
                None,
                &mut rng,
            );
            assert!(c.bytes <= MAX_BYTES);
        }
        assert!(c.len() < MAX_BYTES / MAX_REPLY + 1);
        // Larger than MAX_REPLY: not kept.
        c.clear();
        c.insert(
            1,
            &query(0),
            Transport::Tcp,
            &reply(0, MAX_REPLY + 1),
            None,
            &mut rng,
        );
        assert!(c.is_empty());
    }

    #[test]
    fn another_generation_empties_the_cache() {
        let mut c = ReplyCache::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        c.insert(5, &query(1), Transport::Udp, &reply(0, 40), None, &mut rng);
        assert!(c.answer(5, &query(1), Transport::Udp, &mut out, &mut rng));
        assert!(!c.answer(5, &query(1), Transport::Tcp, &mut out, &mut rng));
        assert!(!c.answer(6, &query(1), Transport::Udp, &mut out, &mut rng));
        assert!(c.is_empty());
        assert!(!c.answer(5, &query(1), Transport::Udp, &mut out, &mut rng));
    }

    #[test]
    fn shuffle_accepts_only_equal_records_with_pointer_owners() {
        // Header (1 question, 3 answers), question `a.` A IN, then three A records.
        let mut r = vec![
            0, 1, 0x84, 0, 0, 1, 0, 3, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
        ];
        for i in 0..3u8 {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, i]);
        }
        let s = Shuffle::of(&r, 3).expect("three A records");
        assert_eq!(
            s,
            Shuffle {
                at: 19,
                rr_len: 16,
                count: 3
            }
        );
        assert_eq!(Shuffle::of(&r, 2), None, "count must match ANCOUNT");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            let mut x = r.clone();
            s.apply(&mut x, &mut rng);
            assert_eq!(x[..19], r[..19]);
            let mut last: Vec<u8> = x[19..].chunks(16).map(|c| c[15]).collect();
            seen.insert(last.clone());
            last.sort();
            assert_eq!(last, [0, 1, 2]);
        }
        assert_eq!(seen.len(), 6, "every order of three records");
        // An owner written out in full, or records of different lengths: not shuffled.
        let mut full = r.clone();
        full[19] = 0;
        assert_eq!(Shuffle::of(&full, 3), None);
        let mut short = r.clone();
        short.truncate(r.len() - 1);
        assert_eq!(Shuffle::of(&short, 3), None);
        let mut other = r.clone();
        other[19 + 16 + 3] = 28;
        assert_eq!(Shuffle::of(&other, 3), None);
    }
}
