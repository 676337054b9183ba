-- POSTs the benchmark record with f0 changed on every request, so no two bodies are equal
-- (a prediction cache misses every time: its full cost, lookup and store) unless a SHARE of
-- them repeat the record, a routing key per request (10,000 users, for traffic-split arms)
-- and, when given, an API key.
--
--   wrk -t1 -c16 -d10s --latency -s bench/wrk_post_varied.lua URL -- BODY_FILE [API_KEY [SHARE]]
--
-- BODY_FILE holds {"inputs":{"f0":VALUE,...}} (bench/serving.py writes it); API_KEY may be "".
-- SHARE (default 0) is the share of requests, drawn at random, that send BODY_FILE's record
-- itself instead of a new one: a cache answers those (1: every request, the hit path).

-- Starts from the clock (seconds, times 100,000): a run never repeats the bodies of the run
-- before it (its warm-up), which a cache would answer.
local counter = (os.time() % 100000) * 100000
local prefix, suffix, fixed_body, share
local headers = {}

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local body = file:read("*a")
  file:close()
  local first, last = body:find('"f0":[^,}]*')
  prefix = body:sub(1, first + 4)
  suffix = body:sub(last + 1)
  headers["Content-Type"] = "application/json"
  headers["Host"] = wrk.host .. ":" .. wrk.port
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. args[2]
  end
  share = tonumber(args[3] or "0") or 0
  fixed_body = body
  math.randomseed(counter)
end

function request()
  counter = counter + 1
  headers["x-keel-routing-key"] = "user-" .. (counter % 10000)
  if share > 0 and math.random() < share then
    return wrk.format("POST", nil, headers, fixed_body)
  end
  local body = prefix .. string.format("%.9f", counter * 1e-9) .. suffix
  return wrk.format("POST", nil, headers, body)
end
