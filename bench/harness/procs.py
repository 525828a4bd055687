"""The processes the benchmarks start: pinned, logged, stopped (also on exit and on
SIGTERM, SIGINT and SIGHUP), and their CPU time and resident memory."""

import atexit
import os
import re
import signal
import socket
import subprocess
import sys
import time

from .config import LOGS, SERVER_CPU

CLK_TCK = os.sysconf("SC_CLK_TCK")

_running = []


def _cleanup():
    for proc in list(_running):
        stop(proc)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


def install_cleanup():
    """Every process started here is stopped when the script exits or is signalled."""
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def start(argv, log_name, cwd=None):
    """Starts a server pinned to SERVER_CPU (taskset execs it: the pid is the server's).
    Its output goes to bench/results/logs/LOG_NAME.log."""
    os.makedirs(LOGS, exist_ok=True)
    path = os.path.join(LOGS, re.sub(r"[^A-Za-z0-9_.-]+", "-", log_name) + ".log")
    with open(path, "wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU] + argv,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")),
            start_new_session=True,
        )
    proc.log_path = path
    _running.append(proc)
    return proc


def stop(proc):
    if proc in _running:
        _running.remove(proc)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_listening(proc, port, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(proc.log_path, errors="replace") as f:
                err = f.read()
            raise RuntimeError(f"server exited with {proc.returncode}: {err.strip()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {limit}s")


def cpu_times(pid):
    """(utime, stime) of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    return sum(cpu_times(pid))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
