"""A bounded load test: 200 concurrent runs against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import time

import httpx

CONCURRENT = 200


async def fire(url: str) -> tuple[list[int], float]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        async def one(i: int) -> int:
            body = {
                "landscape": ["rosenbrock", "bowl", "himmelblau", "beale"][i % 4],
                "steps": 20,
                "runs": [{"optimizer": ["adam", "sgd", "momentum", "rmsprop"][i % 4], "hyper": {"lr": 1e-3}}],
            }
            r = await client.post("/api/run", json=body)
            return r.status_code

        t0 = time.perf_counter()
        codes = await asyncio.gather(*(one(i) for i in range(CONCURRENT)))
        return list(codes), time.perf_counter() - t0


def test_200_concurrent_runs_all_answered(live_server):
    assert live_server.url.startswith("http://127.0.0.1:")
    codes, seconds = asyncio.run(asyncio.wait_for(fire(live_server.url), timeout=90))
    assert codes == [200] * CONCURRENT, {c: codes.count(c) for c in set(codes)}
    assert seconds < 90
    health = httpx.get(f"{live_server.url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # and it still computes
    r = httpx.post(f"{live_server.url}/api/run", timeout=30,
                   json={"landscape": "bowl", "steps": 5, "runs": [{"optimizer": "adam"}]})
    assert r.status_code == 200
