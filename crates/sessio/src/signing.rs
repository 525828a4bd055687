//! Signing session ids into cookie values, byte for byte as express-session does.
//!
//! A cookie value is `s:` + id + `.` + MAC, where MAC is the unpadded standard base64 of
//! HMAC-SHA256(secret, id). The value is then percent-encoded (see [`crate::cookie`]).

use std::fmt;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::SessionId;

type HmacSha256 = Hmac<Sha256>;

/// Length of the base64 text of an HMAC-SHA256 tag without padding.
const MAC_LEN: usize = 43;

/// The secrets that sign and verify session cookies.
///
/// The first secret signs; every secret verifies, so a secret can be rotated without
/// logging anyone out: put the new one first and keep the old ones until their cookies
/// have expired. A cookie that verified with an older secret is re-issued signed with the
/// current one the next time its session is used.
///
/// Each secret must be at least [`KeyRing::MIN_SECRET_LEN`] bytes; generate them randomly
/// (for example `openssl rand -base64 48`). `Debug` output never shows them.
///
/// ```
/// use sessio::KeyRing;
///
/// let keys = KeyRing::new(["a new secret of at least thirty-two bytes", "the old secret, still accepted for a while"])?;
/// assert_eq!(keys.len(), 2);
///
/// let err = KeyRing::new(["short"]).unwrap_err();
/// assert_eq!(err.to_string(), "secret #1 is 5 bytes long; session secrets need at least 32 bytes");
/// # Ok::<(), sessio::SecretError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<HmacSha256>,
}

/// Why a [`KeyRing`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// No secret was given.
    #[error("no session secret given; at least one is required")]
    Empty,
    /// A secret is too short to resist guessing.
    #[error("secret #{position} is {len} bytes long; session secrets need at least {min} bytes", min = KeyRing::MIN_SECRET_LEN)]
    TooShort {
        /// 1-based position of the secret in the list.
        position: usize,
        /// Its length in bytes.
        len: usize,
    },
}

/// A cookie value whose signature checked out.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) id: SessionId,
    /// Signed with a secret other than the current one: re-issue the cookie.
    pub(crate) rotated: bool,
}

impl KeyRing {
    /// The shortest secret accepted, in bytes.
    pub const MIN_SECRET_LEN: usize = 32;

    /// A key ring from secrets, current first.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut keys = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.len() < Self::MIN_SECRET_LEN {
                return Err(SecretError::TooShort {
                    position: index + 1,
                    len: secret.len(),
                });
            }
            keys.push(hmac_key(secret));
        }
        if keys.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { keys })
    }

    /// A key ring that skips the length check. Only for reproducing other
    /// implementations' test vectors.
    #[cfg(test)]
    pub(crate) fn new_unchecked(secrets: &[&str]) -> Self {
        Self {
            keys: secrets.iter().map(|s| hmac_key(s.as_bytes())).collect(),
        }
    }

    /// How many secrets the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a key ring holds at least one secret.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The signed cookie value for `id`: `s:<id>.<mac>`, signed with the current secret,
    /// before percent-encoding (express-session's format).
    ///
    /// ```
    /// use sessio::{KeyRing, SessionId};
    ///
    /// let keys = KeyRing::new(["a secret of at least thirty-two bytes"])?;
    /// let id = SessionId::from("abc");
    /// let signed = keys.sign(&id);
    /// assert!(signed.starts_with("s:abc."));
    /// assert_eq!(keys.verify(&signed), Some(id));
    /// assert_eq!(keys.verify("s:abc.forged"), None);
    /// # Ok::<(), sessio::SecretError>(())
    /// ```
    pub fn sign(&self, id: &SessionId) -> String {
        self.signed(id, |parts| parts.concat())
    }

    /// Hands `use_signed` what [`sign`](Self::sign) returns, in the pieces it joins
    /// (`"s:"`, the id, `"."`, the signature), without allocating.
    pub(crate) fn signed<R>(&self, id: &SessionId, use_signed: impl FnOnce(&[&str]) -> R) -> R {
        let id = id.as_str();
        let mut text = [0u8; MAC_LEN + 1];
        // Base64 is ASCII, so this always holds.
        let signature = std::str::from_utf8(mac_text(mac(&self.keys[0], id), &mut text));
        use_signed(&["s:", id, ".", signature.unwrap_or_default()])
    }

    /// The id in a signed value (as [`sign`](Self::sign) makes it), if any of the secrets
    /// signed it; `None` for anything unsigned or forged. Comparison is constant-time.
    pub fn verify(&self, value: &str) -> Option<SessionId> {
        self.check(value).map(|verified| verified.id)
    }

    /// [`verify`](Self::verify), also telling whether an older secret signed it.
    pub(crate) fn check(&self, value: &str) -> Option<Verified> {
        let signed = value.strip_prefix("s:")?;
        // The MAC is the last 43 bytes, after a dot: base64 has no dot, so this is where
        // the last dot of any well-formed value is.
        let dot = signed.len().checked_sub(MAC_LEN + 1)?;
        if signed.as_bytes()[dot] != b'.' {
            return None;
        }
        let (id, given) = (&signed[..dot], &signed.as_bytes()[dot + 1..]);
        let mut expected = [0u8; MAC_LEN + 1];
        // Try every secret even after a match, so timing does not tell which one signed.
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            if constant_time_eq(mac_text(mac(key, id), &mut expected), given) && matched.is_none() {
                matched = Some(index);
            }
        }
        matched.map(|index| Verified {
            id: SessionId::from(id),
            rotated: index != 0,
        })
    }
}

