//! The session handle a request works with, and what happens to it when the request ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::lock::{Mutex, MutexGuard};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::policy::{
    Compatibility, CookieRefresh, NewSessions, OnServerError, Settings, UnchangedSessions,
};
use crate::signing::Verified;
use crate::store::{Changes, CreateOutcome, Data, Meta, Record, WriteOutcome};
use crate::{CookieLifetime, Expiry, SessionError, SessionId};

/// Ids tried before giving up on finding an unused one.
const CREATE_ATTEMPTS: u32 = 3;

/// The current request's session.
///
/// The session is loaded from the store on first use, so a request that never uses it
/// costs nothing. Changes are tracked per key and written when the response is ready,
/// before it leaves: only the keys this request set or removed are written, so concurrent
/// requests changing different keys all keep their changes.
///
/// Clones share the same session.
///
/// ```
/// use axum::{routing::get, Router};
/// use sessio::{KeyRing, MemoryStore, Session, SessionError, SessionLayer};
///
/// async fn visits(session: Session) -> Result<String, SessionError> {
///     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
///     session.insert("visits", n).await?;
///     Ok(format!("visit number {n}"))
/// }
///
/// # fn main() -> Result<(), sessio::SecretError> {
/// let keys = KeyRing::new(["an example secret that is long enough"])?;
/// let app: Router = Router::new()
///     .route("/", get(visits))
///     .layer(SessionLayer::new(MemoryStore::new(), keys));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    /// The request's cookie, if its signature checked out.
    cookie: Option<Verified>,
    /// Set by every method, so that an unused session is finished without locking.
    used: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// The stored session's id, or `None` for one not stored yet.
    id: Option<SessionId>,
    /// The data as this request sees it: stored data with local changes applied.
    data: Data,
    /// Changes not yet written.
    changes: Changes,
    /// The stored session's meta (`None` until stored).
    meta: Option<Meta>,
    /// This session's own expiry, if set.
    expiry: Option<Expiry>,
    expiry_changed: bool,
    touch_requested: bool,
    /// The stored expiry moved during this request.
    expiry_moved: bool,
    /// The handler gave the session its own expiry during this request.
    expiry_set: bool,
    /// The session got a new id (created or regenerated) during this request.
    id_changed: bool,
    /// The browser's cookie refers to a session that no longer exists.
    cookie_dead: bool,
}

impl Session {
    pub(crate) fn new(settings: Arc<Settings>, cookie: Option<Verified>) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                cookie,
                used: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Refuses keys the wire format keeps for itself.
    fn check_key(&self, key: &str) -> Result<(), SessionError> {
        let reserved = self.settings().compatibility == Compatibility::ExpressSession
            && key == crate::express::COOKIE_KEY;
        if reserved {
            return Err(SessionError::ReservedKey {
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    /// Locks the state. An asynchronous lock, as store calls are made holding it; taking
    /// and releasing it uncontended (one handler, one call at a time) is one atomic
    /// operation each.
    async fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().await
    }

    /// Locks the state, loading the session from the store on first use.
    async fn state(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        self.inner.used.store(true, Ordering::Relaxed);
        let mut state = self.lock().await;
        if !state.loaded {
            if let Some(cookie) = &self.inner.cookie {
                let id = cookie.id.clone();
                self.load_into(&mut state, id).await?;
            }
            state.loaded = true;
        }
        Ok(state)
    }

    /// Replaces the state with the stored session `id`, or a new session if it is gone.
    async fn load_into(&self, state: &mut State, id: SessionId) -> Result<(), SessionError> {
        let settings = self.settings();
        let now = settings.clock.now();
        let record = settings
            .store
            .load(&id, now)
            .await
            .map_err(SessionError::Load)?;
        let record = record.filter(|record| {
            // Expiry is decided here from our own timestamps, whatever the store kept.
            let expiry = record.meta.expiry.unwrap_or(settings.expiry);
            expiry.deadline(record.meta.created_at, record.meta.last_active) > now
        });
        let keep = State {
            loaded: true,
            expiry_moved: state.expiry_moved,
            expiry_set: state.expiry_set,
            id_changed: state.id_changed,
            cookie_dead: state.cookie_dead,
            ..State::default()
        };
        *state = match record {
            Some(record) => State {
                id: Some(id),
                data: record.data,
                meta: Some(record.meta),
                expiry: record.meta.expiry,
                ..keep
            },
            None => keep,
        };
        Ok(())
    }

    /// The value under `key`, if there is one.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed, [`SessionError::Deserialize`] if the value
    /// is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.state().await?;
        state
            .data
            .get(key)
            .map(|value| T::deserialize(value).map_err(|source| deserialize_error(key, source)))
            .transpose()
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed, [`SessionError::Serialize`] if the value
    /// cannot be turned into JSON.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        self.check_key(key)?;
        let value = serde_json::to_value(value).map_err(|source| SessionError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        let mut state = self.state().await?;
        let state = &mut *state;
        // One lookup; the key is copied only when it is new.
        match state.data.get_mut(key) {
            Some(stored) if *stored == value => return Ok(()),
            Some(stored) => *stored = value.clone(),
            None => {
                state.data.insert(key.to_owned(), value.clone());
            }
        }
        state.changes.set(key, value);
        Ok(())
    }

    /// Removes `key` and returns its value.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed, [`SessionError::Deserialize`] if the value
    /// is not a `T` (the key is then kept; remove it as a `serde_json::Value`).
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.check_key(key)?;
        let mut state = self.state().await?;
        let Some(value) = state.data.get(key) else {
            return Ok(None);
        };
        let value = T::deserialize(value).map_err(|source| deserialize_error(key, source))?;
        state.data.remove(key);
        state.changes.remove(key);
        Ok(Some(value))
    }

    /// Removes every key.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        state.data.clear();
        state.changes.clear();
        Ok(())
    }

    /// The session's id, once it is stored: `None` for a new session until the response
    /// (or [`save`](Self::save)) stores it. Treat it as a secret.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn id(&self) -> Result<Option<SessionId>, SessionError> {
        Ok(self.state().await?.id.clone())
    }

