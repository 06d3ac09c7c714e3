"""`ovos-solver-plugin-wikipedia`: the first sentences of the Wikipedia article a question asks about.

One request to the MediaWiki Action API of the asker's language edition: a full-text search as a generator,
with each hit's plain-text intro, page properties (to skip disambiguation pages) and URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import Field

from persona_server.query import Answer, Query, Source
from persona_server.solvers.lookup import LookupFailed, LookupOptions, LookupSolver
from persona_server.solvers.lookup_text import first_sentences, parse_question, valid_lang


class WikipediaOptions(LookupOptions):
    base_url: str = Field(
        default="https://{lang}.wikipedia.org",
        description="the wiki's root; {lang} becomes the asker's language (en, pt, ...)",
    )
    api_path: str = Field(default="/w/api.php", description="the Action API's path under base_url")
    sentences: int = Field(default=2, ge=1, le=20, description="sentences of the intro to answer with")
    results: int = Field(default=5, ge=1, le=20, description="search hits considered (disambiguations skipped)")
    default_lang: str = Field(default="en", description="the edition asked when the asker's language is unusable")
    bare_terms: bool = Field(
        default=False, description="also look up text that is not worded as a question ('Albert Einstein')"
    )


class WikipediaSolver(LookupSolver):
    name = "ovos-solver-plugin-wikipedia"
    aliases = ("ovos-solver-wikipedia-plugin",)
    description = "Answers 'what/who is X' with the first sentences of X's Wikipedia article."
    service = "Wikipedia"
    default_timeout = 5.0
    Options = WikipediaOptions
    options: WikipediaOptions

    async def lookup(self, query: Query) -> Answer | None:
        lang = valid_lang(query.lang_code, self.options.default_lang)
        question = parse_question(query.question, lang, bare=self.options.bare_terms)
        if question is None:
            return None
        url = self.options.base_url.replace("{lang}", lang).rstrip("/")
        return await self.cached((url, lang, question.term), lambda: self._search(url, question.term))

    async def _search(self, url: str, term: str) -> Answer | None:
        count = str(self.options.results)
        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "generator": "search",
            "gsrsearch": term,
            "gsrlimit": count,
            "gsrnamespace": "0",
            "prop": "extracts|pageprops|info",
            "exintro": "1",
            "explaintext": "1",
            "exlimit": count,
            "ppprop": "disambiguation",
            "inprop": "url",
            "redirects": "1",
        }
        data = await self.get_json(url + self.options.api_path, params)
        if not isinstance(data, dict):
            raise LookupFailed("unexpected reply")
        if "error" in data:
            error = data["error"]
            code = error.get("code", "?") if isinstance(error, dict) else "?"
            raise LookupFailed(f"API error {code}")
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1 shape: {"pageid": {...}}
            pages = list(pages.values())
        if not isinstance(pages, list):
            raise LookupFailed("unexpected reply")
        for page in sorted((p for p in pages if isinstance(p, dict)), key=_rank):
            answer = self._page_answer(url, page)
            if answer is not None:
                return answer
        return None

    def _page_answer(self, url: str, page: dict[str, Any]) -> Answer | None:
        if page.get("missing") or page.get("invalid"):
            return None
        if "disambiguation" in (page.get("pageprops") or {}):
            return None
        extract = page.get("extract")
        title = page.get("title")
        if not isinstance(extract, str) or not isinstance(title, str):
            return None
        text = first_sentences(extract, self.options.sentences)
        # A disambiguation page not marked as one still reads like one.
        if not text or text.rstrip().endswith(("may refer to:", "can refer to:", "refers to:")):
            return None
        page_url = page.get("fullurl") or page.get("canonicalurl")
        if not isinstance(page_url, str) or not page_url:
            page_url = f"{url}/wiki/{quote(title.replace(' ', '_'))}"
        return Answer(text=text, sources=[Source(title=title, url=page_url)])


def _rank(page: dict[str, Any]) -> int:
    """Search rank: the generator returns pages in no particular order, each with its `index`."""
    index = page.get("index")
    return index if isinstance(index, int) else 1_000_000
