//! Where a regenerated session went: a short-lived marker left under a name derived from
//! the old id, so that requests still in flight on the old id neither lose their writes
//! nor log the browser out.
//!
//! The marker holds the new id sealed with a key only the old id's holder can derive: a
//! dump of the store (which files records under the SHA-256 of their names) yields
//! neither id. It is read only by code that already holds the old id, and only to forward
//! the writes of a request that loaded the session before it moved, or to follow a
//! logout; a request that arrives with the old id afterwards is never handed the new
//! session (that would undo the protection against session fixation).

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::store::{Data, Meta, Record};
use crate::{Expiry, SessionId};

/// How long the old id points to the new one: long enough for the requests a page had in
/// flight when its login response left.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// The key under which the marker keeps the sealed new id.
const SEALED_KEY: &str = "moved_to";

/// The name the marker of `old` is filed under. `~` is in no base64url id, so it names no
/// session that a generated id could.
pub(crate) fn marker_id(old: &SessionId) -> SessionId {
    SessionId::from(format!("{}~moved", old.as_str()))
}

/// The marker record saying that `old` moved to `new` at `now`.
pub(crate) fn marker(old: &SessionId, new: &SessionId, now: SystemTime) -> Record {
    let mut data = Data::new();
    let sealed = URL_SAFE_NO_PAD.encode(xor_stream(old, new.as_str().as_bytes()));
    data.insert(SEALED_KEY.to_owned(), Value::String(sealed));
    let expiry = Expiry::new(GRACE, GRACE);
    Record {
        data,
        meta: Meta {
            created_at: now,
            last_active: now,
            expires_at: expiry.deadline(now, now),
            expiry: Some(expiry),
        },
    }
}

/// The new id a marker of `old` points to; `None` for a record that is not one.
pub(crate) fn target(old: &SessionId, marker: &Record) -> Option<SessionId> {
    let sealed = marker.data.get(SEALED_KEY)?.as_str()?;
    let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let new = String::from_utf8(xor_stream(old, &sealed)).ok()?;
    Some(SessionId::from(new))
}

/// `bytes` XOR-ed with a keystream of HMAC-SHA256 blocks keyed by the old id.
fn xor_stream(old: &SessionId, bytes: &[u8]) -> Vec<u8> {
    let key = Hmac::<Sha256>::new_from_slice(old.as_str().as_bytes())
        .expect("HMAC accepts keys of any length");
    bytes
        .chunks(32)
        .zip(0u64..)
        .flat_map(|(chunk, block)| {
            let mut mac = key.clone();
            mac.update(b"sessio moved session");
            mac.update(&block.to_be_bytes());
            let stream: [u8; 32] = mac.finalize().into_bytes().into();
            chunk
                .iter()
                .zip(stream)
                .map(|(byte, key)| byte ^ key)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn only_the_old_id_opens_the_marker(old in "[A-Za-z0-9_-]{1,64}", other in "[A-Za-z0-9_-]{1,64}", new in "[A-Za-z0-9_-]{8,100}") {
            let (old, new) = (SessionId::from(old), SessionId::from(new));
            let record = marker(&old, &new, SystemTime::UNIX_EPOCH);
            prop_assert_eq!(target(&old, &record), Some(new.clone()));
            let sealed = URL_SAFE_NO_PAD.decode(record.data[SEALED_KEY].as_str().unwrap()).unwrap();
            prop_assert_ne!(&sealed[..], new.as_str().as_bytes(), "the new id is not kept in the clear");
            let other = SessionId::from(other);
            if other != old {
                prop_assert_ne!(target(&other, &record), Some(new));
            }
        }
    }

    #[test]
    fn the_marker_ends_after_the_grace_window_and_names_no_session() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let old = SessionId::from("old");
        let record = marker(&old, &SessionId::from("new"), now);
        assert_eq!(record.meta.expires_at, now + GRACE);
        assert_eq!(marker_id(&old).as_str(), "old~moved");
        assert_eq!(
            target(
                &old,
                &Record {
                    data: Data::new(),
                    ..record
                }
            ),
            None
        );
    }
}
