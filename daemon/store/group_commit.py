"""Group commit: many callers' write transactions committed as one.

A mass reactivation installs thousands of licenses, each with its audit entry and
notifications in one transaction. Committed one by one, every install pays a
thread hop, a fence check and a durable commit (an fsync on SQLite). Here the
writes that arrive while one batch commits wait for the next, and a batch runs in
one database transaction on one worker thread:

- each caller's function runs inside its own SAVEPOINT: if it raises, only its own
  changes are rolled back and only it gets the error; the others commit;
- each distinct fence is checked once per batch (the lease row stays locked, or the
  SQLite write lock held, until the commit): a stale coordinator's writes fail with
  ``FencedOut`` and write nothing;
- a caller's result counts only once the batch committed: if the commit fails (the
  store went away), every caller in the batch gets that error, as each would have
  alone. Nothing a caller wrote is half-committed.

The atomicity of each caller's write is unchanged (all of it or none of it); callers
merely share the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from paragon_licensed.daemon.store.db import Fence, FencedOut, check_fence

if TYPE_CHECKING:
    from paragon_licensed.daemon.store.db import Database, Tx

T = TypeVar("T")
MAX_BATCH = 200


@dataclass(eq=False)
class _Write:
    fn: Callable[[Tx], Any]
    fence: Fence | None
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[_Write] = []
        self._flushing = False
        self.batches = 0  # transactions run, for benchmarks and tests

    async def write(self, fn: Callable[..., T], *args: Any, fence: Fence | None = None) -> T:
        """Run fn(tx, *args) in a write transaction shared with other callers (see the module)."""
        item = _Write(lambda tx: fn(tx, *args), fence)
        self._queue.append(item)
        if self._flushing:
            await item.done.wait()
        else:
            await self._flush()
        if item.error is not None:
            raise item.error
        result: T = item.result
        return result

    async def _flush(self) -> None:
        """The first caller commits batches until nobody waits; shielded, so that a cancelled
        caller never leaves the others waiting on a batch nobody runs."""
        self._flushing = True
        try:
            with anyio.CancelScope(shield=True):
                while self._queue:
                    batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                    await anyio.to_thread.run_sync(self._commit, batch, limiter=self.db.limiter)
                    self.batches += 1
                    for item in batch:
                        item.done.set()
        finally:
            self._flushing = False

    def _commit(self, batch: list[_Write]) -> None:
        try:
            with self.db.transaction(write=True) as tx:
                fences: dict[Fence, FencedOut | None] = {}
                for item in batch:
                    self._one(tx, item, fences)
        except BaseException as exc:  # the commit failed: nobody's write happened
            for item in batch:
                item.result, item.error = None, exc
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    def _one(tx: Tx, item: _Write, fences: dict[Fence, FencedOut | None]) -> None:
        if item.fence is not None:
            if item.fence not in fences:
                try:
                    check_fence(tx, item.fence)
                    fences[item.fence] = None
                except FencedOut as exc:
                    fences[item.fence] = exc
            refused = fences[item.fence]
            if refused is not None:
                item.error = refused
                return
        tx.execute("SAVEPOINT grouped")
        try:
            item.result = item.fn(tx)
        except Exception as exc:
            if tx.db.backend.is_unavailable(exc):
                raise  # the connection is gone: the whole batch fails
            tx.execute("ROLLBACK TO SAVEPOINT grouped")
            item.error = exc
        tx.execute("RELEASE SAVEPOINT grouped")
