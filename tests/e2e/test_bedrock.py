"""The AWS Bedrock runtime API against a real server process, through boto3's `bedrock-runtime` client.

boto3 signs requests with SigV4 (dummy credentials: an open server accepts any signature) or, given
`AWS_BEARER_TOKEN_BEDROCK`, sends that Bedrock API key as `Authorization: Bearer` — over HTTPS only, so the keyed
server is reached through a TLS-terminating proxy with a throwaway certificate, as it would be deployed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from tests.conftest import ServerProcess, free_port, persona_args, start_server_process

FOX = "The quick brown fox jumps over the lazy dog."
KEY = "bedrock-api-key-for-tests"
PERSONAS = {
    "fixed.json": {"name": "Fixed", "solvers": ["test-fixed"], "test-fixed": {"text": FOX, "source": "Foxes"}},
    "history.json": {"name": "History", "solvers": ["test-history"]},
    "streamer.json": {"name": "Streamer", "solvers": ["test-stream"],
                      "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01}},
    # Breaks off after two pieces: the answer fails mid-way.
    "breaks.json": {"name": "Breaks", "solvers": ["test-stream"],
                    "test-stream": {"pieces": ["Once ", "upon ", "a ", "time."], "interval": 0.01, "fail_after": 2}},
}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "dummy-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}


def _start(root: Path, env: dict[str, str], *extra: str) -> ServerProcess:
    args = persona_args(root, PERSONAS)
    return start_server_process(*args, *extra, log_path=root / "server.log", env=env)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory.mktemp("bedrock"), plugin_env)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        patch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # the machine's profiles must not interfere
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        yield


def bedrock(endpoint: str, **kwargs: Any) -> Any:
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("bedrock-runtime", endpoint_url=endpoint, config=config, **kwargs)


@pytest.fixture(params=["", "/bedrock"], ids=["vendor-path", "prefixed-path"])
def client(request: pytest.FixtureRequest, server: ServerProcess, aws_env: None) -> Any:
    return bedrock(server.base_url + request.param)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def claude_body(**fields: Any) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, **fields})


# -- converse -----------------------------------------------------------------------------------------------------


def test_converse(client: Any) -> None:
    reply = client.converse(modelId="fixed", messages=user("tell me about foxes"))
    assert reply["output"]["message"] == {"role": "assistant", "content": [{"text": FOX}]}
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"] == {"inputTokens": 4, "outputTokens": 10, "totalTokens": 14}
    assert reply["metrics"]["latencyMs"] >= 0
    assert reply["additionalModelResponseFields"] == {
        "model": "Fixed", "solver": "test-fixed", "sources": [{"title": "Foxes", "url": "https://example.org/x"}]}


def test_converse_system_prompt_history_and_persona_by_model(client: Any) -> None:
    reply = client.converse(
        modelId="HISTORY", system=[{"text": "be brief"}],
        messages=[*user("first"), {"role": "assistant", "content": [{"text": "one"}]}, *user("second")],
    )
    text = reply["output"]["message"]["content"][0]["text"]
    assert text == "system=be brief | user=first | assistant=one | user=second"
    # An ARN (slashes and colons, escaped by boto3) names no persona: the default one answers.
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x"
    assert client.converse(modelId=arn, messages=user("x"))["additionalModelResponseFields"]["model"] == "Fixed"


def test_converse_limits_map_to_stop_reasons(client: Any) -> None:
    cut = client.converse(modelId="fixed", messages=user("foxes"), inferenceConfig={"maxTokens": 3})
    assert cut["output"]["message"]["content"][0]["text"] == "The quick brown"
    assert (cut["stopReason"], cut["usage"]["outputTokens"]) == ("max_tokens", 3)
    stopped = client.converse(modelId="fixed", messages=user("foxes"), inferenceConfig={
        "stopSequences": ["lazy"], "temperature": 0.2, "topP": 0.5})
    assert stopped["output"]["message"]["content"][0]["text"] == "The quick brown fox jumps over the "
    assert stopped["stopReason"] == "stop_sequence"


def _streamed(response: dict[str, Any]) -> tuple[list[str], str, dict[str, Any]]:
    events = list(response["stream"])
    kinds = [next(iter(event)) for event in events]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    return kinds, text, {kind: event[kind] for kind, event in zip(kinds, events, strict=True)}


def test_converse_stream(client: Any) -> None:
    kinds, text, last = _streamed(client.converse_stream(modelId="streamer", system=[{"text": "nice"}],
                                                         messages=user("a story")))
    assert text == "Once upon a time."
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == [
        "messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert last["messageStart"] == {"role": "assistant"}
    assert last["messageStop"]["stopReason"] == "end_turn"
    assert last["messageStop"]["additionalModelResponseFields"]["solver"] == "test-stream"
    assert last["metadata"]["usage"] == {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}


def test_converse_stream_limits(client: Any) -> None:
    _, text, last = _streamed(client.converse_stream(modelId="streamer", messages=user("a story"),
                                                     inferenceConfig={"maxTokens": 2}))
    assert text.rstrip() == "Once upon" and last["messageStop"]["stopReason"] == "max_tokens"
    _, text, last = _streamed(client.converse_stream(modelId="fixed", messages=user("foxes"),
                                                     inferenceConfig={"stopSequences": ["jumps"]}))
    assert text == "The quick brown fox " and last["messageStop"]["stopReason"] == "stop_sequence"


def test_event_stream_framing_checked_by_botocore(server: ServerProcess) -> None:
    body = {"messages": user("foxes")}
    response = httpx.post(server.base_url + "/model/fixed/converse-stream", json=body)
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)
    messages = list(buffer)
    assert messages[0].headers == {":event-type": "messageStart", ":content-type": "application/json",
                                   ":message-type": "event"}
    assert orjson.loads(messages[0].payload) == {"role": "assistant"}
    assert [m.headers[":event-type"] for m in messages][-3:] == ["contentBlockStop", "messageStop", "metadata"]
    corrupted = bytearray(response.content)
    corrupted[20] ^= 0xFF  # inside the first message's headers: its message CRC no longer matches
    broken = EventStreamBuffer()
    broken.add_data(bytes(corrupted))
    with pytest.raises(ChecksumMismatch):
        next(broken)


# -- invoke (the Anthropic body of Bedrock's Claude models) --------------------------------------------------------


def test_invoke_model(client: Any) -> None:
    reply = client.invoke_model(modelId="fixed", body=claude_body(messages=[{"role": "user", "content": "foxes"}]),
                                contentType="application/json", accept="application/json")
    assert reply["contentType"] == "application/json"
    message = json.loads(reply["body"].read())
    assert message["type"] == "message" and message["model"] == "Fixed"
    assert message["content"] == [{"type": "text", "text": FOX}]
    assert (message["stop_reason"], message["usage"]) == ("end_turn", {"input_tokens": 1, "output_tokens": 10})
    cut = json.loads(client.invoke_model(modelId="fixed", body=claude_body(
        max_tokens=2, messages=[{"role": "user", "content": "foxes"}]))["body"].read())
    assert (cut["content"][0]["text"], cut["stop_reason"]) == ("The quick", "max_tokens")
    system = json.loads(client.invoke_model(modelId="history", body=claude_body(
        system="be brief", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]))["body"].read())
    assert system["content"][0]["text"] == "system=be brief | user=hi"


def test_invoke_model_with_response_stream(client: Any) -> None:
    reply = client.invoke_model_with_response_stream(modelId="streamer", body=claude_body(
        stop_sequences=["time"], messages=[{"role": "user", "content": "a story"}]))
    events = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    types = [e["type"] for e in events]
    assert [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop"]
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == "Once upon a "
    delta = events[types.index("message_delta")]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "time"}
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 3


def test_an_answer_that_breaks_off(client: Any) -> None:
    stream = client.converse_stream(modelId="breaks", messages=user("a story"))["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError, match="broke off midway") as info:
        for _ in stream:
            pass
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    with pytest.raises(client.exceptions.ModelErrorException, match="broke off midway"):
        client.converse(modelId="breaks", messages=user("a story"))
    body = claude_body(messages=[{"role": "user", "content": "a story"}])
    chunks = client.invoke_model_with_response_stream(modelId="breaks", body=body)["body"]
    with pytest.raises(botocore.exceptions.EventStreamError, match="broke off midway"):
        for _ in chunks:
            pass


# -- errors and keys ------------------------------------------------------------------------------------------------


def test_bad_requests_raise_botocores_errors(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="at least one text content block"):
        client.converse(modelId="fixed", messages=[{"role": "user", "content": []}])
    # A persona without an LLM cannot call the client's tools: a required call is refused, naming the field.
    with pytest.raises(client.exceptions.ValidationException, match=r"'toolConfig\.toolChoice'"):
        client.converse(modelId="fixed", messages=user("hi"), toolConfig={"tools": [
            {"toolSpec": {"name": "x", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"any": {}}})
    with pytest.raises(client.exceptions.ValidationException, match="Titan, Meta Llama, Mistral") as info:
        client.invoke_model(modelId="amazon.titan-text-express-v1", body=json.dumps({"inputText": "hi"}))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(client.exceptions.ValidationException, match="max_tokens"):
        client.invoke_model(modelId="fixed", body=json.dumps({"messages": [{"role": "user", "content": "x"}]}))


def test_unknown_operations_and_methods(server: ServerProcess) -> None:
    unknown = httpx.post(server.base_url + "/model/fixed/summarize", json={})
    assert unknown.status_code == 404
    assert unknown.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert "POST /model/fixed/summarize" in unknown.json()["message"]
    wrong_method = httpx.get(server.base_url + "/bedrock/model/fixed/converse")
    assert wrong_method.status_code == 405 and wrong_method.headers["x-amzn-errortype"] == "ValidationException"


class TLSProxy:
    """Terminates TLS on a loopback port and passes the bytes to the server, as a reverse proxy would."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context))
        started.set()
        self.loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self.loop)  # connections boto3 keeps alive
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """A server with --api-key and --strict-models behind TLS: (its https base URL, the CA file to trust)."""
    root = tmp_path_factory.mktemp("bedrock-key")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    proc = _start(root, plugin_env, "--api-key", KEY, "--strict-models")
    proxy = TLSProxy(proc.port, cert, key)
    yield f"https://127.0.0.1:{proxy.port}", cert
    proxy.stop()
    proc.stop()


def test_api_key_as_a_bedrock_api_key(keyed: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    base, cert = keyed
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "wrong-key")
    wrong = bedrock(base, verify=str(cert))
    with pytest.raises(wrong.exceptions.AccessDeniedException, match="Incorrect API key"):
        wrong.converse(modelId="fixed", messages=user("hi"))
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", KEY)
    right = bedrock(base + "/bedrock", verify=str(cert))
    assert right.converse(modelId="fixed", messages=user("hi"))["output"]["message"]["content"][0]["text"] == FOX
    _, text, _ = _streamed(right.converse_stream(modelId="streamer", messages=user("a story")))
    assert text == "Once upon a time."
    # --strict-models: a model id that names no persona is the SDK's ResourceNotFoundException.
    with pytest.raises(right.exceptions.ResourceNotFoundException, match=r"'anthropic\.claude-x' does not exist"):
        right.converse(modelId="anthropic.claude-x", messages=user("hi"))


def test_api_key_refuses_sigv4(keyed: tuple[str, Path], aws_env: None) -> None:
    base, cert = keyed
    signed = bedrock(base, verify=str(cert))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        signed.converse(modelId="fixed", messages=user("hi"))
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
