"""`ovos-solver-plugin-wolfram-alpha`: Wolfram|Alpha's Spoken Results API, falling back to Short Answers.

Needs an appid of one's own (free at https://developer.wolframalpha.com): there is no shared key. The appid
travels as a query parameter, so it is registered as a secret (masked in every log line), never put into an
exception or log message by this module, and httpx's own request logging is kept below INFO (see lookup.py).
The APIs answer errors with plain text ("Wolfram|Alpha did not understand your input", "Error 1: Invalid
appid"); those are never spoken as answers.
"""

from __future__ import annotations

import math
import os
import re
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from persona_server import secrets
from persona_server.query import Answer, Query, Source
from persona_server.solvers.base import SolverContext, SolverOptions
from persona_server.solvers.lookup import LookupFailed, LookupOptions, LookupSolver

APPID_ENV = "WOLFRAM_ALPHA_APPID"

# Plain-text error replies of the v1 APIs (sent with HTTP 501/403/400, but never trusted to come only so), and
# Wolfram|Alpha introducing itself, which would break any persona's character.
_ERROR_BODY = re.compile(
    r"^(?:wolfram\s*\|?\s*alpha did not understand your input|no (?:spoken|short) (?:result|answer)s? "
    r"available|error \d+\s*:.*|.*\binvalid appid\b.*|.*\bappid missing\b.*|my name is wolfram\|?alpha\.?)$",
    re.I | re.S,
)


class WolframAlphaOptions(LookupOptions):
    appid: SecretStr | None = Field(
        default=None, description=f"your Wolfram|Alpha AppID (or set {APPID_ENV}); required"
    )
    base_url: str = Field(default="https://api.wolframalpha.com", description="the v1 APIs' root")
    units: Literal["metric", "imperial"] | None = Field(
        default=None, description="unit system of answers; default: the request's"
    )
    spoken: bool = Field(default=True, description="ask the Spoken Results API first (sentences, not fragments)")
    short_answers: bool = Field(default=True, description="fall back to the Short Answers API")
    languages: list[str] | None = Field(
        default=["en"],
        description="answer only askers of these languages (Wolfram|Alpha reads and answers English); null: all",
    )


class WolframAlphaSolver(LookupSolver):
    name = "ovos-solver-plugin-wolfram-alpha"
    aliases = ("ovos-solver-wolfram-alpha-plugin",)
    description = "Answers factual and computational questions with Wolfram|Alpha (needs an appid)."
    service = "Wolfram|Alpha"
    default_timeout = 5.0
    Options = WolframAlphaOptions
    options: WolframAlphaOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        appid = self.options.appid.get_secret_value().strip() if self.options.appid else ""
        appid = appid or os.environ.get(APPID_ENV, "").strip()
        if not appid:
            raise ValueError(
                f'no Wolfram|Alpha appid: put "appid" in this solver\'s block of the persona file or set '
                f"{APPID_ENV} (get one free at https://developer.wolframalpha.com)"
            )
        secrets.register(appid)
        self._appid = appid

    async def lookup(self, query: Query) -> Answer | None:
        question = re.sub(r"\s+", " ", query.question).strip()
        if not question:
            return None
        languages = self.options.languages
        if languages is not None and query.lang_code not in {code.lower() for code in languages}:
            return None
        units = self.options.units or query.units
        base = self.options.base_url.rstrip("/")
        return await self.cached((base, units, question), lambda: self._ask(base, question, units))

    async def _ask(self, base: str, question: str, units: str) -> Answer | None:
        params = {
            "appid": self._appid,
            "i": question,
            "units": units,
            # The API's own time limit, so it gives up before we do.
            "timeout": str(max(1, math.floor(self.timeout))),
        }
        source = Source("Wolfram|Alpha", "https://www.wolframalpha.com/input?i=" + quote(question, safe=""))
        endpoints = [path for path, wanted in (("/v1/spoken", self.options.spoken),
                                                ("/v1/result", self.options.short_answers)) if wanted]
        for path in endpoints:
            text = await self._endpoint(base + path, params)
            if text:
                return Answer(text=text, sources=[source])
        return None

    async def _endpoint(self, url: str, params: dict[str, str]) -> str | None:
        """The answer text of one API, None for "no answer"; LookupFailed when the service cannot be used."""
        response = await self.get(url, params)
        body = response.text.strip() if response.content else ""
        status = response.status_code
        if status in (400, 401, 403) or _mentions_appid(body):
            # Not cached (the key may be fixed at the provider); the status alone, never the URL.
            raise LookupFailed(f"HTTP {status}: the appid was refused")
        if status == 501 or (status == 200 and (not body or _ERROR_BODY.match(body))):
            return None  # "did not understand" / "no answer available": try the next API
        if status != 200:
            raise LookupFailed(f"HTTP {status}")
        return _speakable(body)


def _mentions_appid(body: str) -> bool:
    return bool(re.search(r"\b(?:invalid appid|appid missing)\b", body, re.I))


def _speakable(body: str) -> str | None:
    text = " ".join(body.split())
    # An HTML error page from a proxy is not an answer.
    if text.startswith("<") or len(text) > 2000:
        return None
    return text
