//! The gossip encryption keys, as Consul's `-encrypt` and `consul keyring`: 32-byte keys in
//! base64; the primary seals, every installed key is tried to open.

use std::fmt;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::CryptoRng;

/// Bytes in a key.
pub const KEY_LEN: usize = 32;
/// Most keys a keyring holds (a rotation needs two; the bound keeps a packet's worst-case
/// opening cost small).
pub const MAX_KEYS: usize = 16;
/// Bytes the AEAD tag adds to a sealed packet.
pub const TAG_LEN: usize = 16;

/// Why a key or keyring operation was refused. The keyring is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("encryption key is not valid base64 (make one with `outpost keygen`)")]
    Base64,
    /// Base64, but not 32 bytes.
    #[error(
        "encryption key must be {KEY_LEN} bytes in base64 (make one with `outpost keygen`), \
         got {0} bytes"
    )]
    Length(usize),
    /// `use` or an operation that needs an installed key, with a key that is not installed.
    #[error("key {0} is not installed; install it first")]
    NotInstalled(String),
    /// `remove` of the key that seals.
    #[error("key {0} is the primary key; make another key primary before removing it")]
    RemovePrimary(String),
    /// `install` past [`MAX_KEYS`].
    #[error("the keyring already holds {MAX_KEYS} keys; remove one first")]
    Full,
    /// The operating system gave no random bytes.
    #[error("the system random number generator failed")]
    Rng,
}

/// One key: its bytes and the AEAD key made from them.
struct Key {
    bytes: [u8; KEY_LEN],
    aead: LessSafeKey,
}

impl Key {
    fn new(bytes: [u8; KEY_LEN]) -> Key {
        // A 32-byte key is always valid for ChaCha20-Poly1305.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes any {KEY_LEN}-byte key"));
        Key {
            bytes,
            aead: LessSafeKey::new(unbound),
        }
    }

    fn encoded(&self) -> String {
        BASE64.encode(self.bytes)
    }
}

/// The installed keys; the first is the primary. Never empty: a cluster without encryption
/// has no keyring at all.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    /// Shows how many keys, never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

/// Decodes a base64 key as `-encrypt` takes it.
pub fn parse_key(encoded: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let bytes = BASE64
        .decode(encoded.trim())
        .map_err(|_| KeyError::Base64)?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

/// A new key in base64, from `rng` (the simulator passes a seeded one).
pub fn keygen(rng: &mut impl CryptoRng) -> String {
    let mut bytes = [0u8; KEY_LEN];
    rng.fill_bytes(&mut bytes);
    BASE64.encode(bytes)
}

/// A new key in base64 from the operating system's random number generator, as
/// `consul keygen` prints.
pub fn keygen_os() -> Result<String, KeyError> {
    let mut bytes = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Rng)?;
    Ok(BASE64.encode(bytes))
}

impl Keyring {
    /// A keyring whose only (and primary) key is `primary`, in base64.
    pub fn new(primary: &str) -> Result<Keyring, KeyError> {
        Ok(Keyring {
            keys: vec![Key::new(parse_key(primary)?)],
        })
    }

    /// Adds `key`; installing a key already there changes nothing.
    pub fn install(&mut self, key: &str) -> Result<(), KeyError> {
        let bytes = parse_key(key)?;
        if self.position(&bytes).is_some() {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyError::Full);
        }
        self.keys.push(Key::new(bytes));
        Ok(())
    }

    /// Makes the installed `key` the primary: packets are sealed with it from now on.
    pub fn use_key(&mut self, key: &str) -> Result<(), KeyError> {
        let bytes = parse_key(key)?;
        let i = self
            .position(&bytes)
            .ok_or_else(|| KeyError::NotInstalled(BASE64.encode(bytes)))?;
        let k = self.keys.remove(i);
        self.keys.insert(0, k);
        Ok(())
    }

    /// Removes `key`; removing a key that is not installed changes nothing (as Consul), the
    /// primary cannot be removed.
    pub fn remove(&mut self, key: &str) -> Result<(), KeyError> {
        let bytes = parse_key(key)?;
        match self.position(&bytes) {
            Some(0) => Err(KeyError::RemovePrimary(BASE64.encode(bytes))),
            Some(i) => {
                self.keys.remove(i);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The installed keys in base64, the primary first.
    pub fn list(&self) -> Vec<String> {
        self.keys.iter().map(Key::encoded).collect()
    }

    /// The installed keys' bytes, the primary first.
    pub(crate) fn raw(&self) -> Vec<[u8; KEY_LEN]> {
        self.keys.iter().map(|k| k.bytes).collect()
    }

    /// The primary key in base64.
    pub fn primary(&self) -> String {
        self.keys[0].encoded()
    }

    fn position(&self, bytes: &[u8; KEY_LEN]) -> Option<usize> {
        self.keys.iter().position(|k| &k.bytes == bytes)
    }

    /// Seals `in_out` in place with the primary key, appending the tag.
    pub(crate) fn seal(&self, nonce: [u8; NONCE_LEN], aad: &[u8], in_out: &mut Vec<u8>) -> bool {
        self.keys[0]
            .aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .is_ok()
    }

    /// Opens `sealed` (ciphertext and tag) with each key in turn, the primary first, into
    /// `out`; true when one key opened it.
    pub(crate) fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        for key in &self.keys {
            out.clear();
            out.extend_from_slice(sealed);
            let opened = key.aead.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                out.as_mut_slice(),
            );
            if let Ok(plain) = opened {
                let len = plain.len();
                out.truncate(len);
                return true;
            }
        }
        out.clear();
        false
    }
}
