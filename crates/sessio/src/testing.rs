//! The store conformance suite: the whole [`SessionStore`] contract, as one call.
//!
//! Every store in this workspace runs it, and so can yours:
//!
//! ```
//! use sessio::testing::check_store;
//! use sessio::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Each call must return a handle (with its own connections, where it has any) onto the
//! // same, initially empty, storage.
//! let shared = std::sync::OnceLock::new();
//! check_store(|| {
//!     let store = shared.get_or_init(MemoryStore::new).clone();
//!     async move { store }
//! })
//! .await;
//! # }
//! ```
//!
//! Timestamps handed to the store are whole milliseconds; a store must keep at least that
//! precision. Failures panic with the name of the broken rule.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::store::{
    storage_key, Changes, CreateOutcome, Data, Meta, Record, SessionStore, UserSession,
    WriteOutcome,
};
use crate::{Clock, Expiry, IdGenerator, ManualClock, RandomIdGenerator, SessionId};

/// The URL of a service a test needs, from the environment variable `var`.
///
/// `None` (with a line saying the test was skipped and why) when it is unset, so that a
/// plain `cargo test` passes on a machine without the service; but under `CI=true` a
/// missing service is a failure, never a silent skip.
///
/// ```
/// # std::env::set_var("MY_STORE_TEST_URL", "mystore://127.0.0.1:7000");
/// if let Some(url) = sessio::testing::service_url("MY_STORE_TEST_URL") {
///     // connect to `url` and run the suite
///     assert_eq!(url, "mystore://127.0.0.1:7000");
/// }
/// ```
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{var} is not set, and CI=true: the test needs this service")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set; set it to run the tests against this service");
            None
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const WRITERS: usize = 16;

/// Checks every rule of the [`SessionStore`] contract against the store `make_store`
/// returns.
///
/// `make_store` is called more than once: the first call must return an empty store, later
/// calls further handles onto the same storage (to check atomicity across processes).
/// The suite moves time on a manual clock of its own and tells the store the time through
/// the `now` arguments and `meta.last_active`, as the session layer does.
pub async fn check_store<S, F, Fut>(make_store: F)
where
    S: SessionStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    // Now, to the millisecond, so server-side TTLs stay meaningful.
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_millis(start as u64));
    let store = make_store().await;
    let other = Arc::new(make_store().await);
    let suite = Suite { store, clock };

    suite.count_starts_at_zero().await;
    suite.create_then_load_round_trips().await;
    suite.create_never_overwrites().await;
    suite.load_of_unknown_id_is_none().await;
    suite.load_ignores_expired_records().await;
    suite.update_applies_only_the_changed_keys().await;
    suite.update_clear_then_set().await;
    suite.update_never_recreates().await;
    suite.touch_changes_meta_only().await;
    suite.touch_never_recreates().await;
    suite.delete_removes_and_tolerates_missing().await;
    suite
        .concurrent_updates_of_distinct_keys_all_survive(other)
        .await;
    suite.delete_expired_removes_only_expired().await;
}

/// Checks the per-user index rules of [`SessionStore::sessions_of`] and
/// [`SessionStore::delete_key`], for stores that have one (a store without keeps their
/// defaults, and need not run this).
///
/// `make_store` as for [`check_store`]: the first call returns an empty store.
///
/// ```
/// use sessio::testing::check_user_index;
/// use sessio::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shared = std::sync::OnceLock::new();
/// check_user_index(|| {
///     let store = shared.get_or_init(MemoryStore::new).clone();
///     async move { store }
/// })
/// .await;
/// # }
/// ```
pub async fn check_user_index<S, F, Fut>(make_store: F)
where
    S: SessionStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_millis(start as u64));
    let suite = Suite {
        store: make_store().await,
        clock,
    };
    suite
        .sessions_of_lists_exactly_the_users_live_sessions()
        .await;
    suite.sessions_of_follows_rebinding_and_unbinding().await;
    suite.delete_key_removes_the_session().await;
}

struct Suite<S> {
    store: S,
    clock: ManualClock,
}

/// A session's data bound to `user`.
fn owned_by(user: &str, extra: Value) -> Value {
    let mut value = extra;
    value[crate::store::OWNER_KEY] = json!({"user": user, "labels": {"device": "test"}});
    value
}

