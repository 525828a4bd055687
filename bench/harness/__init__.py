"""The modules of bench/run, sessio's load and memory benchmark against its peers.

    config         paths, the environment's settings, the load modes, log()
    procs          the processes it starts: pinning, stopping, CPU and RSS, cleanup on exit
    stores         Redis (redis-py), PostgreSQL (psql) and SQLite: reachable, emptied, counted
    servers        the servers each benchmark runs
    clients        the HTTP requests that seed, check and read back sessions (http.client)
    load           the load benchmark (wrk) and its table
    memory         resident memory per session and its table
    instructions   instructions per request in-process, under callgrind, and its table
    redis_memory   Redis memory per key, by the form of the key and value, and its table
    build          the tools and builds the benchmarks need
    report         the report's head, re-rendering a results file, writing results

Each imports only config and the modules listed above it, never one below.
"""
