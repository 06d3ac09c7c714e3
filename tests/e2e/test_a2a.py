"""Personas as A2A agents (`--a2a`), driven by the `a2a-sdk` client: its card resolver, its client factory and
JSON-RPC transports (A2A 1.0's `SendMessage`, and 0.3's `message/send` / `message/stream`), against real server
processes. The far side of cancellation is the test solver's marker file: it says when the chain's work stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, AgentCardResolutionError, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError, UnsupportedOperationError
from google.protobuf.struct_pb2 import Struct, Value

from tests.conftest import EXAMPLES, ServerProcess, persona_args, run_cli, start_server_process

RIVE = "ovos-solver-rivescript-plugin"
KEY = "a2a-secret-key"
PIECES = ["Once ", "upon ", "a ", "time."]


def _slow(marker: Path) -> dict[str, Any]:
    # Long enough that only a cancellation ends it within the test.
    return {"solvers": ["test-stream"], "test-stream": {"pieces": [f"w{i} " for i in range(200)], "interval": 0.2,
                                                        "marker": str(marker), "deadline": 120, "timeout": 60}}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("a2a")


@pytest.fixture(scope="module")
def server(root: Path, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    rive = json.loads((EXAMPLES / "rivescript_bot.json").read_text())
    files = {
        "rivescript_bot.json": rive,  # the first file: the default persona
        "streamer.json": {"name": "Streamer", "description": "Tells a very short story, word by word.",
                          "solvers": ["test-stream"],
                          "test-stream": {"pieces": PIECES, "interval": 0.4}},
        "echo.json": {"name": "echo", "solvers": ["test-echo"]},
        "broken.json": {"name": "broken", "solvers": ["test-stream"],
                        "test-stream": {"pieces": PIECES, "interval": 0.01, "fail_after": 2}},
        "leaver.json": {"name": "leaver", **_slow(root / "leaver.marker")},
        "canceller.json": {"name": "canceller", **_slow(root / "canceller.marker")},
        "waiter.json": {"name": "waiter", **_slow(root / "waiter.marker")},
    }
    proc = start_server_process("--a2a", *persona_args(root, files), log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield client


async def card_of(http: httpx.AsyncClient, url: str) -> AgentCard:
    return await A2ACardResolver(http, url).get_agent_card()


def question(text: str, context_id: str | None = None) -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=[Part(text=text)])
    if context_id:
        message.context_id = context_id
    return SendMessageRequest(message=message)


def answer_text(task: Task) -> str:
    return "".join(part.text for artifact in task.artifacts for part in artifact.parts)


async def ask(http: httpx.AsyncClient, card: AgentCard, text: str, context_id: str | None = None) -> Task:
    """`message/send` (SendMessage) through the SDK's client: the finished task."""
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
    responses = [r async for r in client.send_message(question(text, context_id))]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


