"""Portal API v1 against the real ``paragon-license-portal serve`` process, over HTTP."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf

pytest_plugins = ["support.portal"]

NODE_A = "11111111-1111-4111-8111-111111111111"
NODE_B = "22222222-2222-4222-8222-222222222222"
NODE_C = "33333333-3333-4333-8333-333333333333"
PortalFactory = Callable[..., PortalProcess]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """One keep-alive client session that ignores proxy settings of the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


class Api:
    """Calls to one portal, with fresh request IDs unless given."""

    def __init__(self, portal: PortalProcess, http: requests.Session) -> None:
        self.portal = portal
        self.http = http

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.portal.url + path, json=body, timeout=10)

    def activate(
        self, key: str, tenant: str, ids: list[str], *, build: str = "3.2.1", request_id: str = ""
    ) -> requests.Response:
        return self.post(
            "/activations",
            {
                "activation_key": key,
                "tenant_id": tenant,
                "computer_ids": ids,
                "build": build,
                "request_id": request_id or str(uuid.uuid4()),
            },
        )

    def reactivate(
        self, tenant: str, ids: list[str], *, build: str = "3.2.1", request_id: str = ""
    ) -> requests.Response:
        return self.post(
            "/reactivations",
            {
                "tenant_id": tenant,
                "computer_ids": ids,
                "build": build,
                "request_id": request_id or str(uuid.uuid4()),
            },
        )

    def transfer(self, tenant: str, old: list[str], new: list[str]) -> requests.Response:
        return self.post(
            "/transfers",
            {
                "tenant_id": tenant,
                "old_computer_ids": old,
                "new_computer_ids": new,
                "request_id": str(uuid.uuid4()),
            },
        )

    def license(self, response: requests.Response) -> lf.Payload:
        """The verified payload of a successful answer."""
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        return lf.inspect(response.json()["license"], self.portal.public_keys())


@pytest.fixture
def api(portal: PortalProcess, http: requests.Session) -> Api:
    return Api(portal, http)


def problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an ``application/problem+json`` answer and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert body["title"]
    assert body["detail"]
    return body


def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:8]}"


def in_days(days: int) -> date:
    return (datetime.now(UTC) + timedelta(days=days)).date()


# Activation -------------------------------------------------------------------------


def test_activation_binds_the_key_and_issues_a_license(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    first = portal.add_order("KEY-1", t, product="Paragon Print", valid_until=in_days(200))
    second = portal.add_order("KEY-1", t, product="Paragon Scan", quantity=5, features={"ocr": "yes"})
    before = datetime.now(UTC).replace(microsecond=0)
    payload = api.license(api.activate("KEY-1", t, [NODE_B, NODE_A], build="3.2.1"))
    assert payload.format == 1
    uuid.UUID(payload.license_id)
    assert payload.support_id.startswith("SUP-")
    assert len(payload.support_id) == len("SUP-XXXX-XXXX")
    assert payload.tenant_id == t
    assert payload.build == "3.2.1"
    assert payload.computer_ids == (NODE_A, NODE_B)
    assert payload.integrity_key == lf.integrity_key(t, [NODE_A, NODE_B])
    assert [o.order_id for o in payload.orders] == [first, second]
    assert payload.orders[1].product == "Paragon Scan"
    assert payload.orders[1].quantity == 5
    assert payload.orders[1].features == {"ocr": "yes"}
    assert payload.orders[0].valid_until == datetime.combine(
        in_days(200), datetime.min.time(), UTC
    ) + timedelta(hours=23, minutes=59, seconds=59)
    assert before <= payload.issued_at <= datetime.now(UTC)
    assert payload.valid_until == payload.issued_at + timedelta(days=30)
    assert payload.supersedes is None
    lf.verify(
        api.activate("KEY-1", t, [NODE_A, NODE_B]).json()["license"],
        portal.public_keys(),
        tenant_id=t,
        integrity_key=lf.integrity_key(t, [NODE_A, NODE_B]),
        now=datetime.now(UTC),
    )


def test_unknown_activation_key_and_key_of_another_tenant(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-OWN", t)
    problem(api.activate("KEY-NOPE", t, [NODE_A]), 404, "unknown_activation_key")
    problem(api.activate("KEY-OWN", tenant(), [NODE_A]), 404, "unknown_activation_key")
    assert portal.licenses() == []


def test_key_bound_to_another_installation_is_in_use(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A]))
    body = problem(api.activate("KEY-1", t, [NODE_B]), 409, "activation_key_in_use")
    assert "transfer" in body["detail"]
    # The same installation may activate with its key again.
    api.license(api.activate("KEY-1", t, [NODE_A]))


