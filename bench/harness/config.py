"""Paths, the settings read from the environment, and the load modes."""

import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
PEERS = os.path.join(BENCH, "peers")
NODE = os.path.join(BENCH, "node")
WRK = os.path.join(BENCH, "wrk")
RESULTS = os.path.join(BENCH, "results")
LOGS = os.path.join(RESULTS, "logs")
REQUIREMENTS = os.path.join(BENCH, "requirements.txt")

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = os.environ.get("DURATION", "10s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
PG_URL = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432/test")
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
PORT = int(os.environ.get("PORT", "3917"))
PACE_MS = os.environ.get("PACE_MS")
if PACE_MS is not None and not PACE_MS.isdigit():
    raise SystemExit(f"PACE_MS must be a whole number of milliseconds, not {PACE_MS!r}")
TARGET = os.environ.get(
    "BENCH_TARGET_DIR", os.path.join(os.path.expanduser("~"), ".cache", "sessio-bench-target")
)
SKIP_BUILD = os.environ.get("SKIP_BUILD") == "1"
# The table of the SQL stores, and the SQLite store's file (in a temporary directory).
PG_TABLE = "bench_sessions"
SQLITE_DB = "bench.db"

# What the page-views app answers a new visitor.
WELCOME = "¡Bienvenido a esta página por primera vez!"

# Each mode: its name in the tables, its wrk script (bench/wrk) and the path it loads.
MODES = {
    "changed": ("returning (changed)", "returning.lua", "/"),
    "unchanged": ("returning (unchanged)", "returning.lua", "/peek"),
    "new": ("new", "new.lua", "/"),
}


def modes():
    """The modes chosen with MODES (all by default), in its order."""
    return [m.strip() for m in os.environ.get("MODES", "changed,unchanged,new").split(",")]


def log(*args):
    print(*args, file=sys.stderr, flush=True)
