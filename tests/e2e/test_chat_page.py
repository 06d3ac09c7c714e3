"""The chat page at `/` and the API docs at `/docs`, driven in a real headless Chromium against real servers.

Personas: an LLM behind the scripted upstream (streamed answers, and a slow one to stop: the upstream, the far
side, says when its connection was closed), a fixed answer with Markdown, hostile HTML and a source, and the
RiveScript brain (which remembers a name per `user`, so the page's browser id is checked on the server's side).
Screenshots (desktop 1280 and phone 390 wide, light and dark) go to `test-artifacts/`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, ServerProcess, persona_args, require_binary, start_server_process
from tests.llm.upstream import Recorded, Reply, Upstream

KEY = "sk-chat-page-key"
UPSTREAM_KEY = "sk-upstream-key"
TOKENS = ["Streamed", " answers", " with", " **bold**", " words", "."]
HOSTILE = ('Here is **bold**, `code` and a list:\n\n- one\n- two\n\n<img src=x onerror="window.pwned=1"> '
           "[click](javascript:window.pwned=2) <script>window.pwned=3</script>")
ARTIFACTS = ROOT / "test-artifacts"
OPENAI = "ovos-solver-openai-plugin"
FAILURE = "ovos-solver-failure-plugin"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        up.default = Reply(tokens=TOKENS, delay=0.05)
        yield up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
           plugin_env: dict[str, str]) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("chat-page")
    llm = {"api_url": upstream.base_url, "key": UPSTREAM_KEY, "timeout": 5}
    args = persona_args(root, {
        "Llm.json": {"name": "Llm", "description": "An LLM behind a scripted upstream.",
                     "solvers": [OPENAI, FAILURE], OPENAI: {**llm, "model": "llm"}},
        "Slow.json": {"name": "Slow", "solvers": [OPENAI], OPENAI: {**llm, "model": "slow"}},
        "Cited.json": {"name": "Cited", "description": "Answers from a fixed text.", "memory": 3,
                       "solvers": ["test-fixed"], "test-fixed": {"text": HOSTILE, "source": "The Example"}},
        "Chat.json": {"name": "Chat", "solvers": ["ovos-solver-rivescript-plugin", FAILURE]},
    })
    proc = start_server_process(*args, log_path=root / "server.log", env=plugin_env)
    yield proc
    proc.stop()


def _small_server(root: Path, *args: str) -> ServerProcess:
    files = persona_args(root, {"Plain.json": {"name": "Plain", "solvers": [FAILURE],
                                               FAILURE: {"answers": ["A plain answer."]}}})
    return start_server_process(*files, *args, log_path=root / "server.log")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _small_server(tmp_path_factory.mktemp("chat-page-key"), "--api-key", KEY)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Small limits, and a proxy's name admitted (the page served under it calls back same-origin)."""
    proc = _small_server(tmp_path_factory.mktemp("chat-page-limits"), "--max-body-size", "4KiB",
                         "--rate-limit", "12/minute", "--allowed-host", "chat.test")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_binary("chromium", "chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP chat.test 127.0.0.1",
        ])
        yield chromium
        chromium.close()


class Page:
    """A fresh browser context (its own localStorage) on one page, recording the page's errors."""

    def __init__(self, browser: Any, *, width: int = 1280, height: int = 800, dark: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           color_scheme="dark" if dark else "light")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("#persona option", state="attached")
        return self.page

    def ask(self, text: str, *, answers: int | None = None) -> Any:
        """Type `text`, press Enter, and wait for the answer (the `answers`-th one) to be finished."""
        page = self.page
        count = page.locator(".message.assistant").count() + 1 if answers is None else answers
        page.fill("#input", text)
        page.press("#input", "Enter")
        page.wait_for_function("(n) => document.querySelectorAll('.message.assistant .meta').length >= n", arg=count)
        return page.locator(".message.assistant").nth(count - 1)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=False)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    opened = Page(browser)
    yield opened
    opened.close()
    assert opened.errors == [], opened.errors  # no script error, no CSP violation


def test_pick_a_persona_send_and_see_the_streamed_answer_with_its_solver(page: Page, server: ServerProcess,
                                                                          upstream: Upstream) -> None:
    tab = page.open(server.base_url + "/")
    assert tab.input_value("#persona") == "Llm"  # the default persona
    assert tab.text_content("#persona-description") == "An LLM behind a scripted upstream."
    assert tab.locator("#persona-chain li").all_text_contents() == [OPENAI, FAILURE]
    tab.select_option("#persona", "Cited")
    assert "Answers from a fixed text." in tab.text_content("#persona-description")
    assert "Remembers" in tab.text_content("#persona-description")
    tab.select_option("#persona", "Llm")
    before = len(upstream.requests)
    answer = page.ask("hello there")
    assert answer.locator(".body").inner_text() == "Streamed answers with bold words."
    assert answer.locator(".body strong").inner_text() == "bold"
    assert answer.locator(".solver-name").inner_text() == f"answered by {OPENAI}"
    [request] = upstream.requests[before:]
    assert request.body["messages"][-1] == {"role": "user", "content": "hello there"}
    page.shot("chat-desktop-light.png")
    # The second turn sends the conversation so far.
    page.ask("and again")
    assert [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] != "system"] == [
        "hello there", "Streamed answers with **bold** words.", "and again"]
    # A new conversation starts empty.
    tab.click("#new-chat")
    assert tab.locator(".message").count() == 0
    page.ask("fresh start")
    assert [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] != "system"] == [
        "fresh start"]
    # The session remembers the chosen persona.
    tab.select_option("#persona", "Cited")
    tab.reload()
    tab.wait_for_selector("#persona option", state="attached")
    assert tab.input_value("#persona") == "Cited"


