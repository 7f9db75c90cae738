-- wrk script: HTTP/1.1 pipelining, the TechEmpower way. Every write is 16
-- `GET /` requests back to back (built once, in init); wrk reads the 16
-- responses before it writes the next batch, and counts each one.
--
--   wrk -t1 -c50 -d10s -s bench/http/pipeline.lua http://127.0.0.1:PORT/
--
-- An argument after `--` changes the depth: `... -- 32`.

local depth = 16

init = function(args)
   depth = tonumber(args[1]) or depth
   local one = wrk.format("GET", "/")
   local batch = {}
   for i = 1, depth do
      batch[i] = one
   end
   req = table.concat(batch)
end

request = function()
   return req
end
