"""The servers the benchmarks run: the built binaries of bench/peers and the Node app of
bench/node, each with the store it is named after."""

import os

from .config import NODE, PG_URL, PORT, REDIS_URL, SQLITE_DB, TARGET, log


class Server:
    def __init__(self, name, argv, cwd=None, store=None, cookie_state=False, sessions=True,
                 on_request=False):
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.store = store            # None, "memory", "redis", "sqlite", "postgres"
        self.cookie_state = cookie_state  # the whole session is in the cookie
        self.sessions = sessions      # False for the baseline
        self.on_request = on_request  # run only when named in SERVERS


def servers(redis_ok, pg_ok, sqlite_dir):
    """The servers of the load benchmark (and, of them, the instructions benchmark's), as
    chosen with SERVERS and OTHER_SESSIO_SERVER; those whose store is unreachable left out."""
    b = os.path.join(TARGET, "release")
    addr = ["--addr", f"127.0.0.1:{PORT}"]
    sqlite = f"sqlite://{sqlite_dir}/{SQLITE_DB}"
    out = [
        Server("baseline", [f"{b}/baseline"] + addr, sessions=False),
        Server("axum layer floor", [f"{b}/baseline", "--floor"] + addr, sessions=False),
        Server("sessio memory", [f"{b}/sessio-server", "--store", "memory"] + addr, store="memory"),
        # A memory store that never fills during a run: sets what eviction costs new
        # visitors apart from what the store's size costs them.
        Server("sessio memory (10M max)", [f"{b}/sessio-server", "--store", "memory",
                                           "--max-sessions", "10000000"] + addr,
               store="memory", on_request=True),
        Server("sessio sqlite", [f"{b}/sessio-server", "--store", sqlite] + addr, store="sqlite"),
        Server("sessio postgres", [f"{b}/sessio-server", "--store", PG_URL] + addr,
               store="postgres"),
        Server("sessio redis", [f"{b}/sessio-server", "--store", REDIS_URL] + addr, store="redis"),
        Server("sessio redis (client cache)", [f"{b}/sessio-server", "--store", REDIS_URL,
                                               "--client-cache"] + addr, store="redis"),
        Server("tower-sessions memory", [f"{b}/tower-sessions-server", "--store", "memory"] + addr,
               store="memory"),
        Server("tower-sessions redis", [f"{b}/tower-sessions-server", "--store", REDIS_URL] + addr,
               store="redis"),
        Server("tower-sessions sqlite", [f"{b}/tower-sessions-server", "--store", sqlite] + addr,
               store="sqlite"),
        Server("tower-sessions postgres", [f"{b}/tower-sessions-server", "--store", PG_URL] + addr,
               store="postgres"),
        Server("actix-session cookie", [f"{b}/actix-session-server", "--store", "cookie"] + addr,
               cookie_state=True),
        Server("actix-session redis", [f"{b}/actix-session-server", "--store", REDIS_URL] + addr,
               store="redis"),
        Server("express-session memory", ["node", "app.js"] + addr, cwd=NODE, store="memory"),
        Server("express (no sessions)", ["node", "app.js", "--no-sessions"] + addr, cwd=NODE,
               sessions=False),
    ]
    other = os.environ.get("OTHER_SESSIO_SERVER")
    if other:
        # Another build of sessio-server (an earlier commit's, say), interleaved with this one.
        other = os.path.abspath(other)
        out.insert(3, Server("sessio memory (other build)",
                             [other, "--store", "memory"] + addr, store="memory"))
        out.insert(9, Server("sessio redis (client cache; other build)",
                             [other, "--store", REDIS_URL, "--client-cache"] + addr,
                             store="redis", on_request=True))
    wanted = os.environ.get("SERVERS")
    if wanted:
        names = {n.strip() for n in wanted.split(",")} | {"baseline"}
        unknown = names - {s.name for s in out}
        if unknown:
            raise SystemExit(f"unknown SERVERS {sorted(unknown)}; known: {[s.name for s in out]}")
        out = [s for s in out if s.name in names]
    else:
        out = [s for s in out if not s.on_request]
    kept = []
    for s in out:
        if s.store == "redis" and not redis_ok:
            log(f"skipping {s.name}: no Redis at {REDIS_URL}")
        elif s.store == "postgres" and not pg_ok:
            log(f"skipping {s.name}: no PostgreSQL at {PG_URL}")
        else:
            kept.append(s)
    return kept


def memory_servers(redis_ok):
    """The servers of the memory benchmark, as chosen with SERVERS (those without sessions
    always run): (name, argv, cwd, whether it keeps sessions)."""
    b = os.path.join(TARGET, "release")
    addr = ["--addr", f"127.0.0.1:{PORT}"]
    targets = [
        ("baseline (no sessions)", [f"{b}/baseline"] + addr, None, False),
        ("sessio memory", [f"{b}/sessio-server", "--store", "memory"] + addr, None, True),
        ("tower-sessions memory", [f"{b}/tower-sessions-server", "--store", "memory"] + addr,
         None, True),
        ("express-session memory", ["node", "app.js"] + addr, NODE, True),
        ("express (no sessions)", ["node", "app.js", "--no-sessions"] + addr, NODE, False),
    ]
    if redis_ok:
        targets += [
            ("sessio redis", [f"{b}/sessio-server", "--store", REDIS_URL] + addr, None, True),
            ("sessio redis (client cache)", [f"{b}/sessio-server", "--store", REDIS_URL,
                                             "--client-cache"] + addr, None, True),
            ("tower-sessions redis", [f"{b}/tower-sessions-server", "--store", REDIS_URL] + addr,
             None, True),
            ("actix-session redis", [f"{b}/actix-session-server", "--store", REDIS_URL] + addr,
             None, True),
        ]
    else:
        log(f"skipping the Redis stores: no Redis at {REDIS_URL}")
    wanted = os.environ.get("SERVERS")
    if wanted:
        names = {n.strip() for n in wanted.split(",")}
        targets = [t for t in targets if t[0] in names or not t[3]]
    return targets