def test_answers_render_markdown_safely_with_sources_as_links(page: Page, server: ServerProcess) -> None:
    tab = page.open(server.base_url + "/")
    tab.select_option("#persona", "Cited")
    answer = page.ask("anything")
    body = answer.locator(".body")
    assert body.locator("strong").inner_text() == "bold" and body.locator("code").inner_text() == "code"
    assert body.locator("li").all_text_contents() == ["one", "two"]
    # The hostile HTML is text on the page, and nothing of it ran.
    text = body.inner_text()
    assert '<img src=x onerror="window.pwned=1">' in text and "<script>window.pwned=3</script>" in text
    assert body.locator("img, script").count() == 0
    assert body.locator("a").count() == 0  # the javascript: link stays text
    assert tab.evaluate("() => window.pwned") is None
    link = answer.locator(".sources a")
    assert link.inner_text() == "The Example" and link.get_attribute("href") == "https://example.org/x"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert answer.locator(".solver-name").inner_text() == "answered by test-fixed"


def test_stopping_a_slow_answer_cancels_the_server_work(page: Page, server: ServerProcess,
                                                        upstream: Upstream) -> None:
    upstream.script(Reply(tokens=["slow ", "words "], delay=0.1, forever=True), model="slow")
    tab = page.open(server.base_url + "/")
    tab.select_option("#persona", "Slow")
    tab.fill("#input", "take your time")
    tab.press("#input", "Enter")
    # It streams: text shows while the answer is still coming.
    tab.wait_for_function("() => (document.querySelector('.message.streaming .body') || {}).textContent"
                          "?.includes('slow words slow')")
    assert tab.is_visible("#stop") and not tab.is_visible("#send")
    record = _slow_request(upstream)
    assert not record.disconnected
    tab.keyboard.press("Escape")
    stopped = tab.locator(".message.assistant .meta")
    stopped.wait_for()
    assert "stopped" in stopped.inner_text()
    assert tab.is_visible("#send")
    # The far side: the upstream saw its connection closed, within a second or so.
    deadline = time.monotonic() + 5
    while not record.disconnected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.disconnected, "the upstream request was not closed"
    written = len(record.token_times)
    time.sleep(0.5)
    assert len(record.token_times) == written  # nothing more is generated
    page.shot("chat-stopped.png")


def test_new_conversation_while_an_answer_streams_stops_it_and_starts_clean(page: Page, server: ServerProcess,
                                                                             upstream: Upstream) -> None:
    upstream.script(Reply(tokens=["slow "], delay=0.1, forever=True), model="slow")
    tab = page.open(server.base_url + "/")
    tab.select_option("#persona", "Slow")
    tab.fill("#input", "a long story")
    tab.press("#input", "Enter")
    tab.wait_for_function("() => (document.querySelector('.message.streaming .body') || {}).textContent"
                          "?.includes('slow slow')")
    record = _slow_request(upstream)
    tab.click("#new-chat")
    deadline = time.monotonic() + 5
    while not record.disconnected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.disconnected
    assert tab.locator(".message").count() == 0
    tab.select_option("#persona", "Llm")
    page.ask("only this")
    assert [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] != "system"] == ["only this"]


def test_an_answer_that_fails_midway_is_marked_and_explained(page: Page, server: ServerProcess,
                                                               upstream: Upstream) -> None:
    upstream.script(Reply(tokens=["Half", " an", " answer", " and"], delay=0.05, drop_after=3), model="llm")
    tab = page.open(server.base_url + "/")
    answer = page.ask("break please")
    assert answer.locator(".body").inner_text() == "Half an answer"
    assert "failed" in answer.locator(".meta").inner_text()
    assert "Error 502" in tab.locator("#notice").inner_text()
    # It is not part of the conversation: the next question goes alone.
    page.ask("again")
    assert [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] != "system"] == ["again"]


def _slow_request(upstream: Upstream) -> Recorded:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [r for r in upstream.requests if r.body.get("model") == "slow"]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("the slow persona never reached the upstream")


