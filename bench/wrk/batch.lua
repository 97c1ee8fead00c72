-- wrk: 1,000 events per POST /v1/events/batch (token from NOTIFY_BENCH_TOKEN)
local events = {}
for i = 1, 1000 do
  events[i] = '{"channel":"bench.ingest","type":"bench","data":{"n":' .. i .. ',"p":"x"}}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("NOTIFY_BENCH_TOKEN")
wrk.body = '{"events":[' .. table.concat(events, ",") .. ']}'
