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

use crate::cookie::Transport;
use crate::error::Chain;
use crate::moved;
use crate::policy::{
    CacheHeaders, Compatibility, CookieRefresh, NewSessions, OnDestroy, OnServerError, Settings,
    UnchangedSessions,
};
use crate::signing::Verified;
use crate::store::{
    user_of, Changes, CreateOutcome, Data, Meta, Record, StoreError, WriteOutcome, OWNER_KEY,
};
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
/// Clones share the same session. Changes must be made before the response leaves: once
/// the layer has written the session, every method that would change it returns
/// [`SessionError::ResponseSent`] (a streaming body or a spawned task that needs to
/// change the session should [`save`](Self::save) it before the handler returns).
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
    /// The request's session cookies whose signatures checked out, in the order sent.
    cookies: Vec<Verified>,
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
    /// This request destroyed the session the browser holds: its cookie is to be cleared.
    cookie_dead: bool,
    /// The browser sent a session cookie whose session is gone (revoked, expired): its
    /// cookie is to be cleared unless a new session replaces it.
    cookie_stale: bool,
    /// Another request moved or ended this session while this one used it: every method
    /// fails with [`SessionError::Superseded`], and the response sets no cookie.
    superseded: bool,
    /// This request's writes reached the session's new id: the response sets no cookie.
    forwarded: bool,
    /// The response has left: the session cannot change any more.
    finished: bool,
}

