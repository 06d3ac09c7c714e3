"""What `GET /` answers by `Accept`, and the browser guard's same-origin rule where no Host check runs.

The guard's decision is asked directly (the front door asks it the same way): binding a real server to a
non-loopback address is not for tests (the e2e tests cover the loopback case with a real browser,
tests/e2e/test_chat_page.py).
"""

from __future__ import annotations

import pytest

from persona_server.api.browser import BrowserGuard, HostPolicy, OriginPolicy
from persona_server.api.web import preferred
from persona_server.settings import Settings

CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "kind"), [
    (None, "json"), ("", "json"), ("*/*", "json"), ("application/json", "json"),
    ("application/json, text/plain, */*", "json"),  # axios: named JSON first, as before
    (CHROME, "html"), (FIREFOX, "html"), ("text/html", "html"), ("application/xhtml+xml", "html"),
    ("text/plain", "text"), ("text/plain, */*", "text"), ("text/*", "text"),
    ("text/html;q=0", "json"), ("text/html;q=0, text/plain", "text"), ("application/json;q=0.5, text/html", "html"),
    ("text/html;q=bad", "json"), ("image/png", "json"), ("TEXT/HTML", "html"),
    (",".join(["image/png"] * 40) + ",text/html", "json"),  # only the first 32 ranges are read
])
def test_accept_picks_the_answer(accept: str | None, kind: str) -> None:
    assert preferred(accept) == kind


def _status(guard: BrowserGuard, host: str, origin: str) -> int:
    """What a POST with these headers gets: 403 when the guard refuses it, else it goes on (200)."""
    refusal = guard.refusal({b"host": host.encode(), b"origin": origin.encode()}, "POST")
    return 200 if refusal is None else 403


def test_same_origin_without_a_host_check_needs_an_ip_address() -> None:
    guard = BrowserGuard(OriginPolicy(), hosts=None)  # bound to 0.0.0.0: no Host check
    assert _status(guard, "192.168.1.20:8337", "http://192.168.1.20:8337") == 200
    assert _status(guard, "[fd00::5]:8337", "http://[fd00::5]:8337") == 200
    # A name could have been re-pointed here (DNS rebinding): same-origin under a name is not enough.
    assert _status(guard, "evil.example:8337", "http://evil.example:8337") == 403
    assert _status(guard, "192.168.1.20:8337", "http://192.168.1.20:9999") == 403
    assert _status(guard, "192.168.1.20:8337", "http://192.168.1.21:8337") == 403


def test_same_origin_on_loopback_follows_the_host_check() -> None:
    guard = BrowserGuard(OriginPolicy(), HostPolicy(["chat.internal"]))
    assert _status(guard, "chat.internal", "https://chat.internal") == 200
    assert _status(guard, "evil.example", "http://evil.example") == 403  # refused by the Host check


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8337"), ("0.0.0.0", "http://127.0.0.1:8337"), ("::", "http://[::1]:8337"),
    ("::1", "http://[::1]:8337"), ("192.168.1.20", "http://192.168.1.20:8337"), ("localhost", "http://localhost:8337"),
])
def test_the_page_url_a_browser_on_this_machine_opens(host: str, url: str) -> None:
    assert Settings(host=host, port=8337).page_url == url
