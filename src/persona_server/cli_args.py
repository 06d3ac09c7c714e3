"""The command line's arguments: `serve` and its option groups, `ask`, `chat`, `validate`, `solvers`, `mcp`.

Defaults come from `PERSONA_SERVER_*` environment variables where the README says so; cli.py runs the commands.
"""

from __future__ import annotations

import argparse
import os

from persona_server import __version__, limits
from persona_server.logs import LOG_FORMATS
from persona_server.settings import DEFAULT_PORT

COMMANDS = ("serve", "ask", "chat", "validate", "solvers", "mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="persona-server",
        description="Serve personas (chains of question solvers) as OpenAI- and Ollama-compatible chat models.",
        epilog="Without a command, `serve` is assumed: persona-server --persona FILE.json",
    )
    parser.add_argument("--version", action="version", version=f"persona-server {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve personas over HTTP (the default command)")
    _persona_args(serve)
    serve.add_argument("--personas", "--personas-dir", dest="personas", action="append", default=[], metavar="DIR",
                       help="serve every *.json persona in DIR (repeatable)")
    serve.add_argument("--ovos-personas", action="store_true",
                       help="also serve the personas of installed OpenVoiceOS packages (opm.plugin.persona) "
                       "and of ~/.config/ovos_persona/")
    serve.add_argument("--default-persona", metavar="NAME", help="persona for requests naming no known model")
    serve.add_argument("--no-watch", dest="watch", action="store_false",
                       help="do not reload --personas directories when their files change")
    serve.add_argument("--host", default=os.environ.get("PERSONA_SERVER_HOST", "127.0.0.1"),
                       help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PERSONA_SERVER_PORT", DEFAULT_PORT)),
                       help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--api-key", default=os.environ.get("PERSONA_SERVER_API_KEY"),
                       help="require this bearer key on API routes (env PERSONA_SERVER_API_KEY)")
    serve.add_argument("--strict-models", action="store_true",
                       help="answer 404 model_not_found for unknown models instead of using the default persona")
    serve.add_argument("--cors-origin", dest="cors_origins", action="append", default=_env_list("CORS_ORIGINS"),
                       metavar="ORIGIN", help="also allow browser pages from ORIGIN (repeatable; * allows all; "
                       "env PERSONA_SERVER_CORS_ORIGINS, comma-separated)")
    serve.add_argument("--allowed-host", dest="allowed_hosts", action="append", default=_env_list("ALLOWED_HOSTS"),
                       metavar="NAME", help="answer requests for Host NAME while bound to loopback (repeatable; "
                       "for a reverse proxy; env PERSONA_SERVER_ALLOWED_HOSTS)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default 1)")
    serve.add_argument("--mcp", action="store_true", default=_env_flag("MCP"),
                       help="also serve the personas as MCP tools at /mcp (streamable HTTP; env PERSONA_SERVER_MCP)")
    _limit_args(serve)
    _state_args(serve)
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--request-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="cancel a request's work after this long (default 300; 0: no limit)")
    serve.add_argument("--graceful-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="on SIGTERM, let answers in flight finish this long before cancelling them (default 10)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                       help="text lines, or one JSON object per line for log shippers (default text)")
    serve.add_argument("--a2a", action="store_true", default=_env_flag("A2A"),
                       help="serve each persona as an A2A agent at /a2a/<persona>/ (env PERSONA_SERVER_A2A=1)")
    serve.add_argument("--a2a-url", default=os.environ.get("PERSONA_SERVER_A2A_URL"), metavar="URL",
                       help="public base URL the agent cards name (default: the host each request asked for)")


    _vector_store_args(serve)

    ask = sub.add_parser("ask", help="print one answer and exit")
    ask.add_argument("question", nargs="+", help="the question")
    _persona_args(ask, single=True)
    ask.add_argument("--json", action="store_true", help="print the answer with its solver and sources as JSON")
    ask.add_argument("--log-level", default="error", choices=["debug", "info", "warning", "error"])

    chat = sub.add_parser("chat", help="a small interactive chat in the terminal")
    _persona_args(chat, single=True)
    chat.add_argument("--log-level", default="error", choices=["debug", "info", "warning", "error"])

    validate = sub.add_parser("validate", help="check persona files; exit status 1 when any has problems")
    validate.add_argument("files", nargs="+", metavar="FILE")

    sub.add_parser("solvers", help="list the solver names this installation knows")

    mcp = sub.add_parser("mcp", help="speak MCP over stdio: an ask_<persona> tool per persona, and their look-ups")
    _persona_args(mcp)
    mcp.add_argument("--personas", "--personas-dir", dest="personas", action="append", default=[], metavar="DIR",
                     help="also every *.json persona in DIR (repeatable)")
    mcp.add_argument("--default-persona", metavar="NAME", help="the default persona (default: the first one)")
    mcp.add_argument("--request-timeout", type=float, default=300.0, metavar="SECONDS",
                     help="longest one tool call may take (default 300; 0: no limit)")
    mcp.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                     help="log level; logs go to stderr (default warning)")
    return parser


