"""The stores' servers: whether Redis and PostgreSQL can be reached, emptying a store before
a server starts on it, counting the sessions it holds, and the Redis figures the benchmarks
read (commands run, memory, MONITOR). Redis through redis-py, PostgreSQL through psql."""

import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse

try:
    import redis as redis_py
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # reported by require_redis_client(), for the subcommands that need it
    redis_py = None

from .config import PG_TABLE, PG_URL, REQUIREMENTS, SQLITE_DB

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def require_redis_client():
    """Exits with what to install unless redis-py can be imported."""
    if redis_py is None:
        raise SystemExit("bench/run needs the Python package redis (redis-py): "
                         f"pip install -r {os.path.relpath(REQUIREMENTS)}")


class Redis:
    """The Redis database of the Redis stores, on one connection of redis-py's (opened on
    first use). It sends Redis nothing of its own beyond SELECT: no HELLO, no CLIENT SETINFO,
    so that the commands counted by `calls()` are the servers'."""

    def __init__(self, url):
        require_redis_client()
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 6379
        self.db = int(u.path.strip("/") or 0)
        if self.host not in LOOPBACK:
            raise SystemExit("REDIS_URL must be on loopback")
        self.client = redis_py.Redis(
            host=self.host, port=self.port, db=self.db, protocol=2, driver_info=None,
            socket_timeout=10, socket_connect_timeout=10, retry=Retry(NoBackoff(), 0),
            decode_responses=True, encoding_errors="replace")

    def available(self):
        try:
            return self.client.ping()
        except (redis_py.ConnectionError, redis_py.TimeoutError, OSError):
            return False

    def flush(self):
        self.client.flushdb()

    def calls(self):
        """Calls per command executed by the server so far, not counting ours (INFO,
        SELECT, PING, FLUSHDB)."""
        calls = {}
        for name, stats in self.client.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command not in ("info", "select", "ping", "flushdb"):
                calls[command] = int(stats["calls"])
        return calls

    def round_trips(self, action, count, quiet=0.3):
        """Runs `action()` `count` times with MONITOR attached and returns the commands sent
        to this database by clients (script-internal calls, shown as `lua`, excluded), per
        call. Commands sent in one pipeline count one each."""
        seen = 0
        with self.client.monitor() as monitor:
            for _ in range(count):
                action()
            deadline = time.monotonic() + 30
            # Counted until MONITOR has been quiet for `quiet` seconds.
            try:
                while time.monotonic() < deadline and monitor.connection.can_read(timeout=quiet):
                    command = monitor.next_command()
                    if command["db"] == self.db and command["client_type"] != "lua":
                        seen += 1
            except redis_py.ConnectionError:
                pass  # Redis closed the connection: what came before is counted
        return seen / count

    def used_memory(self):
        return int(self.client.info("memory")["used_memory"])

    def pid(self):
        """The server's process id, when it runs on this machine (for its CPU time)."""
        pid = self.client.info("server").get("process_id")
        return int(pid) if pid and os.path.exists(f"/proc/{pid}/stat") else None

    def dbsize(self):
        return self.client.dbsize()

    def eval(self, script, *args):
        """The answer of a Lua script run with no keys and these arguments."""
        return self.client.eval(script, 0, *args)

    def sample_key_usage(self, want=100):
        """MEMORY USAGE (exact, SAMPLES 0) averaged over up to `want` keys, and one key's
        type and length (fields of a hash, bytes of a string)."""
        keys, cursor = [], 0
        for _ in range(100):
            cursor, batch = self.client.scan(cursor, count=100)
            keys += batch
            if cursor == 0 or len(keys) >= want:
                break
        keys = keys[:want]
        if not keys:
            return None, None
        usage = sum(self.client.memory_usage(k, samples=0) for k in keys) / len(keys)
        kind = self.client.type(keys[0])
        size = self.client.hlen(keys[0]) if kind == "hash" else self.client.strlen(keys[0])
        unit = "fields" if kind == "hash" else "bytes"
        return usage, f"{kind} of {size} {unit}, key {len(keys[0])} bytes"


def pg_available():
    if urllib.parse.urlparse(PG_URL).hostname not in LOOPBACK:
        raise SystemExit("PG_URL must be on loopback")
    if not shutil.which("psql"):
        return False
    r = subprocess.run(["psql", PG_URL, "-Atc", "select 1"], capture_output=True, timeout=20)
    return r.returncode == 0


def pg_reset():
    subprocess.run(
        ["psql", PG_URL, "-qc", f'DROP TABLE IF EXISTS "{PG_TABLE}", "{PG_TABLE}_migrations"'],
        check=True, capture_output=True, timeout=30,
    )


def empty(store, redis, sqlite_dir):
    """Empties the store of this kind ("redis", "postgres", "sqlite"; others have nothing
    outside the server), so that a server starts on an empty one."""
    if store == "redis":
        redis.flush()
    elif store == "postgres":
        pg_reset()
    elif store == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(sqlite_dir, SQLITE_DB + suffix)
            if os.path.exists(path):
                os.remove(path)


def stored_sessions(store, redis, sqlite_dir):
    """How many sessions the store of this kind holds, where it can be counted from outside
    (None elsewhere)."""
    if store == "redis":
        return redis.dbsize()
    if store == "postgres":
        r = subprocess.run(["psql", PG_URL, "-Atc", f'SELECT count(*) FROM "{PG_TABLE}"'],
                           capture_output=True, text=True, check=True, timeout=60)
        return int(r.stdout.strip())
    if store == "sqlite":
        db = sqlite3.connect(f"file:{os.path.join(sqlite_dir, SQLITE_DB)}?mode=ro", uri=True)
        try:
            return db.execute(f'SELECT count(*) FROM "{PG_TABLE}"').fetchone()[0]
        finally:
            db.close()
    return None
