"""The command line: `persona-server [serve]`, `ask`, `chat`, `validate`, `solvers`.

`ovos-persona-server` is the same program, so the original project's instructions keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from persona_server import __version__, limits, secrets
from persona_server.catalog import Catalog, load_specs
from persona_server.chain import AnswerFailed, NoAnswer
from persona_server.logs import LOG_FORMATS, setup_logging
from persona_server.persona import Persona, PersonaError, PersonaSpec, load_persona_file, nested_problems
from persona_server.query import Message, Query
from persona_server.settings import DEFAULT_PORT, Settings

log = logging.getLogger("persona_server")

COMMANDS = ("serve", "ask", "chat", "validate", "solvers")
SETTINGS_ENV = "PERSONA_SERVER_SETTINGS"


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
    _limit_args(serve)
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--request-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="cancel a request's work after this long (default 300; 0: no limit)")
    serve.add_argument("--graceful-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="on SIGTERM, let answers in flight finish this long before cancelling them (default 10)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                       help="text lines, or one JSON object per line for log shippers (default text)")
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
    group.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto",
                       help="HTTP parser (default auto: httptools when installed)")


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


def _check_vector_db(url: str | None) -> None:
    """A --vector-db the server cannot use stops it before it binds, with one line."""
    if not url:
        return
    from persona_server.vectorstores import VectorStoreUnavailable
    from persona_server.vectorstores.chroma_backend import check_installed, parse_url

    try:
        parse_url(url)
        check_installed()
    except (ValueError, VectorStoreUnavailable) as exc:
        raise PersonaError(f"--vector-db: {exc}") from None


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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "ask":
            return asyncio.run(ask(args))
        if args.command == "chat":
            return asyncio.run(chat(args))
        if args.command == "validate":
            return validate(args.files)
        if args.command == "solvers":
            return list_solvers()
    except PersonaError as exc:
        print(f"persona-server: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


# -- serve --------------------------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    from persona_server import http_protocol, serving

    settings = Settings(
        host=args.host,
        port=args.port,
        persona_files=list(args.persona),
        persona_dirs=list(args.personas),
        default_persona=args.default_persona,
        watch=args.watch,
        api_key=args.api_key or None,
        strict_models=args.strict_models,
        cors_origins=list(args.cors_origins),
        allowed_hosts=list(args.allowed_hosts),
        lang=args.lang,
        units=args.units,
        workers=max(1, args.workers),
        log_level=args.log_level,
        access_log=args.access_log,
        log_format=args.log_format,
        ping_interval=float(os.environ.get("PERSONA_SERVER_PING_INTERVAL", "15")),
        max_body_size=args.max_body_size,
        max_concurrent=args.max_concurrent or None,
        rate_limit=args.rate_limit,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        http=args.http,
        ovos_personas=args.ovos_personas,
        request_timeout=max(0.0, args.request_timeout),
        graceful_timeout=max(0.0, args.graceful_timeout),
        data_dir=args.data_dir or None,
        vector_db=args.vector_db or None,
        max_upload_bytes=args.max_upload_bytes,
    )
    _check_vector_db(settings.vector_db)
    setup_logging(settings.log_level, access_log=settings.access_log, log_format=settings.log_format)
    # Load and check every file before binding: a broken file stops here with one line, no traceback.
    catalog = build_catalog(settings)
    if not settings.is_loopback and not settings.api_key:
        log.warning("listening on %s without an API key: anyone who can reach this address can use it "
                    "(set --api-key)", settings.host)
    names = ", ".join(p.name for p in catalog)
    log.info("serving %s on http://%s:%d (default persona: %s)", names, settings.host, settings.port,
             catalog.default.name)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": settings.access_log,
        # Load generators and proxies hold keep-alive connections open between bursts.
        "timeout_keep_alive": 65,
        "lifespan": "on",
        "graceful_timeout": settings.graceful_timeout,
        # Our protocol classes bound slow and malformed requests (see persona_server.http_protocol).
        "http": http_protocol.protocol_path(settings.http),
        "h11_max_incomplete_event_size": settings.max_header_size,
    }
    http_protocol.configure(settings)
    if settings.workers > 1:
        from persona_server.metrics import multiprocess_dir

        os.environ[SETTINGS_ENV] = json.dumps(settings.to_dict())
        # Each worker counts its own metrics into a shared directory, so /metrics can sum them.
        with multiprocess_dir():
            return serving.run("persona_server.cli:app_from_env", factory=True, workers=settings.workers,
                               **common)
    from persona_server.app import create_app

    return serving.run(create_app(catalog, settings), **common)


def build_catalog(settings: Settings) -> Catalog:
    specs = load_specs(settings.persona_files, settings.persona_dirs)
    if not settings.persona_files and not settings.persona_dirs:
        # As the original's container images run it: a persona described by the environment, if any.
        from persona_server.ovos_personas import env_persona

        spec = env_persona()
        specs = [spec] if spec is not None else []
    return Catalog(specs, default=settings.default_persona, max_threads=settings.max_threads,
                   watch_dirs=settings.persona_dirs if settings.watch else (), plugins=True,
                   ovos_personas=settings.ovos_personas)


def app_from_env():  # type: ignore[no-untyped-def]
    """App factory for worker processes (`--workers N`): settings come from the parent's environment."""
    from persona_server import http_protocol
    from persona_server.app import create_app

    settings = Settings.from_dict(json.loads(os.environ[SETTINGS_ENV]))
    setup_logging(settings.log_level, access_log=settings.access_log, log_format=settings.log_format)
    http_protocol.configure(settings)
    return create_app(build_catalog(settings), settings)


