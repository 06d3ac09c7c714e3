"""Request bodies of the OpenAI-compatible routes, validated strictly: a wrong type is a 400, not a guess.

Fields we do not use (`presence_penalty`, `logit_bias`, ...) are accepted and ignored, as OpenAI's own clients send
them routinely. What OpenAI accepts is accepted: `null` for any optional field (it means the default), and an
integral float (`4.0`) where an integer is meant; `4.5` there is a 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticUseDefault

from persona_server.api.errors import APIError
from persona_server.api.tools import (
    ChatTools,
    MessageToolCall,
    ResponseFormat,
    ToolChoice,
    chat_tooling,
    message_calls,
)
from persona_server.limits import MAX_CHOICES, MAX_ID_CHARS, MAX_MESSAGES, MAX_N, MAX_STOP, MAX_STOP_CHARS, refuse
from persona_server.query import Message, Query, ToolTurn
from persona_server.timezones import TimezoneName
from persona_server.tooling import Tooling


def _lenient(value: Any) -> Any:
    """`null` means the field's default; JSON has one number type, so 4.0 is the integer 4 (strict mode alone
    refuses both). One cheap check per field present, and only on the fields annotated with it."""
    if value is None:
        raise PydanticUseDefault()
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# Annotate a field with this (`Annotated[int, Lenient]`) to accept null and integral floats as OpenAI does.
Lenient = BeforeValidator(_lenient)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Request):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: str
    text: str | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        # Only text parts carry words a solver can use; images and audio are ignored.
        return "\n".join(part.text or "" for part in self.content if part.type in ("text", "input_text"))


class StreamOptions(_Request):
    include_usage: Annotated[bool, Lenient] = False


StopText = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Field(max_length=MAX_STOP)] | None
# Who is asking: the key of conversation memory, so bounded.
UserId = Annotated[str, Field(max_length=MAX_ID_CHARS)]
PositiveInt = Annotated[int, Field(ge=1), Lenient]


class _Generation(_Request):
    model: Annotated[str, Lenient] = ""
    stream: Annotated[bool, Lenient] = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=MAX_N), Lenient] = 1
    stop: Stop = None
    max_tokens: PositiveInt | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    user: UserId | None = None
    # Extensions: the language and units solvers should answer in.
    lang: str | None = None
    units: Literal["metric", "imperial"] | None = None
    timezone: TimezoneName | None = None  # the asker's IANA zone, for the clock

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def query(self, messages: list[Message], *, lang: str, units: str) -> Query:
        return Query(
            messages=messages,
            lang=self.lang or lang,
            units=self.units or units,  # type: ignore[arg-type]
            max_tokens=self.token_limit(),
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop_list(),
            user=self.user,
            timezone=self.timezone,
        )

    def token_limit(self) -> int | None:
        return self.max_tokens


class ChatCompletionRequest(_Generation):
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    max_completion_tokens: PositiveInt | None = None
    # Client tools and the answer's format (api/tools.py).
    tools: ChatTools | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def to_messages(self) -> list[Message]:
        return [Message(m.role if m.role != "function" else "tool", m.text())
                if m.tool_calls is None and m.tool_call_id is None
                else ToolTurn(m.role, m.text(), message_calls(m.tool_calls), m.tool_call_id)
                for m in self.messages]

    def tooling(self) -> Tooling | None:
        return chat_tooling(self.tools, self.tool_choice, self.parallel_tool_calls, self.response_format)


class CompletionRequest(_Generation):
    prompt: Annotated[str | list[str], Lenient] = ""
    echo: Annotated[bool, Lenient] = False
    suffix: str | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _no_token_prompts(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("token-array prompts are not supported; send text")
        return value

    def prompts(self) -> list[str]:
        if isinstance(self.prompt, str):
            return [self.prompt]
        if not self.prompt:
            raise APIError(400, "'prompt' must not be an empty list", param="prompt")
        if len(self.prompt) * self.n > MAX_CHOICES:
            # Each prompt and each of its n choices is an answer to compute: bound the fan-out of one request.
            param = "prompt" if len(self.prompt) > MAX_CHOICES else "n"
            raise refuse("choices", 400, f"Too many choices: {len(self.prompt)} prompts x n={self.n} is "
                         f"more than {MAX_CHOICES} answers in one request.", param=param)
        return list(self.prompt)


# The vendor protocols' stop sequences and user ids, bounded as OpenAI's (persona_server.limits); their APIs take
# more stop sequences than OpenAI's 4 (Gemini 5, Anthropic more), so a few more are allowed.
MAX_STOP_SEQUENCES = 2 * MAX_STOP
StopSequence = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
UserId = Annotated[str, Field(max_length=MAX_ID_CHARS)]
