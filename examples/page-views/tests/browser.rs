//! A real browser: headless Chromium against the demo on its default store.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The demo with no `--store`: its default, a SQLite file in `dir`.
fn start_demo(dir: &Path, addr: &str) -> Demo {
    let child = Command::new(env!("CARGO_BIN_EXE_page-views"))
        .current_dir(dir)
        .args(["--addr", addr])
        .env(
            "SESSIO_SECRET",
            "the browser test's secret: 32 bytes or more",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Demo(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = demo.0.try_wait().unwrap() {
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

/// Loads `url` in headless Chromium with a persistent profile (so cookies are kept between
/// loads, as a browser keeps them between visits) and returns the page's text.
fn load(profile: &Path, url: &str) -> String {
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {:?}",
        output.status
    );
    let dom = String::from_utf8(output.stdout).unwrap();
    // The demo answers text/plain; Chromium wraps it in <pre>.
    let text = dom
        .split("<pre")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest);
    text.and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no page text in {dom:?}"))
        .to_owned()
}

#[test]
fn chromium_counts_visits_across_a_restart() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{CHROMIUM} is missing; .ci/run installs Debian's chromium");
        }
        eprintln!("SKIPPED: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let url = format!("http://{addr}/");

    let demo = start_demo(dir.path(), &addr);
    assert_eq!(load(profile.path(), &url), page_views::WELCOME);
    assert_eq!(
        load(profile.path(), &url),
        "Has visitado esta página 2 veces"
    );
    assert_eq!(
        load(profile.path(), &url),
        "Has visitado esta página 3 veces"
    );
    drop(demo);

    let _demo = start_demo(dir.path(), &addr);
    assert_eq!(
        load(profile.path(), &url),
        "Has visitado esta página 4 veces"
    );

    // The cookie is `Secure`; browsers keep it over plain HTTP on loopback names too.
    let port = addr.rsplit_once(':').unwrap().1;
    let localhost = format!("http://localhost:{port}/");
    let other_profile = tempfile::tempdir().unwrap();
    assert_eq!(load(other_profile.path(), &localhost), page_views::WELCOME);
    assert_eq!(
        load(other_profile.path(), &localhost),
        "Has visitado esta página 2 veces"
    );
}