/// Whether `a == b`, in time that depends on their lengths only: the differences are
/// OR-ed together without branching, and only the result goes through `subtle`'s
/// optimization barrier (one barrier, where comparing slices with `subtle` takes one per
/// byte).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    difference.ct_eq(&0).into()
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("secrets", &format_args!("<{} redacted>", self.keys.len()))
            .finish()
    }
}

impl KeyRing {
    /// The [`Handle`](crate::Handle) of the session stored under `key`: a keyed hash, so
    /// that only holders of the current secret can tie a handle to a session.
    pub(crate) fn handle(&self, key: &[u8; 32]) -> crate::Handle {
        let mut mac = self.keys[0].clone();
        // No cookie id holds a NUL byte: this input never equals one that is signed.
        mac.update(b"\0sessio handle\0");
        mac.update(key);
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        crate::Handle::from_tag(&tag[..crate::Handle::TAG_LEN])
    }
}

fn hmac_key(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// The unpadded standard base64 of a MAC, written into `buf` (43 bytes; the buffer has
/// room for the 44 that base64's encoder asks for).
fn mac_text(tag: [u8; 32], buf: &mut [u8; MAC_LEN + 1]) -> &[u8] {
    // Cannot fail: 32 bytes take 43 characters.
    let written = STANDARD_NO_PAD.encode_slice(tag, buf).unwrap_or(0);
    &buf[..written]
}

fn mac(key: &HmacSha256, id: &str) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(id.as_bytes());
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET_A: &str = "0123456789abcdef0123456789abcdef-a";
    const SECRET_B: &str = "0123456789abcdef0123456789abcdef-b";

    #[test]
    fn express_golden_vectors() {
        // From express-session 1.19 / cookie-signature with secret "keyboard cat",
        // before percent-encoding.
        let keys = KeyRing::new_unchecked(&["keyboard cat"]);
        for (id, value) in [
            (
                "apple",
                "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
            ),
            ("%", "s:%.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa/OTZ01g"),
            ("/foo", "s:/foo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj/MQ"),
        ] {
            assert_eq!(keys.sign(&SessionId::from(id)), value);
            let verified = keys.check(value).expect("golden vector verifies");
            assert_eq!(verified.id.as_str(), id);
            assert!(!verified.rotated);
        }
    }

    #[test]
    fn express_golden_vectors_as_sent_in_set_cookie() {
        // The reference table's values, percent-encoded exactly as express-session sends
        // them, and read back through the Cookie header parser.
        let keys = KeyRing::new_unchecked(&["keyboard cat"]);
        for (id, sent) in [
            (
                "apple",
                "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU",
            ),
            ("%", "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"),
            (
                "/foo",
                "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ",
            ),
        ] {
            assert_eq!(
                crate::cookie::encode_value(&keys.sign(&SessionId::from(id))),
                sent
            );
            let header = format!("connect.sid={sent}");
            let mut verified = None;
            crate::cookie::for_each_cookie([header.as_bytes()], "connect.sid", |value| {
                verified = keys.check(value);
            });
            let verified = verified.unwrap();
            assert_eq!(verified.id.as_str(), id);
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            KeyRing::new([SECRET_A, "too short"]).unwrap_err(),
            SecretError::TooShort {
                position: 2,
                len: 9
            }
        );
        assert_eq!(
            KeyRing::new(Vec::<String>::new()).unwrap_err(),
            SecretError::Empty
        );
    }

    #[test]
    fn rotation_signs_with_first_and_accepts_all() {
        let old = KeyRing::new([SECRET_B]).unwrap();
        let rotated = KeyRing::new([SECRET_A, SECRET_B]).unwrap();
        let id = SessionId::from("some-id");
        let old_cookie = old.sign(&id);
        let verified = rotated.check(&old_cookie).unwrap();
        assert_eq!(verified.id, id);
        assert!(verified.rotated);
        assert_ne!(rotated.sign(&id), old_cookie);
        assert!(!rotated.check(&rotated.sign(&id)).unwrap().rotated);
        // Dropping the old secret ends its cookies.
        assert!(KeyRing::new([SECRET_A])
            .unwrap()
            .check(&old_cookie)
            .is_none());
    }

    #[test]
    fn unsigned_and_malformed_values_are_refused() {
        let keys = KeyRing::new([SECRET_A]).unwrap();
        for value in [
            "",
            "s:",
            "s:.",
            "abc",
            "some-id",
            "s:some-id",
            "s:some-id.",
            "S:some-id.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
        ] {
            assert!(keys.check(value).is_none(), "{value:?} must not verify");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let keys = KeyRing::new([SECRET_A]).unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains(SECRET_A));
        assert!(debug.contains("redacted"));
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(id in "\\PC{0,64}") {
            let keys = KeyRing::new([SECRET_A, SECRET_B]).unwrap();
            let id = SessionId::from(id);
            let verified = keys.check(&keys.sign(&id)).unwrap();
            prop_assert_eq!(verified.id, id);
        }

        #[test]
        fn any_single_byte_change_is_refused(id in "[A-Za-z0-9_-]{1,40}", pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let keys = KeyRing::new([SECRET_A]).unwrap();
            let signed = keys.sign(&SessionId::from(id));
            let mut bytes = signed.clone().into_bytes();
            let at = pos.index(bytes.len());
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            if let Ok(tampered) = String::from_utf8(bytes) {
                prop_assert!(keys.check(&tampered).is_none());
            }
        }

        #[test]
        fn arbitrary_values_never_panic(value in any::<String>(), tail in "\\PC{0,50}") {
            let keys = KeyRing::new([SECRET_A]).unwrap();
            prop_assert!(keys.check(&value).is_none());
            // Shaped like a signed value, multi-byte characters around where the dot goes.
            let shaped = format!("s:{value}.{tail}");
            prop_assert!(keys.check(&shaped).is_none());
        }

        #[test]
        fn constant_time_eq_is_equality(a in prop::collection::vec(any::<u8>(), 0..48), b in prop::collection::vec(any::<u8>(), 0..48), flip in any::<prop::sample::Index>()) {
            prop_assert_eq!(constant_time_eq(&a, &b), a == b);
            prop_assert!(constant_time_eq(&a, &a));
            if !a.is_empty() {
                let mut c = a.clone();
                c[flip.index(a.len())] ^= 1;
                prop_assert!(!constant_time_eq(&a, &c));
            }
        }
    }
}