def test_the_browser_id_is_stable_so_the_server_remembers(page: Page, server: ServerProcess) -> None:
    tab = page.open(server.base_url + "/")
    user = tab.text_content("#user-id")
    assert user and user.startswith("browser-")
    assert "remember" in tab.text_content(".foot")
    tab.select_option("#persona", "Chat")
    page.ask("my name is Ann")
    tab.click("#new-chat")  # the history is gone: only the `user` id can carry the name
    tab.reload()
    tab.wait_for_selector("#persona option", state="attached")
    assert tab.text_content("#user-id") == user
    answer = page.ask("what is my name")
    assert "Ann" in answer.locator(".body").inner_text()
    # Another id is a stranger.
    tab.click("#new-id")
    assert tab.text_content("#user-id") != user
    answer = page.ask("what is my name")
    assert "Ann" not in answer.locator(".body").inner_text()


def test_a_server_with_a_key_asks_for_it_once(page: Page, keyed: ServerProcess) -> None:
    tab = page.page
    tab.goto(keyed.base_url + "/")
    form = tab.locator("#key-form")
    form.wait_for()
    assert "needs an API key" in tab.text_content("#key-label")
    assert tab.evaluate("() => document.activeElement.id") == "key-input"
    page.shot("chat-key-prompt.png")
    tab.fill("#key-input", "sk-wrong")
    tab.press("#key-input", "Enter")
    tab.wait_for_function("() => document.querySelector('#key-label').textContent.includes('refused')")
    assert form.is_visible()
    tab.fill("#key-input", KEY)
    tab.press("#key-input", "Enter")
    tab.wait_for_selector("#persona option", state="attached")
    assert not form.is_visible()
    answer = page.ask("hello")
    assert answer.locator(".body").inner_text() == "A plain answer."
    # Kept in the browser: a reload asks no more.
    tab.reload()
    tab.wait_for_selector("#persona option", state="attached")
    assert not form.is_visible()
    assert page.ask("hello again").locator(".body").inner_text() == "A plain answer."
    page.shot("chat-key-desktop.png")
    # The refusals the page met are the server's 401s, not script errors.
    page.errors = [e for e in page.errors if "401" not in e]


def test_limits_are_shown_and_the_page_works_under_a_proxy_name(page: Page, limited: ServerProcess) -> None:
    # Opened by an admitted name: every call back is same-origin under that name.
    tab = page.open(f"http://chat.test:{limited.port}/")
    assert page.ask("hi").locator(".body").inner_text() == "A plain answer."
    tab.fill("#input", "x" * 5000)
    tab.press("#input", "Enter")
    notice = tab.locator("#notice")
    notice.wait_for()
    assert "larger than the server accepts" in notice.inner_text()
    assert tab.input_value("#input") == "x" * 5000  # given back to edit
    for _ in range(14):  # 12 a minute, some spent already: this ends in a 429
        tab.fill("#input", "again")
        tab.press("#input", "Enter")
        tab.wait_for_function("() => document.querySelector('#send').hidden === false")
        if notice.is_visible() and "Limit reached" in notice.inner_text():
            break
    assert "Limit reached" in notice.inner_text() and notice.inner_text().count("Try again in") == 1
    page.shot("chat-limit.png")
    page.errors = [e for e in page.errors if "413" not in e and "429" not in e]


@pytest.mark.parametrize(("width", "dark"), [(390, False), (390, True), (1280, True)])
def test_screenshots_phone_and_dark(browser: Any, server: ServerProcess, width: int, dark: bool) -> None:
    page = Page(browser, width=width, height=844 if width < 500 else 800, dark=dark)
    try:
        tab = page.open(server.base_url + "/")
        page.ask("hello there")
        # Nothing sticks out sideways on a phone.
        assert tab.evaluate("() => document.documentElement.scrollWidth") <= width
        background = tab.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(21, 23, 27)") == dark, background
        page.shot(f"chat-{'phone' if width < 500 else 'desktop'}-{'dark' if dark else 'light'}.png")
        assert page.errors == []
    finally:
        page.close()


def test_keyboard_only(page: Page, server: ServerProcess) -> None:
    tab = page.open(server.base_url + "/")
    assert tab.evaluate("() => document.activeElement.id") == "input"  # ready to type
    tab.keyboard.type("first line")
    tab.keyboard.press("Shift+Enter")
    tab.keyboard.type("second line")
    assert tab.input_value("#input") == "first line\nsecond line"
    tab.keyboard.press("Enter")
    tab.wait_for_selector(".message.assistant .meta")
    assert tab.locator(".message.user .body").inner_text() == "first line\nsecond line"
    # Tab reaches the controls, and the focused one is visibly outlined.
    tab.keyboard.press("Shift+Tab")
    tab.keyboard.press("Shift+Tab")
    focused = tab.evaluate("() => [document.activeElement.tagName, getComputedStyle(document.activeElement)"
                           ".outlineStyle]")
    assert focused[1] == "solid", focused


def test_docs_list_the_chat_route(page: Page, keyed: ServerProcess) -> None:
    tab = page.page
    tab.goto(keyed.base_url + "/docs")  # open without the key, like /openapi.json
    tab.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = tab.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.replace("\u200b", "") == "/v1/chat/completions" for p in paths), paths[:10]
    assert tab.locator(".info .title").inner_text().startswith("persona-server")
    page.shot("docs.png")
