"""The reference portal's offline activation page over HTTP: the form, the download, the refusals.

The browser drives the same page in tests/test_offline_page_browser.py; here every answer
is checked byte by byte with a plain HTTP client: the page needs nothing from outside, a
request file comes back as a response file named after the tenant and the request, and
each refusal carries the API's problem code and status, in words, HTML-escaped.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from support.portal import PortalProcess

from paragon_licensed import licensefile as lf
from paragon_licensed.portal import offline_page
from paragon_licensed.portal.offline import Response

pytest_plugins = ["support.portal"]
pytestmark = pytest.mark.e2e

NODE_A = "11111111-1111-4111-8111-111111111111"
PortalFactory = Callable[..., PortalProcess]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def page_url(portal: PortalProcess) -> str:
    return f"http://127.0.0.1:{portal.port}/offline"


def request_file(kind: str, tenant: str, **fields: Any) -> str:
    body: dict[str, Any] = {
        "kind": kind,
        "tenant_id": tenant,
        "computer_ids": [NODE_A],
        "build": "3.2.1",
        "request_id": str(uuid.uuid4()),
        **fields,
    }
    return lf.encode_request(body, lf.request_header_lines(tenant, kind, datetime.now(UTC)))


def upload(http: requests.Session, portal: PortalProcess, text: str | bytes) -> requests.Response:
    files = {"request": ("request.txt", text, "text/plain")}
    return http.post(page_url(portal), files=files, timeout=30)


def error_of(answer: requests.Response) -> tuple[str, str]:
    """The problem code and the sentence shown on the page (unescaped)."""
    code = re.search(r'<code id="problem-code">([^<]*)</code>', answer.text)
    section = re.search(r'<section class="error"[^>]*>(.*?)</section>', answer.text, re.S)
    assert code, answer.text
    assert section, answer.text
    return html.unescape(code.group(1)), html.unescape(re.sub(r"<[^>]+>", "", section.group(1)))


def test_the_page_is_one_html_form_without_script_or_outside_assets(
    portal: PortalProcess, http: requests.Session
) -> None:
    answer = http.get(page_url(portal), timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    text = answer.text
    assert text.startswith("<!DOCTYPE html>")
    assert '<form method="post" enctype="multipart/form-data">' in text
    assert '<input type="file" id="request" name="request" required>' in text
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=", text), "the page loads nothing"
    assert "http" not in text.replace("http-equiv", "")
    assert 'id="error"' not in text
    # The page is not part of the API: no request log entry, no testing aid.
    assert portal.requests() == []


def test_an_uploaded_request_is_answered_with_a_named_response_file(
    portal: PortalProcess, http: requests.Session
) -> None:
    portal.add_order("KEY-PAGE", "acme")
    text = request_file("activation", "acme", activation_key="KEY-PAGE")
    request_id = lf.decode_request(text)["request_id"]
    answer = upload(http, portal, text)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["Content-Disposition"] == (
        f'attachment; filename="paragon-license-acme-activation-{request_id}.txt"'
    )
    payload = lf.verify(
        lf.extract_license(answer.text),
        portal.public_keys(),
        tenant_id="acme",
        integrity_key=lf.integrity_key("acme", [NODE_A]),
        now=datetime.now(UTC),
    )
    assert answer.text.startswith("# Paragon license, the response to an offline activation request\n")
    [logged] = portal.requests()
    assert (logged.source, logged.path, logged.status) == ("offline", "/api/v1/activations", 200)
    assert (logged.request_id, logged.license_id) == (request_id, payload.license_id)
    # The same file again gives the same license, as `offline process` and the API do.
    again = upload(http, portal, text)
    assert again.status_code == 200
    assert lf.extract_license(again.text) == lf.extract_license(answer.text)
    assert len(portal.licenses()) == 1


@pytest.mark.parametrize(
    ("content", "status", "code", "words"),
    [
        (b"this is not a request", 400, "bad_request", "request.txt: not a license request file"),
        (b"", 400, "bad_request", "the file is empty"),
        (b"\xff\xfe\x00garbage", 400, "bad_request", "the file is not text"),
    ],
)
def test_a_file_that_is_not_a_request_is_refused_on_the_page(
    portal: PortalProcess, http: requests.Session, content: bytes, status: int, code: str, words: str
) -> None:
    answer = upload(http, portal, content)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Content-Disposition" not in answer.headers
    shown_code, sentence = error_of(answer)
    assert shown_code == code
    assert "The request is not valid" in sentence
    assert words in sentence
    assert '<input type="file"' in answer.text, "the form is there to try again"
    assert portal.requests() == []


def test_refusals_carry_the_api_problem_code_and_are_escaped(
    portal: PortalProcess, http: requests.Session
) -> None:
    tenant = "<b>acme & co</b>"
    answer = upload(http, portal, request_file("reactivation", tenant))
    assert answer.status_code == 409
    code, sentence = error_of(answer)
    assert code == "integrity_mismatch"
    assert "No installation with these computer IDs" in sentence
    assert f"no installation of tenant {tenant} is activated with these computer IDs" in sentence
    assert "<b>acme" not in answer.text
    assert "&lt;b&gt;acme &amp; co&lt;/b&gt;" in answer.text
    [logged] = portal.requests()
    assert (logged.source, logged.code, logged.status) == ("offline", "integrity_mismatch", 409)
    # The API answers the same body with the same problem.
    body = lf.decode_request(request_file("reactivation", tenant))
    body.pop("kind")
    api = http.post(portal.url + "/reactivations", json=body, timeout=30)
    assert (api.status_code, api.json()["code"]) == (409, "integrity_mismatch")

    unknown = upload(http, portal, request_file("activation", "acme", activation_key="NO-SUCH-KEY"))
    assert unknown.status_code == 404
    assert error_of(unknown)[0] == "unknown_activation_key"


def test_no_file_a_wrong_method_or_an_oversized_upload_are_answered_in_html(
    portal: PortalProcess, http: requests.Session
) -> None:
    empty_form = http.post(page_url(portal), data={"other": "x"}, files={"x": ("", b"")}, timeout=30)
    assert empty_form.status_code == 400
    assert "no file was uploaded" in error_of(empty_form)[1]
    not_a_form = http.post(page_url(portal), data=b"{}", timeout=30)
    assert not_a_form.status_code == 400
    assert "multipart/form-data" in error_of(not_a_form)[1]
    put = http.put(page_url(portal), timeout=30)
    assert (put.status_code, put.headers["Allow"]) == (405, "GET, POST")
    assert error_of(put)[0] == "method_not_allowed"
    big = upload(http, portal, b"x" * (1024 * 1024 + 1))
    assert big.status_code == 413
    assert big.headers["Content-Type"] == "text/html; charset=utf-8"
    assert error_of(big)[0] == "payload_too_large"


def test_injected_api_failures_leave_the_page_alone(portal_factory: PortalFactory) -> None:
    portal = portal_factory(serve_args=["--fail-rate", "1"])
    portal.add_order("KEY-PAGE", "acme")
    with requests.Session() as http:
        http.trust_env = False
        answer = upload(http, portal, request_file("activation", "acme", activation_key="KEY-PAGE"))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("tenant", "request_id", "name"),
    [
        ("acme-print", "0b7e2f7a", "paragon-license-acme-print-reactivation-0b7e2f7a.txt"),
        ('a "b"/../c', "r 1", "paragon-license-a_b_.._c-reactivation-r_1.txt"),
        ("..", "x" * 100, "paragon-license-_-reactivation-" + "x" * 64 + ".txt"),
    ],
)
def test_download_names_keep_to_safe_characters(tenant: str, request_id: str, name: str) -> None:
    assert offline_page.download_name(Response("", "reactivation", tenant, request_id)) == name