async def test_cards_of_a_named_persona_and_of_the_default(server: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/streamer/")
    assert card.name == "Streamer"
    assert card.description == "Tells a very short story, word by word."
    assert card.capabilities.streaming
    assert list(card.default_input_modes) == ["text/plain"] and list(card.default_output_modes) == ["text/plain"]
    assert card.version
    assert [skill.id for skill in card.skills] == ["test-stream"]
    assert {(i.url, i.protocol_binding, i.protocol_version) for i in card.supported_interfaces} == {
        (f"{server.base_url}/a2a/Streamer/", "JSONRPC", "1.0"), (f"{server.base_url}/a2a/Streamer/", "JSONRPC", "0.3")}
    assert not card.security_schemes  # no key on this server

    default = await card_of(http, f"{server.base_url}/a2a/")
    assert default.name == "rivescript_bot"
    assert {i.url for i in default.supported_interfaces} == {f"{server.base_url}/a2a/"}
    skill = default.skills[0]
    assert skill.id == RIVE and skill.description  # described by the solver class

    # The endpoint's URL follows the host the client asked for (a proxy's port, say), ...
    raw = await http.get(f"{server.base_url}/a2a/echo/.well-known/agent-card.json",
                         headers={"Host": "localhost:4242"})
    assert raw.json()["supportedInterfaces"][0]["url"] == "http://localhost:4242/a2a/echo/"
    # ... and A2A 0.3 clients find theirs in the same card, also under the pre-0.3 path.
    legacy = (await http.get(f"{server.base_url}/a2a/echo/.well-known/agent.json")).json()
    assert legacy["url"] == f"{server.base_url}/a2a/echo/" and legacy["preferredTransport"] == "JSONRPC"


async def test_message_send_answers_from_the_default_persona_and_a_second_file(
        server: ServerProcess, http: httpx.AsyncClient) -> None:
    task = await ask(http, await card_of(http, f"{server.base_url}/a2a/"), "hello")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_text(task).strip()
    assert task.artifacts[0].metadata["solver"] == RIVE

    task = await ask(http, await card_of(http, f"{server.base_url}/a2a/echo/"), "what is a lighthouse")
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_text(task) == "echo: what is a lighthouse (1 messages)"
    assert task.artifacts[0].metadata["solver"] == "test-echo"


async def test_message_stream_pieces_arrive_before_the_end(server: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/streamer/")
    client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
    began = time.monotonic()
    pieces: list[tuple[float, str]] = []
    states: list[int] = []
    async for event in client.send_message(question("tell me a story")):
        if event.HasField("artifact_update"):
            text = "".join(part.text for part in event.artifact_update.artifact.parts)
            if text:
                pieces.append((time.monotonic() - began, text))
        elif event.HasField("status_update"):
            states.append(event.status_update.status.state)
    ended = time.monotonic() - began
    assert "".join(text for _, text in pieces) == "".join(PIECES)
    assert len(pieces) == len(PIECES)
    # The solver waits 0.4 s after each piece: the first is here long before the answer ends.
    assert pieces[0][0] < ended - 0.8
    assert states[-1] == TaskState.TASK_STATE_COMPLETED


def _v03_only(card: AgentCard) -> AgentCard:
    """The card as an A2A 0.3 agent's would be: the SDK's client then speaks 0.3 (`message/send`, `message/stream`)."""
    legacy = AgentCard()
    legacy.CopyFrom(card)
    del legacy.supported_interfaces[:]
    legacy.supported_interfaces.extend(i for i in card.supported_interfaces if i.protocol_version == "0.3")
    return legacy


async def test_the_a2a_0_3_methods_message_send_and_message_stream(server: ServerProcess) -> None:
    methods: list[str] = []

    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            methods.append(json.loads(request.content)["method"])

    async with httpx.AsyncClient(trust_env=False, timeout=30, event_hooks={"request": [record]}) as http:
        card = _v03_only(await card_of(http, f"{server.base_url}/a2a/echo/"))
        task = await ask(http, card, "ping")
        assert answer_text(task) == "echo: ping (1 messages)"

        client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(
            _v03_only(await card_of(http, f"{server.base_url}/a2a/streamer/")))
        streamed = [event async for event in client.send_message(question("a story"))]
        text = "".join(part.text for e in streamed if e.HasField("artifact_update")
                       for part in e.artifact_update.artifact.parts)
        assert text == "".join(PIECES)
        assert streamed[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert methods == ["message/send", "message/stream"]


async def test_a_context_is_a_conversation_and_contexts_share_nothing(
        server: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/")
    mine, other = f"ctx-{uuid.uuid4().hex}", f"ctx-{uuid.uuid4().hex}"
    told = await ask(http, card, "my name is Mirabel", mine)
    assert told.context_id == mine
    assert "Mirabel" in answer_text(await ask(http, card, "what is my name", mine))
    assert "Mirabel" not in answer_text(await ask(http, card, "what is my name", other))
    assert "Mirabel" not in answer_text(await ask(http, card, "what is my name"))  # a fresh context


async def test_a_failing_answer_is_a_failed_task_not_a_traceback(server: ServerProcess,
                                                                 http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/broken/")
    task = await ask(http, card, "a story")
    assert task.status.state == TaskState.TASK_STATE_FAILED
    said = "".join(part.text for part in task.status.message.parts)
    assert "broke off midway" in said and "Traceback" not in said and "on purpose" not in said

    client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
    events = [event async for event in client.send_message(question("a story"))]
    assert "".join(p.text for e in events if e.HasField("artifact_update") for p in e.artifact_update.artifact.parts) \
        == "Once upon "
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_FAILED


async def test_a_message_without_text_is_rejected(server: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/echo/")
    data = Struct()
    data.update({"x": 1})
    request = SendMessageRequest(message=Message(role=Role.ROLE_USER, message_id="m-data",
                                                 parts=[Part(data=Value(struct_value=data))]))
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
    [response] = [r async for r in client.send_message(request)]
    assert response.task.status.state == TaskState.TASK_STATE_REJECTED
    assert "text" in response.task.status.message.parts[0].text


def _marker_says_cancelled(marker: Path, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text() == "cancelled":
            return True
        time.sleep(0.05)
    return False


async def test_a_client_leaving_a_stream_stops_the_chain(server: ServerProcess, root: Path) -> None:
    marker = root / "leaver.marker"
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        card = await card_of(http, f"{server.base_url}/a2a/leaver/")
        client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
        events = client.send_message(question("talk forever"))
        async for event in events:
            if event.HasField("artifact_update"):
                break  # the first words: now leave
        await events.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(_marker_says_cancelled, marker), "the solver was never cancelled"


def test_a_client_leaving_a_blocking_send_stops_the_chain(server: ServerProcess, root: Path) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send",
            "params": {"message": {"role": "user", "messageId": "m-wait", "parts": [{"kind": "text", "text": "hi"}]}}}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/a2a/waiter/", json=body, timeout=1.0)
    assert _marker_says_cancelled(root / "waiter.marker"), "the solver was never cancelled"


async def test_tasks_cancel_stops_the_chain(server: ServerProcess, root: Path, http: httpx.AsyncClient) -> None:
    marker = root / "canceller.marker"
    card = await card_of(http, f"{server.base_url}/a2a/canceller/")
    client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
    seen: list[StreamResponse] = []
    task_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def listen() -> None:
        async for event in client.send_message(question("talk forever")):
            seen.append(event)
            if event.HasField("artifact_update") and not task_id.done():
                task_id.set_result(event.artifact_update.task_id)

    listening = asyncio.create_task(listen())
    cancelled = await client.cancel_task(CancelTaskRequest(id=await asyncio.wait_for(task_id, 20)))
    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert await asyncio.to_thread(_marker_says_cancelled, marker), "the solver was never cancelled"
    await asyncio.wait_for(listening, 20)  # the stream ends too


async def test_tasks_are_not_kept_beyond_the_answer(server: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{server.base_url}/a2a/echo/")
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
    ids = [(await ask(http, card, f"question {n}")).id for n in range(70)]
    # The last answered tasks can still be read back (a client checking right after) ...
    assert answer_text(await client.get_task(GetTaskRequest(id=ids[-1]))) == "echo: question 69 (1 messages)"
    # ... older ones are gone: the store keeps only the last 64.
    with pytest.raises(TaskNotFoundError):
        await client.get_task(GetTaskRequest(id=ids[0]))
    # Nobody lists the others' tasks.
    with pytest.raises(UnsupportedOperationError, match="not offered"):
        await client.list_tasks(ListTasksRequest())


async def test_bad_bodies_get_json_rpc_errors(server: ServerProcess, http: httpx.AsyncClient) -> None:
    url = f"{server.base_url}/a2a/echo/"
    empty = await http.post(url, content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 400 and empty.json()["error"]["code"] == -32600
    garbled = await http.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert garbled.json()["error"]["code"] == -32700  # the SDK's parse error


async def test_a_send_asking_to_return_at_once_gets_the_finished_task(
        server: ServerProcess, http: httpx.AsyncClient) -> None:
    # Nothing is left answering in the background after its request returned.
    card = await card_of(http, f"{server.base_url}/a2a/streamer/")
    client = ClientFactory(ClientConfig(streaming=False, polling=True, httpx_client=http)).create(card)
    [response] = [r async for r in client.send_message(question("a story"))]
    assert response.task.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_text(response.task) == "".join(PIECES)


async def test_an_unknown_persona_is_404(server: ServerProcess, http: httpx.AsyncClient) -> None:
    with pytest.raises(AgentCardResolutionError) as info:
        await card_of(http, f"{server.base_url}/a2a/nobody/")
    assert info.value.status_code == 404
    response = await http.post(f"{server.base_url}/a2a/nobody/", json={"jsonrpc": "2.0", "id": 1,
                                                                       "method": "message/send", "params": {}})
    assert response.status_code == 404
    assert "nobody" in response.json()["error"]["message"]


ECHO = {"echo.json": {"name": "echo", "solvers": ["test-echo"]}}


@pytest.fixture(scope="module")
def keyed(root: Path, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    args = persona_args(root, ECHO)
    proc = start_server_process("--a2a", "--api-key", KEY, "--a2a-url", "https://agents.example.com/base/", *args,
                                log_path=root / "keyed.log", env=plugin_env)
    yield proc
    proc.stop()


async def test_the_key_guards_messages_but_not_the_card(keyed: ServerProcess, http: httpx.AsyncClient) -> None:
    card = await card_of(http, f"{keyed.base_url}/a2a/")  # no key: cards are read before authenticating
    assert card.name == "echo"
    # A configured public URL names the endpoint, whatever host the request came to.
    assert {i.url for i in card.supported_interfaces} == {"https://agents.example.com/base/a2a/"}
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme.lower() == "bearer"
    assert "bearer" in card.security_requirements[0].schemes
    assert KEY not in json.dumps((await http.get(f"{keyed.base_url}/a2a/.well-known/agent-card.json")).json())

    card.supported_interfaces[0].url = card.supported_interfaces[1].url = f"{keyed.base_url}/a2a/"
    with pytest.raises(A2AClientError, match="401"):
        await ask(http, card, "knock knock")
    refused = await http.post(f"{keyed.base_url}/a2a/", json={"jsonrpc": "2.0", "id": 7, "method": "message/send"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == -32600  # in JSON-RPC's own format
    async with httpx.AsyncClient(trust_env=False, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as authed:
        task = await ask(authed, card, "knock knock")
    assert answer_text(task) == "echo: knock knock (1 messages)"


async def test_a_stream_in_flight_finishes_on_sigterm(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    files = {"streamer.json": {"name": "Streamer", "solvers": ["test-stream"],
                               "test-stream": {"pieces": PIECES, "interval": 0.4}}}
    proc = start_server_process("--a2a", *persona_args(tmp_path, files), log_path=tmp_path / "sigterm.log",
                                env=plugin_env)
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            card = await card_of(http, f"{proc.base_url}/a2a/")
            client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
            text, last = "", None
            async for event in client.send_message(question("a story")):
                if event.HasField("artifact_update"):
                    if not text:
                        proc.process.terminate()  # SIGTERM with the answer under way
                    text += "".join(part.text for part in event.artifact_update.artifact.parts)
                last = event
        assert text == "".join(PIECES)
        assert last is not None and last.status_update.status.state == TaskState.TASK_STATE_COMPLETED
        assert proc.process.wait(timeout=15) == 0
    finally:
        proc.stop()


def test_without_the_flag_there_is_no_a2a(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    plain = start_server_process(*persona_args(tmp_path, ECHO), log_path=tmp_path / "plain.log", env=plugin_env)
    try:
        assert httpx.post(f"{plain.base_url}/a2a/", json={}).status_code == 404
        assert httpx.get(f"{plain.base_url}/a2a/.well-known/agent-card.json").status_code == 404
    finally:
        plain.stop()


def test_without_the_sdk_the_flag_says_what_to_install(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "a2a"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no a2a here')\n")
    result = run_cli("--a2a", "--port", "1", env={"PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 2
    assert "pip install 'persona-server[a2a]'" in result.stderr
    assert "Traceback" not in result.stderr
