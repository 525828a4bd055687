//! Sessions that belong to users: a user's sessions listed ("where am I logged in") and
//! revoked ("log out my other devices", "this account is disabled").

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Serialize, Serializer};

use crate::signing::constant_time_eq;
use crate::store::{storage_key, StoreError, UserSession, OWNER_KEY};
use crate::{Clock, KeyRing, Session, SessionError, SessionStore, SystemClock};

/// An opaque name for one of a user's sessions, as [`Accounts::sessions`] lists it: a
/// keyed hash of the session's storage key, so it is neither the session id nor its store
/// key, and only this key ring's holders can tie it to a session. Safe to show to the user
/// and to put in URLs; it changes when the current secret does.
///
/// ```
/// use sessio::Handle;
///
/// let handle: Handle = "AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
/// assert_eq!(handle.as_str(), "AAAAAAAAAAAAAAAAAAAAAA");
/// assert!("not a handle".parse::<Handle>().is_err());
/// ```
#[derive(Clone, Eq)]
pub struct Handle(String);

impl Handle {
    /// Bytes of the keyed hash a handle keeps.
    pub(crate) const TAG_LEN: usize = 16;
    /// Characters of a handle: the unpadded URL-safe base64 of [`Self::TAG_LEN`] bytes.
    const TEXT_LEN: usize = 22;

    pub(crate) fn from_tag(tag: &[u8]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(tag))
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Handle {
    /// Constant-time: a handle from a client is compared with the real ones.
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.0)
    }
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Why text is not a [`Handle`]: it is not 22 characters of URL-safe base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session handle")]
pub struct InvalidHandle;

impl FromStr for Handle {
    type Err = InvalidHandle;

    fn from_str(text: &str) -> Result<Self, InvalidHandle> {
        // The decoder refuses non-zero spare bits, so each handle has one spelling.
        let decodes = text.len() == Self::TEXT_LEN
            && URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|tag| tag.len() == Self::TAG_LEN);
        if decodes {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidHandle)
        }
    }
}

/// One of a user's live sessions, as [`Accounts::sessions`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Its handle, for [`Accounts::revoke`].
    pub handle: Handle,
    /// When it was created (a regenerate keeps it).
    pub created_at: SystemTime,
    /// When it was last written or touched.
    pub last_active: SystemTime,
    /// When it ends unless used again.
    pub expires_at: SystemTime,
    /// What the application recorded with [`Session::set_label`].
    pub labels: BTreeMap<String, String>,
}

