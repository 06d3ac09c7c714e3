wrk.method = "POST"
wrk.body = '{"model": "bench", "messages": [{"role": "user", "content": "hello"}]}'
wrk.headers["Content-Type"] = "application/json"
