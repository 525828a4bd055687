"""The requests the benchmarks send the page-views app themselves (wrk sends the load): a
visitor's checks, seeding sessions, creating them by the thousand and reading them back,
each on one keep-alive HTTP/1.1 connection (http.client, which sets TCP_NODELAY)."""

import http.client
import re

from .config import WELCOME


def connect(port, timeout):
    """A connection to 127.0.0.1:`port`, opened now."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    return conn


def get(conn, path, cookie=None):
    """GET `path` on `conn`, with this Cookie header if given: (status, headers by lowercase
    name to lists of values, body as text). The request has no other header than Host:
    127.0.0.1. Raises once the server has closed the connection (it is not reopened: every
    server here keeps connections alive)."""
    if conn.sock is None:
        raise RuntimeError("connection closed")
    conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", "127.0.0.1")
    if cookie:
        conn.putheader("Cookie", cookie)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    hdrs = {}
    for name, value in resp.getheaders():
        hdrs.setdefault(name.strip().lower(), []).append(value.strip())
    return resp.status, hdrs, body.decode()


class Client:
    """A keep-alive HTTP/1.1 client with a one-site cookie jar (names to values)."""

    def __init__(self, port):
        self.conn = connect(port, timeout=10)
        self.jar = {}

    def close(self):
        self.conn.close()

    def get(self, path, cookies=True):
        cookie = None
        if cookies and self.jar:
            cookie = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        status, hdrs, body = get(self.conn, path, cookie)
        for value in hdrs.get("set-cookie", []):
            pair = value.split(";", 1)[0].strip()
            name, _, val = pair.partition("=")
            self.jar[name] = val
        return status, hdrs, body


def check_counter(server, port):
    """A fresh visitor sees welcome, 2, 3; /peek shows the count without changing it, and
    creates no session for a new visitor. Raises on any deviation."""
    c = Client(port)
    try:
        if not server.sessions:
            for path in ("/", "/peek"):
                status, _, _ = c.get(path)
                if status != 200:
                    raise RuntimeError(f"{path}: status {status}")
            return
        steps = [
            ("/", WELCOME),
            ("/", "Has visitado esta página 2 veces"),
            ("/", "Has visitado esta página 3 veces"),
            ("/peek", "Visitas: 3"),
            ("/peek", "Visitas: 3"),
            ("/", "Has visitado esta página 4 veces"),
        ]
        for i, (path, want) in enumerate(steps):
            status, hdrs, body = c.get(path)
            ctype = ",".join(hdrs.get("content-type", [])).lower().replace(" ", "")
            if status != 200 or body != want or ctype != "text/plain;charset=utf-8":
                raise RuntimeError(
                    f"step {i + 1} GET {path}: status {status}, content-type {ctype!r}, "
                    f"body {body!r}, wanted {want!r}")
            if i == 0 and not c.jar:
                raise RuntimeError("first visit set no cookie")
        status, hdrs, body = c.get("/peek", cookies=False)
        if status != 200 or body != WELCOME or hdrs.get("set-cookie"):
            raise RuntimeError(f"/peek without cookie: {status} {body!r}, "
                               f"set-cookie {hdrs.get('set-cookie')}")
    finally:
        c.close()


def seed_sessions(port, count):
    """`count` new sessions, each from one cookieless GET / (count 1): their cookies."""
    cookies = []
    for _ in range(count):
        c = Client(port)
        try:
            status, hdrs, body = c.get("/")
            if status != 200 or body != WELCOME or len(c.jar) != 1:
                raise RuntimeError(f"seeding: {status} {body!r}, cookies {list(c.jar)}")
            cookies += [f"{k}={v}" for k, v in c.jar.items()]
        finally:
            c.close()
    return cookies


def session_counts(port, cookies):
    """Each seeded session's count, read with /peek (which does not change it)."""
    counts = []
    c = Client(port)
    try:
        for cookie in cookies:
            c.jar = dict([cookie.split("=", 1)])
            status, _, body = c.get("/peek")
            m = re.fullmatch(r"Visitas: (\d+)", body)
            if status != 200 or not m:
                raise RuntimeError(f"/peek after the run: {status} {body!r}")
            counts.append(int(m.group(1)))
    finally:
        c.close()
    return counts


def create_sessions(port, count, path="/", keep=None):
    """Sends `count` cookieless GETs, one at a time on one keep-alive connection (pipelining
    stalls on delayed ACKs with some servers). Returns how many responses set a cookie (each
    is a new session); appends each cookie (`name=value`) to `keep` if given."""
    created = 0
    conn = connect(port, timeout=30)
    try:
        for _ in range(count):
            status, hdrs, _ = get(conn, path)
            if status != 200:
                raise RuntimeError(f"status {status} while creating sessions")
            if hdrs.get("set-cookie"):
                created += 1
                if keep is not None:
                    keep.append(hdrs["set-cookie"][0].split(";")[0])
    finally:
        conn.close()
    return created


def read_back(port, cookies):
    """GET /peek once with each cookie (the session is read, not changed), on one keep-alive
    connection; raises unless each answers with its count."""
    conn = connect(port, timeout=30)
    try:
        for cookie in cookies:
            status, _, body = get(conn, "/peek", cookie)
            if status != 200 or body != "Visitas: 1":
                raise RuntimeError(f"reading a session back: {status} {body!r}")
    finally:
        conn.close()