fn fail(rule: &str, detail: impl std::fmt::Display) -> ! {
    panic!("store conformance: {rule}: {detail}")
}

fn check(ok: bool, rule: &str, detail: impl std::fmt::Display) {
    if !ok {
        fail(rule, detail)
    }
}

fn new_id() -> SessionId {
    RandomIdGenerator::default().generate()
}

fn data(value: Value) -> Data {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("test data is an object"),
    }
}

impl<S: SessionStore> Suite<S> {
    async fn sessions_of(&self, rule: &str, user: &str) -> Vec<UserSession> {
        let mut listed = self
            .store
            .sessions_of(user, self.now())
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("sessions_of failed: {e}")));
        listed.sort_by_key(|session| session.key);
        listed
    }

    /// The storage keys `user`'s sessions are listed under, sorted.
    async fn listed_keys(&self, rule: &str, user: &str) -> Vec<[u8; 32]> {
        self.sessions_of(rule, user)
            .await
            .into_iter()
            .map(|session| session.key)
            .collect()
    }

    async fn sessions_of_lists_exactly_the_users_live_sessions(&self) {
        let rule = "sessions_of lists the user's live sessions, and nothing else";
        let alice = format!("alice-{}", new_id().as_str());
        let bob = format!("bob-{}", new_id().as_str());
        let laptop = self.record(owned_by(&alice, json!({"n": 1})), HOUR);
        let phone = self.record(owned_by(&alice, json!({})), 2 * HOUR);
        let laptop_id = self.create(rule, &laptop).await;
        let phone_id = self.create(rule, &phone).await;
        let short_id = self
            .create(
                rule,
                &self.record(owned_by(&alice, json!({})), Duration::from_secs(1)),
            )
            .await;
        self.create(rule, &self.record(owned_by(&bob, json!({})), HOUR))
            .await;
        self.create(rule, &self.record(json!({"user": alice.clone()}), HOUR))
            .await;
        let mut expected = vec![
            storage_key(&laptop_id),
            storage_key(&phone_id),
            storage_key(&short_id),
        ];
        expected.sort();
        let listed = self.listed_keys(rule, &alice).await;
        check(
            listed == expected,
            rule,
            format_args!("{} listed, 3 expected", listed.len()),
        );
        let records = self.sessions_of(rule, &alice).await;
        check(
            records
                .iter()
                .any(|s| s.key == storage_key(&laptop_id) && s.record == laptop),
            rule,
            "a listed session's record is not what was stored",
        );

        let rule = "sessions_of leaves out expired sessions";
        self.clock.advance(Duration::from_secs(2));
        let listed = self.listed_keys(rule, &alice).await;
        check(
            !listed.contains(&storage_key(&short_id)) && listed.len() == 2,
            rule,
            format_args!("{} listed, 2 expected", listed.len()),
        );

        let rule = "sessions_of leaves out deleted sessions";
        self.store
            .delete(&phone_id)
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("delete failed: {e}")));
        let listed = self.listed_keys(rule, &alice).await;
        check(
            listed == vec![storage_key(&laptop_id)],
            rule,
            format_args!("{} listed, 1 expected", listed.len()),
        );

        let rule = "sessions_of of a user without sessions is empty";
        let nobody = format!("nobody-{}", new_id().as_str());
        check(
            self.sessions_of(rule, &nobody).await.is_empty(),
            rule,
            "not empty",
        );
    }

    async fn sessions_of_follows_rebinding_and_unbinding(&self) {
        let rule = "an update that binds a session files it under its user";
        let carol = format!("carol-{}", new_id().as_str());
        let dave = format!("dave-{}", new_id().as_str());
        let id = self.create(rule, &self.record(json!({"n": 1}), HOUR)).await;
        let bind = |user: &str| {
            let mut changes = Changes::default();
            changes.set(crate::store::OWNER_KEY, json!({"user": user, "labels": {}}));
            changes
        };
        let write = |changes: Changes| {
            let meta = self.meta(HOUR);
            let id = id.clone();
            async move {
                match self.store.update(&id, &changes, &meta).await {
                    Ok(WriteOutcome::Applied) => {}
                    other => fail(rule, format_args!("update returned {other:?}")),
                }
            }
        };
        write(bind(&carol)).await;
        check(
            self.listed_keys(rule, &carol).await == vec![storage_key(&id)],
            rule,
            "the session is not listed under its user",
        );

        let rule = "a session bound to another user moves to that user";
        write(bind(&dave)).await;
        check(
            self.listed_keys(rule, &carol).await.is_empty(),
            rule,
            "still listed under its former user",
        );
        check(
            self.listed_keys(rule, &dave).await == vec![storage_key(&id)],
            rule,
            "not listed under its new user",
        );

        let rule = "a session whose data is cleared is no one's";
        let mut clear = Changes::default();
        clear.clear();
        clear.set("n", json!(2));
        write(clear).await;
        check(
            self.listed_keys(rule, &dave).await.is_empty(),
            rule,
            "still listed after its data was cleared",
        );
    }

    async fn delete_key_removes_the_session(&self) {
        let rule = "delete_key removes the session filed under the key";
        let erin = format!("erin-{}", new_id().as_str());
        let id = self
            .create(rule, &self.record(owned_by(&erin, json!({})), HOUR))
            .await;
        let kept = self
            .create(rule, &self.record(owned_by(&erin, json!({})), HOUR))
            .await;
        self.store
            .delete_key(&storage_key(&id))
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("delete_key failed: {e}")));
        check(self.load(rule, &id).await.is_none(), rule, "it still loads");
        check(
            self.load(rule, &kept).await.is_some(),
            rule,
            "another session went too",
        );
        check(
            self.listed_keys(rule, &erin).await == vec![storage_key(&kept)],
            rule,
            "it is still listed",
        );
        self.store
            .delete_key(&storage_key(&id))
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("a second delete_key failed: {e}")));
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn meta(&self, ttl: Duration) -> Meta {
        let now = self.now();
        Meta {
            created_at: now,
            last_active: now,
            expires_at: now + ttl,
            expiry: None,
        }
    }

    fn record(&self, value: Value, ttl: Duration) -> Record {
        Record {
            data: data(value),
            meta: self.meta(ttl),
        }
    }

    async fn create(&self, rule: &str, record: &Record) -> SessionId {
        let id = new_id();
        match self.store.create(&id, record).await {
            Ok(CreateOutcome::Created) => id,
            other => fail(rule, format_args!("create returned {other:?}")),
        }
    }

    async fn load(&self, rule: &str, id: &SessionId) -> Option<Record> {
        self.store
            .load(id, self.now())
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("load failed: {e}")))
    }

    async fn count(&self, rule: &str) -> u64 {
        self.store
            .count()
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("count failed: {e}")))
    }

    async fn count_starts_at_zero(&self) {
        let rule = "a new store is empty";
        check(
            self.count(rule).await == 0,
            rule,
            "count is not 0; is the storage shared with something else?",
        );
    }

    async fn create_then_load_round_trips(&self) {
        let rule = "create then load returns the same record";
        let mut record = self.record(
            json!({"n": 1, "s": "é\"'\\", "b": true, "nested": {"a": [1, 2.5, null]}, "": 0}),
            HOUR,
        );
        record.meta.expiry = Some(Expiry::new(HOUR, 2 * HOUR));
        record.meta.last_active = record.meta.created_at + Duration::from_millis(1);
        let id = self.create(rule, &record).await;
        let loaded = self.load(rule, &id).await;
        check(
            loaded.as_ref() == Some(&record),
            rule,
            format_args!("stored {record:?}, loaded {loaded:?}"),
        );
        check(
            self.count(rule).await == 1,
            rule,
            "count is not 1 after one create",
        );
    }

    async fn create_never_overwrites(&self) {
        let rule = "create never overwrites an existing session";
        let original = self.record(json!({"owner": "first"}), HOUR);
        let id = self.create(rule, &original).await;
        let outcome = self
            .store
            .create(&id, &self.record(json!({"owner": "second"}), HOUR))
            .await;
        check(
            matches!(outcome, Ok(CreateOutcome::IdTaken)),
            rule,
            format_args!("second create returned {outcome:?}"),
        );
        let loaded = self.load(rule, &id).await;
        check(
            loaded.map(|r| r.data) == Some(original.data),
            rule,
            "the first session's data changed",
        );
    }

    async fn load_of_unknown_id_is_none(&self) {
        let rule = "load of an unknown id is None";
        check(
            self.load(rule, &new_id()).await.is_none(),
            rule,
            "returned a record",
        );
    }

    async fn load_ignores_expired_records(&self) {
        let rule = "load ignores expired records";
        let id = self
            .create(rule, &self.record(json!({"k": 1}), Duration::from_secs(60)))
            .await;
        self.clock.advance(Duration::from_millis(59_999));
        check(
            self.load(rule, &id).await.is_some(),
            rule,
            "a record 1 ms before expiry was not returned",
        );
        self.clock.advance(Duration::from_millis(1));
        check(
            self.load(rule, &id).await.is_none(),
            rule,
            "a record at its expiry was returned",
        );
        // Leave it for delete_expired; move on with a clean slate.
        self.store
            .delete(&id)
            .await
            .unwrap_or_else(|e| fail(rule, e));
    }

    async fn update(
        &self,
        rule: &str,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> WriteOutcome {
        self.store
            .update(id, changes, meta)
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("update failed: {e}")))
    }

    async fn update_applies_only_the_changed_keys(&self) {
        let rule = "update applies only the changed keys";
        let id = self
            .create(
                rule,
                &self.record(json!({"keep": 1, "change": 1, "drop": 1}), HOUR),
            )
            .await;
        let mut changes = Changes::default();
        changes.set("change", json!({"to": [2]}));
        changes.set("add", json!("new"));
        changes.remove("drop");
        changes.remove("never-existed");
        self.clock.advance(Duration::from_millis(1500));
        let meta = Meta {
            last_active: self.now(),
            expires_at: self.now() + HOUR,
            ..self.load(rule, &id).await.expect("just created").meta
        };
        check(
            self.update(rule, &id, &changes, &meta).await == WriteOutcome::Applied,
            rule,
            "update of an existing session was not applied",
        );
        let loaded = self
            .load(rule, &id)
            .await
            .unwrap_or_else(|| fail(rule, "session vanished"));
        check(
            Value::Object(loaded.data.clone())
                == json!({"keep": 1, "change": {"to": [2]}, "add": "new"}),
            rule,
            format_args!("data is {:?}", loaded.data),
        );
        check(
            loaded.meta == meta,
            rule,
            format_args!("meta is {:?}, expected {meta:?}", loaded.meta),
        );
    }

    async fn update_clear_then_set(&self) {
        let rule = "an update that clears removes every key not set in it";
        let record = self.record(json!({"a": 1, "b": 2}), HOUR);
        let id = self.create(rule, &record).await;
        let mut changes = Changes::default();
        changes.clear();
        changes.set("c", json!(3));
        self.update(rule, &id, &changes, &record.meta).await;
        let loaded = self
            .load(rule, &id)
            .await
            .unwrap_or_else(|| fail(rule, "session vanished"));
        check(
            Value::Object(loaded.data.clone()) == json!({"c": 3}),
            rule,
            format_args!("data is {:?}", loaded.data),
        );
    }

    async fn update_never_recreates(&self) {
        let rule = "update never recreates a missing session";
        let id = self.create(rule, &self.record(json!({"k": 1}), HOUR)).await;
        self.store
            .delete(&id)
            .await
            .unwrap_or_else(|e| fail(rule, e));
        let before = self.count(rule).await;
        let mut changes = Changes::default();
        changes.set("k", json!(2));
        let outcome = self.update(rule, &id, &changes, &self.meta(HOUR)).await;
        check(
            outcome == WriteOutcome::NotFound,
            rule,
            format_args!("update returned {outcome:?}"),
        );
        check(
            self.load(rule, &id).await.is_none(),
            rule,
            "the deleted session came back",
        );
        check(self.count(rule).await == before, rule, "count changed");
    }

    async fn touch_changes_meta_only(&self) {
        let rule = "touch sets the meta and leaves the data";
        let record = self.record(json!({"k": "v"}), HOUR);
        let id = self.create(rule, &record).await;
        self.clock.advance(Duration::from_secs(10));
        let meta = Meta {
            last_active: self.now(),
            expires_at: self.now() + 2 * HOUR,
            ..record.meta
        };
        let outcome = self
            .store
            .touch(&id, &meta)
            .await
            .unwrap_or_else(|e| fail(rule, e));
        check(
            outcome == WriteOutcome::Applied,
            rule,
            format_args!("touch returned {outcome:?}"),
        );
        let loaded = self
            .load(rule, &id)
            .await
            .unwrap_or_else(|| fail(rule, "session vanished"));
        check(loaded.data == record.data, rule, "the data changed");
        check(
            loaded.meta == meta,
            rule,
            format_args!("meta is {:?}, expected {meta:?}", loaded.meta),
        );
    }

    async fn touch_never_recreates(&self) {
        let rule = "touch never recreates a missing session";
        let id = new_id();
        let outcome = self
            .store
            .touch(&id, &self.meta(HOUR))
            .await
            .unwrap_or_else(|e| fail(rule, e));
        check(
            outcome == WriteOutcome::NotFound,
            rule,
            format_args!("touch returned {outcome:?}"),
        );
        check(
            self.load(rule, &id).await.is_none(),
            rule,
            "touch created a session",
        );
    }

    async fn delete_removes_and_tolerates_missing(&self) {
        let rule = "delete removes the session; deleting a missing one is fine";
        let id = self.create(rule, &self.record(json!({}), HOUR)).await;
        let before = self.count(rule).await;
        self.store
            .delete(&id)
            .await
            .unwrap_or_else(|e| fail(rule, e));
        check(self.load(rule, &id).await.is_none(), rule, "still loadable");
        check(
            self.count(rule).await == before - 1,
            rule,
            "count did not drop by one",
        );
        self.store
            .delete(&id)
            .await
            .unwrap_or_else(|e| fail(rule, format_args!("second delete: {e}")));
    }

    async fn concurrent_updates_of_distinct_keys_all_survive(&self, other: Arc<S>) {
        let rule = "concurrent updates of distinct keys all survive";
        let record = self.record(json!({"base": true}), HOUR);
        let id = self.create(rule, &record).await;
        let meta = record.meta;
        let store = &self.store;
        let writes = (0..WRITERS).map(|i| {
            let (id, other) = (id.clone(), other.clone());
            async move {
                let mut changes = Changes::default();
                changes.set(format!("key{i}"), json!(i));
                // Half through another handle: distinct connections, as distinct processes.
                if i % 2 == 0 {
                    store.update(&id, &changes, &meta).await
                } else {
                    other.update(&id, &changes, &meta).await
                }
            }
        });
        for outcome in futures_util::future::join_all(writes).await {
            check(
                matches!(outcome, Ok(WriteOutcome::Applied)),
                rule,
                format_args!("an update returned {outcome:?}"),
            );
        }
        let loaded = self
            .load(rule, &id)
            .await
            .unwrap_or_else(|| fail(rule, "session vanished"));
        for i in 0..WRITERS {
            check(
                loaded.data.get(&format!("key{i}")) == Some(&json!(i)),
                rule,
                format_args!("key{i} was lost"),
            );
        }
        check(
            loaded.data.get("base") == Some(&json!(true)),
            rule,
            "the original key was lost",
        );
    }

    async fn delete_expired_removes_only_expired(&self) {
        let rule = "delete_expired removes exactly the expired sessions";
        let all = self.count(rule).await;
        let short = self
            .create(rule, &self.record(json!({}), Duration::from_secs(5)))
            .await;
        let long = self.create(rule, &self.record(json!({}), 100 * HOUR)).await;
        // Everything created earlier expires within a few hours.
        self.clock.advance(10 * HOUR);
        let removed = self
            .store
            .delete_expired(self.now())
            .await
            .unwrap_or_else(|e| fail(rule, e));
        check(
            removed == all + 1,
            rule,
            format_args!("removed {removed}, expected {}", all + 1),
        );
        check(
            self.count(rule).await == 1,
            rule,
            "count is not 1 afterwards",
        );
        check(
            self.load(rule, &short).await.is_none(),
            rule,
            "an expired session is still there",
        );
        check(
            self.load(rule, &long).await.is_some(),
            rule,
            "a live session was removed",
        );
    }
}