impl Session {
    pub(crate) fn new(settings: Arc<Settings>, cookies: Vec<Verified>) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                cookies,
                used: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Refuses keys the wire format or the library keeps for itself.
    fn check_key(&self, key: &str) -> Result<(), SessionError> {
        let reserved = key == OWNER_KEY
            || self.settings().compatibility == Compatibility::ExpressSession
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
            self.load_first(&mut state).await?;
            state.loaded = true;
        }
        if state.superseded {
            return Err(SessionError::Superseded);
        }
        Ok(state)
    }

    /// [`state`](Self::state), for a change: refused once the response has left.
    async fn state_to_change(&self) -> Result<MutexGuard<'_, State>, SessionError> {
        let state = self.state().await?;
        if state.finished {
            return Err(SessionError::ResponseSent);
        }
        Ok(state)
    }

    /// Loads the first of the request's cookies whose session is live. A cookie planted
    /// beside the real one (by a sibling subdomain, say) can then neither hide nor end it.
    async fn load_first(&self, state: &mut State) -> Result<(), SessionError> {
        let now = self.settings().clock.now();
        for cookie in &self.inner.cookies {
            if let Some(record) = self.fetch(&cookie.id, now).await? {
                *state = adopt(state, cookie.id.clone(), record);
                return Ok(());
            }
        }
        // None is live. One that moved to a new id moments ago means the response that
        // moved it may not have reached the browser yet: a new session here would send
        // a cookie that can overwrite the new one.
        for cookie in &self.inner.cookies {
            if self.moved_to(&cookie.id, now).await?.is_some() {
                state.superseded = true;
                break;
            }
        }
        state.cookie_stale = !state.superseded && !self.inner.cookies.is_empty();
        Ok(())
    }

    /// The stored session `id` if it is live at `now`. A record that does not decode is
    /// absent: one bad record must not lock its visitor out.
    async fn fetch(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, SessionError> {
        let settings = self.settings();
        let record = match settings.store.load(id, now).await {
            Ok(record) => record,
            Err(StoreError::Decode(reason)) => {
                tracing::warn!(
                    store = settings.store.name(),
                    reason = %Chain(&*reason),
                    "stored session could not be decoded; treated as absent"
                );
                None
            }
            Err(error) => return Err(SessionError::Load(error)),
        };
        Ok(record.filter(|record| {
            // Expiry is decided here from our own timestamps, whatever the store kept.
            let expiry = record.meta.expiry.unwrap_or(settings.expiry);
            expiry.deadline(record.meta.created_at, record.meta.last_active) > now
        }))
    }

    /// Where the session `id` moved to, if a regenerate moved it moments ago.
    async fn moved_to(
        &self,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<Option<SessionId>, SessionError> {
        let marker = self.fetch(&moved::marker_id(id), now).await?;
        Ok(marker.and_then(|marker| moved::target(id, &marker)))
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
            .map(|value| deserialize(key, value))
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
        let mut state = self.state_to_change().await?;
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
        let mut state = self.state_to_change().await?;
        let Some(value) = state.data.get(key) else {
            return Ok(None);
        };
        let value = deserialize(key, value)?;
        state.data.remove(key);
        state.changes.remove(key);
        Ok(Some(value))
    }

    /// Removes every key.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn clear(&self) -> Result<(), SessionError> {
        let mut state = self.state_to_change().await?;
        state.data.clear();
        state.changes.clear();
        Ok(())
    }

    /// Binds the session to `user` (the application's own id for them), so that
    /// [`Accounts`](crate::Accounts) can list and revoke it. Call it at login, after
    /// [`regenerate`](Self::regenerate). Binding to another user drops the labels;
    /// [`clear`](Self::clear) and [`destroy`](Self::destroy) unbind it.
    ///
    /// ```
    /// # async fn login(session: sessio::Session) -> Result<(), sessio::SessionError> {
    /// session.regenerate().await?;
    /// session.set_user("alice").await?;
    /// session.set_label("user_agent", "Firefox on Linux").await?;
    /// assert_eq!(session.user().await?.as_deref(), Some("alice"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn set_user(&self, user: impl Into<String>) -> Result<(), SessionError> {
        let user = user.into();
        let mut state = self.state_to_change().await?;
        if user_of(&state.data) == Some(user.as_str()) {
            return Ok(());
        }
        let owner = serde_json::json!({ "user": user, "labels": {} });
        state.data.insert(OWNER_KEY.to_owned(), owner.clone());
        state.changes.set(OWNER_KEY, owner);
        Ok(())
    }

    /// The user the session is bound to, if any (see [`set_user`](Self::set_user)).
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn user(&self) -> Result<Option<String>, SessionError> {
        Ok(user_of(&self.state().await?.data).map(str::to_owned))
    }

    /// Records `value` under `name` among the labels [`Accounts`](crate::Accounts) lists
    /// with the session (where the user logged in from, with what): small strings only.
    ///
    /// # Errors
    /// [`SessionError::NotBound`] if the session is not bound to a user;
    /// [`SessionError::Load`] if the store failed.
    pub async fn set_label(
        &self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), SessionError> {
        let (name, value) = (name.into(), serde_json::Value::String(value.into()));
        let mut state = self.state_to_change().await?;
        let state = &mut *state;
        let Some(owner) = state
            .data
            .get_mut(OWNER_KEY)
            .filter(|owner| owner.get("user").is_some_and(serde_json::Value::is_string))
        else {
            return Err(SessionError::NotBound);
        };
        if !owner
            .get("labels")
            .is_some_and(serde_json::Value::is_object)
        {
            owner["labels"] = serde_json::json!({});
        }
        let Some(labels) = owner["labels"].as_object_mut() else {
            return Err(SessionError::NotBound);
        };
        if labels.get(&name) == Some(&value) {
            return Ok(());
        }
        labels.insert(name, value);
        state.changes.set(OWNER_KEY, owner.clone());
        Ok(())
    }

    /// The session's handle, as [`Accounts::sessions`](crate::Accounts::sessions) lists it
    /// (to mark the current one); `None` for a session not stored yet.
    ///
    /// # Errors
    /// [`SessionError::Load`] if the store failed.
    pub async fn handle(&self) -> Result<Option<crate::Handle>, SessionError> {
        let state = self.state().await?;
        let keys = &self.settings().keys;
        Ok(state
            .id
            .as_ref()
            .map(|id| keys.handle(&crate::store::storage_key(id))))
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
        let mut state = self.state_to_change().await?;
        state.expiry = Some(expiry);
        state.expiry_changed = true;
        state.expiry_set = true;
        Ok(())
    }

    /// Moves the session to a new id, keeping its data (call [`clear`](Self::clear) first
    /// to drop it) and its absolute deadline. Do this when the user logs in or gains
    /// privileges, against session fixation; to give a re-authenticated user a new
    /// lifetime too, use [`regenerate_with_new_lifetime`](Self::regenerate_with_new_lifetime).
    ///
    /// The old id keeps pointing to the new one for a few seconds, for the requests the
    /// browser already had in flight: writes of those that loaded the session before it
    /// moved reach the new id, and those that arrive with the old id afterwards get
    /// [`SessionError::Superseded`] rather than a new session whose cookie could overwrite
    /// the new one. They are never handed the new session.
    ///
    /// # Errors
    /// [`SessionError::Superseded`] if another request destroyed or moved the session
    /// meanwhile; [`SessionError::Regenerate`] if the store failed. Either way nothing
    /// changed: the old id still works, unless it had ended.
    pub async fn regenerate(&self) -> Result<(), SessionError> {
        self.move_to_new_id(false).await
    }

    /// [`regenerate`](Self::regenerate), with the absolute lifetime counted again from
    /// now: for a user who has just proved their credentials again.
    ///
    /// # Errors
    /// As [`regenerate`](Self::regenerate).
    pub async fn regenerate_with_new_lifetime(&self) -> Result<(), SessionError> {
        self.move_to_new_id(true).await
    }

    async fn move_to_new_id(&self, new_lifetime: bool) -> Result<(), SessionError> {
        let mut state = self.state_to_change().await?;
        let (Some(old), Some(old_meta)) = (state.id.clone(), state.meta) else {
            // Not stored yet: it gets a fresh id when it is.
            return Ok(());
        };
        let now = self.settings().clock.now();
        let created_at = if new_lifetime {
            now
        } else {
            old_meta.created_at
        };
        self.create(&mut state, now, created_at, Some((&old, &old_meta)))
            .await?;
        // A new lifetime needs a cookie that lasts as long.
        state.expiry_set |= new_lifetime;
        Ok(())
    }

    /// Stores `record` under a new id, leaves a marker from `old` to it, and deletes
    /// `old`; undoes it all (as far as the store lets it) if `old` no longer exists or a
    /// step fails, so that a logout racing a login brings nothing back.
    async fn relocate(
        &self,
        old: &SessionId,
        old_meta: &Meta,
        record: &Record,
        now: SystemTime,
    ) -> Result<SessionId, SessionError> {
        let store = &self.settings().store;
        let new = self
            .create_record(record)
            .await
            .map_err(|error| match error {
                SessionError::Save(error) => SessionError::Regenerate(error),
                other => other,
            })?;
        let marker_id = moved::marker_id(old);
        // The marker goes first: a destroy of `old` that lands after the check below
        // finds it, and follows it to the new id.
        let step = match store
            .create(&marker_id, &moved::marker(old, &new, now))
            .await
        {
            Ok(CreateOutcome::Created) => match store.touch(old, old_meta).await {
                Ok(WriteOutcome::Applied) => {
                    store.delete(old).await.map_err(SessionError::Regenerate)
                }
                Ok(_) => Err(SessionError::Superseded),
                Err(error) => Err(SessionError::Regenerate(error)),
            },
            // Another request moved it already.
            Ok(_) => {
                let _ = store.delete(&new).await;
                return Err(SessionError::Superseded);
            }
            Err(error) => Err(SessionError::Regenerate(error)),
        };
        if let Err(error) = step {
            // Best effort: what is left is known to no one and expires.
            let _ = store.delete(&new).await;
            let _ = store.delete(&marker_id).await;
            return Err(error);
        }
        Ok(new)
    }

    /// Ends the session: it is removed from the store and the browser is told to drop the
    /// cookie. Values inserted afterwards start a new session. If a regenerate moved the
    /// session moments ago, its new id ends too: a logout racing a login brings nothing
    /// back.
    ///
    /// # Errors
    /// [`SessionError::Destroy`] if the store failed; the session then still exists.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        self.inner.used.store(true, Ordering::Relaxed);
        let mut state = self.lock().await;
        if state.finished {
            return Err(SessionError::ResponseSent);
        }
        // Every session the browser sent, unless one was loaded: a logout ends them all.
        let ids: Vec<SessionId> = match &state.id {
            Some(id) => vec![id.clone()],
            None => self.inner.cookies.iter().map(|c| c.id.clone()).collect(),
        };
        let store = &self.settings().store;
        let now = self.settings().clock.now();
        for id in &ids {
            store.delete(id).await.map_err(SessionError::Destroy)?;
            let moved_to = match self.moved_to(id, now).await {
                Ok(moved_to) => moved_to,
                Err(SessionError::Load(error)) => return Err(SessionError::Destroy(error)),
                Err(other) => return Err(other),
            };
            if let Some(new) = moved_to {
                store.delete(&new).await.map_err(SessionError::Destroy)?;
                store
                    .delete(&moved::marker_id(id))
                    .await
                    .map_err(SessionError::Destroy)?;
            }
        }
        let had_cookie = !ids.is_empty() || state.id_changed || !self.inner.cookies.is_empty();
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
            Some(id) => {
                let now = self.settings().clock.now();
                *state = match self.fetch(&id, now).await? {
                    Some(record) => adopt(&state, id, record),
                    None => fresh(&state),
                };
                Ok(())
            }
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
    /// [`SessionError::Save`] if the store failed; [`SessionError::Superseded`] if another
    /// request destroyed the session meanwhile (nothing was written).
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut state = self.state_to_change().await?;
        let now = self.settings().clock.now();
        if state.id.is_none() {
            return self.create(&mut state, now, now, None).await;
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
        self.state_to_change().await?.touch_requested = true;
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

    /// Stores the current data under a fresh id, with a lifetime counted from
    /// `created_at`, and, for a regenerate, moves the stored session `from` there; the
    /// state then refers to the new id.
    async fn create(
        &self,
        state: &mut State,
        now: SystemTime,
        created_at: SystemTime,
        from: Option<(&SessionId, &Meta)>,
    ) -> Result<(), SessionError> {
        let expiry = state.expiry.unwrap_or(self.settings().expiry);
        let meta = Meta {
            created_at,
            last_active: now,
            expires_at: expiry.deadline(created_at, now),
            expiry: state.expiry,
        };
        // Lent to the record rather than cloned; it comes back whatever happens.
        let record = Record {
            data: std::mem::take(&mut state.data),
            meta,
        };
        let outcome = match from {
            None => self.create_record(&record).await,
            Some((old, old_meta)) => self.relocate(old, old_meta, &record, now).await,
        };
        state.data = record.data;
        state.id = Some(outcome?);
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
    /// [`due_write`](Self::due_write) found. If another request moved the session to a
    /// new id meanwhile, the write goes there; if it ended it, nothing is written, the
    /// session is [superseded](SessionError::Superseded), and so is the result.
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
        let write = |id: SessionId| {
            let changes = &state.changes;
            async move {
                let outcome = match due {
                    DueWrite::Update => settings.store.update(&id, changes, &meta).await,
                    DueWrite::Touch => settings.store.touch(&id, &meta).await,
                };
                outcome.map_err(SessionError::Save)
            }
        };
        let mut outcome = write(id.clone()).await?;
        if outcome != WriteOutcome::Applied {
            if let Some(new) = self.moved_to(&id, now).await? {
                outcome = write(new.clone()).await?;
                state.id = Some(new);
                state.forwarded = true;
            }
        }
        if outcome != WriteOutcome::Applied {
            // Destroyed elsewhere meanwhile: never bring it back, and send no cookie: the
            // browser may hold a newer one by now.
            tracing::warn!("session ended by another request; this request's changes were dropped");
            *state = State {
                loaded: true,
                superseded: true,
                finished: state.finished,
                ..State::default()
            };
            return Err(SessionError::Superseded);
        }
        state.meta = Some(meta);
        state.changes = Changes::default();
        state.expiry_changed = false;
        state.touch_requested = false;
        state.expiry_moved = true;
        Ok(())
    }

    /// Whether the handler called any method: an unused session has nothing to finish.
    pub(crate) fn is_used(&self) -> bool {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Writes what the request left pending and says what the response needs. Runs once,
    /// when the inner service has produced its response; afterwards the session cannot
    /// change.
    ///
    /// When there is nothing to write (a session only read, say) it finishes at once,
    /// without an asynchronous step to allocate and poll.
    pub(crate) fn finish(self, server_error: bool, transport: Transport) -> Finish {
        let now = self.settings().clock.now();
        if let Some(mut state) = self.inner.state.try_lock() {
            if let Ending::Respond = self.prepare_end(&mut state, server_error, transport, now) {
                return Finish::Done(Ok(self.ended(&state, transport, now)));
            }
        }
        Finish::Pending(Box::pin(async move {
            let mut state = self.lock().await;
            // Prepared (again): another task may have used the session meanwhile.
            let written = match self.prepare_end(&mut state, server_error, transport, now) {
                Ending::Respond => Ok(()),
                Ending::Create => self.create(&mut state, now, now, None).await,
                Ending::Write(due) => self.write(&mut state, now, due).await,
            };
            match written {
                // Ended by another request: the handler's answer stands, with no cookie.
                Ok(()) | Err(SessionError::Superseded) => Ok(self.ended(&state, transport, now)),
                Err(error) => Err(error),
            }
        }))
    }

    /// Prepares the state for the end of the request (dropping its changes if the handler
    /// failed and the policy says so) and tells what store call, if any, must come first.
    fn prepare_end(
        &self,
        state: &mut State,
        server_error: bool,
        transport: Transport,
        now: SystemTime,
    ) -> Ending {
        let settings = self.settings();
        state.finished = true;
        if !state.loaded || state.superseded {
            // Never used (the layer skips those anyway), the first use failed to load, or
            // another request took the session over: nothing to write.
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
        if wanted && self.can_set_cookie(transport) {
            Ending::Create
        } else {
            Ending::Respond
        }
    }

    fn can_set_cookie(&self, transport: Transport) -> bool {
        transport != Transport::Http || !self.settings().cookie.is_secure(transport)
    }

    /// What the response needs once the session is written.
    fn ended(&self, state: &State, transport: Transport, now: SystemTime) -> Ended {
        let settings = self.settings();
        Ended {
            set_cookie: self.cookie_to_send(state, transport, now),
            cache_headers: settings.cache_headers,
            clear_site_data: state.cookie_dead
                && settings.on_destroy == OnDestroy::ClearSiteCookies,
        }
    }

    /// The `Set-Cookie` value the response needs, if any, once the session is written.
    fn cookie_to_send(
        &self,
        state: &State,
        transport: Transport,
        now: SystemTime,
    ) -> Option<String> {
        let settings = self.settings();
        let cookie = &settings.cookie;
        if !self.can_set_cookie(transport) || state.superseded || state.forwarded {
            return None;
        }
        let Some(id) = &state.id else {
            return (state.cookie_dead || state.cookie_stale)
                .then(|| cookie.clear_cookie(transport, now));
        };
        let rotated = self.inner.cookies.iter().any(|c| c.rotated && c.id == *id);
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
                cookie.set_cookie(signed, transport, expires_at, now)
            })
        })
    }
}

