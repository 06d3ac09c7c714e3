"""The `openai` client against a real server: files, vector stores, attaching, search, deletion, restarts, on
both stores of vectors: sqlite-vec in the data directory, and a Chroma server this module starts (`chroma run`).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai as openai_module
import pytest
from openai import OpenAI

from persona_server.vectorstores.chunking import count_tokens
from tests.conftest import ServerProcess
from tests.vectorstores.helpers import BREAD, LIGHTHOUSE, VOLCANO, chroma_server, client, make_pdf, start, wait_indexed


@dataclass
class Backend:
    name: str
    root: Path
    vector_db: str | None

    def start(self, data_dir: Path, *args: str) -> ServerProcess:
        return start(self.root, data_dir, self.vector_db, *args, name=self.name)


@pytest.fixture(scope="module", params=["sqlite-vec", "chroma"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "chroma":
        with chroma_server(root / "chroma") as url:
            yield Backend("chroma", root, url)
    else:
        yield Backend("sqlite-vec", root, None)


@pytest.fixture(scope="module")
def server(backend: Backend) -> Iterator[ServerProcess]:
    proc = backend.start(backend.root / "data")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> OpenAI:
    return client(server)


def upload(api: OpenAI, name: str, content: bytes | str) -> str:
    data = content.encode() if isinstance(content, str) else content
    return api.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id


def knowledge_base(api: OpenAI) -> tuple[str, dict[str, str]]:
    """A store with a Markdown file, a text file and a PDF, all indexed."""
    ids = {"md": upload(api, "lighthouses.md", LIGHTHOUSE), "txt": upload(api, "bread.txt", BREAD),
           "pdf": upload(api, "volcanoes.pdf", make_pdf(VOLCANO))}
    store = api.vector_stores.create(name="notes", metadata={"team": "docs"})
    for kind, file_id in ids.items():
        api.vector_stores.files.create(vector_store_id=store.id, file_id=file_id, attributes={"kind": kind})
        assert wait_indexed(api, store.id, file_id).status == "completed"
    return store.id, ids


def test_files_and_search_end_to_end(api: OpenAI) -> None:
    store_id, ids = knowledge_base(api)
    store = api.vector_stores.retrieve(store_id)
    assert (store.name, store.metadata, store.status) == ("notes", {"team": "docs"}, "completed")
    assert store.file_counts.completed == 3 and store.file_counts.total == 3 and store.usage_bytes > 0
    attached = api.vector_stores.files.retrieve(ids["md"], vector_store_id=store_id)
    assert attached.attributes == {"kind": "md"} and attached.usage_bytes > 0
    assert attached.chunking_strategy is not None and attached.chunking_strategy.type == "static"
    assert attached.chunking_strategy.static.max_chunk_size_tokens == 800

    for question, file_id, filename, words in [
        ("what guides ships at night near the coast?", ids["md"], "lighthouses.md", "lighthouse"),
        ("how do I bake a loaf?", ids["txt"], "bread.txt", "sourdough"),
        ("why does lava come out of a mountain?", ids["pdf"], "volcanoes.pdf", "magma"),
    ]:
        results = list(api.vector_stores.search(store_id, query=question, max_num_results=3))
        assert results and results[0].file_id == file_id, (question, results)
        best = results[0]
        assert best.filename == filename and words in best.content[0].text.lower()
        assert best.content[0].type == "text" and best.attributes == {"kind": filename.rsplit(".", 1)[1]}
        assert 0 < best.score <= 1 and all(a.score >= b.score for a, b in itertools.pairwise(results))

    # A list of queries: the best chunk for either.
    results = list(api.vector_stores.search(store_id, query=["sourdough starter", "ash and gas"],
                                            max_num_results=2))
    assert {r.file_id for r in results} == {ids["txt"], ids["pdf"]}

    content = api.files.content(ids["md"])
    assert content.text == LIGHTHOUSE
    assert api.files.content(ids["pdf"]).content.startswith(b"%PDF-")


def test_small_chunks_rank_the_right_one_first(api: OpenAI) -> None:
    # Three topics in one file, cut into chunks of 100 tokens without overlap: one topic's chunk comes first.
    text = "\n\n".join([LIGHTHOUSE * 3, BREAD * 3, VOLCANO * 3])
    file_id = upload(api, "mixed.txt", text)
    store = api.vector_stores.create(name="mixed")
    api.vector_stores.files.create(vector_store_id=store.id, file_id=file_id, chunking_strategy={
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}})
    assert wait_indexed(api, store.id, file_id).status == "completed"
    results = list(api.vector_stores.search(store.id, query="a hot oven for the crust", max_num_results=10))
    assert len(results) == math.ceil(count_tokens(text) / 100)  # every chunk of the file, none lost
    assert "oven" in results[0].content[0].text.lower() and "lighthouse" not in results[0].content[0].text.lower()


def test_lists_page_by_cursor(api: OpenAI) -> None:
    made = [api.vector_stores.create(name=f"page-{i}").id for i in range(5)]
    first = api.vector_stores.list(limit=2)
    assert [s.id for s in first.data] == made[::-1][:2] and first.has_more
    raw = api.vector_stores.with_raw_response.list(limit=2, after=made[3]).parse()
    assert [s.id for s in raw.data] == [made[2], made[1]]
    oldest_first = api.vector_stores.list(limit=3, order="asc", after=made[0])
    assert [s.id for s in oldest_first.data] == made[1:4]
    # `before` an id: the items just before it in the list's order, in that order.
    assert [s.id for s in api.vector_stores.list(limit=2, before=made[1]).data] == [made[3], made[2]]
    assert [s.id for s in api.vector_stores.list(limit=2, order="asc", before=made[3]).data] == [made[1], made[2]]
    # The SDK's auto-paging follows `after` through every page.
    assert [s.id for s in api.vector_stores.list(limit=2) if s.id in made] == made[::-1]

    files = [upload(api, f"note-{i}.txt", f"note number {i}") for i in range(3)]
    page = api.files.list(limit=2, order="asc", after=files[0])
    assert [f.id for f in page.data] == files[1:3]
    body = api.files.with_raw_response.list(limit=1).http_response.json()
    assert body["object"] == "list" and body["first_id"] == body["last_id"] == files[2] and body["has_more"]


def test_delete_files_and_stores(api: OpenAI) -> None:
    keep = upload(api, "keep.md", LIGHTHOUSE)
    drop = upload(api, "drop.txt", BREAD)
    store = api.vector_stores.create(name="deleting", file_ids=[keep, drop])
    for file_id in (keep, drop):
        assert wait_indexed(api, store.id, file_id).status == "completed"
    assert {r.file_id for r in api.vector_stores.search(store.id, query="bread")} == {keep, drop}

    deleted = api.files.delete(drop)
    assert (deleted.id, deleted.deleted) == (drop, True)
    with pytest.raises(openai_module.NotFoundError):
        api.files.retrieve(drop)
    # Its chunks left the store with it.
    assert {r.file_id for r in api.vector_stores.search(store.id, query="bread")} == {keep}
    assert api.vector_stores.retrieve(store.id).file_counts.total == 1

    detached = api.vector_stores.files.delete(keep, vector_store_id=store.id)
    assert detached.deleted and list(api.vector_stores.search(store.id, query="lighthouse")) == []
    assert api.files.retrieve(keep).id == keep  # the file itself stays

    gone = api.vector_stores.delete(store.id)
    assert (gone.id, gone.deleted, gone.object) == (store.id, True, "vector_store.deleted")
    with pytest.raises(openai_module.NotFoundError):
        api.vector_stores.search(store.id, query="lighthouse")


def test_unknown_ids_are_404_in_openai_shape(api: OpenAI, server: ServerProcess) -> None:
    import httpx

    store = api.vector_stores.create(name="empty")
    for call in (lambda: api.files.retrieve("file-nope"), lambda: api.files.content("file-nope"),
                 lambda: api.files.delete("file-nope"), lambda: api.vector_stores.retrieve("vs_nope"),
                 lambda: api.vector_stores.delete("vs_nope"),
                 lambda: api.vector_stores.search("vs_nope", query="x"),
                 lambda: api.vector_stores.files.create(vector_store_id=store.id, file_id="file-nope"),
                 lambda: api.vector_stores.files.retrieve("file-nope", vector_store_id=store.id),
                 lambda: api.vector_stores.files.list(vector_store_id="vs_nope")):
        with pytest.raises(openai_module.NotFoundError) as caught:
            call()
        assert caught.value.status_code == 404
    body = httpx.get(server.base_url + "/v1/vector_stores/vs_nope", trust_env=False).json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "not_found" and "vs_nope" in body["error"]["message"]


def test_everything_survives_a_restart(backend: Backend, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = backend.start(data)
    try:
        api = client(first)
        store_id, ids = knowledge_base(api)
        before = [(r.file_id, r.content[0].text) for r in api.vector_stores.search(store_id, query="bread")]
    finally:
        first.stop()
    second = backend.start(data)
    try:
        api = client(second)
        assert {f.id for f in api.files.list()} == set(ids.values())
        store = api.vector_stores.retrieve(store_id)
        assert store.name == "notes" and store.file_counts.completed == 3
        after = [(r.file_id, r.content[0].text) for r in api.vector_stores.search(store_id, query="bread")]
        assert after == before and after[0][0] == ids["txt"]
        assert api.files.content(ids["md"]).text == LIGHTHOUSE
    finally:
        second.stop()
