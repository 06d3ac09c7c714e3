#!/bin/bash
# usage: prof.sh SRC_ROOT OUT
cd $1
taskset -c 1 $1/../main/.venv/bin/python -m persona_server --persona /tmp/prof/bench.json --host 127.0.0.1 --port 8499 --log-level warning > /tmp/prof/server.log 2>&1 &
PID=$!
sleep 3
taskset -c 0 wrk -t1 -c16 -d2s -s /tmp/prof/post.lua http://127.0.0.1:8499/v1/chat/completions > /dev/null
/work/main/.venv/bin/py-spy record -p $PID -d 10 -r 250 -f raw -o $2 --nonblocking > /dev/null 2>&1 &
SPY=$!
taskset -c 0 wrk -t1 -c16 -d10s -s /tmp/prof/post.lua http://127.0.0.1:8499/v1/chat/completions | grep Requests/sec
wait $SPY
kill $PID