def test_second_key_joins_the_installation_and_keeps_its_support_id(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    print_order = portal.add_order("KEY-PRINT", t)
    scan_order = portal.add_order("KEY-SCAN", t, product="Paragon Scan")
    one = api.license(api.activate("KEY-PRINT", t, [NODE_A]))
    two = api.license(api.activate("KEY-SCAN", t, [NODE_A]))
    assert two.support_id == one.support_id
    assert [o.order_id for o in two.orders] == [print_order, scan_order]
    assert two.supersedes == one.license_id


def test_other_installations_get_other_support_ids(api: Api, portal: PortalProcess) -> None:
    t, u = tenant(), tenant()
    portal.add_order("KEY-T", t)
    portal.add_order("KEY-U", u)
    one = api.license(api.activate("KEY-T", t, [NODE_A]))
    two = api.license(api.activate("KEY-U", u, [NODE_A]))  # same nodes, another tenant
    assert one.support_id != two.support_id
    assert one.integrity_key != two.integrity_key


# Reactivation -----------------------------------------------------------------------


def test_reactivation_covers_every_order_and_supersedes(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    a = portal.add_order("KEY-A", t)
    b = portal.add_order("KEY-B", t)
    first = api.license(api.activate("KEY-A", t, [NODE_A]))
    second = api.license(api.activate("KEY-B", t, [NODE_A]))
    third = api.license(api.reactivate(t, [NODE_A], build="3.3.0"))
    assert [o.order_id for o in third.orders] == [a, b]
    assert third.build == "3.3.0"
    assert third.support_id == first.support_id
    assert third.supersedes == second.license_id
    assert len({first.license_id, second.license_id, third.license_id}) == 3


def test_orders_added_later_appear_on_reactivation(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    a = portal.add_order("KEY-1", t)
    assert [o.order_id for o in api.license(api.activate("KEY-1", t, [NODE_A])).orders] == [a]
    b = portal.add_order("KEY-1", t, product="Paragon Mobile")
    assert [o.order_id for o in api.license(api.reactivate(t, [NODE_A])).orders] == [a, b]


def test_reactivation_of_unknown_installation_is_integrity_mismatch(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A, NODE_B]))
    body = problem(api.reactivate(t, [NODE_C]), 409, "integrity_mismatch")
    assert "activate" in body["detail"]
    assert "transfer" in body["detail"]
    # Fewer nodes than bound is not a subset match either.
    problem(api.reactivate(t, [NODE_A]), 409, "integrity_mismatch")
    problem(api.reactivate(tenant(), [NODE_A, NODE_B]), 409, "integrity_mismatch")


def test_a_joined_management_node_is_accepted_and_rebound(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    first = api.license(api.activate("KEY-1", t, [NODE_A]))
    joined = api.license(api.reactivate(t, [NODE_A, NODE_B]))
    assert joined.computer_ids == (NODE_A, NODE_B)
    assert joined.integrity_key == lf.integrity_key(t, [NODE_A, NODE_B])
    assert joined.support_id == first.support_id
    assert joined.supersedes == first.license_id
    # The installation now is the larger set: the old one alone no longer matches.
    problem(api.reactivate(t, [NODE_A]), 409, "integrity_mismatch")
    api.license(api.reactivate(t, [NODE_A, NODE_B]))
    # No transfer was counted for the join.
    assert portal.requests(path="/api/v1/transfers") == []


# Transfers --------------------------------------------------------------------------


def test_transfer_rebinds_the_installation(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    order = portal.add_order("KEY-1", t)
    first = api.license(api.activate("KEY-1", t, [NODE_A], build="3.2.1"))
    moved = api.license(api.transfer(t, [NODE_A], [NODE_B, NODE_C]))
    assert moved.computer_ids == (NODE_B, NODE_C)
    assert moved.integrity_key == lf.integrity_key(t, [NODE_B, NODE_C])
    assert moved.support_id == first.support_id
    assert moved.build == "3.2.1"
    assert [o.order_id for o in moved.orders] == [order]
    assert moved.supersedes == first.license_id
    problem(api.reactivate(t, [NODE_A]), 409, "integrity_mismatch")
    api.license(api.reactivate(t, [NODE_B, NODE_C]))


def test_transfer_from_unknown_computer_ids_is_integrity_mismatch(api: Api, portal: PortalProcess) -> None:
    problem(api.transfer(tenant(), [NODE_A], [NODE_B]), 409, "integrity_mismatch")


def test_transfer_onto_another_installation_is_refused(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    portal.add_order("KEY-2", t)
    api.license(api.activate("KEY-1", t, [NODE_A]))
    api.license(api.activate("KEY-2", t, [NODE_B]))
    problem(api.transfer(t, [NODE_A], [NODE_B]), 409, "integrity_key_in_use")
    problem(api.transfer(t, [NODE_A], [NODE_A]), 400, "bad_request")


def test_default_transfer_limit_is_two_per_year(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A]))
    api.license(api.transfer(t, [NODE_A], [NODE_B]))
    api.license(api.transfer(t, [NODE_B], [NODE_C]))
    body = problem(api.transfer(t, [NODE_C], [NODE_A]), 409, "transfer_limit_reached")
    assert "2 times in 365 days" in body["detail"]
    # The first transfer leaves the window 365 days after it was made.
    with portal.db.read() as tx:
        (first_transfer,) = tx.conn.execute("SELECT at FROM transfers ORDER BY id LIMIT 1").fetchone()
    next_possible = datetime.fromisoformat(first_transfer) + timedelta(days=365)
    assert f"possible from {next_possible.strftime('%Y-%m-%dT%H:%M:%SZ')}" in body["detail"]
    # The refused transfer changed nothing.
    api.license(api.reactivate(t, [NODE_C]))


def test_transfer_limit_option(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(serve_args=["--transfer-limit", "0"])
    api = Api(portal, http)
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A]))
    body = problem(api.transfer(t, [NODE_A], [NODE_B]), 409, "transfer_limit_reached")
    assert "0 times" in body["detail"]


