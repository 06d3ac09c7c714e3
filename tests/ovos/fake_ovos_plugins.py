"""Small OpenVoiceOS plugins written for the tests, installed as a package with entry points (conftest.py).

One of each kind the adapters run, written the way OpenVoiceOS plugins are (the agent engine on the real
`ovos_plugin_manager` templates), plus plugins that fail in each way a plugin can: on construction, by raising,
by returning something that is not text, by hanging. Each working plugin answers only questions that name it,
so a chain of them shows which one answered and what it was given.
"""

from __future__ import annotations

import threading
import time

from ovos_plugin_manager.templates.agents import (
    AgentContextManager,
    AgentMessage,
    ChatEngine,
    MessageRole,
    RetrievalEngine,
)


class EchoQuestionSolver:
    """A question solver (`neon.plugin.solver`): echoes what it was given, for questions naming it."""

    def __init__(self, config=None):
        self.config = config or {}

    def spoken_answer(self, query, lang=None, units=None):
        if "question-plugin" not in query:
            return None
        return f"{self.config.get('prefix', 'question')}: {query} [lang={lang} units={units}]"


class StreamingQuestionSolver:
    """A question solver (`opm.solver.question`) that streams its answer sentence by sentence."""

    def __init__(self, config=None):
        self.config = config or {}
        self.delay = float(self.config.get("delay", 0.05))

    def spoken_answer(self, query, lang=None, units=None):
        return " ".join(self.stream_utterances(query, lang=lang, units=units)) or None

    def stream_utterances(self, query, lang=None, units=None):
        if "streaming-plugin" not in query:
            return
        try:
            for sentence in ("First sentence.", "Second sentence.", "Third sentence."):
                time.sleep(self.delay)
                yield sentence + " "
        except GeneratorExit:
            # Closed before its end (the client left): say so where the test can see it.
            if self.config.get("closed_marker"):
                with open(self.config["closed_marker"], "a") as marker:
                    marker.write(query + "\n")
            raise


class CountingChatSolver:
    """A chat solver (`opm.solver.chat`): says how many messages of each role it was given."""

    def __init__(self, config=None):
        self.config = config or {}

    def get_chat_completion(self, messages, lang=None, units=None):
        last = messages[-1]["content"] if messages else ""
        if "chat-solver" not in last:
            return None
        roles = ",".join(m["role"] for m in messages)
        return f"chat solver saw {len(messages)} messages ({roles}) of type {type(messages[0]).__name__}"


class EchoAgent(ChatEngine):
    """A chat engine (`opm.agents.chat`) on the real template: streams tokens, reports what it was given."""

    def __init__(self, config=None):
        super().__init__(config)

    def continue_chat(self, messages, session_id="default", lang=None, units=None, tools=None):
        return AgentMessage(role=MessageRole.ASSISTANT, content=" ".join(self.stream_tokens(
            messages, session_id=session_id, lang=lang, units=units)))

    def stream_tokens(self, messages, session_id="default", lang=None, units=None):
        last = messages[-1]
        if "agent-plugin" not in last.content:
            return
        kinds = {type(m).__name__ for m in messages}
        system = [m.content for m in messages if m.role == MessageRole.SYSTEM]
        for token in ["agent", "saw", str(len(messages)), "messages", "of", *sorted(kinds),
                      f"system={system!r}", f"lang={lang}", f"units={units}"]:
            time.sleep(0.02)
            yield token + " "


class PassageRetrieval(RetrievalEngine):
    """A retrieval engine (`opm.agents.retrieval`): its best passage is not listed first."""

    def query(self, query, lang=None, k=3):
        if "retrieval-plugin" not in query:
            return []
        return [("a weak passage", 0.1), ("the best passage about " + query, 0.9), ("a middling one", 0.5)][:k]


class SessionMemory(AgentContextManager):
    """A memory plugin (`opm.agents.memory`): the whole history of each session, after its system prompt."""

    def __init__(self, config=None):
        super().__init__(config)
        self.sessions = {}

    def get_history(self, session_id):
        return list(self.sessions.get(session_id, []))

    def update_history(self, new_messages, session_id):
        self.sessions.setdefault(session_id, []).extend(new_messages)

    def build_conversation_context(self, utterance, session_id):
        return [AgentMessage(role=MessageRole.SYSTEM, content=self.system_prompt), *self.get_history(session_id),
                AgentMessage(role=MessageRole.USER, content=utterance)]


class BrokenMemory(SessionMemory):
    def build_conversation_context(self, utterance, session_id):
        raise ConnectionError("the memory store is down")


class BrokenOnConstruction:
    def __init__(self, config=None):
        raise RuntimeError("this plugin cannot be constructed")


class RaisesOnAnswer:
    def __init__(self, config=None):
        self.config = config

    def spoken_answer(self, query, lang=None, units=None):
        raise ValueError("this plugin always raises")


class ReturnsNonString:
    def __init__(self, config=None):
        self.config = config

    def spoken_answer(self, query, lang=None, units=None):
        return {"answer": 42}


# Released by nothing: a hung call stays hung (the process ends it).
_NEVER = threading.Event()


class Hangs:
    def __init__(self, config=None):
        self.config = config

    def spoken_answer(self, query, lang=None, units=None):
        _NEVER.wait(120)
        return "too late"


# Shipped through `opm.plugin.persona`, as OpenVoiceOS packages ship theirs.
PERSONA = {
    "name": "Plugin Shipped Persona",
    "description": "a persona an installed package ships",
    "handlers": ["test-question-plugin", "ovos-solver-failure-plugin"],
}
