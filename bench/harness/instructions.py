"""The instructions benchmark: the servers that can drive their own router in-process
(bench/peers/drive) run under callgrind, at two request counts; and its table."""

import os
import re
import shutil
import subprocess
import tempfile

from .config import MODES, log
from .config import modes as chosen_modes
from .servers import servers

# Servers that can drive their own router in-process (bench/peers/drive).
IN_PROCESS = ("baseline", "axum layer floor", "sessio memory", "tower-sessions memory",
              "sessio redis", "sessio redis (client cache)", "tower-sessions redis")
# Two request counts: their difference cancels start-up and the sessions seeded first.
IN_PROCESS_REQUESTS = (2000, 6000)


def callgrind(argv, mode, requests, out):
    """Instructions the process ran, and those inside SHA-256's compression function."""
    env = dict(os.environ, BENCH_IN_PROCESS=f"{mode} {requests}")
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                         env=env, capture_output=True, text=True, timeout=600)
    total = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or not total:
        raise RuntimeError(f"callgrind failed: {run.stderr.strip()[-500:]}")
    annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                              capture_output=True, text=True).stdout
    sha = re.search(r"^\s*([\d,]+) .*sha2::sha256::compress256 \[", annotate, re.M)
    return int(total.group(1)), int(sha.group(1).replace(",", "")) if sha else 0


def instructions(redis, redis_ok):
    """Instructions per request of each in-process server and mode, with SHA-256 apart. The
    Redis servers' figures are their own process's: the client's side of each round trip,
    not Redis's."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed")
    chosen = [s for s in servers(redis_ok, False, "") if s.name in IN_PROCESS]
    modes = chosen_modes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for server in chosen:
            # The server answers its own requests and exits: it never binds its --addr.
            argv = server.argv
            for mode in modes:
                log(f"callgrind: {server.name}, {MODES[mode][0]}")
                counts = []
                for n in IN_PROCESS_REQUESTS:
                    if server.store == "redis":
                        redis.flush()
                    counts.append(callgrind(argv, mode, n, os.path.join(tmp, f"cg.{n}")))
                (t1, s1), (t2, s2) = counts
                n = IN_PROCESS_REQUESTS[1] - IN_PROCESS_REQUESTS[0]
                rows.append({"server": server.name, "mode": mode,
                             "instructions": (t2 - t1) / n, "sha256": (s2 - s1) / n})
    return instructions_table(rows), rows


def instructions_table(rows):
    """The markdown table of `instructions()` rows."""
    base = {r["mode"]: r["instructions"] for r in rows if r["server"] == "baseline"}
    lines = ["| server | mode | instructions/req | above baseline | of which SHA-256 "
             "(software under valgrind) | above baseline without SHA-256 |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        above = r["instructions"] - base.get(r["mode"], r["instructions"])
        lines.append(f"| {r['server']} | {MODES[r['mode']][0]} | {r['instructions']:,.0f} "
                     f"| {above:+,.0f} | {r['sha256']:,.0f} | {above - r['sha256']:+,.0f} |")
    return "\n".join(lines)