# Orders that ended, and the license period ----------------------------------------


def test_ended_orders_are_left_out(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t, valid_until=in_days(-1))
    live = portal.add_order("KEY-1", t, valid_until=in_days(10))
    payload = api.license(api.activate("KEY-1", t, [NODE_A]))
    assert [o.order_id for o in payload.orders] == [live]
    # The license ends with its earliest order, before the 30 days.
    assert payload.valid_until == payload.orders[0].valid_until


def test_all_orders_ended_is_subscription_ended(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t, valid_until=in_days(-1))
    body = problem(api.activate("KEY-1", t, [NODE_A]), 403, "subscription_ended")
    assert "renew" in body["detail"]
    assert portal.licenses(t) == []
    # The refused activation bound nothing: a renewed order activates normally.
    portal.add_order("KEY-1", t, valid_until=in_days(100))
    api.license(api.activate("KEY-1", t, [NODE_A]))


def test_subscription_ended_on_reactivation(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t, valid_until=in_days(5))
    api.license(api.activate("KEY-1", t, [NODE_A]))
    with portal.db.write() as tx:  # the order ends, as time passing would make it
        tx.conn.execute("UPDATE orders SET valid_until = '2000-01-01T00:00:00Z'")
    problem(api.reactivate(t, [NODE_A]), 403, "subscription_ended")


def test_license_days_caps_validity(portal_factory: PortalFactory, http: requests.Session) -> None:
    portal = portal_factory(serve_args=["--license-days", "7"])
    api = Api(portal, http)
    t = tenant()
    portal.add_order("KEY-1", t, valid_until=in_days(300))
    payload = api.license(api.activate("KEY-1", t, [NODE_A]))
    assert payload.valid_until == payload.issued_at + timedelta(days=7)


