//! The demo beside Node's express-session: the real `page-views` binary (`--compat
//! express`) and `interop/app.js` (express 5, express-session 1.19 with connect-redis or
//! connect-pg-simple) share one store and one secret list, and a visitor goes back and
//! forth between them.
//!
//! Needs Node 20 or later with the pinned packages installed: `bash .ci/interop-setup`
//! installs them and prints the path for `SESSIO_INTEROP_NODE_PATH`. The stores come from
//! `SESSIO_TEST_REDIS_URL` and `SESSIO_TEST_POSTGRES_URL`. A test whose variables are unset
//! is skipped, except under `CI=true`, where it fails.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sessio::testing::service_url;

/// The secret a rotated deployment signs with.
const NEW: &str = "the new interop secret: at least 32 bytes long";
/// The secret it used to sign with, still accepted.
const OLD: &str = "the old interop secret: at least 32 bytes long";
const COOKIE: &str = "connect.sid";
/// express-session's `cookie.maxAge` in both apps, in seconds.
const DAY: i64 = 86_400;

#[test]
fn redis_sessions_are_shared_with_express_session() {
    let Some(node_path) = service_url("SESSIO_INTEROP_NODE_PATH") else {
        return;
    };
    if let Some(url) = service_url("SESSIO_TEST_REDIS_URL") {
        shares_sessions_with_express(&Harness::new(node_path, url));
    }
}

#[test]
fn postgres_sessions_are_shared_with_express_session() {
    let Some(node_path) = service_url("SESSIO_INTEROP_NODE_PATH") else {
        return;
    };
    if let Some(url) = service_url("SESSIO_TEST_POSTGRES_URL") {
        shares_sessions_with_express(&Harness::new(node_path, url));
    }
}

