"""The A2A executor of a persona: an A2A message becomes a `Query`, the persona's chain answers it.

One A2A context is one conversation: its id keys the persona's server-side state (memory, a chit-chat brain's
variables) as the `user` field does on the other routes, so a persona remembers within a context and never across
contexts. `message/stream` gets the answer as it comes (artifact updates, then the final status); `message/send`
gets the finished task. The chain's work runs in a task of its own, tied to the HTTP request (`Exchange`), so
that a client who leaves, or `tasks/cancel`, stops it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid

from a2a.helpers import get_message_text, new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import Message, Part, Role, TaskState

from persona_server import cleanup, secrets
from persona_server.chain import AnswerFailed, AnswerStream, NoAnswer
from persona_server.persona import Persona
from persona_server.query import Query
from persona_server.settings import Settings

log = logging.getLogger(__name__)

# Where the call context's state holds the request's `Exchange` (and the ASGI scope too, for the builder).
EXCHANGE = "persona_server.a2a.exchange"
# The JSON-RPC methods that stream (A2A 1.0's and 0.3's names).
STREAMING_METHODS = frozenset({"SendStreamingMessage", "message/stream"})
ARTIFACT_NAME = "answer"


class Exchange:
    """The HTTP request an A2A call came in on: the chain work it started ends when it does."""

    __slots__ = ("work",)

    def __init__(self) -> None:
        self.work: set[asyncio.Task[None]] = set()

    def add(self, task: asyncio.Task[None]) -> None:
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    def end(self) -> None:
        for task in list(self.work):
            task.cancel()


def conversation_key(persona: str, context_id: str) -> str:
    """The conversation an A2A context is, per persona; hashed, as the `user` field's key is."""
    return "a2a:" + hashlib.sha256(f"{persona}\0{context_id}".encode()).hexdigest()[:24]


class PersonaAgent(AgentExecutor):
    def __init__(self, persona: Persona, settings: Settings) -> None:
        self.persona = persona
        self.settings = settings

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = context.task_id or "", context.context_id or ""
        message = context.message
        updater = TaskUpdater(event_queue, task_id, context_id)
        if context.current_task is None:
            history = [message] if message is not None else []
            await event_queue.enqueue_event(new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED,
                                                     history=history))
        question = get_message_text(message).strip() if message is not None else ""
        if not question:
            await updater.reject(_agent_text(updater, "This agent answers text: the message has no text part."))
            return
        query = Query.from_text(question, lang=self.settings.lang, units=self.settings.units,
                                conversation=conversation_key(self.persona.name, context_id))
        streaming = context.call_context.state.get("method") in STREAMING_METHODS
        await updater.start_work()
        work = asyncio.ensure_future(self._answer(query, updater, streaming=streaming))
        exchange = context.call_context.state.get(EXCHANGE)
        if isinstance(exchange, Exchange):
            exchange.add(work)
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:
            # tasks/cancel (the SDK has already written the cancelled state) or shutdown: stop the chain too.
            work.cancel()
            await asyncio.wait({work})
            raise
        if work.cancelled():  # the client left: nobody reads this, but the task ends properly
            await updater.cancel()
            return
        failure = work.exception()
        if failure is not None:
            await updater.failed(_agent_text(updater, _failure_text(failure)))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The SDK cancels `execute` right after this; the state says why it stops.
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()

    async def _answer(self, query: Query, updater: TaskUpdater, *, streaming: bool) -> None:
        stream = self.persona.stream(query)
        artifact_id = uuid.uuid4().hex
        given = False
        if streaming:
            try:
                async for piece in stream:
                    await updater.add_artifact([Part(text=piece)], artifact_id=artifact_id, name=ARTIFACT_NAME,
                                               append=given)
                    given = True
            finally:
                await cleanup.shielded(stream.aclose())
        else:
            text = await stream.text()
            await updater.add_artifact([Part(text=text)], artifact_id=artifact_id, name=ARTIFACT_NAME)
            given = True
        # Which solver answered and its sources, on the artifact, as the other protocols carry them.
        await updater.add_artifact([], artifact_id=artifact_id, name=ARTIFACT_NAME, append=given, last_chunk=True,
                                   metadata=_metadata(stream))
        await updater.complete()


def _metadata(stream: AnswerStream) -> dict[str, object]:
    return {"solver": stream.solver, "sources": [s.to_dict() for s in stream.sources],
            "finish_reason": stream.finish_reason}


def _agent_text(updater: TaskUpdater, text: str) -> Message:
    return new_text_message(text, context_id=updater.context_id, task_id=updater.task_id, role=Role.ROLE_AGENT)


def _failure_text(failure: BaseException) -> str:
    """What a failed task says: the chain's own words when it has them, never internals."""
    if isinstance(failure, AnswerFailed | NoAnswer):
        return str(failure)
    if isinstance(failure, TimeoutError):
        return "No answer within the request's time budget."
    log.error("A2A answer failed: %s", secrets.redact(f"{type(failure).__name__}: {failure}"))
    return "The persona had an error while answering."