/// The state of a loaded session `id`, keeping what the request did so far.
fn adopt(state: &State, id: SessionId, record: Record) -> State {
    State {
        id: Some(id),
        data: record.data,
        meta: Some(record.meta),
        expiry: record.meta.expiry,
        ..fresh(state)
    }
}

/// An empty, loaded state, keeping what the request did so far.
fn fresh(state: &State) -> State {
    State {
        loaded: true,
        expiry_moved: state.expiry_moved,
        expiry_set: state.expiry_set,
        id_changed: state.id_changed,
        cookie_dead: state.cookie_dead,
        cookie_stale: state.cookie_stale,
        finished: state.finished,
        ..State::default()
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

/// What a finished session needs of the response.
pub(crate) struct Ended {
    /// The `Set-Cookie` value, if any.
    pub(crate) set_cookie: Option<String>,
    /// What a response with a `Set-Cookie` tells caches.
    pub(crate) cache_headers: CacheHeaders,
    /// Send `Clear-Site-Data: "cookies"`: the session was destroyed, and the policy says so.
    pub(crate) clear_site_data: bool,
}

/// How a request's session ends: at once, or after a store call.
pub(crate) enum Finish {
    /// Nothing had to be written.
    Done(Result<Ended, SessionError>),
    /// A store call is under way.
    Pending(Pin<Box<dyn Future<Output = Result<Ended, SessionError>> + Send>>),
}

/// The stored `value` of `key` as a `T`. The error names the type, never the value: serde's
/// message quotes it, and errors end up in logs.
fn deserialize<T: DeserializeOwned>(
    key: &str,
    value: &serde_json::Value,
) -> Result<T, SessionError> {
    T::deserialize(value).map_err(|_| SessionError::Deserialize {
        key: key.to_owned(),
        expected: std::any::type_name::<T>(),
    })
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the id nor the data: both may be sensitive.
        f.debug_struct("Session")
            .field("cookies", &self.inner.cookies.len())
            .finish_non_exhaustive()
    }
}
