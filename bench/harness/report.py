"""The report: its head (the versions of everything measured and the settings), the tables
of a raw results file re-rendered (`bench/run report FILE`), and writing a run's report and
raw results to bench/results."""

import json
import os
import re
import shutil
import subprocess
import time

from .config import (CONNECTIONS, DURATION, LOAD_CPU, NODE, PACE_MS, PEERS, REDIS_URL, RESULTS,
                     ROOT, ROUNDS, SERVER_CPU)
from .instructions import instructions_table
from .load import load_table
from .memory import memory_table
from .redis_memory import redis_memory_table


def versions():
    """What was measured with what: commits, toolchains, crates and packages, the CPU."""

    def out(argv, cwd=None):
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=cwd,
                                  timeout=30).stdout.strip()
        except OSError:
            return "?"

    lock = open(os.path.join(PEERS, "Cargo.lock")).read()
    crates = []
    for name in ("axum", "hyper", "tokio", "tower-sessions", "tower-sessions-memory-store",
                 "tower-sessions-redis-store", "fred", "actix-web", "actix-session", "redis"):
        vs = re.findall(rf'name = "{re.escape(name)}"\nversion = "([^"]+)"', lock)
        if vs:
            crates.append(f"{name} {', '.join(vs)}")
    node_pkgs = []
    for pkg in ("express", "express-session"):
        p = os.path.join(NODE, "node_modules", pkg, "package.json")
        if os.path.exists(p):
            node_pkgs.append(f"{pkg} {json.load(open(p))['version']}")
    commit = out(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    dirty = out(["git", "status", "--porcelain", "--", "crates"], cwd=ROOT)
    lscpu = out(["lscpu"])
    model = re.search(r"Model name:\s+(.*)", lscpu)
    # Machines of one kind differ: the cache and SHA extensions tell them apart.
    l3 = re.search(r"L3 cache:\s+(.*)", lscpu)
    flags = re.search(r"Flags:\s+(.*)", lscpu)
    flags = flags.group(1).split() if flags else []
    return {
        "sessio": f"commit {commit}" + (" with uncommitted changes in crates/" if dirty else ""),
        "rustc": out(["rustc", "-V"]),
        "crates": "; ".join(crates),
        "node": out(["node", "-v"]),
        "node packages": "; ".join(node_pkgs),
        "wrk": out(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "?",
        "redis": out(["redis-server", "--version"]),
        "cpu": f"{out(['nproc'])} cores, {model.group(1) if model else '?'}"
               + (f", L3 {l3.group(1)}" if l3 else "")
               + "".join(f", {flag}" for flag in ("sha_ni", "avx512f") if flag in flags),
        "kernel": out(["uname", "-r"]),
    }


def head(v):
    """The report's first lines: when, the versions `v`, the settings."""
    lines = [f"# sessio bench, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", ""]
    lines += [f"- {k}: {val}" for k, val in v.items()]
    lines += [f"- settings: ROUNDS={ROUNDS} DURATION={DURATION} CONNECTIONS={CONNECTIONS} "
              f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}, Redis {REDIS_URL}"
              + (f", paced: {PACE_MS} ms between a response and the next request on each "
                 "connection" if PACE_MS else ""), ""]
    return lines


def settings():
    """The settings as the raw results record them."""
    return {"rounds": ROUNDS, "duration": DURATION, "connections": CONNECTIONS,
            "pace_ms": PACE_MS}


def rendered(raw):
    """The tables of a raw results file, as `bench/run report` prints them (one print each)."""
    out = []
    if raw.get("load"):
        runs = raw["load"]
        names = list(dict.fromkeys(r["server"] for r in runs))
        modes = list(dict.fromkeys(r["mode"] for r in runs))
        out.append(load_table(names, modes, runs))
    if raw.get("memory"):
        out.append("")
        out.append(memory_table(raw["memory"]))
    if raw.get("instructions"):
        out.append(instructions_table(raw["instructions"]))
    if raw.get("redis_writes"):
        out.append(old_redis_writes_table(raw["redis_writes"]))
    if raw.get("redis_memory"):
        out.append(redis_memory_table(raw["redis_memory"]))
    if raw.get("redis_instructions"):
        out.append(old_redis_instructions_table(raw["redis_instructions"]))
    return out


# The tables of two subcommands that are gone (redis-writes, redis-instructions: they
# measured an update script the Redis store no longer runs for ordinary writes), kept so
# that the results files of theirs in bench/measured can still be read. Their runs were of
# 20,000 calls pipelined 100 at a time, and of 6,000 writes minus 2,000.

def old_redis_writes_table(rows):
    """The markdown table of the old `redis-writes` rows: each call's range over the rounds."""
    by_call = {}
    for r in rows:
        by_call.setdefault(r["call"], []).append(r["redis_cpu_us"])
    lines = ["Redis CPU per call, 20,000 calls pipelined 100 at a time (lowest and highest of "
             "the rounds):", "",
             "| call | Redis CPU per call |", "|---|---:|"]
    for name, values in by_call.items():
        lines.append(f"| {name} | {min(values):.1f}–{max(values):.1f} µs |")
    return "\n".join(lines)


def old_redis_instructions_table(rows):
    """The markdown table of the old `redis-instructions` rows."""
    lines = ["What redis-server does per changed-session write (callgrind with its cache "
             "simulation, 6,000 writes minus 2,000):", "",
             "| layout | instructions | L1 data read misses | L1 instruction misses |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layout']} | {r['instructions_per_write']:,.0f} "
                     f"| {r.get('l1_data_read_misses', float('nan')):,.0f} "
                     f"| {r.get('l1_instruction_misses', float('nan')):,.0f} |")
    return "\n".join(lines)


# The report of each subcommand, in bench/results (the load's and all's in latest.md).
LATEST = {"memory": "memory-latest.md", "instructions": "instructions-latest.md",
          "redis-memory": "redis-memory-latest.md"}


def write(what, text, raw, stamp):
    """Writes a run's report and its raw results (named by `stamp`, the run's start) to
    bench/results, and says where."""
    name = LATEST.get(what, "latest.md")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(RESULTS, f"{what}-{stamp}.json"), "w") as f:
        json.dump(raw, f, indent=1)
    return f"written: bench/results/{name}, bench/results/{what}-{stamp}.json"
