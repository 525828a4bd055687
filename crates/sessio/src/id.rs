//! Session ids and how they are generated.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::Rng as _;

/// An opaque session id, as carried (signed) in the session cookie.
///
/// Its `Debug` output never shows the id itself: a session id is a bearer credential and
/// must not end up in logs. Use [`SessionId::as_str`] where the raw value is really needed
/// (a store key, for example).
///
/// ```
/// use sessio::SessionId;
///
/// let id = SessionId::from("abc");
/// assert_eq!(id.as_str(), "abc");
/// assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
/// ```
#[derive(Clone)]
pub struct SessionId {
    raw: Arc<str>,
    /// Its storage key, computed once however many store calls a request makes (a clone
    /// takes it along once computed).
    storage_key: OnceLock<[u8; 32]>,
}

impl SessionId {
    /// The raw id. Treat it as a secret.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The SHA-256 of the id; see [`storage_key`](crate::store::storage_key).
    pub(crate) fn storage_key(&self) -> [u8; 32] {
        *self.storage_key.get_or_init(|| {
            use sha2::Digest as _;
            sha2::Sha256::digest(self.as_str().as_bytes()).into()
        })
    }
}

impl From<String> for SessionId {
    fn from(value: String) -> Self {
        Self::from(value.as_str())
    }
}

impl From<Box<str>> for SessionId {
    fn from(raw: Box<str>) -> Self {
        Self::from(&*raw)
    }
}

impl From<&str> for SessionId {
    fn from(value: &str) -> Self {
        Self {
            raw: Arc::from(value),
            storage_key: OnceLock::new(),
        }
    }
}

impl PartialEq for SessionId {
    // Ids are credentials: compare them without leaking where they differ.
    fn eq(&self, other: &Self) -> bool {
        crate::signing::constant_time_eq(self.as_str().as_bytes(), other.as_str().as_bytes())
    }
}

impl Eq for SessionId {}

impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// Makes new session ids.
///
/// The default, [`RandomIdGenerator`], draws 24 bytes from a CSPRNG seeded by the operating
/// system.
/// A custom generator must produce at least 128 bits of unpredictable data per id.
///
/// ```
/// use sessio::{IdGenerator, SessionId};
///
/// struct Prefixed;
///
/// impl IdGenerator for Prefixed {
///     fn generate(&self) -> SessionId {
///         let random = sessio::RandomIdGenerator::default().generate();
///         SessionId::from(format!("app1-{}", random.as_str()))
///     }
/// }
///
/// assert!(Prefixed.generate().as_str().starts_with("app1-"));
/// ```
pub trait IdGenerator: Send + Sync + 'static {
    /// Returns a new, unpredictable id.
    fn generate(&self) -> SessionId;
}

/// Random ids from a CSPRNG (a per-thread ChaCha12 seeded and regularly reseeded from the
/// operating system), base64url-encoded without padding.
///
/// The default length is 24 bytes (192 bits, 32 characters), the same as express-session.
///
/// ```
/// use sessio::{IdGenerator, RandomIdGenerator};
///
/// let id = RandomIdGenerator::default().generate();
/// assert_eq!(id.as_str().len(), 32);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RandomIdGenerator {
    bytes: usize,
}

impl RandomIdGenerator {
    /// The fewest random bytes an id may have: 128 bits.
    pub const MIN_BYTES: usize = 16;
    const MAX_BYTES: usize = 64;

    /// Ids of `bytes` random bytes, clamped to 16..=64.
    pub fn with_bytes(bytes: usize) -> Self {
        Self {
            bytes: bytes.clamp(Self::MIN_BYTES, Self::MAX_BYTES),
        }
    }
}

impl Default for RandomIdGenerator {
    fn default() -> Self {
        Self { bytes: 24 }
    }
}

impl IdGenerator for RandomIdGenerator {
    fn generate(&self) -> SessionId {
        let mut buf = [0u8; Self::MAX_BYTES];
        let buf = &mut buf[..self.bytes];
        // A ChaCha12 stream per thread, seeded (and reseeded every 64 KiB) from the OS
        // CSPRNG: as unpredictable as asking the OS each time, without a system call per
        // session. It panics only if the OS source fails, where no session could be safe.
        rand::rng().fill_bytes(buf);
        // 64 bytes take 86 characters.
        let mut text = [0u8; 88];
        let written = URL_SAFE_NO_PAD.encode_slice(buf, &mut text).unwrap_or(0);
        // Base64 is ASCII, so this always holds.
        SessionId::from(std::str::from_utf8(&text[..written]).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn default_ids_are_32_url_safe_chars() {
        let id = RandomIdGenerator::default().generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn ids_do_not_repeat() {
        let generator = RandomIdGenerator::default();
        let ids: HashSet<String> = (0..10_000)
            .map(|_| generator.generate().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn byte_count_is_clamped_to_at_least_128_bits() {
        let id = RandomIdGenerator::with_bytes(4).generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(id.as_str()).unwrap().len(), 16);
    }

    #[test]
    fn every_byte_count_encodes_whole() {
        for bytes in 0..=100 {
            let id = RandomIdGenerator::with_bytes(bytes).generate();
            let expected = bytes.clamp(16, 64);
            assert_eq!(URL_SAFE_NO_PAD.decode(id.as_str()).unwrap().len(), expected);
        }
    }

    #[test]
    fn debug_never_shows_the_id() {
        let id = RandomIdGenerator::default().generate();
        assert!(!format!("{id:?}").contains(id.as_str()));
    }
}
