"""The Redis memory benchmark: what a key costs Redis by the form of its value and the
length of its name, whatever writes it: 100,000 keys of each form, each with an expiry,
written by one Lua script; and its table. The forms are plain hashes and strings; what the
stores themselves write is measured by the memory benchmark, through the servers."""

import time

from .config import log

REDIS_MEMORY_KEYS = 100_000

# Session keys by length: `sessio:` and 22 characters (sessio's), tower-sessions' 22
# characters, and `sessio:` and 7 (the longest key Redis allocates in 16 bytes). Lua, of i.
REDIS_MEMORY_KEYS_BY_LEN = {
    29: "'sessio:'..string.format('%022d', i)",
    22: "string.format('%022d', i)",
    14: "'sessio:'..string.format('%07d', i)",
}

# Values: a description and the Lua that writes key k. Timestamps as sessio writes them
# (13 digits, which Redis keeps as integers in a small hash).
SESSIO_HASH = ("sessio's layout: a hash of `c`, `l`, `e` and `d:page_views`",
               "redis.call('HSET', k, 'c', now, 'l', now, 'e', ends, 'd:page_views', '1')")
HASH_CL = ("a hash of `c`, `l` and `d:page_views` (the expiry only as the key's)",
           "redis.call('HSET', k, 'c', now, 'l', now, 'd:page_views', '1')")
HASH_C = ("a hash of `c` and `d:page_views`",
          "redis.call('HSET', k, 'c', now, 'd:page_views', '1')")
HASH_DATA = ("a hash of `d:page_views` alone (no timestamps)",
             "redis.call('HSET', k, 'd:page_views', '1')")
TOWER_STRING = ("tower-sessions' form: a string of 50 bytes",
                "redis.call('SET', k, string.rep('x', 50))")

# Each form: a value and the length of its key.
REDIS_MEMORY_FORMS = [
    (SESSIO_HASH, 29), (HASH_CL, 29), (HASH_DATA, 29), (TOWER_STRING, 22),
    (SESSIO_HASH, 14), (HASH_CL, 14), (HASH_C, 14), (HASH_DATA, 14),
]


def redis_memory(redis):
    """Growth of Redis's `used_memory` per key, for REDIS_MEMORY_KEYS keys of each form,
    each with an expiry: what a session layout costs in Redis whatever writes it. Empties the
    database before each form and at the end."""
    rows = []
    now = int(time.time() * 1000)
    for (value, write), key_len in REDIS_MEMORY_FORMS:
        name = f"{value}, key of {key_len} characters"
        key = REDIS_MEMORY_KEYS_BY_LEN[key_len]
        log(f"redis memory: {name}")
        redis.flush()
        before = redis.used_memory()
        script = (f"local now, ends = ARGV[1], ARGV[2] "
                  f"for i = 1, {REDIS_MEMORY_KEYS} do local k = {key} {write} "
                  f"redis.call('PEXPIREAT', k, ends) end return redis.call('DBSIZE')")
        created = redis.eval(script, now, now + 86_400_000)
        if created != REDIS_MEMORY_KEYS:
            raise RuntimeError(f"{name}: {created} keys, not {REDIS_MEMORY_KEYS}")
        per_key = (redis.used_memory() - before) / REDIS_MEMORY_KEYS
        rows.append({"form": name, "bytes_per_key": per_key})
    redis.flush()
    return redis_memory_table(rows), rows


def redis_memory_table(rows):
    """The markdown table of `redis_memory()` rows."""
    lines = [f"Growth of Redis's `used_memory` per key, {REDIS_MEMORY_KEYS:,} keys of each form, "
             "each with an expiry (`PEXPIREAT`):", "",
             "| form | bytes per key |", "|---|---:|"]
    for r in rows:
        lines.append(f"| {r['form']} | {r['bytes_per_key']:.0f} |")
    return "\n".join(lines)
