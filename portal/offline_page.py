"""The reference portal's offline activation page: ``GET /offline`` and its upload.

One small HTML page with a plain ``multipart/form-data`` form: no script, no external
asset, so it works in an air-gapped browser. The uploaded request file is answered by
``offline.answer``, the code behind ``paragon-license-portal offline process`` (the same
service call, checks and problem codes as the API); the response file comes back as an
attachment named after the tenant and the request. A refusal is shown on the page in
words, with its problem code, and answered with the problem's HTTP status.
"""

from __future__ import annotations

import html
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Final, NamedTuple

from paragon_licensed.portal import offline
from paragon_licensed.portal.problems import PROBLEMS, Problem
from paragon_licensed.portal.service import PortalService

PATH: Final = "/offline"
FIELD: Final = "request"  # the form field that carries the request file
ALLOW: Final = "GET, POST"
HTML_TYPE: Final = "text/html; charset=utf-8"
RESPONSE_TYPE: Final = "text/plain; charset=utf-8"
# Nothing but the page itself: no script, no outside asset, the form posts to this portal.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_PART_MAX = 64

_TEMPLATE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Offline activation - Paragon License Portal</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 44em; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.5em; }}
pre {{ background: #f3f3f3; padding: 0.5em; overflow-x: auto; }}
form {{ border: 1px solid #bbb; padding: 1em; margin: 1.5em 0; }}
label {{ display: block; font-weight: bold; margin-bottom: 0.5em; }}
button {{ margin-top: 1em; font-size: 1em; padding: 0.3em 1em; }}
.error {{ border: 2px solid #b00020; background: #fdecee; padding: 0.5em 1em; }}
.error h2 {{ font-size: 1.1em; color: #b00020; margin: 0.3em 0; }}
</style>
</head>
<body>
<main>
<h1>Offline activation</h1>
{error}<p>For an installation that cannot reach the License Portal. On one of its
management nodes, write a request file:</p>
<pre>paragon-licensed ctl license reactivate --offline --out request.txt</pre>
<p>(or <code>ctl license activate --key KEY --offline --out request.txt</code> for a first
activation, <code>ctl license transfer --replace COMPUTER_ID --offline --out request.txt</code>
for a transfer). Upload it here: the response file downloads at once. Carry it back and
import it:</p>
<pre>paragon-licensed ctl license import RESPONSE_FILE</pre>
<form method="post" enctype="multipart/form-data">
<label for="{field}">Request file</label>
<input type="file" id="{field}" name="{field}" required>
<br>
<button type="submit" id="submit">Get the response file</button>
</form>
<p>Uploading the same request file again gives the same response file.</p>
</main>
</body>
</html>
"""

_ERROR: Final = """<section class="error" id="error" role="alert">
<h2>{title}</h2>
<p>{what}{detail}</p>
<p>Problem code: <code id="problem-code">{code}</code></p>
</section>
"""


class PageAnswer(NamedTuple):
    """What the server sends back: status, content type, body and extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def page(problem: Problem | None = None, file_name: str | None = None) -> PageAnswer:
    """The page, with ``problem`` shown above the form; its status is the problem's."""
    error = ""
    status = 200
    if problem is not None:
        status = problem.status
        what = f"{file_name}: " if file_name else ""
        error = _ERROR.format(
            title=html.escape(PROBLEMS[problem.code][1]),
            what=html.escape(what),
            detail=html.escape(problem.detail),
            code=html.escape(problem.code),
        )
    text = _TEMPLATE.format(error=error, field=FIELD)
    headers = dict(PAGE_HEADERS)
    if problem is not None and problem.code == "method_not_allowed":
        headers["Allow"] = ALLOW
    return PageAnswer(status, HTML_TYPE, text.encode("utf-8"), headers)


def handle(service: PortalService, method: str, content_type: str, raw: bytes) -> PageAnswer:
    """Answer one request to the page: the form, a response file, or the form with an error."""
    if method == "GET":
        return page()
    if method != "POST":
        return page(Problem("method_not_allowed", f"{PATH} answers GET and POST, not {method}"))
    file_name: str | None = None
    try:
        file_name, data = uploaded_file(content_type, raw)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(
                "bad_request", "the file is not text; upload the request file the daemon wrote"
            ) from None
        response = offline.answer(service, text)
    except Problem as problem:
        return page(problem, file_name)
    headers = {"Content-Disposition": f'attachment; filename="{download_name(response)}"'}
    headers["X-Content-Type-Options"] = "nosniff"
    return PageAnswer(200, RESPONSE_TYPE, response.text.encode("utf-8"), headers)


def uploaded_file(content_type: str, raw: bytes) -> tuple[str | None, bytes]:
    """The name and content of the form's request file; ``Problem('bad_request')`` if none."""
    if "multipart/form-data" not in content_type.lower() or "\r" in content_type or "\n" in content_type:
        raise Problem("bad_request", "send the request file from the page's form (multipart/form-data)")
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + raw
    )
    if isinstance(message, EmailMessage) and message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") != FIELD:
                continue
            name = part.get_filename()
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and data:
                return (name or None), data
            if name:
                raise Problem("bad_request", "the file is empty; upload the request file the daemon wrote")
    raise Problem("bad_request", "no file was uploaded; choose the request file, then send it")


def download_name(response: offline.Response) -> str:
    """``paragon-license-TENANT-KIND-REQUEST_ID.txt``, each part reduced to safe characters."""
    parts = (response.tenant_id, response.kind, response.request_id)
    safe = [_UNSAFE_NAME.sub("_", part)[:_NAME_PART_MAX].strip("._") or "_" for part in parts]
    return "paragon-license-" + "-".join(safe) + ".txt"
