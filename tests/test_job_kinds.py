"""Job kinds: one tagged union, stored as the jobs table always kept them (kind column, JSON params)."""

from __future__ import annotations

import msgspec
import pytest

from paragon_licensed.daemon.config import Duration
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


@pytest.mark.parametrize(
    ("spec", "kind", "params"),
    [
        (
            ActivateJob(request_id="r1", activation_key="K"),
            "activate",
            {"request_id": "r1", "activation_key": "K"},
        ),
        (ReactivateJob(request_id="r2"), "reactivate", {"request_id": "r2", "cause": "reactivation"}),
        (TransferJob(request_id="r3", replace="c"), "transfer", {"request_id": "r3", "replace": "c"}),
        (ImportJob(request_id="r4", document="D"), "import", {"request_id": "r4", "document": "D"}),
        (TenantCheckJob(request_id="r5", run_id="x"), "tenant_check", {"request_id": "r5", "run_id": "x"}),
    ],
)
def test_each_kind_is_stored_as_before_and_read_back(
    spec: JobSpec, kind: str, params: dict[str, str]
) -> None:
    assert stored(spec) == (kind, params)
    assert spec_of(kind, params) == spec


def test_a_deadline_travels_with_the_job() -> None:
    kind, params = stored(with_deadline(ReactivateJob(request_id="r"), Duration(30)))
    assert params["timeout"] == 30
    assert params["deadline"] > 0
    assert spec_of(kind, params).timeout == 30
    assert with_deadline(ReactivateJob(request_id="r"), None).deadline is None


def test_every_job_gets_its_own_request_id() -> None:
    assert ReactivateJob().request_id != ReactivateJob().request_id


@pytest.mark.parametrize(("kind", "params"), [("shred", {}), ("transfer", {"request_id": "r"})])
def test_an_unknown_kind_or_missing_parameter_is_refused(kind: str, params: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError):
        spec_of(kind, params)


def test_the_activation_key_is_not_in_the_repr() -> None:
    assert "SECRET" not in repr(ActivateJob(activation_key="SECRET"))
