//! Proof that both ends of a server-port connection hold the cluster's key, then a tag on
//! every frame: HMAC-SHA256 over fresh nonces, and a key per direction for the frames.
//!
//! The handshake ([`super::tcp`] moves its bytes):
//!
//! 1. dialer → acceptor: [`AUTH_MAGIC`] and the dialer's nonce (32 bytes);
//! 2. acceptor → dialer: the acceptor's nonce;
//! 3. dialer → acceptor: the usual 16-byte hello and the dialer's proof, an HMAC over a label,
//!    both nonces and the hello;
//! 4. acceptor → dialer: the acceptor's proof (another label, the same bytes).
//!
//! Then every frame carries a tag: an HMAC, under the key of its direction (derived from
//! both nonces), over its sequence number in that direction and its bytes. A frame that is
//! changed, dropped, replayed or moved to another connection fails its tag. Frames are
//! authenticated, not encrypted: Raft's log holds the catalog, which every agent may read.
//!
//! The configured key is never used as is: the transport's key is derived from it, so the
//! gossip key (which encrypts gossip with ChaCha20-Poly1305) can be passed without reuse
//! across two protocols.

use aws_lc_rs::{constant_time, hmac};

/// Length of the shared secret, as the gossip keyring has it.
pub const KEY_LEN: usize = 32;
/// Length of a nonce.
pub const NONCE_LEN: usize = 32;
/// Length of a proof and of a frame's tag.
pub const TAG_LEN: usize = 32;
/// The first 8 bytes of an authenticating dialer.
pub const AUTH_MAGIC: &[u8; 8] = b"OPRAFTA1";

const DERIVE: &[u8] = b"outpost raft transport key v1";
const DIALER: &[u8] = b"outpost raft dialer proof";
const ACCEPTOR: &[u8] = b"outpost raft acceptor proof";
const DIALER_TO_ACCEPTOR: &[u8] = b"outpost raft frames dialer to acceptor";
const ACCEPTOR_TO_DIALER: &[u8] = b"outpost raft frames acceptor to dialer";

/// The transport's secret, ready for HMAC.
#[derive(Clone)]
pub struct Auth {
    key: hmac::Key,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth(..)")
    }
}

/// Tags the frames of one direction of one connection, in order.
pub struct Seal {
    key: hmac::Key,
    seq: u64,
}

/// A fresh random nonce, or `None` when the system's RNG fails.
pub fn nonce() -> Option<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut n).ok()?;
    Some(n)
}

fn mac(key: &hmac::Key, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

impl Auth {
    /// The transport's secret, derived from the cluster's `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Auth {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, key);
        let derived = mac(&outer, &[DERIVE]);
        Auth {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derived),
        }
    }

    /// What the dialer sends after its hello.
    pub fn dialer_proof(&self, dialer: &[u8], acceptor: &[u8], hello: &[u8]) -> [u8; TAG_LEN] {
        mac(&self.key, &[DIALER, dialer, acceptor, hello])
    }

    /// What the acceptor answers once the dialer's proof is right.
    pub fn acceptor_proof(&self, dialer: &[u8], acceptor: &[u8], hello: &[u8]) -> [u8; TAG_LEN] {
        mac(&self.key, &[ACCEPTOR, dialer, acceptor, hello])
    }

    /// The seals of a connection: (dialer to acceptor, acceptor to dialer).
    pub fn seals(&self, dialer: &[u8], acceptor: &[u8]) -> (Seal, Seal) {
        let seal = |label: &[u8]| Seal {
            key: hmac::Key::new(
                hmac::HMAC_SHA256,
                &mac(&self.key, &[label, dialer, acceptor]),
            ),
            seq: 0,
        };
        (seal(DIALER_TO_ACCEPTOR), seal(ACCEPTOR_TO_DIALER))
    }
}

/// Whether a received proof or tag equals the expected one (in constant time).
pub fn same(expected: &[u8; TAG_LEN], got: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(expected, got).is_ok()
}

impl Seal {
    /// The tag of the next frame sent.
    pub fn tag(&mut self, payload: &[u8]) -> [u8; TAG_LEN] {
        let t = mac(&self.key, &[&self.seq.to_le_bytes(), payload]);
        self.seq += 1;
        t
    }

    /// Checks the tag of the next frame received; false means the connection must close.
    pub fn check(&mut self, payload: &[u8], tag: &[u8]) -> bool {
        let ok = same(&mac(&self.key, &[&self.seq.to_le_bytes(), payload]), tag);
        self.seq += 1;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_need_the_same_key_and_the_same_nonces() {
        let a = Auth::new(&[7; KEY_LEN]);
        let b = Auth::new(&[7; KEY_LEN]);
        let other = Auth::new(&[8; KEY_LEN]);
        let (n1, n2) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(n1, n2);
        let p = a.dialer_proof(&n1, &n2, b"hello");
        assert!(same(&b.dialer_proof(&n1, &n2, b"hello"), &p));
        assert!(!same(&other.dialer_proof(&n1, &n2, b"hello"), &p));
        assert!(!same(&b.dialer_proof(&n2, &n1, b"hello"), &p));
        assert!(!same(&b.dialer_proof(&n1, &n2, b"hellp"), &p));
        // A dialer's proof is never an acceptor's.
        assert!(!same(&b.acceptor_proof(&n1, &n2, b"hello"), &p));
        assert!(!same(&p, &p[..31]));
    }

    #[test]
    fn a_frame_tag_fails_when_the_frame_is_changed_replayed_or_reversed() {
        let a = Auth::new(&[1; KEY_LEN]);
        let (n1, n2) = (nonce().unwrap(), nonce().unwrap());
        let (mut d2a, mut a2d) = a.seals(&n1, &n2);
        let (mut d2a_rx, mut a2d_rx) = a.seals(&n1, &n2);
        let t0 = d2a.tag(b"first");
        let t1 = d2a.tag(b"second");
        assert!(d2a_rx.check(b"first", &t0));
        // Replaying the first frame in the second's place fails.
        assert!(!d2a_rx.check(b"first", &t0));
        let (mut fresh, _) = a.seals(&n1, &n2);
        assert!(fresh.check(b"first", &t0));
        assert!(!fresh.check(b"secont", &t1));
        // The other direction has another key.
        let back = a2d.tag(b"first");
        assert_ne!(back, t0);
        assert!(a2d_rx.check(b"first", &back));
        // Another connection (other nonces) has other keys.
        let (mut other, _) = a.seals(&n2, &n1);
        assert!(!other.check(b"first", &t0));
    }
}
