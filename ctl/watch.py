"""`ctl watch`: state changes and notifications as they happen, until Ctrl-C."""

from __future__ import annotations

import json
import sys

from paragon_licensed.ctl.main import Context
from paragon_licensed.ctl.output import human, out, when


def watch(ctx: Context) -> int:
    with ctx.connect(timeout=None) as client:
        for reply in client.stream("Watch"):
            event = reply["event"]
            if ctx.json:
                sys.stdout.write(json.dumps(event) + "\n")
            else:
                tenant = f" [{event['tenant']}]" if event.get("tenant") else ""
                state = f" {human(event['state'])}:" if event.get("state") else ""
                note = event.get("notification")
                text = (
                    f"{note['severity'].upper()} {note['title']}: {note['text']}"
                    if note
                    else event["message"]
                )
                out(f"{when(event['at'])} {event['kind']}{tenant}{state} {text}")
            sys.stdout.flush()
    return 0
