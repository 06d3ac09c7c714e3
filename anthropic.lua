wrk.method = "POST"
wrk.body = '{"model": "bench", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}'
wrk.headers["Content-Type"] = "application/json"
