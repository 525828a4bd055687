"""What the benchmarks need before they run: wrk (the Debian package), the tools they call,
express (`npm ci` in bench/node) and the Rust servers (`cargo build` of bench/peers)."""

import os
import shutil
import subprocess

from .config import NODE, PEERS, SKIP_BUILD, TARGET, log


def setup():
    """Installs wrk if missing, checks the other tools, builds what SKIP_BUILD does not skip."""
    if not shutil.which("wrk"):
        log("installing wrk (Debian package)")
        if subprocess.run(["apt-get", "install", "-y", "wrk"]).returncode != 0:
            subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
    for tool in ("taskset", "node", "npm", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    if SKIP_BUILD:
        return
    log("npm ci (bench/node)")
    if not os.path.isdir(os.path.join(NODE, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE, check=True)
    log(f"cargo build --release (bench/peers, target {TARGET})")
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET)
    subprocess.run(["cargo", "build", "--release"], cwd=PEERS, env=env, check=True)
