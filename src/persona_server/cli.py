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

from persona_server import secrets
from persona_server.catalog import Catalog, load_specs
from persona_server.chain import AnswerFailed, NoAnswer
from persona_server.cli_args import COMMANDS, build_parser
from persona_server.logs import setup_logging
from persona_server.persona import Persona, PersonaError, PersonaSpec, load_persona_file, nested_problems
from persona_server.query import Message, Query
from persona_server.settings import Settings
from persona_server.state import StateError, open_state

log = logging.getLogger("persona_server")

SETTINGS_ENV = "PERSONA_SERVER_SETTINGS"


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
        if args.command == "mcp":
            from persona_server.api.mcp_server import stdio_command

            return stdio_command(args)
    except (PersonaError, StateError) as exc:
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
        keep_alive_timeout=args.keep_alive_timeout,
        http=args.http,
        ovos_personas=args.ovos_personas,
        request_timeout=max(0.0, args.request_timeout),
        graceful_timeout=max(0.0, args.graceful_timeout),
        a2a=args.a2a,
        a2a_url=args.a2a_url or None,
        state=args.state,
        state_prefix=args.state_prefix,
        state_timeout=args.state_timeout,
        mcp=args.mcp,
        data_dir=args.data_dir or None,
        vector_db=args.vector_db or None,
        max_upload_bytes=args.max_upload_bytes,
    )
    _check_vector_db(settings.vector_db)
    setup_logging(settings.log_level, access_log=settings.access_log, log_format=settings.log_format)
    if settings.a2a:
        try:
            import persona_server.api.a2a  # noqa: F401 - the optional SDK, checked before binding
        except ImportError as exc:
            print(f"persona-server: {exc}", file=sys.stderr)
            return 2
    if settings.mcp:
        from persona_server.api.mcp_server import missing_sdk

        if missing_sdk():
            print(f"persona-server: {missing_sdk()}", file=sys.stderr)
            return 2
    # Load and check every file before binding: a broken file stops here with one line, no traceback.
    catalog = build_catalog(settings)
    if not settings.is_loopback and not settings.api_key:
        log.warning("listening on %s without an API key: anyone who can reach this address can use it "
                    "(set --api-key)", settings.host)
    names = ", ".join(p.name for p in catalog)
    log.info("serving %s on http://%s:%d (default persona: %s); chat page: %s/ - API docs: %s/docs", names,
             settings.host, settings.port, catalog.default.name, settings.page_url, settings.page_url)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": settings.access_log,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "proxy_headers": False,  # the front door applies them (api/front_door.py)
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
    state = open_state(settings.state, prefix=settings.state_prefix, timeout=settings.state_timeout)
    return Catalog(specs, default=settings.default_persona, max_threads=settings.max_threads,
                   watch_dirs=settings.persona_dirs if settings.watch else (), plugins=True,
                   ovos_personas=settings.ovos_personas, state=state)


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
        for slot in persona.slots:
            # MCP servers an LLM solver's model may call (not started here: validation runs nothing).
            for box in getattr(getattr(slot.solver, "options", None), "toolboxes", None) or []:
                from persona_server.api.mcp_server import missing_sdk

                note = f"; not usable: {missing_sdk()}" if missing_sdk() else ""
                print(f"{file}: solver {slot.name!r}: toolbox {box.name!r} ({box.describe()}){note}")
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
