"""Fixtures for the web tests: the app, a test client, and a live uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")

from fastapi.testclient import TestClient  # noqa: E402

from descend.web import Limits, create_app  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def app():
    """One app for the in-process tests."""
    return create_app()


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Folder for screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    server: object
    thread: threading.Thread


def start_server(limits: Limits | None = None) -> LiveServer:
    """uvicorn serving a fresh app on 127.0.0.1 at a free port, in a background thread."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(limits), host="127.0.0.1", port=port, log_level="warning",
        backlog=512, timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.started:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return LiveServer(url, server, thread)
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    server.should_exit = True
    thread.join(5)
    raise RuntimeError("uvicorn did not start within 20 s")


def stop_server(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(15)
    assert not live.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    live = start_server()
    try:
        yield live
    finally:
        stop_server(live)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, headless, through Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()
