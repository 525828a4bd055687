"""The memory benchmark: each server's resident memory (and, for the Redis stores, Redis's
`used_memory`) before and after 10,000 and 100,000 new sessions; and its table."""

import time

from .clients import create_sessions, read_back
from .config import PORT, log
from .procs import rss_bytes, start, stop, wait_listening
from .servers import memory_servers


def memory(redis, redis_ok):
    """The rows of each server and the table of them."""
    targets = memory_servers(redis_ok)
    steps = (10_000, 100_000)
    rows = []
    for name, argv, cwd, sessions in targets:
        log(f"memory: {name}")
        is_redis = "--store" in argv and argv[argv.index("--store") + 1].startswith("redis://")
        row = {"server": name}
        proc = None
        try:
            if is_redis:
                redis.flush()
            proc = start(argv, f"memory {name}", cwd=cwd)
            wait_listening(proc, PORT)
            # Warm up without creating sessions (/peek for a new visitor creates none), so
            # buffers, caches and the allocator reach their steady size first.
            create_sessions(PORT, 20_000, path="/peek")
            time.sleep(1.0)
            rss0 = rss_bytes(proc.pid)
            mem0 = redis.used_memory() if is_redis else None
            made = sent = 0
            cookies = []
            for target in steps:
                made += create_sessions(PORT, target - sent,
                                        keep=cookies if not sent else None)
                sent = target
                time.sleep(1.0)
                rss = rss_bytes(proc.pid)
                row[f"rss_{target}"] = rss
                row[f"rss_per_{target}"] = (rss - rss0) / target
                if is_redis:
                    row[f"redis_per_{target}"] = (redis.used_memory() - mem0) / target
                    row[f"keys_{target}"] = redis.dbsize()
            row["rss0"] = rss0
            if "--client-cache" in argv:
                # The cache holds sessions once read: read the first 10k back.
                read_back(PORT, cookies)
                time.sleep(1.0)
                row["cached_per_session"] = (rss_bytes(proc.pid) - rss) / len(cookies)
            if made != (steps[-1] if sessions else 0):
                row["invalid"] = f"{made} of {steps[-1]} requests created a session"
            elif is_redis:
                row["key_usage"], row["key_layout"] = redis.sample_key_usage()
                if row.get(f"keys_{steps[-1]}") != steps[-1]:
                    row["invalid"] = f"{row.get(f'keys_{steps[-1]}')} Redis keys, not {steps[-1]}"
        except Exception as e:  # noqa: BLE001 -- reported, the bench goes on
            row["invalid"] = f"{type(e).__name__}: {e}"
        finally:
            if proc:
                stop(proc)
            if is_redis:
                redis.flush()
        if row.get("invalid"):
            log(f"    NOT TRUSTED: {row['invalid']}")
        rows.append(row)
    return memory_table(rows), rows


def memory_table(rows):
    lines = [
        "| server | RSS before | RSS at 10k | RSS at 100k | RSS B/session (10k) "
        "| RSS B/session (100k) | Redis B/session (10k) | Redis B/session (100k) "
        "| Redis MEMORY USAGE per key | Redis layout | RSS B per cached session |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]

    def mib(v):
        return "—" if v is None else f"{v / 2**20:.1f} MiB"

    def num(v):
        return "—" if v is None else f"{v:,.0f}"

    for r in rows:
        if r.get("invalid"):
            lines.append(f"| {r['server']} | not trusted: {r['invalid']} ||||||||||")
            continue
        lines.append(
            f"| {r['server']} | {mib(r.get('rss0'))} | {mib(r.get('rss_10000'))} "
            f"| {mib(r.get('rss_100000'))} | {num(r.get('rss_per_10000'))} "
            f"| {num(r.get('rss_per_100000'))} | {num(r.get('redis_per_10000'))} "
            f"| {num(r.get('redis_per_100000'))} | {num(r.get('key_usage'))} "
            f"| {r.get('key_layout') or '—'} | {num(r.get('cached_per_session'))} |")
    return "\n".join(lines)
