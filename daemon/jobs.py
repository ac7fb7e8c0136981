"""Operations handed to the coordinator: any node submits a job to the store, the coordinator runs it.

The submitting node follows the job's progress in the store and streams it to
its caller, so `ctl license reactivate` shows the coordinator's steps whichever
node it runs on. A job's parameters carry its request_id: a job taken over
after a failover asks the portal the same question and gets the same answer.

The coordinator runs several jobs at once (the tenant lock keeps one operation
per tenant), so a job waiting on a slow portal holds up neither imports nor
other tenants' work. A job carries its caller's deadline: when the caller stops
waiting, the job is cancelled and recorded as timed out, not left to run on.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, assert_never

import anyio
import msgspec

from paragon_licensed.daemon import log
from paragon_licensed.daemon.cluster import NotCoordinator
from paragon_licensed.daemon.job_kinds import (
    ActivateJob,
    ImportJob,
    JobSpec,
    ReactivateJob,
    TenantCheckJob,
    TransferJob,
    spec_of,
    stored,
    with_deadline,
)
from paragon_licensed.daemon.store import jobs as job_q
from paragon_licensed.daemon.store.db import FencedOut, StoreUnavailableError
from paragon_licensed.daemon.timefmt import rfc3339
from paragon_licensed.interface.errors import InternalError, OperationTimeout, VarlinkError, error_from_reply

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon
    from paragon_licensed.daemon.licensing import Report

Emit = Callable[[dict[str, Any]], Awaitable[None]]
UNCLAIMED_TIMEOUT = 60.0
WAIT_TIMEOUT = 900.0  # how long a caller follows a license operation (control.operation_timeout)
MAX_RUNNING = 8  # jobs the coordinator runs at once
POLL = 0.1
CLAIM_POLL = 0.5


class Jobs:
    def __init__(self, app: Daemon) -> None:
        self.app = app
        self._changed = anyio.Event()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def submit(
        self, spec: JobSpec, tenant: str, actor: str, timeout: float | None = WAIT_TIMEOUT
    ) -> str:
        """Hand a job to the coordinator; with a timeout, the job is cancelled when it passes."""
        job_id = str(uuid.uuid4())
        kind, params = stored(with_deadline(spec, timeout))
        await self.app.db.write(job_q.submit, job_id, kind, tenant, params, self.app.node, actor)
        log.info("job submitted", job=job_id, kind=kind, tenant=tenant, request_id=spec.request_id)
        self._signal()
        return job_id

    async def wait(self, job_id: str, emit: Emit, timeout: float | None = WAIT_TIMEOUT) -> Any:
        """Follow a job to its end, passing each step on; return its result or raise its error."""
        seen = 0
        started = time.monotonic()
        while True:
            changed = self._changed  # taken before the read, so a change during it is not missed
            job = await self.app.db.read(job_q.get, job_id)
            if job is None:
                raise InternalError(reference=f"job {job_id} vanished")
            for step in job.progress[seen:]:
                await emit(step)
            seen = len(job.progress)
            if job.state == "done":
                return job.result
            if job.state == "failed":
                raise error_from_reply(job.error_name, job.error_params)
            waited = time.monotonic() - started
            if job.state == "pending" and waited > UNCLAIMED_TIMEOUT:
                error = OperationTimeout(operation=job.kind, seconds=int(waited))
                if await self.app.db.write(job_q.give_up, job_id, error.name, error.parameters):
                    raise error
            elif timeout is not None and waited > timeout:
                raise OperationTimeout(operation=job.kind, seconds=int(waited))
            with anyio.move_on_after(POLL):
                await changed.wait()

    async def run(self) -> None:
        """Coordinator duty: take jobs oldest first, up to MAX_RUNNING at once."""
        app = self.app
        fence = app.cluster.fence()
        await app.db.write(job_q.release_own, app.node, fence.term, fence=fence)
        slots = anyio.Semaphore(MAX_RUNNING)
        async with anyio.create_task_group() as tg:
            while True:
                await slots.acquire()
                fence = app.cluster.fence()
                job = None
                if await app.db.read(job_q.waiting, fence.term):
                    job = await app.db.write(job_q.claim_next, app.node, fence.term, fence=fence)
                if job is None:
                    slots.release()
                    # Jobs submitted on this node wake the runner at once; others are seen by polling.
                    with anyio.move_on_after(CLAIM_POLL):
                        await self._changed.wait()
                    continue
                tg.start_soon(self._run_one, job, slots)

    async def _run_one(self, job: job_q.JobRow, slots: anyio.Semaphore) -> None:
        try:
            await self._execute(job)
        finally:
            slots.release()

    async def _execute(self, job: job_q.JobRow) -> None:
        app = self.app
        fence = app.cluster.fence()
        try:
            spec = spec_of(job.kind, job.params)
        except msgspec.ValidationError as exc:  # written by a newer or broken node: fail it, named
            reference = uuid.uuid4().hex[:12]
            log.error("job cannot be read", job=job.id, kind=job.kind, reason=exc, reference=reference)
            error = InternalError(reference=reference)
            await app.db.write(job_q.finish, job.id, None, error.name, error.parameters, fence=fence)
            self._signal()
            return
        request_id = spec.request_id
        log.info("job started", job=job.id, kind=job.kind, tenant=job.tenant_id, request_id=request_id)

        async def report(step: str, message: str, **extra: Any) -> None:
            entry = {"at": rfc3339(), "step": step, "message": message, **extra}
            await app.db.write(job_q.add_progress, job.id, entry, fence=fence)
            self._signal()

        left = spec.deadline - time.time() if spec.deadline is not None else math.inf
        try:
            with anyio.move_on_after(left) as scope:
                async with app.tenant_lock(job.tenant_id):
                    result = await self._dispatch(spec, job, report)
            if scope.cancelled_caught:
                raise OperationTimeout(operation=job.kind, seconds=int(spec.timeout or 0))
        except (NotCoordinator, FencedOut):
            raise
        except VarlinkError as exc:
            await app.db.write(job_q.finish, job.id, None, exc.name, exc.parameters, fence=fence)
            log.info("job failed", job=job.id, kind=job.kind, error=exc.short_name, request_id=request_id)
        except StoreUnavailableError:
            raise
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.logger.exception("job %s failed unexpectedly reference=%s", job.id, reference)
            error = InternalError(reference=reference)
            await app.db.write(job_q.finish, job.id, None, error.name, error.parameters, fence=fence)
        else:
            await app.db.write(job_q.finish, job.id, result, fence=fence)
            log.info("job done", job=job.id, kind=job.kind, request_id=request_id)
        self._signal()

    async def _dispatch(self, spec: JobSpec, job: job_q.JobRow, report: Report) -> Any:
        lic = self.app.licensing
        tenant, actor = job.tenant_id, job.actor
        match spec:
            case ActivateJob(activation_key=key, request_id=request_id):
                outcome = await lic.activate(
                    tenant=tenant, activation_key=key, request_id=request_id, actor=actor, report=report
                )
            case ReactivateJob(cause=cause, request_id=request_id):
                outcome = await lic.reactivate(
                    tenant=tenant, request_id=request_id, actor=actor, report=report, cause=cause
                )
            case TransferJob(replace=replace, request_id=request_id):
                outcome = await lic.transfer(
                    tenant=tenant, replace=replace, request_id=request_id, actor=actor, report=report
                )
            case ImportJob(document=document):
                outcome = await lic.import_document(document=document, actor=actor, report=report)
            case TenantCheckJob(run_id=run_id):
                return await self._tenant_check(run_id, report)
            case _:
                assert_never(spec)
        return msgspec.to_builtins(outcome)

    async def _tenant_check(self, run_id: str, report: Callable[..., Awaitable[None]]) -> Any:
        """A tenant check asked for with ctl (resumed by run id after a failover); its progress
        at most every half second."""
        last = 0.0

        async def progress(done: int, total: int, tenant: str | None, outcome: str | None) -> None:
            nonlocal last
            if done not in (0, total) and time.monotonic() - last < 0.5:
                return
            last = time.monotonic()
            await report(
                "progress", f"{done}/{total}", done=done, total=total, tenant=tenant, outcome=outcome
            )

        check = self.app.tenant_check
        outcome = await check.run("manual", progress, run_id)
        return {
            "results": msgspec.to_builtins(outcome.results),
            "note": outcome.note,
            "looked_at": outcome.looked_at,
            "next_run": rfc3339(check.next_run) if check.next_run is not None else None,
        }
