//! Load and save against each store. PostgreSQL and Redis run when
//! `SESSIO_TEST_POSTGRES_URL` / `SESSIO_TEST_REDIS_URL` point at a server.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use sessio::store::{Changes, Meta, Record};
use sessio::{IdGenerator, MemoryStore, RandomIdGenerator, SessionStore};
use sessio_postgres::PostgresStore;
use sessio_redis::{ClientCache, RedisStore};
use sessio_sqlite::SqliteStore;

fn record() -> Record {
    let now = SystemTime::now();
    let mut data = serde_json::Map::new();
    data.insert("page_views".into(), json!(1));
    Record {
        data,
        meta: Meta {
            created_at: now,
            last_active: now,
            expires_at: now + Duration::from_secs(3600),
            expiry: None,
        },
    }
}

fn bench_store<S: SessionStore>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: S,
) {
    let id = RandomIdGenerator::default().generate();
    let record = record();
    runtime.block_on(store.create(&id, &record)).unwrap();
    let mut changes = Changes::default();
    changes.set("page_views", json!(2));
    let mut group = c.benchmark_group(format!("store/{name}"));
    group.bench_function("load", |b| {
        b.to_async(runtime)
            .iter(|| store.load(&id, SystemTime::now()))
    });
    group.bench_function("save-one-key", |b| {
        b.to_async(runtime)
            .iter(|| store.update(&id, &changes, &record.meta))
    });
    group.bench_function("touch", |b| {
        b.to_async(runtime).iter(|| store.touch(&id, &record.meta))
    });
    group.finish();
    runtime.block_on(store.delete(&id)).unwrap();
}

/// New sessions into a full memory store, each evicting one. A store of 1,000 sessions fits
/// in the CPU's caches; one of 100,000 (the default size) does not, and the difference is
/// what a new visitor pays for the store's size: its lookup, sample and slot are reads
/// that miss the caches.
fn memory_creates_when_full(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let ids = RandomIdGenerator::default();
    let record = &record();
    let mut group = c.benchmark_group("store/memory-create-when-full");
    for size in [1_000, 100_000] {
        let store = &MemoryStore::builder().max_sessions(size).build();
        runtime.block_on(async {
            for _ in 0..size {
                store.create(&ids.generate(), record).await.unwrap();
            }
        });
        group.bench_function(format!("{size}-sessions"), |b| {
            b.to_async(runtime).iter_batched(
                || ids.generate(),
                |id| async move { store.create(&id, record).await.unwrap() },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn stores(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_store(c, &runtime, "memory", MemoryStore::new());
    memory_creates_when_full(c, &runtime);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = runtime.block_on(async {
        let store = SqliteStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        store
    });
    bench_store(c, &runtime, "sqlite", sqlite);

    match std::env::var("SESSIO_TEST_POSTGRES_URL") {
        Ok(url) => {
            let store = runtime.block_on(async {
                let store = PostgresStore::connect(&url)
                    .await
                    .unwrap()
                    .with_table_name("sessio_bench_sessions")
                    .unwrap();
                store.migrate().await.unwrap();
                store
            });
            bench_store(c, &runtime, "postgres", store);
        }
        Err(_) => eprintln!("SKIPPED: SESSIO_TEST_POSTGRES_URL is not set"),
    }
    match std::env::var("SESSIO_TEST_REDIS_URL") {
        Ok(url) => {
            let store = runtime.block_on(async {
                RedisStore::connect(&url)
                    .await
                    .unwrap()
                    .with_key_prefix("sessio-bench:")
                    .unwrap()
            });
            bench_store(c, &runtime, "redis", store.clone());
            let cached = runtime.block_on(store.with_client_cache(ClientCache::new()));
            bench_store(c, &runtime, "redis-client-cache", cached.unwrap());
        }
        Err(_) => eprintln!("SKIPPED: SESSIO_TEST_REDIS_URL is not set"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
