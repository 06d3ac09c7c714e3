"""`POST /v1/files` against a real server: bounded size (413), checked type (400), the form's fields, the API key,
indexing that resumes after the server is killed mid-file, and a server without the extra's packages."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai as openai_module
import pytest
from openai import OpenAI

from tests.conftest import ServerProcess
from tests.vectorstores.helpers import BREAD, LIGHTHOUSE, client, make_pdf, start, wait_indexed

LIMIT = 4096


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads-data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[ServerProcess]:
    proc = start(tmp_path_factory.mktemp("uploads"), data_dir, None, "--max-upload-bytes", str(LIMIT),
                 "--api-key", "sesame")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> OpenAI:
    return client(server, key="sesame")


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]  # type: ignore[no-any-return]


def post_file(server: ServerProcess, name: str, data: bytes, purpose: str | None = "assistants",
              ) -> httpx.Response:
    fields = {"purpose": purpose} if purpose is not None else {}
    return httpx.post(server.base_url + "/v1/files", files={"file": (name, data)}, data=fields, timeout=30,
                      headers={"Authorization": "Bearer sesame"}, trust_env=False)


def test_too_large_uploads_get_413_and_leave_nothing(api: OpenAI, server: ServerProcess, data_dir: Path) -> None:
    with pytest.raises(openai_module.APIStatusError) as caught:
        api.files.create(file=("big.txt", io.BytesIO(b"word " * LIMIT)), purpose="assistants")
    assert caught.value.status_code == 413

    # Chunked, with no Content-Length: refused as soon as the file part passes the limit.
    boundary = "xyzzy"

    def body() -> Iterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.md\"\r\n"
               f"Content-Type: text/markdown\r\n\r\n").encode()
        for _ in range(64):
            yield b"lighthouse " * 100
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(server.base_url + "/v1/files", content=body(), timeout=30, trust_env=False,
                          headers={"Authorization": "Bearer sesame",
                                   "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and error_of(response)["code"] == "file_too_large"
    assert str(LIMIT) in error_of(response)["message"]

    # Exactly at the limit is fine; nothing of the refused ones is kept.
    assert post_file(server, "fits.txt", b"a" * LIMIT).status_code == 200
    assert [f.filename for f in api.files.list()] == ["fits.txt"]
    assert list((data_dir / "uploads").iterdir()) == []
    assert len(list((data_dir / "files").iterdir())) == 1


@pytest.mark.parametrize(("name", "data", "code"), [
    ("tool.exe", b"MZ\x90\x00binary", "unsupported_file"),
    ("archive.zip", b"PK\x03\x04", "unsupported_file"),
    ("no-extension", b"plain words", "unsupported_file"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "invalid_file"),
    ("latin1.md", "caf\xe9".encode("latin-1"), "invalid_file"),
    ("fake.pdf", b"just text pretending", "invalid_file"),
    ("broken.json", b'{"a": ', "invalid_file"),
])
def test_wrong_types_get_400(server: ServerProcess, name: str, data: bytes, code: str) -> None:
    response = post_file(server, name, data)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert (error["code"], error["param"], error["type"]) == (code, "file", "invalid_request_error")


def test_accepted_types_and_their_text(api: OpenAI, server: ServerProcess) -> None:
    html = (b"<html><head><title>t</title><style>.x{color:red}</style></head><body><h1>Lighthouses</h1>"
            b"<p>A lighthouse guides ships at night.</p><script>var secret = 1;</script></body></html>")
    ids = {}
    for name, data in [("page.html", html), ("data.json", json.dumps({"bread": BREAD}).encode()),
                       ("doc.pdf", make_pdf("Magma rises through the crust.")),
                       ("notes.markdown", LIGHTHOUSE.encode())]:
        response = post_file(server, name, data, purpose="user_data")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["object"], body["filename"], body["bytes"], body["purpose"]) == ("file", name, len(data),
                                                                                      "user_data")
        ids[name] = body["id"]
    store = api.vector_stores.create(name="kinds", file_ids=list(ids.values()))
    for file_id in ids.values():
        assert wait_indexed(api, store.id, file_id).status == "completed"
    page = next(iter(api.vector_stores.search(store.id, query="ships at night", max_num_results=1)))
    assert page.filename == "page.html"
    text = page.content[0].text
    assert "guides ships" in text and "<p>" not in text and "secret" not in text and "color" not in text
    assert api.files.content(ids["page.html"]).content == html
    assert api.files.content(ids["page.html"]).response.headers["content-type"].startswith("text/html")


def test_form_fields_are_checked(server: ServerProcess) -> None:
    missing = post_file(server, "a.txt", b"hello", purpose=None)
    assert missing.status_code == 400 and error_of(missing)["param"] == "purpose"
    wrong = post_file(server, "a.txt", b"hello", purpose="world-domination")
    assert wrong.status_code == 400 and error_of(wrong)["param"] == "purpose"
    as_json = httpx.post(server.base_url + "/v1/files", json={"file": "hello", "purpose": "assistants"},
                         headers={"Authorization": "Bearer sesame"}, trust_env=False)
    assert as_json.status_code == 400 and "multipart/form-data" in error_of(as_json)["message"]
    no_file = httpx.post(server.base_url + "/v1/files", data={"purpose": "assistants"},
                         files={"other": ("x.txt", b"x")}, headers={"Authorization": "Bearer sesame"},
                         trust_env=False)
    assert no_file.status_code == 400 and error_of(no_file)["param"] == "file"
    for body in ({"chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 50,
                                                                       "chunk_overlap_tokens": 0}}},
                 {"chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 200,
                                                                       "chunk_overlap_tokens": 150}}},
                 {"metadata": {f"k{i}": "v" for i in range(17)}}, {"name": 7}):
        response = httpx.post(server.base_url + "/v1/vector_stores", json=body, trust_env=False,
                              headers={"Authorization": "Bearer sesame"})
        assert response.status_code == 400, (body, response.text)
        assert error_of(response)["param"] in ("chunking_strategy", "metadata", "name")


def test_the_api_key_guards_every_route(server: ServerProcess) -> None:
    for method, path in [("GET", "/v1/files"), ("POST", "/v1/files"), ("GET", "/v1/vector_stores"),
                         ("POST", "/v1/vector_stores/vs_x/search"), ("GET", "/v1/files/file-x/content")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, server.base_url + path, headers=headers, trust_env=False)
            assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"
    wrong = OpenAI(base_url=server.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai_module.AuthenticationError):
        wrong.vector_stores.list()


def test_indexing_resumes_after_the_server_is_killed(tmp_path: Path) -> None:
    # Large enough that indexing outlasts the attach request's one-second wait.
    text = "\n\n".join(f"Section {i}. " + (LIGHTHOUSE if i % 2 else BREAD) * 3 for i in range(150))
    first = start(tmp_path, tmp_path / "data", None)
    api = client(first)
    file_id = api.files.create(file=("big.md", io.BytesIO(text.encode())), purpose="assistants").id
    store = api.vector_stores.create(name="big")
    attached = api.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
    assert attached.status == "in_progress"
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)

    started = time.monotonic()
    second = start(tmp_path, tmp_path / "data", None)
    try:
        api = client(second)
        done = wait_indexed(api, store.id, file_id, timeout=300)
        assert done.status == "completed", done
        assert api.vector_stores.retrieve(store.id).file_counts.completed == 1
        hits = list(api.vector_stores.search(store.id, query="sourdough starter", max_num_results=50))
        assert len(hits) == 50 and len({hit.content[0].text for hit in hits}) == 50  # no chunk stored twice
        assert time.monotonic() - started < 300
    finally:
        second.stop()


def test_without_the_packages_the_server_still_serves_and_says_what_to_install(tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    (hide / "sqlite_vec").mkdir(parents=True)
    (hide / "sqlite_vec" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    (hide / "pysqlite3").mkdir()
    (hide / "pysqlite3" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    persona = tmp_path / "Fast.json"
    persona.write_text(json.dumps({"name": "Fast", "solvers": ["ovos-solver-failure-plugin"]}))
    from tests.conftest import start_server_process

    proc = start_server_process("--persona", str(persona), "--data-dir", str(tmp_path / "data"),
                                log_path=tmp_path / "server.log",
                                env={"PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])})
    try:
        response = httpx.post(proc.base_url + "/v1/vector_stores", json={"name": "x"}, trust_env=False)
        assert response.status_code == 501
        assert "pip install 'persona-server[vectorstores]'" in error_of(response)["message"]
        chat = httpx.post(proc.base_url + "/v1/chat/completions", trust_env=False, timeout=30,
                          json={"messages": [{"role": "user", "content": "hello"}]})
        assert chat.status_code == 200
    finally:
        proc.stop()


def test_a_chroma_server_that_is_down_is_a_503_and_a_failed_file(tmp_path: Path) -> None:
    from tests.conftest import free_port

    proc = start(tmp_path, tmp_path / "data", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        api = client(proc)
        file_id = api.files.create(file=("a.txt", io.BytesIO(BREAD.encode())), purpose="assistants").id
        store = api.vector_stores.create(name="nowhere")
        api.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
        failed = wait_indexed(api, store.id, file_id)
        assert failed.status == "failed" and failed.last_error is not None
        assert failed.last_error.code == "server_error"
        response = httpx.post(f"{proc.base_url}/v1/vector_stores/{store.id}/search", json={"query": "bread"},
                              trust_env=False, timeout=60)
        assert response.status_code == 503 and error_of(response)["code"] == "vector_db_unavailable"
        assert "Chroma" in error_of(response)["message"]
    finally:
        proc.stop()


def test_two_workers_share_one_data_directory(tmp_path: Path) -> None:
    proc = start(tmp_path, tmp_path / "data", None, "--workers", "2")
    try:
        api = client(proc)
        texts = {f"doc-{i}.md": (LIGHTHOUSE if i % 2 else BREAD) + f"\n\nDocument number {i}." for i in range(6)}
        ids = [api.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
               for name, text in texts.items()]
        store = api.vector_stores.create(name="shared")
        for file_id in ids:  # attached through whichever worker takes each request
            api.vector_stores.files.create(vector_store_id=store.id, file_id=file_id)
        for file_id in ids:
            assert wait_indexed(api, store.id, file_id).status == "completed"
        for _ in range(8):  # every answer the same, whichever worker gives it
            assert {f.id for f in api.files.list()} == set(ids)
            assert api.vector_stores.retrieve(store.id).file_counts.completed == 6
            hits = list(api.vector_stores.search(store.id, query="sourdough loaf", max_num_results=3))
            assert all(hit.filename in ("doc-0.md", "doc-2.md", "doc-4.md") for hit in hits), hits
    finally:
        proc.stop()
