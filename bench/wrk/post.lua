-- wrk: one event per POST /v1/events (token from NOTIFY_BENCH_TOKEN)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("NOTIFY_BENCH_TOKEN")
wrk.body = '{"channel":"bench.ingest","type":"bench","data":{"n":1,"p":"x"}}'
