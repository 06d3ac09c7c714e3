wrk.method = "POST"
wrk.body = '{"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}'
wrk.headers["Content-Type"] = "application/json"