/// Why an [`Accounts`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountsError {
    /// Listing the user's sessions failed; [`StoreError::Unsupported`] for a store without
    /// a per-user index.
    #[error("listing the user's sessions failed")]
    List(#[source] StoreError),
    /// Removing a session failed; those listed before it were removed.
    #[error("revoking a session failed")]
    Revoke(#[source] StoreError),
    /// The current session could not be read, or is not bound to a user.
    #[error("reading the current session failed")]
    Session(#[source] SessionError),
}

/// A user's sessions, listed and revoked through the store's per-user index.
///
/// A session belongs to a user once a handler called [`Session::set_user`]. A revoked
/// session is gone from the store at once: its next request, on any instance, has no
/// session, and its cookie is cleared.
///
/// ```
/// use sessio::{Accounts, KeyRing, MemoryStore, SessionLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = KeyRing::new(["an example secret that is long enough"])?;
/// let layer = SessionLayer::new(MemoryStore::new(), keys);
/// let accounts: Accounts = layer.accounts();
/// // The account was disabled: end every session it has.
/// let ended = accounts.revoke_all("alice").await?;
/// assert_eq!(ended, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn SessionStore>,
    keys: KeyRing,
    clock: Arc<dyn Clock>,
}

impl Accounts {
    /// The accounts of sessions in `store`, with handles made with `keys` (the session
    /// layer's: [`SessionLayer::accounts`](crate::SessionLayer::accounts) builds this
    /// from its own).
    pub fn new(store: impl SessionStore, keys: KeyRing) -> Self {
        Self::from_parts(Arc::new(store), keys, Arc::new(SystemClock))
    }

    pub(crate) fn from_parts(
        store: Arc<dyn SessionStore>,
        keys: KeyRing,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, keys, clock }
    }

    /// Uses `clock` for the current time instead of the system's.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    async fn listed(&self, user: &str) -> Result<Vec<UserSession>, AccountsError> {
        self.store
            .sessions_of(user, self.clock.now())
            .await
            .map_err(AccountsError::List)
    }

    /// The user's live sessions, the most recently active first.
    ///
    /// # Errors
    /// [`AccountsError::List`] if the store failed or has no per-user index.
    pub async fn sessions(&self, user: &str) -> Result<Vec<SessionInfo>, AccountsError> {
        let mut sessions: Vec<SessionInfo> = self
            .listed(user)
            .await?
            .into_iter()
            .map(|session| {
                let meta = session.record.meta;
                let labels = session
                    .record
                    .data
                    .get(OWNER_KEY)
                    .and_then(|owner| owner.get("labels"))
                    .and_then(|labels| labels.as_object())
                    .map(|labels| {
                        labels
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                SessionInfo {
                    handle: self.keys.handle(&session.key),
                    created_at: meta.created_at,
                    last_active: meta.last_active,
                    expires_at: meta.expires_at,
                    labels,
                }
            })
            .collect();
        sessions.sort_by_key(|session| std::cmp::Reverse(session.last_active));
        Ok(sessions)
    }

    /// Ends the user's session named `handle`; `false` if the user has no such session
    /// (the handle is another user's, or the session ended already).
    ///
    /// # Errors
    /// [`AccountsError::List`] or [`AccountsError::Revoke`] if the store failed.
    pub async fn revoke(&self, user: &str, handle: &Handle) -> Result<bool, AccountsError> {
        let listed = self.listed(user).await?;
        let Some(session) = listed
            .iter()
            .find(|session| self.keys.handle(&session.key) == *handle)
        else {
            return Ok(false);
        };
        self.delete(&session.key).await?;
        Ok(true)
    }

    /// Ends every session of the user and says how many there were.
    ///
    /// # Errors
    /// [`AccountsError::List`] or [`AccountsError::Revoke`] if the store failed.
    pub async fn revoke_all(&self, user: &str) -> Result<usize, AccountsError> {
        self.revoke_except(user, None).await
    }

    /// Ends every session of `current`'s user but `current` ("log out my other devices";
    /// after a password change, with [`Session::regenerate`] for the current one) and
    /// says how many there were.
    ///
    /// # Errors
    /// [`AccountsError::Session`] if `current` could not be read or is not bound to a user
    /// ([`SessionError::NotBound`]); [`AccountsError::List`] or [`AccountsError::Revoke`]
    /// if the store failed.
    pub async fn revoke_others(&self, current: &Session) -> Result<usize, AccountsError> {
        let user = current
            .user()
            .await
            .map_err(AccountsError::Session)?
            .ok_or(AccountsError::Session(SessionError::NotBound))?;
        let id = current.id().await.map_err(AccountsError::Session)?;
        let keep = id.map(|id| storage_key(&id));
        self.revoke_except(&user, keep.as_ref()).await
    }

    async fn revoke_except(
        &self,
        user: &str,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, AccountsError> {
        let mut revoked = 0;
        for session in self.listed(user).await? {
            if keep.is_some_and(|keep| constant_time_eq(keep, &session.key)) {
                continue;
            }
            self.delete(&session.key).await?;
            revoked += 1;
        }
        Ok(revoked)
    }

    async fn delete(&self, key: &[u8; 32]) -> Result<(), AccountsError> {
        self.store
            .delete_key(key)
            .await
            .map_err(AccountsError::Revoke)?;
        tracing::info!(
            target: "sessio::accounts",
            store = self.store.name(),
            "session revoked"
        );
        Ok(())
    }
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_keyed_and_canonical() {
        let keys = KeyRing::new(["a secret of at least thirty-two bytes!!"]).unwrap();
        let other = KeyRing::new(["another secret of thirty-two bytes!!!"]).unwrap();
        let key = [7; 32];
        let handle = keys.handle(&key);
        assert_eq!(handle.as_str().len(), Handle::TEXT_LEN);
        assert_eq!(handle.as_str().parse::<Handle>(), Ok(handle.clone()));
        assert_eq!(handle, keys.handle(&key));
        assert_ne!(handle, keys.handle(&[8; 32]));
        assert_ne!(handle, other.handle(&key), "a handle needs the secret");
        // The last character carries 2 spare bits: only the canonical spelling parses.
        for bad in [
            "",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAA+A",
        ] {
            assert_eq!(bad.parse::<Handle>(), Err(InvalidHandle), "{bad:?}");
        }
    }
}
