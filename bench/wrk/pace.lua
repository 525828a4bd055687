-- Paced runs, for returning.lua and new.lua (PACE_MS in bench/run): each connection waits
-- this many milliseconds after a response before sending its next request, so every server
-- gets about the same request rate and CPU per request is compared at equal load, not at
-- each server's own maximum. wrk's timers have millisecond resolution.
local pace = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pace and pace > 0 then
   function delay()
      return pace
   end
end