# Current license --------------------------------------------------------------------


def test_current_license(api: Api, portal: PortalProcess, http: requests.Session) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    ikey = lf.integrity_key(t, [NODE_A])
    url = portal.url + "/licenses/current"
    params = {"tenant_id": t, "integrity_key": ikey}
    problem(http.get(url, params=params, timeout=10), 404, "not_found")
    api.license(api.activate("KEY-1", t, [NODE_A]))
    latest = api.license(api.reactivate(t, [NODE_A]))
    answer = http.get(url, params=params, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["license_id"] == latest.license_id
    assert answer.json()["issued_at"] == latest.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    problem(http.get(url, params={"tenant_id": tenant(), "integrity_key": ikey}), 404, "not_found")
    body = problem(http.get(url, params={"tenant_id": t}, timeout=10), 400, "bad_request")
    assert "integrity_key" in body["detail"]


def query(http: requests.Session, portal: PortalProcess, body: Any) -> requests.Response:
    return http.post(portal.url + "/licenses/current/query", json=body, timeout=30)


def test_current_license_query_answers_each_installation_in_order(
    api: Api, portal: PortalProcess, http: requests.Session
) -> None:
    licensed, reactivated, unlicensed = tenant(), tenant(), tenant()
    for n, t in enumerate((licensed, reactivated, unlicensed)):
        portal.add_order(f"KEY-{n}", t)
    first = api.license(api.activate("KEY-0", licensed, [NODE_A]))
    api.license(api.activate("KEY-1", reactivated, [NODE_A, NODE_B]))
    latest = api.license(api.reactivate(reactivated, [NODE_A, NODE_B]))
    asked = [
        {"tenant_id": reactivated, "integrity_key": latest.integrity_key},
        {"tenant_id": unlicensed, "integrity_key": lf.integrity_key(unlicensed, [NODE_A])},
        {"tenant_id": licensed, "integrity_key": first.integrity_key},
        # Another tenant's integrity key, and a key no installation has: no license, not an error.
        {"tenant_id": unlicensed, "integrity_key": first.integrity_key},
        {"tenant_id": licensed, "integrity_key": "0" * 64},
    ]
    answer = query(http, portal, {"tenants": asked, "added_later": "ignored"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    tenants = answer.json()["tenants"]
    assert [{"tenant_id": a["tenant_id"], "integrity_key": a["integrity_key"]} for a in tenants] == asked
    assert [a["current"] and a["current"]["license_id"] for a in tenants] == [
        latest.license_id,
        None,
        first.license_id,
        None,
        None,
    ]
    # Each answer is exactly what GET /licenses/current answers for the same installation.
    single = http.get(portal.url + "/licenses/current", params=asked[0], timeout=10).json()
    assert tenants[0]["current"] == single
    assert single["issued_at"] == latest.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert single["valid_until"] == latest.valid_until.strftime("%Y-%m-%dT%H:%M:%SZ")

    # One request log entry for the whole query, with the number of installations asked about.
    [logged] = portal.requests(path="/api/v1/licenses/current/query")
    assert (logged.method, logged.status, logged.asked, logged.tenant_id) == ("POST", 200, 5, None)
    assert query(http, portal, {"tenants": []}).json() == {"tenants": []}


def test_current_license_query_takes_at_most_1000_installations(
    api: Api, portal: PortalProcess, http: requests.Session
) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    payload = api.license(api.activate("KEY-1", t, [NODE_A]))
    full = [{"tenant_id": f"other-{n}", "integrity_key": f"{n:064x}"} for n in range(999)]
    full.append({"tenant_id": t, "integrity_key": payload.integrity_key})
    answer = query(http, portal, {"tenants": full})
    assert answer.status_code == 200, answer.text
    tenants = answer.json()["tenants"]
    assert len(tenants) == 1000
    assert tenants[-1]["current"]["license_id"] == payload.license_id
    assert all(a["current"] is None for a in tenants[:-1])

    over = problem(query(http, portal, {"tenants": [*full, full[0]]}), 400, "bad_request")
    assert "1001" in over["detail"]
    assert "at most 1000" in over["detail"]
    assert "split" in over["detail"]
    logged = portal.requests(path="/api/v1/licenses/current/query")
    assert [(r.status, r.asked) for r in logged] == [(200, 1000), (400, 1001)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tenants"),
        ({"tenants": "acme"}, "tenants"),
        ({"tenants": ["acme"]}, "tenants[0]"),
        ({"tenants": [{"tenant_id": "acme"}]}, "integrity_key"),
        ({"tenants": [{"tenant_id": "acme", "integrity_key": 7}]}, "integrity_key"),
        ({"tenants": [{"tenant_id": "", "integrity_key": "k"}]}, "tenant_id"),
        ({"tenants": [{"tenant_id": "a\nb", "integrity_key": "k"}]}, "tenant_id"),
        ({"tenants": [{"tenant_id": "t", "integrity_key": "k" * 257}]}, "integrity_key"),
    ],
)
def test_bad_current_license_query_is_bad_request_naming_the_field(
    http: requests.Session, portal: PortalProcess, body: dict[str, Any], field: str
) -> None:
    answer = problem(query(http, portal, body), 400, "bad_request")
    assert field in answer["detail"]
    assert portal.requests()[-1].code == "bad_request"


def test_current_license_query_is_post_only_and_refuses_bad_json(
    http: requests.Session, portal: PortalProcess
) -> None:
    url = portal.url + "/licenses/current/query"
    wrong = http.get(url, timeout=10)
    problem(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"
    problem(http.post(url, data=b"{nope", timeout=10), 400, "bad_request")
    problem(http.post(url, data=b"[]", timeout=10), 400, "bad_request")


def test_portal_without_the_query_answers_not_found(
    portal_factory: PortalFactory, http: requests.Session
) -> None:
    portal = portal_factory(serve_args=["--without-query"])
    body = problem(query(http, portal, {"tenants": []}), 404, "not_found")
    assert "/licenses/current/query" in body["detail"]
    assert (
        http.get(
            portal.url + "/licenses/current", params={"tenant_id": "t", "integrity_key": "k"}
        ).status_code
        == 404
    )


# Bad requests and unknown paths ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant_id": "t", "computer_ids": ["a"], "build": "1"}, "request_id"),
        ({"tenant_id": "t", "computer_ids": ["a"], "build": 1, "request_id": "r"}, "build"),
        ({"tenant_id": "t", "computer_ids": [], "build": "1", "request_id": "r"}, "computer_ids"),
        ({"tenant_id": "t", "computer_ids": "a", "build": "1", "request_id": "r"}, "computer_ids"),
        ({"tenant_id": "a\nb", "computer_ids": ["a"], "build": "1", "request_id": "r"}, "tenant_id"),
        ({"tenant_id": "t", "computer_ids": ["a", "a"], "build": "1", "request_id": "r"}, "computer_ids"),
    ],
)
def test_bad_fields_are_bad_request_naming_the_field(
    api: Api, portal: PortalProcess, body: dict[str, Any], field: str
) -> None:
    answer = problem(api.post("/reactivations", body), 400, "bad_request")
    assert field in answer["detail"]
    assert portal.requests()[-1].code == "bad_request"


def test_bad_json_is_bad_request(api: Api, http: requests.Session, portal: PortalProcess) -> None:
    url = portal.url + "/activations"
    problem(http.post(url, data=b"{nope", timeout=10), 400, "bad_request")
    problem(http.post(url, data=b"[1, 2]", timeout=10), 400, "bad_request")
    problem(http.post(url, timeout=10), 400, "bad_request")
    # The connection stays usable after refusals.
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A]))


