-- wrk script of bench/hot-size.mjs: every request a new reservation of 1 unit of one size, under a reference
-- unique to the run, the thread and the request. Prints one JSON line at the end: requests/s, latency
-- percentiles and answers other than 201.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  refused = 0
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"reference":"%s-%d-%d","items":[{"product":"%s","size":"%s","quantity":1}]}',
    os.getenv("BENCH_RUN"), thread_id, counter, os.getenv("BENCH_PRODUCT"), os.getenv("BENCH_SIZE"))
  return wrk.format("POST", "/v1/reservations", {
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end

function response(status, headers, body)
  if status ~= 201 then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local refusals = 0
  for _, thread in ipairs(threads) do
    refusals = refusals + thread:get("refused")
  end
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"p50_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"not_201":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, refusals,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
