//! The demo as a visitor sees it: the real binary, over TCP, on every store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use sessio::testing::service_url;

const SECRET: &str = "a test secret that is at least 32 bytes";

/// A running demo; killed when dropped.
struct Demo {
    child: Child,
    addr: String,
    /// Its output up to the line saying where it listens, and the rest to come.
    started: String,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo in `dir` with `args`, on a port the OS picks, and waits until it says
/// where it listens. (Picking a free port first and passing it races with the other
/// tests: two demos can be handed the same port, and one then talks to the other's.)
fn start_in(dir: &Path, args: &[&str], secret: Option<&str>) -> Demo {
    let mut command = Command::new(env!("CARGO_BIN_EXE_page-views"));
    command
        .current_dir(dir)
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn,page_views=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match secret {
        Some(secret) => command.env("SESSIO_SECRET", secret),
        None => command.env_remove("SESSIO_SECRET"),
    };
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut started = String::new();
    let addr = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the demo exited with {status} before listening: {started}");
        }
        started.push_str(&line);
        if let Some((_, addr)) = line.split_once("listening on http://") {
            break addr.trim().to_owned();
        }
    };
    Demo {
        child,
        addr,
        started,
        stdout,
    }
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

/// One instance with a client-side cache counts as any other; the cache is not for a
/// cluster, nor for other stores.
#[test]
fn counts_visits_with_a_redis_client_cache() {
    if let Some(url) = service_url("SESSIO_TEST_REDIS_URL") {
        let demo = start(&["--store", &url, "--client-cache"]);
        let cookie = visit(&demo, None).1.unwrap();
        for n in 2..=4 {
            assert_eq!(visit(&demo, Some(&cookie)).0, views(n));
        }
        assert_eq!(visit(&demo, None).0, views(1));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--store",
            "memory",
            "--client-cache",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--client-cache needs one Redis server"),
        "{stderr}"
    );
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
        .args(["--addr", "127.0.0.1:0", "--store", "memory"])
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
        .args(["--addr", "127.0.0.1:0", "--store", "mongodb://x"])
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
    let mut out = demo.started.clone();
    demo.stdout.read_to_string(&mut out).unwrap();
    assert!(out.contains("SESSIO_SECRET is not set"), "{out}");
}