# -- ask / chat ---------------------------------------------------------------------------------------------------


def _single_spec(path: str | None) -> list[PersonaSpec]:
    if path:
        return [load_persona_file(path)]
    from persona_server.ovos_personas import env_persona

    spec = env_persona()
    return [spec] if spec is not None else []


async def ask(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    catalog = Catalog(_single_spec(args.persona))
    await catalog.start()
    try:
        query = Query.from_text(" ".join(args.question), lang=args.lang, units=args.units)
        stream = catalog.default.stream(query)
        if args.json:
            text = await stream.text()
            print(json.dumps({"answer": text, "persona": catalog.default.name, "solver": stream.solver,
                              "sources": [s.to_dict() for s in stream.sources]}, ensure_ascii=False))
        else:
            async for piece in stream:
                print(piece, end="", flush=True)
            print()
        return 0 if stream.solver else 1
    except (AnswerFailed, NoAnswer) as exc:
        print(f"\npersona-server: {exc}", file=sys.stderr)
        return 1
    finally:
        await catalog.close()


async def chat(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    catalog = Catalog(_single_spec(args.persona))
    await catalog.start()
    persona = catalog.default
    messages: list[Message] = []
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Chatting with {persona.name}. Empty line, 'exit' or Ctrl-D to leave.")
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, "you> " if interactive else "")
            except EOFError:
                break
            line = line.strip()
            if not line or line.lower() in ("exit", "quit", "/bye"):
                break
            messages.append(Message("user", line))
            stream = persona.stream(Query(messages=list(messages), lang=args.lang, units=args.units))
            print(f"{persona.name}> ", end="", flush=True)
            pieces = []
            try:
                async for piece in stream:
                    pieces.append(piece)
                    print(piece, end="", flush=True)
            except (AnswerFailed, NoAnswer) as exc:
                print(f"\n(persona-server: {exc})")
                messages.pop()  # no answer to keep in the history
                continue
            print()
            messages.append(Message("assistant", "".join(pieces)))
    finally:
        await catalog.close()
    return 0


# -- validate / solvers -----------------------------------------------------------------------------------------


def validate(files: Sequence[str]) -> int:
    """Check persona files without loading solver data: file format, solver names, solver configs."""
    setup_logging("critical")
    problems = 0
    for file in files:
        try:
            spec = load_persona_file(file)
        except PersonaError as exc:
            print(f"{exc}")
            problems += 1
            continue
        persona = Persona(spec, http=_no_http)
        failed = [slot for slot in persona.slots if slot.state == "error"]
        for slot in failed:
            print(f"{file}: solver {slot.name!r}: {slot.status().get('error')}")
        nested = nested_problems(spec)
        for where, problem in nested:
            print(f"{file}: {where}: {secrets.redact(problem)}")
        problems += len(failed) + len(nested)
        if not failed and not nested:
            about = f" - {spec.description}" if spec.description else ""
            print(f"{file}: ok ({spec.name}: {len(spec.solvers)} solvers){about}")
        if not persona.always_answers:
            # Not a problem (exit status unchanged), but worth knowing before users meet it.
            ending = "an error (422)" if spec.on_no_answer == "error" else "the built-in apology"
            print(f"{file}: warning: no solver in the chain always answers (such as ovos-solver-failure-plugin); "
                  f"questions none of them answers get {ending}")
    return 1 if problems else 0


def _no_http():  # type: ignore[no-untyped-def]
    raise RuntimeError("validation makes no network requests")


def list_solvers() -> int:
    from persona_server.solvers import ovos, registry

    for name in registry.available():
        canonical = registry.canonical_name(name)
        print(name if canonical == name else f"{name} -> {canonical}")
    for group, plugins in ovos.installed_by_group().items():
        if not plugins:
            continue
        print(f"\ninstalled OpenVoiceOS plugins ({group}):")
        for plugin in plugins:
            shadowed = registry.canonical_name(plugin.name) in registry.BUILTINS
            note = f"  (a built-in has this name: write {ovos.PREFIX}{plugin.name})" if shadowed else ""
            print(f"{plugin.name}  [{plugin.package or plugin.value}]{note}")
    return 0
