"""A persona's knowledge solver answering from the server's vector stores (`"vector_store_ids": [...]`)."""

from __future__ import annotations

import io
from pathlib import Path

from tests.conftest import persona_args, start_server_process
from tests.vectorstores.helpers import BREAD, LIGHTHOUSE, VOLCANO, client, start, wait_indexed

FALLBACK = "I cannot answer that from my notes."


def test_the_knowledge_solver_answers_from_vector_stores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    setup = start(tmp_path, data, None)
    try:
        api = client(setup)
        ids = {name: api.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
               for name, text in [("lighthouses.md", LIGHTHOUSE), ("bread.txt", BREAD)]}
        store = api.vector_stores.create(name="notes", file_ids=list(ids.values()))
        other = api.vector_stores.create(name="other", file_ids=[
            api.files.create(file=("volcanoes.txt", io.BytesIO(VOLCANO.encode())), purpose="assistants").id])
        for file_id in ids.values():
            assert wait_indexed(api, store.id, file_id).status == "completed"
    finally:
        setup.stop()

    # Only the named store is searched: the volcano store is not this persona's.
    persona = {"name": "Notes", "solvers": ["knowledge", "failure"], "failure": {"answers": [FALLBACK]},
               "knowledge": {"vector_store_ids": [store.id, "vs_deleted_long_ago"], "min_score": 0.25}}
    server = start_server_process(*persona_args(tmp_path, {"notes.json": persona}), "--data-dir", str(data),
                                  log_path=tmp_path / "server.log")
    try:
        api = client(server)
        reply = api.chat.completions.create(model="Notes", messages=[
            {"role": "user", "content": "What guides ships at night along dangerous coasts?"}])
        assert reply.model_extra is not None and reply.model_extra["solver"] == "knowledge"
        assert "lighthouse" in (reply.choices[0].message.content or "").lower()
        assert reply.model_extra["sources"] == [{"title": f"lighthouses.md ({store.id})",
                                                 "url": f"/v1/files/{ids['lighthouses.md']}/content"}]
        unrelated = api.chat.completions.create(model="Notes", messages=[
            {"role": "user", "content": "Why do volcanoes erupt lava and ash?"}])
        assert unrelated.model_extra is not None and unrelated.model_extra["solver"] != "knowledge"
        assert unrelated.choices[0].message.content == FALLBACK
        assert other.id not in server.log()
    finally:
        server.stop()
