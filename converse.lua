wrk.method = "POST"
wrk.body = '{"messages": [{"role": "user", "content": [{"text": "hello"}]}]}'
wrk.headers["Content-Type"] = "application/json"
