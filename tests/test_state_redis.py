"""The Redis stores against a real `redis-server`: the same bounds and TTLs as in process, enforced in Redis;
atomic counting; what is stored (and what never is); a slow or dead Redis costing at most the timeout, once;
and `--state` values that cannot work refused with a clear message."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from persona_server.limits import Rate, RateLimiter
from persona_server.memory import MemorySettings
from persona_server.query import Answer, Message, Query, Source
from persona_server.state import InProcessState, RedisState, StateError, open_state
from persona_server.state.redis_cache import SharedCache
from persona_server.state.redis_memory import SharedMemory, decode_pair, encode_pair
from persona_server.state.redis_rate import SharedRateLimiter
from persona_server.state.redis_store import UNAVAILABLE, RedisStore, redacted_url
from persona_server.state.redis_variables import SharedVariables, changes
from tests.conftest import run_cli
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from tests.conftest import require_binary

    server = RedisServer(require_binary("redis-server", "redis-server"), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_server.url, prefix=f"unit-{uuid.uuid4().hex[:8]}", timeout=1.0)
    yield store
    await store.close()


@pytest.fixture
def raw(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis(port=redis_server.port)


def keys(raw: redis.Redis, store: RedisStore, kind: str) -> list[bytes]:
    return list(raw.scan_iter(match=f"{store.prefix}:{kind}:*"))


# -- conversation memory ------------------------------------------------------------------------------------


def test_pairs_round_trip_whatever_they_hold() -> None:
    for question, answer in [("q", "a"), ("12:34", "x:y"), ("nul\0here", ""), ("über", "日本語:")]:
        assert decode_pair(encode_pair(question, answer)) == (question, answer)


async def test_memory_keeps_the_last_turns_with_a_ttl_in_redis(store: RedisStore, raw: redis.Redis) -> None:
    memory = SharedMemory(store, "P", MemorySettings(turns=3, ttl=60))
    for index in range(5):
        assert await memory.remember("conv", f"q{index}", f"a{index}")
    assert await memory.recall("conv") == [("q2", "a2"), ("q3", "a3"), ("q4", "a4")]
    [key] = keys(raw, store, "memory")
    assert 0 < raw.pttl(key) <= 60_000
    assert b"conv" not in key
    assert await memory.recall("other") == []


async def test_memory_byte_bound_drops_oldest_and_truncates_a_huge_pair(store: RedisStore) -> None:
    memory = SharedMemory(store, "P", MemorySettings(turns=50, max_bytes=100, total_bytes=100))
    for index in range(10):
        await memory.remember("c", f"q{index}", "é" * 10)  # 2 + 20 bytes a pair
    pairs = await memory.recall("c")
    assert pairs == [(f"q{index}", "é" * 10) for index in range(6, 10)]  # 4 x 22 = 88 <= 100
    await memory.remember("c", "Q" * 500, "A" * 500)
    [(question, answer)] = await memory.recall("c")
    assert question == "Q" * 50 and answer == "A" * 50


async def test_memory_conversation_bound_forgets_the_least_recently_used(store: RedisStore, raw: redis.Redis) -> None:
    memory = SharedMemory(store, "P", MemorySettings(turns=2, conversations=2))
    await memory.remember("one", "q", "a")
    await memory.remember("two", "q", "a")
    await asyncio.sleep(0.01)
    assert await memory.recall("one")  # a use: "two" is now the least recently used
    await asyncio.sleep(0.01)
    await memory.remember("three", "q", "a")
    assert await memory.recall("two") == []
    assert await memory.recall("one") and await memory.recall("three")
    assert len(keys(raw, store, "memory")) == 2


async def test_memory_expires_in_redis_itself(store: RedisStore) -> None:
    memory = SharedMemory(store, "P", MemorySettings(turns=2, ttl=0.2))
    await memory.remember("c", "q", "a")
    await asyncio.sleep(0.4)
    assert await memory.recall("c") == []


async def test_two_writers_at_once_lose_no_exchange(store: RedisStore) -> None:
    first = SharedMemory(store, "P", MemorySettings(turns=100))
    second = SharedMemory(store, "P", MemorySettings(turns=100))
    await asyncio.gather(*(memory.remember("c", f"q{i}-{n}", "a") for i in range(20)
                           for n, memory in enumerate((first, second))))
    assert len(await first.recall("c")) == 40


async def test_memory_hooks_recall_before_the_chain_and_write_before_the_stream_ends(store: RedisStore) -> None:
    memory = SharedMemory(store, "P", MemorySettings(turns=5))
    query = Query(messages=[Message("user", "hello")], user="u", persona="P")
    hooks = memory.hooks(query)
    assert hooks.prepare is not None and hooks.on_complete is not None
    assert (await hooks.prepare(hooks.query)).messages == query.messages
    done = hooks.on_complete("hi there")
    assert done is not None
    await done
    later = memory.hooks(Query(messages=[Message("user", "again")], user="u", persona="P"))
    assert later.prepare is not None
    prepared = await later.prepare(later.query)
    assert [(m.role, m.content) for m in prepared.messages] == [
        ("user", "hello"), ("assistant", "hi there"), ("user", "again")]
    # Anonymous requests are never stored or recalled, as in process.
    anonymous = memory.hooks(Query(messages=[Message("user", "x")], persona="P"))
    assert anonymous.prepare is None and anonymous.on_complete is None


# -- variables, cache, rate ---------------------------------------------------------------------------------


def test_changes_are_per_variable() -> None:
    assert changes({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == ({"b": 5, "d": 4}, ["c"])


async def test_variables_are_set_and_removed_per_field_and_bounded(store: RedisStore, raw: redis.Redis) -> None:
    variables = SharedVariables(store, "rivescript", "P", capacity=2)
    assert await variables.load("u1") == {}
    assert await variables.save("u1", {"name": "Ann", "__history__": {"input": ["x"]}}, [])
    assert await variables.save("u1", {"topic": "random"}, ["name"])
    assert await variables.load("u1") == {"__history__": {"input": ["x"]}, "topic": "random"}
    await asyncio.sleep(0.01)  # the order of use is kept in milliseconds
    await variables.save("u2", {"name": "Bo"}, [])
    await asyncio.sleep(0.01)
    await variables.save("u3", {"name": "Cy"}, [])
    assert await variables.load("u1") == {}  # beyond capacity: the least recently active is forgotten
    assert await variables.load("u3") == {"name": "Cy"}
    for key in keys(raw, store, "vars-rivescript"):
        assert raw.pttl(key) > 0 and b"u3" not in key


async def test_cache_round_trips_answers_with_their_ttl(store: RedisStore, raw: redis.Redis) -> None:
    cache = SharedCache(store, "P", "wiki")
    answer = Answer(text="Paris is the capital.", sources=[Source("Paris", "https://example.org/Paris")])
    assert await cache.get(("url", "en", "Paris")) == (False, None, 0.0)
    assert await cache.put(("url", "en", "Paris"), answer, ttl=30)
    found, value, ttl = await cache.get(("url", "en", "Paris"))
    assert found and value == answer and 0 < ttl <= 30
    assert await cache.put("nothing", None, ttl=30)
    assert await cache.get("nothing") == (True, None, pytest.approx(30, abs=1))
    assert await cache.put("doc", {"Heading": "X", "List": [1, 2]}, ttl=30)
    assert (await cache.get("doc"))[1] == {"Heading": "X", "List": [1, 2]}
    assert not await cache.put("huge", {"text": "x" * 300_000}, ttl=30)
    assert not any(b"Paris" in key for key in keys(raw, store, "cache"))


async def test_rate_limit_counts_as_the_in_process_limiter(store: RedisStore) -> None:
    rate = Rate.parse("3/minute")
    shared, local = SharedRateLimiter(store, rate), RateLimiter(rate)
    results = [await shared.acquire("10.0.0.1") for _ in range(4)]
    expected = [local.acquire("10.0.0.1") for _ in range(4)]
    assert results[:3] == expected[:3] == [0.0, 0.0, 0.0]
    assert results[3] == pytest.approx(expected[3], abs=1.0) and results[3] > 15
    assert await shared.acquire("10.0.0.2") == 0.0
    # Atomic under concurrency: exactly the allowance gets through.
    other = SharedRateLimiter(store, Rate.parse("10/minute"))
    waits = await asyncio.gather(*(other.acquire("burst") for _ in range(30)))
    assert sum(1 for wait in waits if wait == 0.0) == 10


# -- a slow or dead Redis -----------------------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    server.close()


async def test_a_hanging_redis_costs_one_timeout_then_nothing(silent_port: int,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(f"redis://127.0.0.1:{silent_port}/0", prefix="slow", timeout=0.2)
    memory = SharedMemory(store, "P", MemorySettings(turns=2))
    try:
        began = time.monotonic()
        assert await memory.recall("c") is None
        assert time.monotonic() - began < 1.5  # the timeout (0.2 s), generously
        assert not store.up and store.health()["status"] == "unavailable"
        began = time.monotonic()
        for _ in range(100):
            assert await memory.recall("c") is None
            assert await store.run(lambda: store.client.get("x")) is UNAVAILABLE
        assert time.monotonic() - began < 0.5  # the breaker is open: no waiting at all
        assert sum("is unavailable" in r.getMessage() for r in caplog.records) == 1
    finally:
        await store.close()


async def test_a_dead_redis_degrades_and_recovers(redis_server: RedisServer) -> None:
    state = open_state(redis_server.url, prefix=f"rec-{uuid.uuid4().hex[:6]}", timeout=0.25)
    assert isinstance(state, RedisState)
    await state.start()
    memory = state.memory("P", MemorySettings(turns=2))
    try:
        assert await memory.remember("c", "q", "a")
        redis_server.stop()
        assert not await memory.remember("c", "q2", "a2")
        assert state.degraded and state.health()["status"] == "unavailable"
        redis_server.start()
        for _ in range(100):  # the background probe notices within a second or so
            if not state.degraded:
                break
            await asyncio.sleep(0.1)
        assert not state.degraded
        assert await memory.remember("c", "q3", "a3")
        assert await memory.recall("c") == [("q3", "a3")]  # a restarted Redis starts empty
    finally:
        await state.close()


# -- configuration ------------------------------------------------------------------------------------------


def test_in_process_state_is_the_default() -> None:
    state = open_state(None)
    assert isinstance(state, InProcessState) and not state.degraded
    assert state.variables("P", "rivescript", capacity=1) is None and state.cache("P", "wiki") is None
    assert state.health() == {"backend": "process"}


def test_bad_state_values_are_refused_without_echoing_secrets() -> None:
    with pytest.raises(StateError, match="redis://HOST:PORT/DB"):
        open_state("http://user:hunter2@example.org")
    with pytest.raises(StateError, match="prefix"):
        open_state("redis://localhost", prefix="")
    assert redacted_url("redis://:hunter2@host:6379/1") == "redis://:***@host:6379/1"
    store = RedisStore("redis://app:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(store.health())


def test_cli_refuses_a_bad_state_url(tmp_path: Path) -> None:
    result = run_cli("serve", "--state", "memcached://:s3cret@127.0.0.1:11211", "--port", "1")
    assert result.returncode == 2
    assert "redis://HOST:PORT/DB" in result.stderr and "s3cret" not in result.stderr


def test_without_the_redis_package_the_flag_names_the_extra(tmp_path: Path) -> None:
    # A `redis` that cannot be imported, first on the path: as if the extra were not installed.
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "__init__.py").write_text("raise ImportError('no redis here')\n")
    result = run_cli("serve", "--state", "redis://127.0.0.1:6379/0", "--port", "1",
                     env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert "pip install 'persona-server[redis]'" in result.stderr
