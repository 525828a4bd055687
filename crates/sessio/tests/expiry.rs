//! Idle timeout, absolute lifetime, touches and per-session expiry, on a manual clock.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use common::*;
use sessio::store::{Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};
use sessio::{CookieConfig, CookieLifetime, Expiry, SessionId, SessionLayer, SessionStore};

const MINUTE: Duration = Duration::from_secs(60);

fn short_expiry() -> Expiry {
    Expiry::new(10 * MINUTE, 60 * MINUTE)
}

#[tokio::test]
async fn idle_sessions_end() {
    let app = app(|l| l.with_expiry(short_expiry()));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    app.clock.advance(9 * MINUTE);
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
    app.clock.advance(10 * MINUTE);
    assert_eq!(browser.get(&app, "/").await.body, WELCOME);
}

#[tokio::test]
async fn activity_keeps_a_session_alive_until_its_absolute_lifetime() {
    let app = app(|l| l.with_expiry(short_expiry()));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    // Reading only (no changes): kept alive by touches.
    for _ in 0..9 {
        app.clock.advance(6 * MINUTE);
        assert_eq!(browser.get(&app, "/get/page_views").await.body, "1");
    }
    // 54 minutes in; the absolute lifetime is 60.
    app.clock.advance(6 * MINUTE);
    assert_eq!(browser.get(&app, "/get/page_views").await.body, "");
}

#[tokio::test]
async fn touches_are_cheap_and_at_most_once_per_interval() {
    let app = app(|l| l.with_expiry(short_expiry()).with_touch_interval(MINUTE));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let updates = app.store.counts.update.load(Ordering::SeqCst);

    let reply = browser.get(&app, "/get/page_views").await;
    assert_eq!(
        app.store.counts.touch.load(Ordering::SeqCst),
        0,
        "touched within the interval"
    );
    assert!(reply.session_cookie().is_none());

    app.clock.advance(MINUTE);
    let reply = browser.get(&app, "/get/page_views").await;
    assert_eq!(app.store.counts.touch.load(Ordering::SeqCst), 1);
    assert_eq!(
        app.store.counts.update.load(Ordering::SeqCst),
        updates,
        "a touch is not a rewrite"
    );
    // The cookie already lasts until the absolute deadline: a touch sends none.
    assert!(reply.session_cookie().is_none());

    browser.get(&app, "/get/page_views").await;
    assert_eq!(app.store.counts.touch.load(Ordering::SeqCst), 1);
    // An explicit touch goes through regardless.
    browser.post(&app, "/touch").await;
    assert_eq!(app.store.counts.touch.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn touch_interval_never_lets_an_active_session_idle_out() {
    // A touch interval longer than the idle timeout is capped at half of it.
    let app = app(|l| {
        l.with_expiry(short_expiry())
            .with_touch_interval(60 * MINUTE)
    });
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    for _ in 0..5 {
        app.clock.advance(6 * MINUTE);
        assert_eq!(browser.get(&app, "/get/page_views").await.body, "1");
    }
}

#[tokio::test]
async fn remember_me_overrides_expiry_per_session() {
    let app = app(|l| l.with_expiry(short_expiry()));
    let mut remembered = Browser::default();
    let mut other = Browser::default();
    remembered.get(&app, "/").await;
    other.get(&app, "/").await;
    let reply = remembered.post(&app, "/remember-me").await;
    // A new expiry: the cookie is re-sent to last the new absolute lifetime.
    assert_eq!(
        reply.attribute("Max-Age").as_deref(),
        Some(&*(90 * 86_400).to_string())
    );

    app.clock.advance(Duration::from_secs(86_400));
    assert_eq!(
        remembered.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
    assert_eq!(other.get(&app, "/").await.body, WELCOME);
}

#[tokio::test]
async fn the_cookie_lasts_until_the_absolute_deadline_and_is_not_resent_for_activity() {
    let app = app(|l| l.with_expiry(Expiry::new(30 * MINUTE, 40 * MINUTE)));
    let mut browser = Browser::default();
    let reply = browser.get(&app, "/").await;
    assert_eq!(reply.attribute("Max-Age").as_deref(), Some("2400"));
    app.clock.advance(20 * MINUTE);
    // Written again: the idle deadline moves on the server; the cookie already covers it.
    let reply = browser.get(&app, "/").await;
    assert_eq!(reply.body, "Has visitado esta página 2 veces");
    assert!(reply.session_cookie().is_none());
    // The server still ends it after 30 idle minutes, cookie or not.
    app.clock.advance(31 * MINUTE);
    assert_eq!(browser.get(&app, "/").await.body, WELCOME);
}

#[tokio::test]
async fn browser_session_cookies_carry_no_expiry_but_the_session_still_ends() {
    let app = app(|l| {
        l.with_expiry(short_expiry())
            .with_cookie(CookieConfig::default().with_lifetime(CookieLifetime::BrowserSession))
            .unwrap()
    });
    let mut browser = Browser::default();
    let reply = browser.get(&app, "/").await;
    assert!(reply.attribute("Max-Age").is_none() && reply.attribute("Expires").is_none());
    app.clock.advance(11 * MINUTE);
    assert_eq!(browser.get(&app, "/").await.body, WELCOME);
}

/// A store that forgets to check expiry.
#[derive(Clone)]
struct NeverExpires(CountingStore);

#[async_trait]
impl SessionStore for NeverExpires {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        self.0.create(id, record).await
    }
    async fn load(&self, id: &SessionId, _now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.0.inner.load(id, SystemTime::UNIX_EPOCH).await
    }
    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.0.update(id, changes, meta).await
    }
    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        self.0.touch(id, meta).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.0.delete(id).await
    }
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.0.delete_expired(now).await
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.0.count().await
    }
}

#[tokio::test]
async fn expiry_is_enforced_even_when_the_store_returns_expired_records() {
    let clock = sessio::ManualClock::default();
    // The memory store's own clock stays behind, so it keeps returning the record.
    let store = CountingStore::new(sessio::MemoryStore::new());
    let router = routes().layer(
        SessionLayer::new(NeverExpires(store.clone()), keys())
            .with_clock(clock.clone())
            .with_expiry(short_expiry()),
    );
    let app = App {
        router,
        clock,
        store,
    };
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    app.clock.advance(11 * MINUTE);
    assert_eq!(browser.get(&app, "/").await.body, WELCOME);
}
