"""Errors that read well: bad JSON says where, bad values get one sentence, bodies get 413 and 408."""

from __future__ import annotations

import json
import socket
import time

import pytest

from descend.web import Limits

from .conftest import start_server, stop_server

RUN = {"landscape": "bowl", "steps": 20, "runs": [{"optimizer": "adam", "hyper": {"lr": 0.1}}]}


def post_raw(client, text: str):
    return client.post("/api/run", content=text, headers={"content-type": "application/json"})


def test_malformed_json_says_where(client):
    text = '{"landscape": "bowl", "runs": [}'
    r = post_raw(client, text)
    assert r.status_code == 422
    position = text.index("}")
    assert r.json()["message"].startswith(f"body is not valid JSON at character {position}")
    assert [d["loc"] for d in r.json()["detail"]] == [["body"]]


@pytest.mark.parametrize("literal, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
                                            ("[1, 2]", "[1, 2]"), ('{"a": 1}', "an object")])
def test_a_bad_hyperparameter_value_is_one_sentence(client, literal, shown):
    text = '{"landscape": "bowl", "runs": [{"optimizer": "adam", "hyper": {"lr": LR}}]}'.replace("LR", literal)
    r = post_raw(client, text)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert len(detail) == 1 and detail[0]["loc"] == ["body", "runs", 0, "hyper", "lr"]
    assert r.json()["message"] == (
        f"runs.0.hyper.lr: must be a finite number, true/false, a name or null; got {shown}")


@pytest.mark.parametrize("field", ["steps", "record_every", "tol"])
def test_true_is_not_a_number(client, field):
    r = client.post("/api/run", json={**RUN, field: True})
    assert r.status_code == 422
    assert r.json()["message"] == f"{field}: must be a number, got true"


def test_true_is_not_a_coordinate(client):
    r = client.post("/api/run", json={**RUN, "start": [True, 1.0]})
    assert r.status_code == 422 and "start.0: must be a number, got true" in r.json()["message"]


def test_a_streamed_body_over_the_limit_is_413(client):
    limit = client.app.state.limits.max_body_bytes

    def chunks():
        for _ in range(limit // 1024 + 8):
            yield b" " * 1024

    r = client.post("/api/run", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["message"].startswith("request body of more than")
    assert f"over the limit of {limit} bytes" in r.json()["message"]


def test_a_declared_body_over_the_limit_is_413(client):
    r = client.post("/api/run", content=b" " * 70_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "70000 bytes" in r.json()["message"]


def test_a_body_shorter_than_declared_times_out_with_408():
    live = start_server(Limits(body_timeout_s=1.0))
    try:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"POST /api/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 200\r\n\r\n" + json.dumps(RUN).encode()[:50])
            t0 = time.monotonic()
            raw = b""
            while b"\r\n\r\n" not in raw:
                part = sock.recv(65536)
                if not part:
                    break
                raw += part
            head, _, body = raw.partition(b"\r\n\r\n")
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                body += part
        assert head.split()[1] == b"408", raw
        assert json.loads(body)["message"] == ("the request body stopped arriving: 50 of 200 bytes came, "
                                               "then nothing for 1 s")
        assert time.monotonic() - t0 < 25   # answered, not left hanging until the socket's own timeout
    finally:
        stop_server(live)


def test_the_server_still_answers_after_the_bad_bodies(client):
    assert client.post("/api/run", json=RUN).status_code == 200
