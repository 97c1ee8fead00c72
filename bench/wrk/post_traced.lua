-- wrk: one event per POST /v1/events, each from a traced producer (a W3C traceparent,
-- sampled, the same for every request); token from NOTIFY_BENCH_TOKEN
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("NOTIFY_BENCH_TOKEN")
wrk.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
wrk.body = '{"channel":"bench.ingest","type":"bench","data":{"n":1,"p":"x"}}'
