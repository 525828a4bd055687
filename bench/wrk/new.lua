-- New visitors: no request ever carries a cookie, so every request to "/" starts (and, for
-- the page-views handler, stores) a new session.
--
--   wrk -t1 -c32 -d10s --latency -s new.lua http://127.0.0.1:3000/
--
-- No request() and no response(): wrk sends its one pre-built request and does not hand
-- responses to Lua, its cheapest mode (a paced run adds delay(), below). bench/run checks the
-- server before and after the run, and, where the store can be counted (Redis, SQLite,
-- PostgreSQL), that every request stored one session.

-- Paced runs (PACE_MS in bench/run): see pace.lua, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pace.lua")
