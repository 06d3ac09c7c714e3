"""Two server processes sharing one real `redis-server` (`--state`): what one instance learns of a user, the
other knows; a look-up made by one is the other's cache hit; a rate limit holds across both; simultaneous
exchanges of one user are both kept; and with Redis gone both keep answering, `/health` says `degraded`, and
sharing resumes by itself when Redis is back.

Every promise is checked on the far side too: the replay server counts the look-ups, Redis holds the keys.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import redis

from tests.conftest import ServerProcess, free_port, persona_args, require_binary, start_server_process
from tests.redis_server import RedisServer
from tests.replay import ReplayServer

WIKI = "ovos-solver-wikipedia-plugin"
RIVE = "ovos-solver-rivescript-plugin"
FAILURE = "ovos-solver-failure-plugin"
AIML = "ovos-solver-aiml-plugin"
LIKES = """<?xml version="1.0" encoding="UTF-8"?>
<aiml version="1.0">
<category><pattern>I LIKE *</pattern><template><think><set name="like"><star/></set></think>Noted.</template>
</category>
<category><pattern>WHAT DO I LIKE</pattern><template>You like <get name="like"/>.</template></category>
</aiml>
"""
DONT_KNOW = "No idea, sorry."
MEMORY_TURNS = 20


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = require_binary("redis-server", "redis-server")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        server.add("/wiki/en/w/api.php", json={"batchcomplete": True})
        server.add_recorded("wikipedia_einstein.json", prefix="/wiki/en")
        yield server


@dataclass
class Pair:
    a: ServerProcess
    b: ServerProcess
    prefix: str
    redis: redis.Redis

    def both(self) -> tuple[ServerProcess, ServerProcess]:
        return self.a, self.b


def _start_pair(root: Path, redis_server: RedisServer, persona_files: list[str], env: dict[str, str],
                *extra: str) -> Pair:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    args = [*persona_files, "--state", redis_server.url, "--state-prefix", prefix, "--state-timeout", "0.25", *extra]
    a = start_server_process(*args, log_path=root / "a.log", env=env)
    try:
        b = start_server_process(*args, log_path=root / "b.log", env=env)
    except Exception:
        a.stop()
        raise
    return Pair(a, b, prefix, redis.Redis(port=redis_server.port))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, replay: ReplayServer,
         plugin_env: dict[str, str]) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("shared-state")
    (root / "aiml").mkdir()
    (root / "aiml" / "likes.aiml").write_text(LIKES, encoding="utf-8")
    files = persona_args(root, {
        "alice.json": {"name": "Alice", "solvers": [AIML], AIML: {"aiml_dir": str(root / "aiml"), "alice": False}},
        "chat.json": {"name": "Chat", "solvers": [RIVE], RIVE: {"name": "Rive"}},
        # The echo solver's answers double in size each turn: room for them (the byte bound is tested elsewhere).
        "memo.json": {"name": "Memo", "solvers": ["test-history"],
                      "memory": {"turns": MEMORY_TURNS, "max_bytes": 4 * 1024 * 1024}},
        "lookup.json": {"name": "Lookup", "solvers": [WIKI, FAILURE],
                        WIKI: {"base_url": replay.url + "/wiki/{lang}", "timeout": 3},
                        FAILURE: {"answers": [DONT_KNOW]}},
    })
    pair = _start_pair(root, redis_server, files, {**plugin_env, "PERSONA_SERVER_CACHE": str(root / "cache")})
    yield pair
    pair.a.stop()
    pair.b.stop()


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def say(server: ServerProcess, model: str, text: str, user: str) -> str:
    completion = client(server).chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], user=user)
    return completion.choices[0].message.content or ""


def test_health_is_ok_and_status_names_redis(pair: Pair) -> None:
    for server in pair.both():
        assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
        state = httpx.get(server.base_url + "/status").json()["state"]
        assert state["backend"] == "redis" and state["status"] == "ok" and state["prefix"] == pair.prefix


def test_a_name_told_to_one_instance_is_known_to_the_other_for_that_user_only(pair: Pair) -> None:
    user, stranger = f"ann-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    assert "Ann" in say(pair.a, "Chat", "my name is Ann", user)
    assert "Ann" in say(pair.b, "Chat", "what is my name?", user)
    assert "Ann" not in say(pair.b, "Chat", "what is my name?", stranger)
    assert "Ann" not in say(pair.a, "Chat", "what is my name?", stranger)
    # On the far side: keys under the prefix only, none naming the user, each expiring in Redis itself.
    keys = [key.decode() for key in pair.redis.scan_iter(match=f"{pair.prefix}:*")]
    assert any(":vars-rivescript:Chat:" in key for key in keys)
    assert not any(user in key or stranger in key for key in keys)
    assert all(pair.redis.pttl(key) > 0 for key in keys)


def test_aiml_predicates_are_shared_per_user(pair: Pair) -> None:
    user = f"likes-{uuid.uuid4().hex[:6]}"
    assert say(pair.a, "Alice", "I like green tea", user) == "Noted."
    assert say(pair.b, "Alice", "what do I like", user).lower() == "you like green tea."
    assert "green tea" not in say(pair.b, "Alice", "what do I like", f"x-{uuid.uuid4().hex[:6]}").lower()


def test_memory_persona_recalls_on_the_other_instance(pair: Pair) -> None:
    user = f"mem-{uuid.uuid4().hex[:6]}"
    first = say(pair.a, "Memo", "remember the blue door", user)
    second = say(pair.b, "Memo", "what did I say?", user)
    assert second == f"user=remember the blue door | assistant={first} | user=what did I say?"
    other = say(pair.b, "Memo", "what did I say?", f"other-{uuid.uuid4().hex[:6]}")
    assert other == "user=what did I say?"
    # A streamed answer is written to Redis before its stream ends: the next request, elsewhere, sees it.
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client(pair.b).chat.completions.create(
        model="Memo", messages=[{"role": "user", "content": "streamed"}], user=user, stream=True) if chunk.choices)
    third = say(pair.a, "Memo", "and?", user)
    assert third.endswith(f"user=streamed | assistant={streamed} | user=and?")


def test_simultaneous_exchanges_of_one_user_on_both_instances_are_all_remembered(pair: Pair) -> None:
    user = f"both-{uuid.uuid4().hex[:6]}"

    async def ask(server: ServerProcess, text: str) -> None:
        async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0) as api:
            await api.chat.completions.create(model="Memo", messages=[{"role": "user", "content": text}],
                                              user=user)

    async def rounds() -> None:
        for index in range(5):
            await asyncio.gather(ask(pair.a, f"from a {index}"), ask(pair.b, f"from b {index}"))

    asyncio.run(rounds())
    memory_keys = list(pair.redis.scan_iter(match=f"{pair.prefix}:memory:Memo:*"))
    assert max(pair.redis.llen(k) for k in memory_keys) == 10
    answer = say(pair.a, "Memo", "and now?", user)
    for index in range(5):
        assert f"user=from a {index}" in answer and f"user=from b {index}" in answer, answer


def test_a_look_up_made_by_one_instance_is_served_from_the_cache_by_the_other(
        pair: Pair, replay: ReplayServer) -> None:
    replay.clear()
    first = say(pair.a, "Lookup", "Who was Albert Einstein?", "anyone")
    assert "theoretical physicist" in first
    assert len(replay.received("/wiki/en/w/api.php")) == 1
    second = say(pair.b, "Lookup", "Who was Albert Einstein?", "someone else")
    assert second == first
    assert len(replay.received("/wiki/en/w/api.php")) == 1  # the API was asked once
    cached = list(pair.redis.scan_iter(match=f"{pair.prefix}:cache:Lookup:*"))
    assert cached and all(0 < pair.redis.pttl(k) <= 3600 * 1000 for k in cached)
    assert not any(b"Einstein" in key for key in cached)


def test_a_rate_limit_holds_across_both_instances(tmp_path: Path, redis_server: RedisServer) -> None:
    files = persona_args(tmp_path, {"chat.json": {"name": "Chat", "solvers": [RIVE]}})
    rated = _start_pair(tmp_path, redis_server, files, {}, "--rate-limit", "4/minute")
    try:
        statuses = []
        for server in (rated.a, rated.b, rated.a, rated.b, rated.a, rated.b):
            response = httpx.post(server.base_url + "/v1/chat/completions", timeout=30,
                                  json={"model": "Chat", "messages": [{"role": "user", "content": "hello"}]})
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
        with pytest.raises(openai.RateLimitError):
            say(rated.a, "Chat", "hello", "u")
        # The counter lives in Redis under a hash of the client, never its address.
        keys = [k.decode() for k in rated.redis.scan_iter(match=f"{rated.prefix}:rate:*")]
        assert len(keys) == 1 and "127.0.0.1" not in keys[0]
    finally:
        rated.a.stop()
        rated.b.stop()


def test_workers_on_one_machine_share_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    files = persona_args(tmp_path, {"chat.json": {"name": "Chat", "solvers": [RIVE]}})
    server = start_server_process(*files, "--workers", "2", "--state", redis_server.url, "--state-prefix",
                                  f"workers-{uuid.uuid4().hex[:6]}", log_path=tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 60
        while server.log().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        user = f"w-{uuid.uuid4().hex[:6]}"
        assert "Ann" in say(server, "Chat", "my name is Ann", user)
        pids = set()
        for _ in range(60):
            if len(pids) == 2:
                break
            # A new connection each time, so either worker may take it; /status on it names that worker.
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                reply = http.post("/v1/chat/completions", json={
                    "model": "Chat", "user": user, "messages": [{"role": "user", "content": "what is my name?"}]})
                assert "Ann" in reply.json()["choices"][0]["message"]["content"]
                pids.add(http.get("/status").json()["process"])
        assert len(pids) == 2, "both workers answered, and both knew the name"
    finally:
        server.stop()


def test_a_server_starts_and_answers_with_redis_unreachable(tmp_path: Path) -> None:
    files = persona_args(tmp_path, {"chat.json": {"name": "Chat", "solvers": [RIVE]}})
    server = start_server_process(*files, "--state", f"redis://:hunter2@127.0.0.1:{free_port()}/0",
                                  log_path=tmp_path / "server.log")
    try:
        body = _wait_health(server, "degraded")
        assert body["status"] == "degraded" and body["state"]["status"] == "unavailable", body  # type: ignore[index]
        assert "Ann" in say(server, "Chat", "my name is Ann", "u")
        assert "Ann" in say(server, "Chat", "what is my name?", "u")  # this instance's own memory
        status = httpx.get(server.base_url + "/status").text
        assert "hunter2" not in status and "hunter2" not in server.log()
        assert server.log().count("is unavailable") == 1
    finally:
        server.stop()


def _wait_health(server: ServerProcess, status: str, timeout: float = 15) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(server.base_url + "/health", timeout=5)
        assert response.status_code == 200
        body = response.json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_without_redis_both_answer_quickly_say_degraded_and_sharing_resumes(
        pair: Pair, redis_server: RedisServer) -> None:
    """Last in the module: it stops and restarts Redis."""
    kim = f"kim-{uuid.uuid4().hex[:6]}"
    assert "Kim" in say(pair.a, "Chat", "my name is Kim", kim)
    redis_server.stop()
    try:
        for server in pair.both():
            body = _wait_health(server, "degraded")
            assert body["status"] == "degraded", body
            assert body["state"]["backend"] == "redis" and body["state"]["status"] == "unavailable"  # type: ignore[index]
        user = f"down-{uuid.uuid4().hex[:6]}"
        for server in pair.both():
            for text in ("my name is Zed", "what is my name?", "hello"):
                began = time.monotonic()
                assert say(server, "Chat", text, user)
                assert time.monotonic() - began < 2.0  # the breaker is open: Redis costs nothing
            began = time.monotonic()
            assert say(server, "Memo", "still there?", user).endswith("user=still there?")
            assert time.monotonic() - began < 2.0
        # Each instance still knows what it was told itself.
        assert "Zed" in say(pair.a, "Chat", "what is my name?", user)
    finally:
        redis_server.start()
    for server in pair.both():
        assert _wait_health(server, "ok")["status"] == "ok"
    user = f"back-{uuid.uuid4().hex[:6]}"
    assert "Ann" in say(pair.a, "Chat", "my name is Ann", user)
    assert "Ann" in say(pair.b, "Chat", "what is my name?", user)
    # Redis came back empty: the instance that knows a user writes what it knows back, for the others.
    assert "Kim" in say(pair.a, "Chat", "what is my name?", kim)
    assert "Kim" in say(pair.b, "Chat", "what is my name?", kim)
    for server in pair.both():
        log = server.log()
        assert log.count("is unavailable") == 1, log  # once per outage, not per request
        assert log.count("sharing resumes") == 1, log
