"""How fast the playground answers: server-side times of its races, and a small run among heavy ones.

Starts the web app under uvicorn on 127.0.0.1 (a free port) and measures, in
interleaved rounds, medians of:

* the default race (Rosenbrock, Adam and GD, 2000 steps) and the page's
  maximum (8 runs x 5000 steps): the lab's own time (``lab``: the call into
  ``descend.lab``), the request's computing time (``server``: the lab plus
  validation, schedules and turning results into JSON) and what the client
  waited (``client``, HTTP and JSON parsing included);
* Newton against a first-order run (Adam), one run each on Rosenbrock, as a
  ratio;
* the 9th client: 8 pages each ask for the maximum while a 9th asks for a
  small run (GD on the bowl, 50 steps); its latency against the same run on
  an idle server. The 8 heavy pages then go away, which cancels their work.

Targets (issue 14): default race <= 0.3 s of server time, maximum <= 2 s,
Newton <= 5x a first-order run, the 9th client < 1 s.

    .venv/bin/python benchmarks/playground_latency.py            # 3 rounds
    .venv/bin/python benchmarks/playground_latency.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from descend.web import Limits, create_app  # noqa: E402

DEFAULT = {"landscape": "rosenbrock", "steps": 2000, "tol": 1e-6, "record_every": 2,
           "runs": [{"optimizer": "adam", "hyper": {"lr": 0.05}}, {"optimizer": "gd", "hyper": {"lr": 0.002}}]}
MAXIMUM = {"landscape": "rosenbrock", "steps": 5000, "tol": 0.0, "record_every": 5,
           "runs": [{"optimizer": o, "hyper": {"lr": lr}} for o, lr in
                    [("adam", 0.05), ("gd", 0.002), ("momentum", 5e-4), ("nesterov", 5e-4),
                     ("rmsprop", 3e-3), ("adagrad", 1.0), ("adamw", 0.05), ("adam", 0.01)]]}
ORDER_STEPS = 300
NEWTON = {"landscape": "rosenbrock", "steps": ORDER_STEPS, "tol": 0.0,
          "runs": [{"optimizer": "newton", "hyper": {"line_search": True}}]}
FIRST_ORDER = {"landscape": "rosenbrock", "steps": ORDER_STEPS, "tol": 0.0,
               "runs": [{"optimizer": "adam", "hyper": {"lr": 0.05}}]}
SMALL = {"landscape": "bowl", "steps": 50, "runs": [{"optimizer": "gd", "hyper": {"lr": 0.1}}]}


def serve() -> tuple[str, object, threading.Thread]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Limits()), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    return url, server, thread


def timed(client: httpx.Client, body: dict, session: str) -> dict:
    t0 = time.perf_counter()
    r = client.post("/api/run", json=body, headers={"X-Descend-Session": session})
    wall = time.perf_counter() - t0
    r.raise_for_status()
    timing = r.json()["timing"]
    return {"lab": timing["lab_s"], "server": timing["computed_s"], "client": wall}


def raw_request(url: str, body: dict, session: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall((f"POST /api/run HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"X-Descend-Session: {session}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
    return sock


def ninth_client(url: str, client: httpx.Client, scheduler) -> float:
    socks = [raw_request(url, MAXIMUM, f"heavy-{i}") for i in range(8)]
    try:
        deadline = time.monotonic() + 60
        while sum(1 for j in scheduler.jobs() if j.turns >= 1) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        return timed(client, SMALL, "ninth")["client"]
    finally:
        for s in socks:
            s.close()
        while scheduler.jobs():
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    url, server, thread = serve()
    scheduler = server.config.app.state.scheduler
    rows: dict[str, list[dict]] = {k: [] for k in ("default", "maximum", "newton", "first", "idle", "ninth")}
    with httpx.Client(base_url=url, timeout=120) as client:
        timed(client, DEFAULT, "warm")  # imports, first compilations
        timed(client, NEWTON, "warm")
        for _ in range(args.rounds):
            rows["default"].append(timed(client, DEFAULT, "a"))
            rows["maximum"].append(timed(client, MAXIMUM, "a"))
            rows["newton"].append(timed(client, NEWTON, "a"))
            rows["first"].append(timed(client, FIRST_ORDER, "a"))
            rows["idle"].append(timed(client, SMALL, "a"))
            rows["ninth"].append({"client": ninth_client(url, client, scheduler)})
    server.should_exit = True
    thread.join(10)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[name])

    print(f"playground latency: medians of {args.rounds} interleaved rounds (seconds)\n")
    print(f"{'request':<44} {'lab':>7} {'server':>7} {'runner':>7} {'client':>7}  target")
    for name, label, target in [("default", "default race: Rosenbrock, Adam + GD, 2000", "server <= 0.3"),
                                ("maximum", "maximum: 8 runs x 5000 steps", "server <= 2"),
                                ("first", f"Adam, 1 run x {ORDER_STEPS} steps", ""),
                                ("newton", f"Newton (line search), 1 run x {ORDER_STEPS}", "")]:
        lab, srv = med(name, "lab"), med(name, "server")
        print(f"{label:<44} {lab:7.3f} {srv:7.3f} {srv - lab:7.3f} {med(name, 'client'):7.3f}  {target}")
    ratio = statistics.median(n["server"] / f["server"] for n, f in zip(rows["newton"], rows["first"], strict=True))
    print(f"\nNewton / first-order run (server time, per round):  {ratio:.1f}x   target <= 5x")
    idle, ninth = med("idle", "client"), med("ninth", "client")
    print(f"small run (GD, bowl, 50 steps), idle server:          {idle:.3f} s")
    print(f"the same while 8 pages run the maximum (9th client):  {ninth:.3f} s   target < 1 s "
          f"({ninth / idle:.1f}x idle)")
    print("\nlab: time inside descend.lab; server: the request's computing turns; runner: server - lab "
          "(validation, schedules, JSON); client: what the HTTP client waited.")


if __name__ == "__main__":
    main()
