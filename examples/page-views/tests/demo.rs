//! The demo as a visitor sees it: the real binary, over TCP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn start(secret: Option<&str>) -> Server {
    let addr = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_page-views"));
    command
        .args(["--addr", &addr, "--store", "memory"])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match secret {
        Some(secret) => command.env("SESSIO_SECRET", secret),
        None => command.env_remove("SESSIO_SECRET"),
    };
    let server = Server {
        child: command.spawn().unwrap(),
        addr,
    };
    // Wait until it accepts connections (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&server.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the demo did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// `GET /` with an optional cookie; returns the body and the session cookie pair, if set.
fn visit(server: &Server, cookie: Option<&str>) -> (String, Option<String>) {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
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

#[test]
fn counts_visits_per_visitor() {
    let server = start(Some("a test secret that is at least 32 bytes"));
    let (body, cookie) = visit(&server, None);
    assert_eq!(body, page_views::WELCOME);
    let cookie = cookie.expect("first visit sets the session cookie");
    assert_eq!(
        visit(&server, Some(&cookie)).0,
        "Has visitado esta página 2 veces"
    );
    assert_eq!(
        visit(&server, Some(&cookie)).0,
        "Has visitado esta página 3 veces"
    );
    assert_eq!(
        visit(&server, None).0,
        page_views::WELCOME,
        "a new visitor starts at one"
    );
}

#[test]
fn a_short_secret_is_refused_at_startup() {
    let output = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .args(["--addr", &free_addr()])
        .env("SESSIO_SECRET", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

#[test]
fn without_a_secret_it_runs_with_a_loud_warning() {
    let mut server = start(None);
    assert_eq!(visit(&server, None).0, page_views::WELCOME);
    server.child.kill().unwrap();
    let mut out = String::new();
    server
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("SESSIO_SECRET is not set"), "{out}");
}
