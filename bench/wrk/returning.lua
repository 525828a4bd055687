-- Returning visitors: every request carries a session cookie that the server issued.
--
--   wrk -t1 -c32 -d10s --latency -s returning.lua http://127.0.0.1:3000/     -- COOKIE...
--   wrk -t1 -c32 -d10s --latency -s returning.lua http://127.0.0.1:3000/peek -- COOKIE...
--
-- Each COOKIE is one session's "name=value", as the server set it. bench/run creates them
-- before the run (one cookieless GET / each, so every session starts at a count of 1) and
-- passes as many as there are connections. With no COOKIE, requests carry no cookie (the
-- no-session baseline).
--
-- Why not capture the cookies here: wrk's Lua API has no connection id, and defining a
-- response() callback makes wrk parse every response's headers and body into Lua, a cost
-- the load generator pays on every request (at these rates wrk is close to being the
-- limit). Without response(), wrk only calls request(), which returns a request
-- pre-formatted per session, round-robin over the sessions.
--
-- One session per connection, in effect: with -t1 and as many sessions as connections,
-- each new request takes the next session in the cycle; a connection sends its next request
-- only once its previous response has arrived, so the requests in flight are always the
-- last N sent, N consecutive sessions of the cycle, all different. No session ever has two
-- requests in flight, as with a browser with one tab, and bench/run can check afterwards
-- that every request was counted (the counts of all sessions add up to the requests).

local requests = {}
local count = 0
local last = 0

function init(args)
   for _, cookie in ipairs(args) do
      table.insert(requests, wrk.format("GET", wrk.path, { Cookie = cookie }))
   end
   if #requests == 0 then
      table.insert(requests, wrk.format("GET", wrk.path))
   end
   count = #requests
end

function request()
   last = last % count + 1
   return requests[last]
end

-- Paced runs (PACE_MS in bench/run): see pace.lua, next to this script.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pace.lua")
