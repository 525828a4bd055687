"""The load benchmark: every server and mode under wrk, interleaved round by round, each run
checked (the counter, the visits kept, the sessions stored) and measured (the server's CPU,
Redis's CPU and commands); and its table."""

import atexit
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile

from . import stores
from .clients import Client, check_counter, seed_sessions, session_counts
from .config import CONNECTIONS, DURATION, LOAD_CPU, MODES, PACE_MS, PORT, ROUNDS, WRK, log
from .config import modes as chosen_modes
from .procs import cpu_seconds, cpu_times, start, stop, wait_listening
from .servers import servers


def parse_duration(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise RuntimeError(f"cannot parse duration {text!r}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(2)]
    return float(m.group(1)) * scale


def run_wrk(mode, port, cookies):
    _, script, path = MODES[mode]
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}",
            "--latency", "-s", os.path.join(WRK, script), f"http://127.0.0.1:{port}{path}"]
    if cookies:
        argv += ["--"] + cookies
    limit = parse_duration(DURATION) + 60
    # The wrk scripts read the pause between a response and the next request from here.
    env = dict(os.environ, BENCH_PACE_MS=PACE_MS) if PACE_MS else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=limit, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = r.stdout
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stderr.strip()} {out.strip()}")
    res = {"wrk_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1))
    res["wall_s"] = parse_duration(m.group(2))
    res["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+\w+)", out, re.M)
        res[key] = parse_duration(m.group(1)) * 1e3
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def redis_round_trips(redis, mode, port, count=200):
    """Commands the server sends Redis per request, one request at a time, for one visitor
    doing what `mode` does (the session seeded beforehand, outside the count)."""
    c = Client(port)
    try:
        if mode == "new":
            def action():
                c.jar.clear()
                c.get("/")
        else:
            c.get("/")
            path = "/" if mode == "changed" else "/peek"

            def action():
                c.get(path)
        return redis.round_trips(action, count)
    finally:
        c.close()


def verdict(server, mode, res):
    """Why this run's figures cannot be trusted, or None."""
    if res["non2xx"] or res["socket_errors"]:
        return f"{res['non2xx']} non-2xx responses, {res['socket_errors']} socket errors"
    if not server.sessions:
        return None
    n = res["requests"]
    if mode == "changed" and "counted" in res:
        # Every completed request is counted at most once (requests still in flight when wrk
        # stopped, at most one per connection, may have been counted too). Fewer visits
        # than requests means two requests of one session overlapped and the handler's
        # read-then-write lost one: see "visits kept" in BENCHMARKS.md. Losing half would
        # mean the store does not keep sessions.
        if res["counted"] > n + CONNECTIONS:
            return f"sessions counted {res['counted']} visits for {n} requests"
        if res["counted"] < n / 2:
            return f"sessions kept only {res['counted']} visits of {n} requests"
    if mode == "unchanged" and set(res["counts"]) != {1}:
        return f"/peek changed the counts: {sorted(set(res['counts']))[:5]}"
    if mode == "new" and res.get("created") is not None:
        if not n <= res["created"] <= n + CONNECTIONS:
            return f"the store holds {res['created']} new sessions for {n} requests"
    return None


def load(redis, redis_ok, pg_ok):
    sqlite_dir = tempfile.mkdtemp(prefix="sessio-bench-")
    atexit.register(shutil.rmtree, sqlite_dir, True)
    all_servers = servers(redis_ok, pg_ok, sqlite_dir)
    modes = chosen_modes()
    for m in modes:
        if m not in MODES:
            raise SystemExit(f"unknown mode {m!r}; known: {list(MODES)}")
    runs = []
    total = len(modes) * ROUNDS * len(all_servers)
    n = 0
    for mode in modes:
        for rnd in range(1, ROUNDS + 1):
            for server in all_servers:
                n += 1
                log(f"[{n}/{total}] {MODES[mode][0]}, round {rnd}: {server.name}")
                run = {"server": server.name, "mode": mode, "round": rnd}
                proc = None
                try:
                    stores.empty(server.store, redis, sqlite_dir)
                    proc = start(server.argv, f"{server.name} {mode} {rnd}", cwd=server.cwd)
                    wait_listening(proc, PORT)
                    check_counter(server, PORT)
                    cookies = []
                    if server.sessions and mode != "new":
                        cookies = seed_sessions(PORT, CONNECTIONS)
                    stored0 = (stores.stored_sessions(server.store, redis, sqlite_dir)
                               if mode == "new" else None)
                    calls0 = redis.calls() if server.store == "redis" else None
                    redis_pid = redis.pid() if server.store == "redis" else None
                    redis_cpu0 = cpu_seconds(redis_pid) if redis_pid else None
                    user0, system0 = cpu_times(proc.pid)
                    res = run_wrk(mode, PORT, cookies)
                    user1, system1 = cpu_times(proc.pid)
                    redis_cpu1 = cpu_seconds(redis_pid) if redis_pid else None
                    calls1 = redis.calls() if server.store == "redis" else None
                    if redis_cpu0 is not None:
                        res["redis_cpu_us_per_req"] = (
                            (redis_cpu1 - redis_cpu0) / res["requests"] * 1e6)
                    if stored0 is not None:
                        res["created"] = (stores.stored_sessions(server.store, redis, sqlite_dir)
                                          - stored0)
                    if cookies:
                        res["counts"] = session_counts(PORT, cookies)
                        if not server.cookie_state and mode == "changed":
                            res["counted"] = sum(res["counts"]) - len(cookies)
                            res["kept"] = min(1.0, res["counted"] / res["requests"])
                    check_counter(server, PORT)  # still correct after the load
                    if server.store == "redis":
                        run["redis_round_trips_per_req"] = redis_round_trips(redis, mode, PORT)
                    run.update(res)
                    run["cpu_s"] = (user1 + system1) - (user0 + system0)
                    run["cpu_us_per_req"] = run["cpu_s"] / res["requests"] * 1e6
                    run["user_us_per_req"] = (user1 - user0) / res["requests"] * 1e6
                    run["server_cpu_pct"] = run["cpu_s"] / res["wall_s"] * 100
                    run["wrk_cpu_pct"] = res["wrk_cpu_s"] / res["wall_s"] * 100
                    if calls0 is not None:
                        delta = {k: v - calls0.get(k, 0) for k, v in calls1.items()
                                 if v != calls0.get(k, 0)}
                        run["redis_cmds"] = delta
                        run["redis_cmds_per_req"] = sum(delta.values()) / res["requests"]
                    run["invalid"] = verdict(server, mode, res)
                except Exception as e:  # noqa: BLE001 -- reported, the bench goes on
                    run["invalid"] = f"{type(e).__name__}: {e}"
                finally:
                    if proc:
                        stop(proc)
                if run.get("invalid"):
                    log(f"    NOT TRUSTED: {run['invalid']}")
                else:
                    if "kept" in run:
                        log(f"    visits kept: {run['counted']} of {run['requests']} requests")
                    log(f"    {run['rps']:.0f} req/s, p50 {run['p50_ms']:.2f} ms, "
                        f"p99 {run['p99_ms']:.2f} ms, {run['cpu_us_per_req']:.2f} us CPU/req "
                        f"(server {run['server_cpu_pct']:.0f}%, wrk {run['wrk_cpu_pct']:.0f}%)"
                        + (f", Redis CPU {run['redis_cpu_us_per_req']:.2f} us/req"
                           if "redis_cpu_us_per_req" in run else "")
                        + (f", {run['redis_cmds_per_req']:.3f} Redis cmds/req ("
                           + ", ".join(f"{k} {v / run['requests']:.3f}"
                                       for k, v in sorted(run["redis_cmds"].items())) + ")"
                           if "redis_cmds_per_req" in run else ""))
                runs.append(run)
    return all_servers, modes, runs


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_table(names, modes, runs):
    """The markdown table of `runs`, servers in the order of `names`. Ratios and CPU above
    the baseline are paired: each run against the baseline's run of the same mode and
    round (the interleaving puts them minutes apart at most), then the median over rounds."""
    base_runs = {(r["mode"], r["round"]): r for r in runs
                 if r["server"] == "baseline" and not r.get("invalid")}
    for r in runs:
        b = base_runs.get((r["mode"], r["round"]))
        if b and not r.get("invalid"):
            r["ratio"] = r["rps"] / b["rps"]
            r["cpu_above_us"] = r["cpu_us_per_req"] - b["cpu_us_per_req"]
            if "user_us_per_req" in r and "user_us_per_req" in b:
                r["user_above_us"] = r["user_us_per_req"] - b["user_us_per_req"]
    lines = [
        "| server | mode | req/s | × baseline | p50 ms | p99 ms | CPU µs/req | CPU µs above "
        "baseline | its lowest and highest round | user CPU µs above baseline | server CPU % "
        "| wrk CPU % | Redis round trips/req | Redis cmds/req (incl. in scripts) "
        "| Redis CPU µs/req | visits kept | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    for mode in modes:
        for name in names:
            good = [r for r in runs
                    if r["server"] == name and r["mode"] == mode and not r.get("invalid")]
            bad = [r for r in runs
                   if r["server"] == name and r["mode"] == mode and r.get("invalid")]
            if not good and not bad:
                continue
            a = {
                k: median([r.get(k) for r in good])
                for k in ("rps", "ratio", "p50_ms", "p99_ms", "cpu_us_per_req", "cpu_above_us",
                          "user_above_us", "server_cpu_pct", "wrk_cpu_pct", "redis_cmds_per_req",
                          "redis_round_trips_per_req", "kept", "redis_cpu_us_per_req")
            }
            a["runs"] = f"{len(good)}/{len(good) + len(bad)}"
            ratio, above = a["ratio"], a["cpu_above_us"]
            # How far one round can move the median: the noise next to the figure.
            rounds = [r["cpu_above_us"] for r in good if r.get("cpu_above_us") is not None]
            spread = (f"{min(rounds):+.2f} … {max(rounds):+.2f}"
                      if len(rounds) > 1 and name != "baseline" else "—")
            lines.append(
                f"| {name} | {MODES[mode][0]} | {f(a['rps'], ',.0f')} | {f(ratio, '.3f')} "
                f"| {f(a['p50_ms'], '.2f')} | {f(a['p99_ms'], '.2f')} "
                f"| {f(a['cpu_us_per_req'], '.2f')} | {f(above, '+.2f')} | {spread} "
                f"| {f(a['user_above_us'], '+.2f')} | {f(a['server_cpu_pct'], '.0f')} | {f(a['wrk_cpu_pct'], '.0f')} "
                f"| {f(a['redis_round_trips_per_req'], '.2f')} "
                f"| {f(a['redis_cmds_per_req'], '.2f')} | {f(a['redis_cpu_us_per_req'], '.2f')} "
                f"| {f(a['kept'], '.2%')} "
                f"| {a['runs']} |")
    breakdown = {}
    for r in runs:
        if r.get("redis_cmds") and not r.get("invalid"):
            breakdown.setdefault((r["server"], r["mode"]), r)
    if breakdown:
        lines += ["", "Redis commands per request under load, by command (first trusted round; "
                      "commands run inside Lua scripts included):", ""]
        for (name, mode), r in breakdown.items():
            cmds = ", ".join(f"{k} {v / r['requests']:.2f}"
                             for k, v in sorted(r["redis_cmds"].items())
                             if v / r["requests"] >= 0.005)
            lines.append(f"- {name}, {MODES[mode][0]}: {cmds}")
    lines += build_comparison(modes, runs)
    lines += build_comparison(modes, runs, "sessio redis (client cache)",
                              "sessio redis (client cache; other build)")
    failures = [r for r in runs if r.get("invalid")]
    if failures:
        lines.append("")
        lines.append("Runs not trusted (excluded from the medians):")
        for r in failures:
            lines.append(f"- {r['server']}, {MODES[r['mode']][0]}, round {r['round']}: "
                         f"{r['invalid']}")
    return "\n".join(lines)


def build_comparison(modes, runs, this="sessio memory", other="sessio memory (other build)"):
    """With OTHER_SESSIO_SERVER: this build against the other, round by round (the two run
    close together in every round, so a round's drift hits both), as lines of markdown."""
    by = {(r["server"], r["mode"], r["round"]): r for r in runs if not r.get("invalid")}
    lines = []
    for mode in modes:
        pairs = [(by[(this, mode, n)], by[(other, mode, n)])
                 for n in sorted({r["round"] for r in runs})
                 if (this, mode, n) in by and (other, mode, n) in by]
        if not pairs:
            continue
        cpu = [a["cpu_us_per_req"] - b["cpu_us_per_req"] for a, b in pairs]
        user = [a["user_us_per_req"] - b["user_us_per_req"] for a, b in pairs
                if "user_us_per_req" in a and "user_us_per_req" in b]
        if not lines:
            lines += ["", f"{this} against {other}, CPU µs per request, this build minus the "
                          "other, round by round:", ""]
        lines.append(f"- {MODES[mode][0]}: median {median(cpu):+.2f} µs (rounds "
                     + ", ".join(f"{d:+.2f}" for d in cpu) + ")"
                     + (f"; user CPU median {median(user):+.2f} µs" if user else ""))
    return lines
