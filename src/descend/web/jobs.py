"""Fair, cancellable computing for the web app: one queue per client, work in short chunks.

Every ``/api/run`` request becomes a :class:`Job` of a client (the page's
session id, or the connection when the page sends none). :class:`Scheduler`
holds to three rules:

* **at most one running job per client**; a newer request from the same
  client cancels the running one and replaces the one still queued (both
  end with :class:`Cancelled`, reason ``"superseded"``);
* **work in chunks**: a job computes for at most ``chunk_s`` seconds, then
  gives its slot back and waits for its next turn (:meth:`Job.checkpoint`,
  called by the computation between steps); a cancelled job stops at its
  next checkpoint, so within one chunk;
* **least attained service first**: a free slot goes to the waiting job
  that has computed least so far (ties: the oldest). A newcomer's small run
  therefore waits for at most one chunk of each slot's current job, however
  many heavy jobs are queued.

``slots`` jobs compute at the same time. Each job runs on its own thread
(most of them wait on a condition), so a job can be paused mid-run without
the library knowing: the checkpoint is a plain function call.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Cancelled(BaseException):
    """A job stopped because nobody waits for it (``reason``: superseded, disconnected, ...).

    A ``BaseException`` so that no ``except Exception`` on the way (in the
    library's loop) mistakes it for a numerical failure of the run.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutOfTime(BaseException):
    """A job computed for longer than its time limit (its own computing time, not its waiting)."""


class Busy(Exception):
    """Too many jobs are waiting already."""


class Job:
    """One request's computation: ``fn(job)`` runs on a thread and calls :meth:`checkpoint` often."""

    def __init__(self, scheduler: Scheduler, client: str, fn: Callable[[Job], Any], limit_s: float) -> None:
        self.scheduler = scheduler
        self.client = client
        self.fn = fn
        self.limit_s = limit_s
        self.seq = next(scheduler._counter)
        self.future: Future = Future()
        self.reason: str | None = None  # why it was cancelled
        self.service = 0.0  # seconds computed in finished turns
        self.turn_start: float | None = None  # when the current turn began (None: not holding a slot)
        self.turns = 0
        self.checkpoints = 0
        self.checkpoints_after_cancel = 0
        self.turns_at_cancel: int | None = None  # turns begun when it was cancelled
        self.state = "queued"  # queued, waiting, running, done, cancelled

    # ---- called from the request's side

    def cancel(self, reason: str) -> None:
        """Ask the job to stop: it ends at its next checkpoint (or before it starts)."""
        self.scheduler._cancel(self, reason)

    # ---- called from the computation

    def computed_s(self) -> float:
        """Seconds this job has computed so far (its current turn included)."""
        extra = time.monotonic() - self.turn_start if self.turn_start is not None else 0.0
        return self.service + extra

    def checkpoint(self) -> None:
        """Between steps: stop if cancelled or out of time; give the slot up once the chunk is used."""
        self.checkpoints += 1
        if self.reason is not None:
            self.checkpoints_after_cancel += 1
            raise Cancelled(self.reason)
        if self.computed_s() > self.limit_s:
            raise OutOfTime
        if self.turn_start is not None and time.monotonic() - self.turn_start >= self.scheduler.chunk_s:
            self.scheduler._yield(self)

    def cancelled(self) -> bool:
        """:meth:`checkpoint` as a predicate (for engines that take a ``cancel`` callable)."""
        try:
            self.checkpoint()
        except Cancelled:
            return True
        return False


class Scheduler:
    """``slots`` jobs compute at once, in chunks of ``chunk_s`` seconds, one running job per client."""

    def __init__(self, slots: int = 2, chunk_s: float = 0.02, max_jobs: int = 256) -> None:
        self.slots = slots
        self.chunk_s = chunk_s
        self.max_jobs = max_jobs
        self._cond = threading.Condition()
        self._free = slots
        self._waiting: list[Job] = []
        self._running: dict[str, Job] = {}  # client -> its running job
        self._queued: dict[str, Job] = {}  # client -> its next job
        self._counter = itertools.count()
        self.finished: list[Job] = []  # the last jobs that ended (for tests and the benchmark)

    # ---- public

    def submit(self, client: str, fn: Callable[[Job], Any], limit_s: float) -> Job:
        """A new job of ``client``; it supersedes the client's running and queued jobs."""
        with self._cond:
            if len(self._running) + len(self._queued) >= self.max_jobs and client not in self._running:
                raise Busy
            job = Job(self, client, fn, limit_s)
            old = self._queued.pop(client, None)
            if old is not None:
                old.reason, old.turns_at_cancel = "superseded", old.turns
                self._end(old, "cancelled", Cancelled("superseded"))
            running = self._running.get(client)
            if running is not None:
                self._cancel_locked(running, "superseded")
                self._queued[client] = job
            else:
                self._start(job)
            return job

    def stats(self) -> dict[str, int]:
        """How many jobs are running (holding a thread), waiting for a slot, queued behind their client."""
        with self._cond:
            return {"running": len(self._running), "waiting": len(self._waiting),
                    "queued": len(self._queued), "free_slots": self._free}

    def jobs(self) -> list[Job]:
        """The jobs running or queued now."""
        with self._cond:
            return [*self._running.values(), *self._queued.values()]

    def close(self) -> None:
        """Cancel every job (server shutdown)."""
        with self._cond:
            for job in [*self._running.values(), *self._queued.values()]:
                self._cancel_locked(job, "the server is shutting down")

    # ---- internals (the lock is ``_cond``)

    def _start(self, job: Job) -> None:
        self._running[job.client] = job
        job.state = "waiting"
        threading.Thread(target=self._run, args=(job,), name=f"descend-job-{job.seq}", daemon=True).start()

    def _run(self, job: Job) -> None:
        outcome: tuple[str, Any] = ("done", None)
        try:
            self._acquire(job)
            job.state = "running"
            outcome = ("done", job.fn(job))
        except Cancelled as e:
            outcome = ("cancelled", e)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            outcome = ("error", e)
        finally:
            with self._cond:
                self._release_locked(job)
                if self._running.get(job.client) is job:
                    del self._running[job.client]
                    nxt = self._queued.pop(job.client, None)
                    if nxt is not None:
                        self._start(nxt)
                state, value = outcome
                self._end(job, state, value)

    def _end(self, job: Job, state: str, value: Any) -> None:
        job.state = "cancelled" if state == "cancelled" else "done"
        self.finished = [*self.finished[-63:], job]
        if job.future.done():
            return
        if state == "done":
            job.future.set_result(value)
        else:
            job.future.set_exception(value)

    def _cancel(self, job: Job, reason: str) -> None:
        with self._cond:
            if self._queued.get(job.client) is job:
                del self._queued[job.client]
                job.reason = reason
                job.turns_at_cancel = job.turns
                self._end(job, "cancelled", Cancelled(reason))
                return
            self._cancel_locked(job, reason)

    def _cancel_locked(self, job: Job, reason: str) -> None:
        if job.reason is None:
            job.reason = reason
            job.turns_at_cancel = job.turns
        self._cond.notify_all()

    def _best(self) -> Job | None:
        return min(self._waiting, key=lambda j: (j.service, j.seq), default=None)

    def _acquire(self, job: Job) -> None:
        with self._cond:
            self._waiting.append(job)
            try:
                while not (self._free > 0 and self._best() is job):
                    if job.reason is not None:
                        raise Cancelled(job.reason)
                    self._cond.wait()
            finally:
                self._waiting.remove(job)
            if job.reason is not None:
                self._cond.notify_all()
                raise Cancelled(job.reason)
            self._free -= 1
            job.turn_start = time.monotonic()
            job.turns += 1
            self._cond.notify_all()  # the next best may take another free slot

    def _release_locked(self, job: Job) -> None:
        if job.turn_start is None:
            return
        job.service += time.monotonic() - job.turn_start
        job.turn_start = None
        self._free += 1
        self._cond.notify_all()

    def _yield(self, job: Job) -> None:
        with self._cond:
            if not self._waiting:  # nobody else waits: keep the slot, start a new chunk
                now = time.monotonic()
                job.service += now - job.turn_start
                job.turn_start = now
                return
            self._release_locked(job)
        self._acquire(job)
