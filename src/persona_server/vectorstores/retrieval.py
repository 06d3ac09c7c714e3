"""Vector stores as a knowledge solver's index (`"vector_store_ids": [...]`): the `PassageIndex` protocol of
`knowledge/retrieval.py` over this process's Files and Vector Stores service.

A hit's score is the cosine similarity of its chunk to the question, as the knowledge index's is, so one
`min_score` serves both. Its source names the file and the store; a store deleted since the persona was written
contributes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from persona_server.knowledge.retrieval import Hit
from persona_server.query import Source


class VectorStoreIndex:
    def __init__(self, store_ids: Sequence[str]) -> None:
        self.store_ids = list(dict.fromkeys(store_ids))

    async def search(self, query: str, k: int) -> list[Hit]:
        from persona_server.vectorstores import service

        stores = await service.current().ready()
        found = await stores.hits(self.store_ids, [query], k)
        return [Hit(hit.text, Source(f"{filename} ({store_id})", f"/v1/files/{hit.file_id}/content"), hit.score)
                for store_id, hit, filename, _ in found]