    /// When the session ends unless used again; `None` for a session not stored yet.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn expires_at(&self) -> Result<Option<SystemTime>, SessionError> {
        Ok(self.state().await?.meta.map(|meta| meta.expires_at))
    }

    /// Gives this session its own idle timeout and absolute lifetime ("remember me"),
    /// counted from its creation and last use.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn set_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        state.expiry = Some(expiry);
        state.expiry_changed = true;
        state.expiry_set = true;
        Ok(())
    }

    /// Moves the session to a new id, keeping its data (call [`clear`](Self::clear) first
    /// to drop it). Do this when the user logs in, against session fixation.
    ///
    /// The new session is stored before the old one is deleted, so a failure never loses
    /// the session.
    ///
    /// # Errors
    /// [`SessionError::Regenerate`] if the store failed: if creating the new session failed,
    /// nothing changed; if deleting the old one failed, the session moved but the old id
    /// still works until it expires.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        let Some(old) = state.id.clone() else {
            // Not stored yet: it gets a fresh id when it is.
            return Ok(());
        };
        let now = self.settings().clock.now();
        self.create(&mut state, now)
            .await
            .map_err(|error| match error {
                SessionError::Save(error) => SessionError::Regenerate(error),
                other => other,
            })?;
        self.settings()
            .store
            .delete(&old)
            .await
            .map_err(SessionError::Regenerate)
    }

    /// Ends the session: it is removed from the store and the browser is told to drop the
    /// cookie. Values inserted afterwards start a new session.
    ///
    /// # Errors
    /// [`SessionError::Destroy`] if the store failed; the session then still exists.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        self.inner.used.store(true, Ordering::Relaxed);
        let mut state = self.lock().await;
        let id = match (&state.id, state.loaded, &self.inner.cookie) {
            (Some(id), _, _) => Some(id.clone()),
            (None, false, Some(cookie)) => Some(cookie.id.clone()),
            _ => None,
        };
        if let Some(id) = &id {
            self.settings()
                .store
                .delete(id)
                .await
                .map_err(SessionError::Destroy)?;
        }
        let had_cookie = id.is_some() || state.id_changed || self.inner.cookie.is_some();
        *state = State {
            loaded: true,
            cookie_dead: had_cookie,
            ..State::default()
        };
        Ok(())
    }

    /// Reads the session from the store again, dropping changes not yet saved.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn reload(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        match state.id.clone() {
            Some(id) => self.load_into(&mut state, id).await,
            None => {
                state.data.clear();
                state.changes = Changes::default();
                Ok(())
            }
        }
    }

    /// Writes the session to the store now rather than when the response is ready; a new
    /// session is stored even if empty.
    ///
    /// # Errors
    /// [`SessionError::Save`] if the store failed.
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut state = self.state().await?;
        let now = self.settings().clock.now();
        if state.id.is_none() {
            return self.create(&mut state, now).await;
        }
        state.touch_requested = true;
        match self.due_write(&state, now) {
            Some(due) => self.write(&mut state, now, due).await,
            None => Ok(()),
        }
    }

    /// Extends the session's expiry when the response is ready, even if it was extended
    /// less than a touch interval ago.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn touch(&self) -> Result<(), SessionError> {
        self.state().await?.touch_requested = true;
        Ok(())
    }

    fn meta(&self, state: &State, now: SystemTime) -> Meta {
        let expiry = state.expiry.unwrap_or(self.settings().expiry);
        let created_at = state.meta.map_or(now, |meta| meta.created_at);
        Meta {
            created_at,
            last_active: now,
            expires_at: expiry.deadline(created_at, now),
            expiry: state.expiry,
        }
    }

    /// Stores the current data under a fresh id; the state then refers to it.
    async fn create(&self, state: &mut State, now: SystemTime) -> Result<(), SessionError> {
        let settings = self.settings();
        // A new id starts a new lifetime.
        let meta = Meta {
            created_at: now,
            last_active: now,
            expires_at: state.expiry.unwrap_or(settings.expiry).deadline(now, now),
            expiry: state.expiry,
        };
        // Lent to the record rather than cloned; it comes back whatever happens.
        let record = Record {
            data: std::mem::take(&mut state.data),
            meta,
        };
        let outcome = self.create_record(&record).await;
        state.data = record.data;
        let id = outcome?;
        state.id = Some(id);
        state.meta = Some(meta);
        state.changes = Changes::default();
        state.expiry_changed = false;
        state.touch_requested = false;
        state.id_changed = true;
        state.expiry_moved = true;
        state.cookie_dead = false;
        Ok(())
    }

    /// Stores `record` under a fresh id and returns the id.
    async fn create_record(&self, record: &Record) -> Result<SessionId, SessionError> {
        let settings = self.settings();
        for _ in 0..CREATE_ATTEMPTS {
            let id = settings.ids.generate();
            match settings.store.create(&id, record).await {
                Ok(CreateOutcome::Created) => return Ok(id),
                Ok(_) => continue,
                Err(error) => return Err(SessionError::Save(error)),
            }
        }
        Err(SessionError::IdExhausted {
            attempts: CREATE_ATTEMPTS,
        })
    }

    /// What writing the stored session now would do: `None` when nothing is due.
    fn due_write(&self, state: &State, now: SystemTime) -> Option<DueWrite> {
        let settings = self.settings();
        let stored = state.meta?;
        state.id.as_ref()?;
        if !state.changes.is_empty()
            || state.expiry_changed
            || settings.unchanged == UnchangedSessions::Resave
        {
            return Some(DueWrite::Update);
        }
        let expiry = state.expiry.unwrap_or(settings.expiry);
        let touch_due = state.touch_requested
            || now
                .duration_since(stored.last_active)
                .is_ok_and(|idle| idle >= settings.touch_interval(&expiry));
        touch_due.then_some(DueWrite::Touch)
    }

    /// Writes pending changes of a stored session, or touches it: `due`, as
    /// [`due_write`](Self::due_write) found.
    async fn write(
        &self,
        state: &mut State,
        now: SystemTime,
        due: DueWrite,
    ) -> Result<(), SessionError> {
        let settings = self.settings();
        let Some(id) = state.id.clone() else {
            return Ok(());
        };
        if settings.unchanged == UnchangedSessions::Resave && state.changes.is_empty() {
            state.changes.clear();
            for (key, value) in &state.data {
                state.changes.set(key.clone(), value.clone());
            }
        }
        let meta = self.meta(state, now);
        let outcome = match due {
            DueWrite::Update => settings.store.update(&id, &state.changes, &meta).await,
            DueWrite::Touch => settings.store.touch(&id, &meta).await,
        };
        match outcome.map_err(SessionError::Save)? {
            WriteOutcome::Applied => {
                state.meta = Some(meta);
                state.changes = Changes::default();
                state.expiry_changed = false;
                state.touch_requested = false;
                state.expiry_moved = true;
            }
            _ => {
                // Destroyed or regenerated elsewhere meanwhile: never bring it back.
                tracing::debug!("session ended by another request; changes dropped");
                *state = State {
                    loaded: true,
                    cookie_dead: true,
                    ..State::default()
                };
            }
        }
        Ok(())
    }

    /// Whether the handler called any method: an unused session has nothing to finish.
    pub(crate) fn is_used(&self) -> bool {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Writes what the request left pending and gives the `Set-Cookie` value to send, if
    /// any. Runs once, when the inner service has produced its response.
    ///
    /// When there is nothing to write (a session only read, say) it finishes at once,
    /// without an asynchronous step to allocate and poll.
    pub(crate) fn finish(self, server_error: bool, https: bool) -> Finish {
        let now = self.settings().clock.now();
        if let Some(mut state) = self.inner.state.try_lock() {
            if let Ending::Respond = self.prepare_end(&mut state, server_error, https, now) {
                return Finish::Done(Ok(self.cookie_to_send(&state, https, now)));
            }
        }
        Finish::Pending(Box::pin(async move {
            let mut state = self.lock().await;
            // Prepared (again): another task may have used the session meanwhile.
            match self.prepare_end(&mut state, server_error, https, now) {
                Ending::Respond => {}
                Ending::Create => self.create(&mut state, now).await?,
                Ending::Write(due) => self.write(&mut state, now, due).await?,
            }
            Ok(self.cookie_to_send(&state, https, now))
        }))
    }

    /// Prepares the state for the end of the request (dropping its changes if the handler
    /// failed and the policy says so) and tells what store call, if any, must come first.
    fn prepare_end(
        &self,
        state: &mut State,
        server_error: bool,
        https: bool,
        now: SystemTime,
    ) -> Ending {
        let settings = self.settings();
        if !state.loaded {
            // Never used (the layer skips those anyway), or the first use failed to load:
            // nothing to write.
            return Ending::Respond;
        }
        let discard = server_error && settings.on_server_error == OnServerError::DiscardChanges;
        if discard {
            state.changes = Changes::default();
            state.expiry_changed = false;
            state.touch_requested = false;
        }
        if state.id.is_some() {
            return self
                .due_write(state, now)
                .map_or(Ending::Respond, Ending::Write);
        }
        let wanted = !discard
            && (!state.data.is_empty() || settings.new_sessions == NewSessions::SaveAlways);
        // A Secure cookie cannot reach the browser over plain HTTP: store nothing new.
        if wanted && self.can_set_cookie(https) {
            Ending::Create
        } else {
            Ending::Respond
        }
    }

    fn can_set_cookie(&self, https: bool) -> bool {
        https || !self.settings().cookie.is_secure(false)
    }

    /// The `Set-Cookie` value the response needs, if any, once the session is written.
    fn cookie_to_send(&self, state: &State, https: bool, now: SystemTime) -> Option<String> {
        let settings = self.settings();
        let cookie = &settings.cookie;
        if !self.can_set_cookie(https) {
            return None;
        }
        let Some(id) = &state.id else {
            return state.cookie_dead.then(|| cookie.clear_cookie(https, now));
        };
        let rotated = self
            .inner
            .cookie
            .as_ref()
            .is_some_and(|c| c.rotated && c.id == *id);
        // A native cookie lasts until the session's absolute deadline (the server ends it
        // earlier if it idles), so only a new id or a new expiry needs a new cookie. An
        // express cookie follows the idle deadline, re-sent whenever it moves, as
        // express-session's does.
        let express = settings.compatibility == Compatibility::ExpressSession;
        let moved = if express {
            state.expiry_moved
        } else {
            state.expiry_set
        };
        let send = settings.cookie_refresh == CookieRefresh::EveryResponse
            || state.id_changed
            || rotated
            || (moved && cookie.lifetime() == CookieLifetime::Persistent);
        send.then(|| {
            let expires_at = match state.meta {
                Some(meta) if !express => {
                    let expiry = meta.expiry.unwrap_or(settings.expiry);
                    meta.created_at
                        .checked_add(expiry.absolute_lifetime())
                        .unwrap_or(meta.expires_at)
                }
                Some(meta) => meta.expires_at,
                None => now,
            };
            let keys = &settings.keys;
            keys.signed(id, |signed| {
                cookie.set_cookie(signed, https, expires_at, now)
            })
        })
    }
}

/// What the end of a request needs before the response leaves.
enum Ending {
    /// Nothing to store: answer now.
    Respond,
    /// A new session to store.
    Create,
    /// A stored session to write.
    Write(DueWrite),
}

/// The store call a stored session needs at the end of a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DueWrite {
    /// Changes (or a new expiry) to apply.
    Update,
    /// Nothing changed, but the expiry is due to be extended.
    Touch,
}

/// How a request's session ends: at once, or after a store call.
pub(crate) enum Finish {
    /// Nothing had to be written: the outcome (the `Set-Cookie` value, if any).
    Done(Result<Option<String>, SessionError>),
    /// A store call is under way.
    Pending(Pin<Box<dyn Future<Output = Result<Option<String>, SessionError>> + Send>>),
}

fn deserialize_error(key: &str, source: serde_json::Error) -> SessionError {
    SessionError::Deserialize {
        key: key.to_owned(),
        source,
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the id nor the data: both may be sensitive.
        f.debug_struct("Session")
            .field("has_cookie", &self.inner.cookie.is_some())
            .finish_non_exhaustive()
    }
}