fn shares_sessions_with_express(h: &Harness) {
    // The Rust demo first: its migration creates what connect-pg-simple expects, which
    // would otherwise create its table on the first request, without IF NOT EXISTS.
    let rust = h.rust_demo(&[NEW, OLD]);
    let node = h.node_app(&[NEW, OLD]);

    // (a) One visitor, counted by Node, then Rust, then Node.
    let mut visitor = Visitor::default();
    let node_first = visitor.visit(h, &node, "/");
    expect_views(&node_first, 1, "a first visit to Node");
    let sid = visitor.sid();
    let node_created = h.stored(&sid);
    let rust_second = visitor.visit(h, &rust, "/");
    expect_views(&rust_second, 2, "Rust continues Node's session");
    let rust_updated = h.stored(&sid);
    assert_eq!(
        rust_updated.shape, node_created.shape,
        "Rust's update of a Node session stores another shape\nNode wrote: {}\nRust wrote: {}",
        node_created.raw, rust_updated.raw
    );
    let node_third = visitor.visit(h, &node, "/");
    expect_views(&node_third, 3, "Node continues after Rust's write");
    expect_views(
        &visitor.visit(h, &rust, "/"),
        4,
        "Rust continues after Node's write",
    );
    assert_eq!(visitor.sid(), sid, "the session kept its id throughout");
    assert_eq!(
        rust_second.set_cookie.is_some(),
        node_third.set_cookie.is_some(),
        "for a modified existing session, express {} Set-Cookie and Rust {}\nNode:\n{}\nRust:\n{}",
        sends(&node_third),
        sends(&rust_second),
        node_third.head,
        rust_second.head
    );

    // (b) A session Rust creates is accepted by Node.
    let mut visitor = Visitor::default();
    let rust_first = visitor.visit(h, &rust, "/");
    expect_views(&rust_first, 1, "a first visit to Rust");
    let rust_created = h.stored(&visitor.sid());
    assert_eq!(
        rust_created.shape, node_created.shape,
        "Rust creates sessions of another shape than Node\nNode wrote: {}\nRust wrote: {}",
        node_created.raw, rust_created.raw
    );
    same_cookie_attributes(&node_first, &rust_first);
    expect_views(
        &visitor.visit(h, &node, "/"),
        2,
        "Node continues Rust's session",
    );
    expect_views(&visitor.visit(h, &rust, "/"), 3, "and Rust after Node");

    // (c) A cookie with one MAC character changed is refused by both sides.
    for (origin, other) in [(&node, &rust), (&rust, &node)] {
        for mac_char in [MacChar::First, MacChar::Last] {
            let mut visitor = Visitor::default();
            expect_views(&visitor.visit(h, origin, "/"), 1, "a first visit");
            let genuine = visitor.cookie.clone().unwrap();
            let forged = tamper(&genuine, mac_char);
            for side in [&node, &rust] {
                let context = format!(
                    "{side} given a cookie from {origin} with the {mac_char:?} MAC character \
                     changed ({forged})"
                );
                let response = h.get(side, "/", Some(&forged));
                expect_views(&response, 1, &context);
                let issued = response
                    .set_cookie
                    .as_deref()
                    .unwrap_or_else(|| panic!("{context}: no cookie for the fresh session"));
                assert_ne!(
                    sid_of(pair(issued)),
                    sid_of(&genuine),
                    "{context}: the fresh session took the refused cookie's id"
                );
            }
            expect_views(
                &h.get(other, "/", Some(&genuine)),
                2,
                "the genuine cookie still works after the forgeries",
            );
        }
    }

    // (d) A session destroyed on one side is gone on the other, and is not recreated.
    for (ends, then) in [(&node, &rust), (&rust, &node)] {
        let mut visitor = Visitor::default();
        expect_views(&visitor.visit(h, then, "/"), 1, "a first visit");
        expect_views(&visitor.visit(h, ends, "/"), 2, "the other side continues");
        let old_cookie = visitor.cookie.clone().unwrap();
        let old_sid = visitor.sid();
        // Neither GET nor HEAD logs out: only POST does.
        for method in ["GET", "HEAD"] {
            let refused = visitor.call(h, ends, method, "/logout");
            assert!(
                refused.set_cookie.is_none(),
                "{ends} {method} /logout\n{}",
                refused.head
            );
        }
        expect_views(
            &visitor.visit(h, ends, "/"),
            3,
            "a GET or HEAD /logout changed nothing",
        );
        let logout = visitor.call(h, ends, "POST", "/logout");
        assert_eq!(logout.status, 200, "{ends} /logout\n{}", logout.head);
        assert_eq!(logout.body, page_views::LOGGED_OUT, "{ends} /logout");
        assert!(
            visitor.cookie.is_none(),
            "{ends} /logout leaves the cookie in the browser:\n{}",
            logout.head
        );
        let gone = h.stored(&old_sid);
        assert!(
            gone.is_absent(),
            "{ends} /logout left the record: {}",
            gone.raw
        );
        let response = h.get(then, "/", Some(&old_cookie));
        let context = format!("{then} given the cookie of a session {ends} destroyed");
        expect_views(&response, 1, &context);
        let issued = response
            .set_cookie
            .as_deref()
            .unwrap_or_else(|| panic!("{context}: no cookie for the fresh session"));
        assert_ne!(sid_of(pair(issued)), old_sid, "{context}: the id came back");
        let still_gone = h.stored(&old_sid);
        assert!(
            still_gone.is_absent(),
            "{context}: the destroyed record was recreated: {}",
            still_gone.raw
        );
    }

    // (e) Rotation: a cookie signed with the old secret verifies on both sides once they
    // sign with a new one and still accept the old; what they send back is signed with the
    // new secret.
    let node_old = h.node_app(&[OLD]);
    let mut visitor = Visitor::default();
    expect_views(
        &visitor.visit(h, &node_old, "/"),
        1,
        "a first visit to Node signing with the old secret",
    );
    let signed_with_old = visitor.cookie.clone().unwrap();
    let from_node = h.get(&node, "/", Some(&signed_with_old));
    expect_views(
        &from_node,
        2,
        "Node [new, old] given a cookie signed with old",
    );
    let from_rust = h.get(&rust, "/", Some(&signed_with_old));
    expect_views(
        &from_rust,
        3,
        "Rust [new, old] given a cookie signed with old",
    );
    let node_new = h.node_app(&[NEW]);
    for (n, (signer, response)) in [(&node, &from_node), (&rust, &from_rust)]
        .into_iter()
        .enumerate()
    {
        let resigned = pair(
            response
                .set_cookie
                .as_deref()
                .unwrap_or_else(|| panic!("{signer} sent no cookie:\n{}", response.head)),
        );
        let context = format!("the cookie {signer} sent back ({resigned})");
        assert_eq!(sid_of(resigned), sid_of(&signed_with_old), "{context}");
        expect_views(
            &h.get(&node_new, "/", Some(resigned)),
            4 + n as u64,
            &format!("{context}, on Node [new]"),
        );
        expect_views(
            &h.get(&node_old, "/", Some(resigned)),
            1,
            &format!("{context}, on Node [old]: it must be signed with the new secret"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Servers

/// A running server; killed when dropped.
struct Server {
    name: String,
    child: Child,
    addr: String,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Spawns `command` and waits (bounded) until it accepts connections on `port`.
fn serve(name: String, mut command: Command, port: u16) -> Server {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut server = Server {
        name,
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&server.addr).is_err() {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("{server} exited with {status} before listening");
        }
        assert!(
            Instant::now() < deadline,
            "{server} did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn secret_names(secrets: &[&str]) -> String {
    let names: Vec<&str> = secrets
        .iter()
        .map(|s| if *s == NEW { "new" } else { "old" })
        .collect();
    format!("[{}]", names.join(", "))
}

// ---------------------------------------------------------------------------------------
// HTTP

/// What a server answered.
struct Response {
    status: u16,
    head: String,
    body: String,
    /// The `connect.sid` Set-Cookie line, without the header name.
    set_cookie: Option<String>,
}

fn sends(response: &Response) -> &'static str {
    if response.set_cookie.is_some() {
        "sends"
    } else {
        "sends no"
    }
}

/// `name=value` of a Set-Cookie line.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().trim()
}

/// Whether a Set-Cookie line removes the cookie from the browser.
fn clears(set_cookie: &str) -> bool {
    let value = pair(set_cookie).split_once('=').map_or("", |(_, v)| v);
    value.is_empty()
        || attributes(set_cookie).iter().any(|(name, value)| {
            (name == "max-age" && value.parse::<i64>().is_ok_and(|age| age <= 0))
                || (name == "expires" && http_date(value).is_some_and(|at| at <= unix_now()))
        })
}

/// The attributes of a Set-Cookie line, names lowercased, in order.
fn attributes(set_cookie: &str) -> Vec<(String, String)> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|attribute| {
            let (name, value) = attribute.split_once('=').unwrap_or((attribute, ""));
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect()
}

/// Both first responses set the cookie with the same attributes, expiring in a day.
fn same_cookie_attributes(node: &Response, rust: &Response) {
    let (node_line, rust_line) = (
        node.set_cookie.as_deref().expect("Node set no cookie"),
        rust.set_cookie.as_deref().expect("Rust set no cookie"),
    );
    // sessio writes `SameSite=Lax` and `Secure` unless told otherwise, where
    // express-session writes neither by default: deliberate defaults (browsers treat a
    // missing SameSite as Lax or None, and keep a Secure cookie from loopback hosts over
    // plain HTTP), so only the other attributes must agree.
    assert!(
        attributes(rust_line)
            .iter()
            .any(|(name, _)| name == "secure"),
        "{rust_line}"
    );
    let names = |line: &str| -> Vec<String> {
        attributes(line)
            .into_iter()
            .filter(|(name, _)| name != "samesite" && name != "secure")
            .map(|(name, value)| match name.as_str() {
                "expires" => name,
                _ => format!("{name}={value}"),
            })
            .collect()
    };
    assert_eq!(
        names(rust_line),
        names(node_line),
        "the cookie attributes differ\nNode: {node_line}\nRust: {rust_line}"
    );
    for line in [node_line, rust_line] {
        let expires = attributes(line)
            .into_iter()
            .find(|(name, _)| name == "expires")
            .and_then(|(_, value)| http_date(&value))
            .unwrap_or_else(|| panic!("no readable Expires in {line}"));
        let in_a_day = unix_now() + DAY;
        assert!(
            (expires - in_a_day).abs() <= 120,
            "the cookie should expire in a day: {line}"
        );
    }
}

/// A browser: keeps the cookie it is given, drops it when told to.
#[derive(Default)]
struct Visitor {
    /// `connect.sid=...`
    cookie: Option<String>,
}

impl Visitor {
    fn visit(&mut self, h: &Harness, server: &Server, path: &str) -> Response {
        self.call(h, server, "GET", path)
    }

    fn call(&mut self, h: &Harness, server: &Server, method: &str, path: &str) -> Response {
        let response = h.call(server, method, path, self.cookie.as_deref());
        if let Some(line) = &response.set_cookie {
            self.cookie = (!clears(line)).then(|| pair(line).to_owned());
        }
        response
    }

    fn sid(&self) -> String {
        sid_of(self.cookie.as_deref().expect("the visitor has no cookie"))
    }
}

#[track_caller]
fn expect_views(response: &Response, n: u64, context: &str) {
    let expected = if n == 1 {
        page_views::WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {n} veces")
    };
    assert_eq!(response.status, 200, "{context}:\n{}", response.head);
    assert_eq!(response.body, expected, "{context}:\n{}", response.head);
    let content_type = header(&response.head, "content-type").unwrap_or_default();
    assert!(
        content_type
            .to_ascii_lowercase()
            .starts_with("text/plain; charset=utf-8"),
        "{context}: {content_type}"
    );
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---------------------------------------------------------------------------------------
// Cookies

/// The session id in a `connect.sid=s%3A<sid>.<mac>` pair.
fn sid_of(pair: &str) -> String {
    let value = pair
        .strip_prefix("connect.sid=")
        .expect("a connect.sid pair");
    let decoded = percent_decode(value);
    decoded
        .strip_prefix("s:")
        .and_then(|signed| signed.rsplit_once('.'))
        .map(|(sid, _)| sid.to_owned())
        .unwrap_or_else(|| panic!("not a signed express cookie: {pair}"))
}

#[derive(Debug, Clone, Copy)]
enum MacChar {
    /// The first character: six significant bits.
    First,
    /// The last: its lowest bits are padding, which a lax base64 decoder ignores.
    Last,
}

/// The pair with one base64 character of its MAC changed to its neighbour (lowest bit
/// flipped).
fn tamper(pair: &str, which: MacChar) -> String {
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = pair.strip_prefix("connect.sid=").unwrap();
    let decoded = percent_decode(value);
    let (signed, mac) = decoded.rsplit_once('.').unwrap();
    let mut mac = mac.as_bytes().to_vec();
    let i = match which {
        MacChar::First => 0,
        MacChar::Last => mac.len() - 1,
    };
    let index = BASE64.iter().position(|&c| c == mac[i]).unwrap();
    mac[i] = BASE64[index ^ 1];
    let forged = format!("{signed}.{}", String::from_utf8(mac).unwrap());
    format!("{COOKIE}={}", encode_uri_component(&forged))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("a UTF-8 cookie value")
}

/// JavaScript's `encodeURIComponent`, as express-session encodes the cookie value.
fn encode_uri_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Seconds since the epoch of an RFC 1123 date (`Fri, 27 Nov 2026 04:53:37 GMT`).
fn http_date(date: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = date.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as i64 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next() != Some("GMT") {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * DAY + hour * 3600 + minute * 60 + second)
}

// ---------------------------------------------------------------------------------------
// The shared store, seen through Node's own clients

/// Reads or deletes records with the `redis` and `pg` packages the Node app uses.
/// `node -e SCRIPT <url> inspect <sid>` prints two lines: the record's shape (`null` when
/// there is none) and the raw stored value with its store-side expiry.
/// `node -e SCRIPT <url> delete <sid>...` deletes records.
const STORE_SCRIPT: &str = r#"
'use strict';
const [url, op, ...sids] = process.argv.slice(1);

function shape(value, storeExpiryMatches) {
  if (value == null) return null;
  let sess;
  try { sess = JSON.parse(value); } catch (e) { return { json: false }; }
  const cookie = sess.cookie || {};
  const expires = Date.parse(cookie.expires);
  return {
    keys: Object.keys(sess).sort(),
    cookieKeys: Object.keys(cookie).sort(),
    // To the second: express-session derives it from `expires - Date.now()` right after
    // setting `expires`, so it reads 86399999 when the millisecond ticks in between.
    originalMaxAgeSeconds: Math.round(cookie.originalMaxAge / 1000),
    httpOnly: cookie.httpOnly,
    path: cookie.path,
    expiresIsJsonDate: typeof cookie.expires === 'string' && !isNaN(expires)
      && new Date(expires).toJSON() === cookie.expires,
    expiresInADay: Math.abs(expires - Date.now() - 86400000) < 120000,
    pageViewsIsAnInteger: Number.isInteger(sess.page_views),
    storeExpiryMatches: storeExpiryMatches(expires),
  };
}

async function main() {
  if (url.startsWith('redis')) {
    const client = require('redis').createClient({ url });
    await client.connect();
    try {
      if (op === 'delete') {
        if (sids.length) await client.del(sids.map((sid) => 'sess:' + sid));
        return;
      }
      const key = 'sess:' + sids[0];
      const [value, ttl] = [await client.get(key), await client.ttl(key)];
      // connect-redis: EX ceil((expires - now) / 1 s).
      const matches = (expires) => Math.abs(ttl - Math.ceil((expires - Date.now()) / 1000)) <= 2;
      console.log(JSON.stringify(shape(value, matches)));
      console.log(JSON.stringify({ value, ttl }));
    } finally {
      await client.quit();
    }
  } else {
    const client = new (require('pg').Client)({ connectionString: url });
    await client.connect();
    try {
      if (op === 'delete') {
        await client.query('DELETE FROM "session" WHERE sid = ANY($1)', [sids]);
        return;
      }
      const { rows } = await client.query(
        `SELECT sess::text AS value, expire::text AS expire,
                extract(epoch FROM expire::timestamptz) * 1000 AS expire_ms
           FROM "session" WHERE sid = $1`, [sids[0]]);
      const row = rows[0] || { value: null, expire: null, expire_ms: null };
      // connect-pg-simple: to_timestamp(ceil(expires / 1 s)).
      const matches = (expires) => Math.abs(Number(row.expire_ms) - expires) <= 1000;
      console.log(JSON.stringify(shape(row.value, matches)));
      console.log(JSON.stringify({ value: row.value, expire: row.expire }));
    } finally {
      await client.end();
    }
  }
}

main().catch((error) => { console.error(error.message); process.exit(1); });
"#;

/// A record as the Node side sees it.
struct Stored {
    /// Normalised JSON: key sets, cookie attributes, consistency of the expiries.
    shape: String,
    /// The stored value and the store's own expiry, for messages.
    raw: String,
}

impl Stored {
    fn is_absent(&self) -> bool {
        self.shape == "null"
    }
}

/// The store under test and the Node packages; deletes every session it saw when dropped.
struct Harness {
    node_path: String,
    store: String,
    seen: Mutex<BTreeSet<String>>,
}

impl Harness {
    fn new(node_path: String, store: String) -> Self {
        Harness {
            node_path,
            store,
            seen: Mutex::default(),
        }
    }

    /// The Rust demo, `--compat express`, on this store.
    fn rust_demo(&self, secrets: &[&str]) -> Server {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_page-views"));
        command
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--compat", "express", "--store", &self.store])
            .env("SESSIO_SECRET", secrets.join(","))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1");
        serve(format!("Rust {}", secret_names(secrets)), command, port)
    }

    /// `interop/app.js` on this store.
    fn node_app(&self, secrets: &[&str]) -> Server {
        let port = free_port();
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/app.js");
        let mut command = Command::new("node");
        command
            .arg(app)
            .args(["--port", &port.to_string(), "--store", &self.store])
            .env("NODE_PATH", &self.node_path)
            .env("SESSIO_SECRET", secrets.join(","));
        serve(format!("Node {}", secret_names(secrets)), command, port)
    }

    /// `GET path` with an optional `connect.sid=...` cookie.
    fn get(&self, server: &Server, path: &str, cookie: Option<&str>) -> Response {
        self.call(server, "GET", path, cookie)
    }

    /// `method path`, with no body, and an optional `connect.sid=...` cookie.
    fn call(&self, server: &Server, method: &str, path: &str, cookie: Option<&str>) -> Response {
        let mut stream = TcpStream::connect(&server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let cookie_line = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{cookie_line}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("{server} {method} {path}: {e}"));
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{server} {method} {path}: no HTTP response: {raw:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{server} {method} {path}: bad status line: {head}"));
        let cookies: Vec<&str> = head
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("set-cookie")
                    .then(|| value.trim())
            })
            .filter(|value| value.starts_with("connect.sid="))
            .collect();
        assert!(
            cookies.len() <= 1,
            "{server} {method} {path}: more than one session cookie:\n{head}"
        );
        let set_cookie = cookies.first().map(|line| line.to_string());
        if let Some(line) = &set_cookie {
            if !clears(line) {
                self.seen.lock().unwrap().insert(sid_of(pair(line)));
            }
        }
        Response {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
            set_cookie,
        }
    }

    fn node_store(&self, args: &[&str]) -> String {
        let output = Command::new("node")
            .args(["-e", STORE_SCRIPT, &self.store])
            .args(args)
            .env("NODE_PATH", &self.node_path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the store script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The record of `sid`, read by Node.
    fn stored(&self, sid: &str) -> Stored {
        let out = self.node_store(&["inspect", sid]);
        let (shape, raw) = out.trim_end().split_once('\n').unwrap();
        Stored {
            shape: shape.to_owned(),
            raw: raw.to_owned(),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let sids: Vec<String> =
            std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        if sids.is_empty() {
            return;
        }
        let mut args = vec!["delete"];
        args.extend(sids.iter().map(String::as_str));
        // Not node_store: no second panic while unwinding.
        let cleaned = Command::new("node")
            .args(["-e", STORE_SCRIPT, &self.store])
            .args(&args)
            .env("NODE_PATH", &self.node_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !cleaned.is_ok_and(|status| status.success()) {
            eprintln!("could not delete the test's sessions from the store");
        }
    }
}