def test_unknown_path_and_wrong_method(http: requests.Session, portal: PortalProcess) -> None:
    problem(http.get(portal.url + "/nothing", timeout=10), 404, "not_found")
    problem(http.post(portal.url + "/licenses", json={}, timeout=10), 404, "not_found")
    wrong = http.get(portal.url + "/activations", timeout=10)
    problem(wrong, 405, "method_not_allowed")
    assert wrong.headers["Allow"] == "POST"


def test_oversized_body_is_refused(http: requests.Session, portal: PortalProcess) -> None:
    answer = http.post(portal.url + "/activations", data=b"x" * (1024 * 1024 + 1), timeout=10)
    problem(answer, 413, "payload_too_large")


# Idempotency ------------------------------------------------------------------------


def test_same_request_id_replays_the_stored_answer(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    first = api.activate("KEY-1", t, [NODE_A], request_id="req-1")
    again = api.activate("KEY-1", t, [NODE_A], request_id="req-1")
    assert again.status_code == first.status_code == 200
    assert again.content == first.content
    assert len(portal.licenses(t)) == 1
    log = portal.requests(request_id="req-1")
    assert [(r.status, r.replay) for r in log] == [(200, False), (200, True)]
    assert log[0].license_id == log[1].license_id == api.license(first).license_id
    assert log[0].integrity_key == lf.integrity_key(t, [NODE_A])
    assert log[0].computer_ids == [NODE_A]
    assert log[0].tenant_id == t


def test_refusals_replay_too(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    first = api.activate("KEY-LATER", t, [NODE_A], request_id="req-2")
    problem(first, 404, "unknown_activation_key")
    portal.add_order("KEY-LATER", t)
    again = api.activate("KEY-LATER", t, [NODE_A], request_id="req-2")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    api.license(api.activate("KEY-LATER", t, [NODE_A]))  # a new request ID is a new request


def test_request_id_reused_for_another_body(api: Api, portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    api.license(api.activate("KEY-1", t, [NODE_A], request_id="req-3"))
    problem(api.activate("KEY-1", t, [NODE_A], build="9", request_id="req-3"), 409, "request_id_reused")
    problem(api.reactivate(t, [NODE_A], request_id="req-3"), 409, "request_id_reused")
    assert len(portal.licenses(t)) == 1


def test_concurrent_retries_issue_one_license(portal: PortalProcess) -> None:
    t = tenant()
    portal.add_order("KEY-1", t)
    body = {
        "activation_key": "KEY-1",
        "tenant_id": t,
        "computer_ids": [NODE_A],
        "build": "1",
        "request_id": "req-race",
    }
    answers: list[bytes] = []

    def call() -> None:
        with requests.Session() as session:
            session.trust_env = False
            answers.append(session.post(portal.url + "/activations", json=body, timeout=10).content)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1
    assert len(answers) == 8
    assert len(portal.licenses(t)) == 1
    assert sum(not r.replay for r in portal.requests(request_id="req-race")) == 1


# Bulk seeding -----------------------------------------------------------------------


def test_seed_tenants_in_one_transaction(api: Api, portal: PortalProcess) -> None:
    pairs = portal.db.seed_tenants(2000, tenant_prefix="bulk-", key_prefix="BULK-", valid_until=in_days(90))
    assert pairs[0] == ("bulk-0", "BULK-0")
    assert len(pairs) == 2000
    payload = api.license(api.activate("BULK-1999", "bulk-1999", [NODE_A]))
    assert payload.orders[0].product == "Paragon Print"


def test_a_database_of_the_previous_schema_gets_the_asked_column(tmp_path: Path) -> None:
    import sqlite3

    from paragon_licensed.portal import db as portal_db
    from paragon_licensed.portal import requestlog
    from paragon_licensed.portal.requestlog import RequestRecord

    path = tmp_path / "portal.db"
    # The request log as schema 1 made it: no `asked` column.
    old_log = re.sub(r",\s*-- time spent[^\n]*\n\s*asked INTEGER[^\n]*", "", requestlog.SCHEMA)
    assert "asked" not in old_log
    conn = sqlite3.connect(path)
    conn.executescript(portal_db.SCHEMA + old_log + "PRAGMA user_version = 1;")
    conn.close()
    db = portal_db.PortalDB(path)
    try:
        db.log_request(
            RequestRecord(method="POST", path="/api/v1/licenses/current/query", status=200, asked=3)
        )
        assert [r.asked for r in db.requests()] == [3]
    finally:
        db.close()
