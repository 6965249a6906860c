"""Fair and cancellable runs on a real uvicorn server: one queue per page, turns in chunks.

Eight pages each ask for the maximum (8 runs x 5000 steps) while a ninth asks
for a small run: the small one is answered while the eight still compute (it
was not queued behind them). A page that goes away, or sends a newer
request, has its computation stopped within one chunk. No wall-clock
assertions: the checks are orderings and counts of the scheduler's turns.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from descend.web import Limits

from .conftest import start_server, stop_server

HEAVY = {"landscape": "rosenbrock", "steps": 5000, "tol": 0.0,
         "runs": [{"optimizer": "adam", "hyper": {"lr": 1e-3 * (k + 1)}} for k in range(8)]}
SMALL = {"landscape": "bowl", "steps": 50, "runs": [{"optimizer": "gd", "hyper": {"lr": 0.1}}]}


@pytest.fixture(scope="module")
def server():
    live = start_server(Limits(workers=2))
    try:
        yield live
    finally:
        stop_server(live)


def scheduler(live):
    return live.server.config.app.state.scheduler


def open_request(url: str, body: dict, session: str) -> socket.socket:
    """A raw HTTP request left waiting for its answer (closing the socket is the client leaving)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)), timeout=60)
    head = (f"POST /api/run HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Descend-Session: {session}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    sock.sendall(head + data)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict]:
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    head, body = raw.split(b"\r\n\r\n", 1)
    status = int(head.split()[1])
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return status, json.loads(body)


def wait_until(predicate, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def jobs_of(live, prefix: str) -> list:
    return [j for j in scheduler(live).jobs() if j.client.startswith(f"session:{prefix}")]


def test_a_small_run_is_not_queued_behind_eight_heavy_ones(server):
    socks = [open_request(server.url, HEAVY, f"heavy-{i}") for i in range(8)]
    try:
        wait_until(lambda: len(jobs_of(server, "heavy")) == 8 and all(j.turns >= 1 for j in jobs_of(server, "heavy")),
                   "eight heavy jobs to compute")
        heavy = jobs_of(server, "heavy")
        r = httpx.post(f"{server.url}/api/run", json=SMALL, headers={"X-Descend-Session": "small"}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["runs"][0]["result"]["steps"] > 0
        # answered while every heavy job was still computing: it did not wait for any of them
        assert [j.state for j in heavy if j.future.done()] == []
        small = next(j for j in scheduler(server).finished if j.client == "session:small")
        # it got a slot as soon as one chunk of a running job ended: its first turn came
        # before any heavy job began another one after it arrived
        assert small.state == "done" and small.turns >= 1
    finally:
        for s in socks:
            s.close()
    # the pages went away: every heavy computation stops within one chunk
    wait_until(lambda: all(j.future.done() for j in heavy), "the heavy jobs to stop")
    for j in heavy:
        assert j.state == "cancelled" and j.reason == "disconnected"
        assert j.turns - j.turns_at_cancel <= 1
    assert scheduler(server).jobs() == []


def test_a_newer_request_from_the_same_page_supersedes_the_older(server):
    first = open_request(server.url, HEAVY, "page-a")
    try:
        wait_until(lambda: any(j.turns >= 1 for j in jobs_of(server, "page-a")), "the first request to compute")
        [running] = jobs_of(server, "page-a")
        second = open_request(server.url, HEAVY, "page-a")   # queued behind the running one...
        wait_until(lambda: len(jobs_of(server, "page-a")) == 2 or running.future.done(), "the second to queue")
        r = httpx.post(f"{server.url}/api/run", json=SMALL, headers={"X-Descend-Session": "page-a"}, timeout=60)
        assert r.status_code == 200, r.text                 # ...and the newest replaces both
        for sock in (first, second):
            status, body = read_answer(sock)
            assert status == 409 and body["reason"] == "superseded", body
        assert running.state == "cancelled" and running.turns - running.turns_at_cancel <= 1
        replaced = [j for j in scheduler(server).finished if j.client == "session:page-a" and j.reason]
        assert len(replaced) == 2
        assert all(j.reason == "superseded" and j.turns - j.turns_at_cancel <= 1 for j in replaced)
    finally:
        first.close()
    assert scheduler(server).jobs() == []


def test_different_connections_without_a_session_are_different_clients(server):
    with httpx.Client(base_url=server.url, timeout=60) as a, httpx.Client(base_url=server.url, timeout=60) as b:
        ra, rb = a.post("/api/run", json=SMALL), b.post("/api/run", json=SMALL)
    assert ra.status_code == rb.status_code == 200
    clients = {j.client for j in scheduler(server).finished[-2:]}
    assert len(clients) == 2 and all(c.startswith("connection:127.0.0.1:") for c in clients)


def test_the_scheduler_gives_a_newcomer_the_next_turn():
    from descend.web.jobs import Cancelled, Scheduler

    sched = Scheduler(slots=1, chunk_s=0.002)
    stop = False

    def heavy(job):
        while not stop:
            job.checkpoint()
            time.sleep(0.0002)
        return "heavy"

    a = sched.submit("a", heavy, 60)
    wait_until(lambda: a.computed_s() > 0.01, "the heavy job to compute")
    before = a.turns
    seen = {}

    def small(job):
        seen["heavy turns"] = a.turns
        job.checkpoint()
        return "small"

    b = sched.submit("b", small, 60)
    assert b.future.result(timeout=30) == "small"
    assert not a.future.done()
    assert seen["heavy turns"] - before <= 1     # waited for at most one chunk of the heavy job
    # a newer job of client "a" cancels the heavy one at its next checkpoint
    c = sched.submit("a", lambda job: "newer", 60)
    with pytest.raises(Cancelled):
        a.future.result(timeout=30)
    assert a.reason == "superseded" and a.checkpoints_after_cancel <= 1
    assert c.future.result(timeout=30) == "newer"
    stop = True
    assert sched.jobs() == []


def test_the_guarded_landscape_checks_every_evaluation_and_keeps_the_fused_function():
    """The job's checkpoint runs before every evaluation; the landscape's fused value-and-gradient
    stays in use, with the same numbers."""
    import torch

    from descend import landscapes
    from descend.web.app import _guarded

    class Job:
        checkpoints = 0

        def checkpoint(self):
            self.checkpoints += 1

    for name in ("rosenbrock", "bowl", "note003", "beale"):
        land, job = landscapes.get(name), Job()
        guarded = _guarded(land, job)
        X = torch.tensor([[-1.2, 1.0], [0.3, 0.7], [2.0, -1.0]], dtype=torch.float64)
        F, G = guarded.value_and_grad(X)
        F0, G0 = land.value_and_grad(X)
        assert torch.equal(F, F0) and torch.equal(G, G0)
        fused = land.value_grad_fn is not None
        assert job.checkpoints == (1 if fused else 2)  # one evaluation, or f and its gradient
        if fused:
            assert guarded.value_grad_fn.of == (guarded.f, guarded.grad_fn)
        before = job.checkpoints
        assert torch.equal(guarded.hessian(X), land.hessian(X)) and job.checkpoints == before + 1
