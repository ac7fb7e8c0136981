"""The kinds of job any node hands to the coordinator, as one tagged union.

A job is stored as its ``kind`` (a column of its own) and its parameters (a JSON
object); ``spec_of`` turns the two back into one of these Structs, and the
runner dispatches on them with an exhaustive ``match``. The stored JSON is the
same as before the kinds were typed: each Struct's fields are the keys.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec


class _Job(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    # Every attempt of the job asks the portal with this id, so a job taken over after a
    # failover gets the answer the portal already gave.
    request_id: str = msgspec.field(default_factory=lambda: str(uuid.uuid4()))
    # The caller's deadline (Unix time) and its length; a job still running then is stopped.
    deadline: float | None = None
    timeout: float | None = None


class ActivateJob(_Job, frozen=True, tag="activate"):
    activation_key: str

    def __repr__(self) -> str:  # the key is a secret
        return f"ActivateJob(request_id={self.request_id!r}, activation_key='<redacted>')"


class ReactivateJob(_Job, frozen=True, tag="reactivate"):
    cause: str = "reactivation"


class TransferJob(_Job, frozen=True, tag="transfer"):
    replace: str


class ImportJob(_Job, frozen=True, tag="import"):
    document: str


class TenantCheckJob(_Job, frozen=True, tag="tenant_check"):
    run_id: str


JobSpec = ActivateJob | ReactivateJob | TransferJob | ImportJob | TenantCheckJob


def with_deadline(spec: JobSpec, timeout: float | None) -> JobSpec:
    """The spec carrying its caller's deadline, ``timeout`` seconds from now (None: no deadline)."""
    if timeout is None:
        return spec
    seconds = float(timeout)  # a configured Duration is a float subclass msgspec does not encode
    return msgspec.structs.replace(spec, deadline=time.time() + seconds, timeout=seconds)


def stored(spec: JobSpec) -> tuple[str, dict[str, Any]]:
    """(kind, parameters) as the jobs table keeps them."""
    params = msgspec.to_builtins(spec)
    kind = str(params.pop("kind"))
    return kind, {k: v for k, v in params.items() if v is not None}


def spec_of(kind: str, params: dict[str, Any]) -> JobSpec:
    """The typed job of a stored row; raises msgspec.ValidationError for an unknown kind or bad params."""
    spec: JobSpec = msgspec.convert({**params, "kind": kind}, JobSpec)
    return spec
