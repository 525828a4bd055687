//! The demo as a visitor sees it: the real binary, over TCP, on every store.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sessio::testing::service_url;

const SECRET: &str = "a test secret that is at least 32 bytes";

/// A running demo; killed when dropped.
struct Demo {
    child: Child,
    addr: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Starts the demo in `dir` with `args`, on a free port, and waits until it listens.
fn start_in(dir: &Path, args: &[&str], secret: Option<&str>) -> Demo {
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_page-views"));
    command
        .current_dir(dir)
        .args(["--addr", &addr])
        .args(args)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match secret {
        Some(secret) => command.env("SESSIO_SECRET", secret),
        None => command.env_remove("SESSIO_SECRET"),
    };
    let mut demo = Demo {
        child: command.spawn().unwrap(),
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&demo.addr).is_err() {
        if let Some(status) = demo.child.try_wait().unwrap() {
            panic!("the demo exited with {status} before listening");
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    demo
}

fn start(args: &[&str]) -> Demo {
    start_in(&std::env::temp_dir(), args, Some(SECRET))
}

/// `GET /` with an optional cookie; returns the body and the session cookie pair, if set.
fn visit(demo: &Demo, cookie: Option<&str>) -> (String, Option<String>) {
    let mut stream = TcpStream::connect(&demo.addr).unwrap();
    let cookie_line = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: localhost\r\n{cookie_line}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let set_cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .map(|value| value.split(';').next().unwrap().to_owned());
    (body.to_owned(), set_cookie)
}

fn views(n: u64) -> String {
    if n == 1 {
        page_views::WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {n} veces")
    }
}

#[test]
fn counts_visits_per_visitor() {
    let demo = start(&["--store", "memory"]);
    let (body, cookie) = visit(&demo, None);
    assert_eq!(body, views(1));
    let cookie = cookie.expect("first visit sets the session cookie");
    assert_eq!(visit(&demo, Some(&cookie)).0, views(2));
    assert_eq!(visit(&demo, Some(&cookie)).0, views(3));
    assert_eq!(
        visit(&demo, None).0,
        views(1),
        "a new visitor starts at one"
    );
}

#[test]
fn the_default_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_in(dir.path(), &[], Some(SECRET));
    let cookie = visit(&demo, None).1.unwrap();
    assert_eq!(visit(&demo, Some(&cookie)).0, views(2));
    drop(demo); // killed, not shut down gracefully
    assert!(
        dir.path().join("page-views.db").exists(),
        "the default store is a SQLite file"
    );
    let demo = start_in(dir.path(), &[], Some(SECRET));
    assert_eq!(visit(&demo, Some(&cookie)).0, views(3));
}

/// Two instances on different ports, one store: one counter per visitor.
fn two_instances_share(store: &str) {
    let (a, b) = (start(&["--store", store]), start(&["--store", store]));
    let cookie = visit(&a, None).1.unwrap();
    assert_eq!(visit(&b, Some(&cookie)).0, views(2));
    assert_eq!(visit(&a, Some(&cookie)).0, views(3));
    assert_eq!(visit(&b, Some(&cookie)).0, views(4));
    let other = visit(&b, None).1.unwrap();
    assert_eq!(visit(&a, Some(&other)).0, views(2));
}

#[test]
fn two_instances_share_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    two_instances_share(&format!(
        "sqlite://{}",
        dir.path().join("shared.db").display()
    ));
}

#[test]
fn two_instances_share_a_postgres_store() {
    if let Some(url) = service_url("SESSIO_TEST_POSTGRES_URL") {
        two_instances_share(&url);
    }
}

#[test]
fn two_instances_share_a_redis_store() {
    if let Some(url) = service_url("SESSIO_TEST_REDIS_URL") {
        two_instances_share(&url);
    }
}

#[test]
fn two_instances_share_a_redis_cluster() {
    if let Some(urls) = service_url("SESSIO_TEST_REDIS_CLUSTER_URLS") {
        let hosts: Vec<&str> = urls
            .split(',')
            .map(|u| u.trim().trim_start_matches("redis://"))
            .collect();
        two_instances_share(&format!("redis+cluster://{}", hosts.join(",")));
    }
}

#[test]
fn a_short_secret_is_refused_at_startup() {
    let output = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .args(["--addr", &free_addr(), "--store", "memory"])
        .env("SESSIO_SECRET", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

#[test]
fn an_unknown_store_is_refused_at_startup() {
    let output = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .args(["--addr", &free_addr(), "--store", "mongodb://x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unsupported store"), "{stderr}");
}

#[test]
fn without_a_secret_it_runs_with_a_loud_warning() {
    let mut demo = start_in(&std::env::temp_dir(), &["--store", "memory"], None);
    assert_eq!(visit(&demo, None).0, views(1));
    demo.child.kill().unwrap();
    let mut out = String::new();
    demo.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("SESSIO_SECRET is not set"), "{out}");
}
