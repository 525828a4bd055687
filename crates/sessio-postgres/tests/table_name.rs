//! Table names are validated before they reach any SQL. No server needed.

use sessio_postgres::PostgresStore;
use sqlx::postgres::PgPoolOptions;

fn store() -> PostgresStore {
    // Lazy: nothing connects, so no server is needed.
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .expect("a valid URL");
    PostgresStore::from_pool(pool)
}

#[tokio::test]
async fn invalid_table_names_are_refused() {
    let too_long = "a".repeat(49);
    let schema_too_long = format!("{}.sessions", "s".repeat(64));
    for name in [
        "a;drop",
        "",
        "A-b",
        "1abc",
        "Sessions",
        "sessions\"; DROP TABLE users; --",
        "a b",
        "app.",
        ".sessions",
        "a.b.c",
        too_long.as_str(),
        schema_too_long.as_str(),
    ] {
        let error = store()
            .with_table_name(name)
            .expect_err(&format!("{name:?} was accepted"));
        assert_eq!(error.name(), name);
        assert!(error.to_string().contains("invalid table name"), "{error}");
    }
}

#[tokio::test]
async fn valid_table_names_are_kept() {
    let longest = "a".repeat(48);
    for name in ["sessions_v2", "app.sessions", "_private", longest.as_str()] {
        let store = store()
            .with_table_name(name)
            .unwrap_or_else(|e| panic!("{name:?} was refused: {e}"));
        assert_eq!(store.table_name(), name);
    }
    assert_eq!(store().table_name(), PostgresStore::DEFAULT_TABLE_NAME);
}

#[tokio::test]
async fn debug_shows_the_table_name_only() {
    let store = store().with_table_name("app.sessions").unwrap();
    let debug = format!("{store:?}");
    assert_eq!(
        debug,
        "PostgresStore { table: \"app.sessions\", layout: Native, .. }"
    );
    assert!(!debug.contains("nobody"), "{debug}");
}

#[tokio::test]
async fn the_layout_picks_the_default_table_unless_one_was_named() {
    use sessio_postgres::Layout;

    assert_eq!(store().layout(), Layout::Native);
    let shared = store().with_layout(Layout::ConnectPgSimple);
    assert_eq!(shared.layout(), Layout::ConnectPgSimple);
    assert_eq!(shared.table_name(), "session");
    assert_eq!(
        Layout::ConnectPgSimple.default_table_name(),
        shared.table_name()
    );
    // Back to native: back to its default.
    assert_eq!(
        shared.with_layout(Layout::Native).table_name(),
        PostgresStore::DEFAULT_TABLE_NAME
    );
    // A chosen name stays, whichever comes first.
    let named_first = store()
        .with_table_name("app.web_sessions")
        .unwrap()
        .with_layout(Layout::ConnectPgSimple);
    assert_eq!(named_first.table_name(), "app.web_sessions");
    let named_after = store()
        .with_layout(Layout::ConnectPgSimple)
        .with_table_name("app.session")
        .unwrap();
    assert_eq!(named_after.table_name(), "app.session");
    assert_eq!(named_after.layout(), Layout::ConnectPgSimple);
    assert_eq!(
        format!("{named_after:?}"),
        "PostgresStore { table: \"app.session\", layout: ConnectPgSimple, .. }"
    );
}
