//! Writes from many tasks share the store's one writer: each gets its own answer, writes
//! queued together share a transaction, and one that fails takes no other down with it.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{now, record, TempDb};
use serde_json::json;
use sessio::store::{storage_key, Changes, CreateOutcome, StoreError, WriteOutcome};
use sessio::{SessionId, SessionStore};
use tokio::sync::Barrier;

const WRITERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_each_get_their_own_answer() {
    let db = TempDb::new();
    let store = db.store().await;
    let t = now();
    // Every even writer will find its id taken.
    for i in (0..WRITERS).step_by(2) {
        let id = SessionId::from(format!("writer-{i}"));
        let taken = record(json!({"n": "taken"}), t, Duration::from_secs(60));
        store.create(&id, &taken).await.unwrap();
    }
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                let id = SessionId::from(format!("writer-{i}"));
                start.wait().await;
                let created = store
                    .create(&id, &record(json!({"n": 0}), t, Duration::from_secs(60)))
                    .await?;
                let expected = if i % 2 == 0 {
                    CreateOutcome::IdTaken
                } else {
                    CreateOutcome::Created
                };
                assert_eq!(created, expected, "writer {i}");
                let mut changes = Changes::default();
                changes.set("i", json!(i));
                let meta = store.load(&id, t).await?.expect("exists").meta;
                let updated = store.update(&id, &changes, &meta).await?;
                assert_eq!(updated, WriteOutcome::Applied, "writer {i}");
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    for i in 0..WRITERS {
        let id = SessionId::from(format!("writer-{i}"));
        let data = store.load(&id, t).await.unwrap().expect("exists").data;
        let n = if i % 2 == 0 { json!("taken") } else { json!(0) };
        assert_eq!(data.get("n"), Some(&n), "writer {i}");
        assert_eq!(data.get("i"), Some(&json!(i)), "writer {i}");
    }
}

/// Polls `future` once, so that whatever it does before its first wait is done.
fn start<F: Future + ?Sized>(future: Pin<&mut F>) {
    let waker = futures_waker();
    let poll = future.poll(&mut Context::from_waker(&waker));
    assert!(poll.is_pending(), "finished while the database was locked");
}

#[tokio::test]
async fn writes_queued_together_commit_together_and_fail_alone() {
    let db = TempDb::new();
    let store = db.store().await.with_timeout(Duration::from_secs(20));
    let t = now();
    let hour = Duration::from_secs(3600);
    let [good, damaged, doomed, new] = ["good", "damaged", "doomed", "new"].map(SessionId::from);
    let stored = record(json!({"n": 1}), t, hour);
    for id in [&good, &damaged, &doomed] {
        store.create(id, &stored).await.unwrap();
    }
    let other = db.raw();
    other
        .execute(
            "UPDATE sessio_sessions SET data = 'not json' WHERE id = ?1",
            [&storage_key(&damaged)[..]],
        )
        .unwrap();

    // Another process holds the write lock while four writes are queued behind it.
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut changes = Changes::default();
    changes.set("n", json!(2));
    let mut update_good = store.update(&good, &changes, &stored.meta);
    let mut update_damaged = store.update(&damaged, &changes, &stored.meta);
    let mut create_new = store.create(&new, &stored);
    let mut delete_doomed = store.delete(&doomed);
    start(update_good.as_mut());
    start(update_damaged.as_mut());
    start(create_new.as_mut());
    start(delete_doomed.as_mut());
    other.execute_batch("ROLLBACK").unwrap();

    assert_eq!(update_good.await.unwrap(), WriteOutcome::Applied);
    let error = update_damaged.await.expect_err("the row does not decode");
    assert!(matches!(error, StoreError::Decode(_)), "{error:?}");
    assert_eq!(create_new.await.unwrap(), CreateOutcome::Created);
    delete_doomed.await.unwrap();

    let data = |id: &SessionId| {
        let store = store.clone();
        let id = id.clone();
        async move { store.load(&id, t).await.unwrap().map(|r| r.data) }
    };
    assert_eq!(data(&good).await.unwrap().get("n"), Some(&json!(2)));
    assert_eq!(data(&new).await.unwrap().get("n"), Some(&json!(1)));
    assert!(data(&doomed).await.is_none());
    assert_eq!(store.count().await.unwrap(), 3);
}

/// A request cancelled in the middle of its write (its client went away, say) leaves
/// nothing locked: the next write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_halfway_leaves_no_lock_behind() {
    let db = TempDb::new();
    let store = db.store().await.with_timeout(Duration::from_secs(2));
    let id = SessionId::from("abandoned");
    let t = now();
    store
        .create(&id, &record(json!({"n": 0}), t, Duration::from_secs(600)))
        .await
        .unwrap();
    let meta = store.load(&id, t).await.unwrap().unwrap().meta;
    for round in 0..50 {
        let mut changes = Changes::default();
        changes.set("n", json!(round));
        {
            // Polled until it is under way, then dropped, as a cancelled request's is.
            let mut write = std::pin::pin!(store.update(&id, &changes, &meta));
            let waker = futures_waker();
            let mut cx = Context::from_waker(&waker);
            for _ in 0..(round % 5) + 1 {
                if let Poll::Ready(done) = write.as_mut().poll(&mut cx) {
                    done.unwrap();
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        let mut next = Changes::default();
        next.set("m", json!(round));
        let outcome = store.update(&id, &next, &meta).await;
        assert!(
            matches!(outcome, Ok(WriteOutcome::Applied)),
            "round {round}: {outcome:?}"
        );
    }
}

fn futures_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    std::task::Waker::from(Arc::new(Noop))
}