def _limit_args(serve: argparse.ArgumentParser) -> None:
    def size(text: str) -> int:
        try:
            return limits.parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def rate(text: str) -> str:
        try:
            return str(limits.Rate.parse(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def seconds(text: str) -> float:
        value = float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError("must be a number of seconds above 0")
        return value

    group = serve.add_argument_group("limits")
    group.add_argument("--max-body-size", type=size, default=limits.DEFAULT_MAX_BODY, metavar="BYTES",
                       help="largest request body, e.g. 4MiB (default 4MiB); larger ones get 413")
    group.add_argument("--max-concurrent", type=int, default=limits.DEFAULT_MAX_CONCURRENT, metavar="N",
                       help=f"requests in progress at once per process; more get 429 (default "
                            f"{limits.DEFAULT_MAX_CONCURRENT}, 0: no limit)")
    group.add_argument("--rate-limit", type=rate, metavar="N/PERIOD",
                       help="requests per client, e.g. 60/minute (also N/second, N/hour); more get 429")
    group.add_argument("--header-timeout", type=seconds, default=limits.DEFAULT_HEADER_TIMEOUT, metavar="S",
                       help=f"seconds a client has to send a request's headers (default "
                            f"{limits.DEFAULT_HEADER_TIMEOUT:g})")
    group.add_argument("--body-timeout", type=seconds, default=limits.DEFAULT_BODY_TIMEOUT, metavar="S",
                       help=f"seconds a client has to send a request's body after its headers (default "
                            f"{limits.DEFAULT_BODY_TIMEOUT:g})")
    group.add_argument("--keep-alive-timeout", type=seconds, default=limits.DEFAULT_KEEP_ALIVE, metavar="S",
                       help=f"seconds an idle connection stays open for the client's next request (default "
                            f"{limits.DEFAULT_KEEP_ALIVE:g})")
    group.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto",
                       help="HTTP parser (default auto: httptools when installed)")


def _env_flag(name: str) -> bool:
    """A PERSONA_SERVER_<name> switch: 1, true, yes or on."""
    return os.environ.get(f"PERSONA_SERVER_{name}", "").strip().lower() in ("1", "true", "yes", "on")


def _state_args(serve: argparse.ArgumentParser) -> None:
    from persona_server.state import DEFAULT_PREFIX, DEFAULT_TIMEOUT

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
        return value

    group = serve.add_argument_group("shared state (several instances or workers)")
    group.add_argument("--state", default=os.environ.get("PERSONA_SERVER_STATE") or None, metavar="URL",
                       help="keep conversation memory, per-user variables, the look-up cache and rate limits in "
                       "Redis (redis://HOST:PORT/DB; env PERSONA_SERVER_STATE; default: in this process)")
    group.add_argument("--state-prefix", default=os.environ.get("PERSONA_SERVER_STATE_PREFIX", DEFAULT_PREFIX),
                       metavar="NAME", help=f"prefix of every key, one per deployment (default {DEFAULT_PREFIX})")
    group.add_argument("--state-timeout", type=seconds, default=DEFAULT_TIMEOUT, metavar="S",
                       help=f"seconds a request waits for Redis per operation (default {DEFAULT_TIMEOUT:g})")


def _vector_store_args(serve: argparse.ArgumentParser) -> None:
    def size(text: str) -> int:
        try:
            return limits.parse_size(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    group = serve.add_argument_group("files and vector stores")
    group.add_argument("--data-dir", default=os.environ.get("PERSONA_SERVER_DATA_DIR"), metavar="DIR",
                       help="where uploaded files and vector stores are kept (env PERSONA_SERVER_DATA_DIR; "
                            "default ~/.local/share/persona-server)")
    group.add_argument("--vector-db", default=os.environ.get("PERSONA_SERVER_VECTOR_DB"), metavar="URL",
                       help="keep vectors on the Chroma server at http://HOST:PORT instead of sqlite-vec in the "
                            "data directory (env PERSONA_SERVER_VECTOR_DB)")
    group.add_argument("--max-upload-bytes", type=size, default=32 * 1024 * 1024, metavar="BYTES",
                       help="largest file POST /v1/files accepts, e.g. 32MiB (default); larger ones get 413")


def _env_list(name: str) -> list[str]:
    """A comma-separated PERSONA_SERVER_<name> as a list (flags add to it)."""
    return [item.strip() for item in os.environ.get(f"PERSONA_SERVER_{name}", "").split(",") if item.strip()]


def _persona_args(parser: argparse.ArgumentParser, single: bool = False) -> None:
    if single:
        parser.add_argument("--persona", metavar="FILE", help="persona file (default: the built-in persona)")
    else:
        parser.add_argument("--persona", action="append", default=[], metavar="FILE",
                            help="persona file to serve (repeatable; the first is the default persona)")
    parser.add_argument("--lang", default="en", help="language of questions and answers (default en)")
    parser.add_argument("--units", default="metric", choices=["metric", "imperial"])
