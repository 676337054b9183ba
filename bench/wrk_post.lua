-- POSTs one fixed JSON body on every request.
--
--   wrk -t1 -c16 -d10s --latency -s bench/wrk_post.lua http://127.0.0.1:8000/ [-- BODY_FILE]
--
-- The body is read once from BODY_FILE when one is given (bench/bench_thin.py writes the
-- record from serving_models.request_body() there); otherwise it is the record below, the same
-- one: the first row of the benchmark data set, features f0..f19.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":{"f0":-0.550032,"f1":0.027674,"f2":-1.181484,"f3":-1.285852,' ..
  '"f4":-0.357036,"f5":-0.399059,"f6":0.405741,"f7":-0.487514,"f8":1.446545,"f9":0.538832,' ..
  '"f10":-0.28158,"f11":0.476326,"f12":0.003765,"f13":0.295473,"f14":-0.765907,' ..
  '"f15":-0.524596,"f16":0.826516,"f17":-1.048598,"f18":0.28167,"f19":1.756026}}'

function init(args)
  if args[1] ~= nil then
    local file = assert(io.open(args[1], "rb"))
    wrk.body = file:read("*a")
    file:close()
  end
end
