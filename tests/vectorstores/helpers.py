"""What the vector-store tests share: a Chroma server, documents to upload (a small PDF made here), servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.vector_stores import VectorStoreFile

from tests.conftest import ServerProcess, free_port, start_server_process, stop_process

FAST_PERSONA = {"name": "Fast", "solvers": ["ovos-solver-failure-plugin"]}

LIGHTHOUSE = ("# Lighthouses\n\nA lighthouse is a tall tower with a bright lamp at the top. Its beam guides ships "
              "at night and warns sailors of rocks and dangerous coasts. Keepers once lived in the tower and "
              "trimmed the wick every evening.\n")
BREAD = ("Baking sourdough bread takes flour, water, salt and a lively starter. Mix the dough, let it rise "
         "overnight in a cool kitchen, shape the loaf and bake it in a very hot oven until the crust is dark.\n")
VOLCANO = ("Volcanoes erupt when molten rock called magma rises through cracks in the crust of the earth. Lava, "
           "ash and gas pour out; some volcanoes sleep for centuries between eruptions.")


def make_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, written by hand (offsets and all)."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 11 Tf 40 800 Td ({escaped}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def chroma_command() -> str:
    """The `chroma` program of the `chromadb` package (the test extra installs it beside this Python)."""
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        message = "the chroma command is missing (pip install chromadb; the test extra installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """`chroma run` on a free loopback port, storing in `path`; yields its URL."""
    port = free_port()
    log = (path.parent / f"chroma-{port}.log").open("w")
    process = subprocess.Popen([chroma_command(), "run", "--path", str(path), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma exited with {process.returncode}: {log.name}")
            try:
                if httpx.get(url + "/api/v2/heartbeat", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chroma did not start within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)
        log.close()


def start(root: Path, data_dir: Path, vector_db: str | None, *args: str, name: str = "server") -> ServerProcess:
    persona = root / "Fast.json"
    persona.write_text(json.dumps(FAST_PERSONA))
    extra = ["--vector-db", vector_db] if vector_db else []
    return start_server_process("--persona", str(persona), "--data-dir", str(data_dir), *extra, *args,
                                log_path=root / f"{name}-{free_port()}.log")


def client(server: ServerProcess, key: str = "unused") -> OpenAI:
    return OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0, timeout=60)


def wait_indexed(openai: OpenAI, store_id: str, file_id: str, timeout: float = 120) -> VectorStoreFile:
    deadline = time.monotonic() + timeout
    while True:
        found = openai.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if found.status != "in_progress" or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
