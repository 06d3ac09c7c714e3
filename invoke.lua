wrk.method = "POST"
wrk.body = '{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}'
wrk.headers["Content-Type"] = "application/json"
