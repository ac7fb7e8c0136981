"""What the coordinator does once it takes over: first activations from the configuration's seeds.

(Upgrade and restore detection extend this module.)
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from paragon_licensed.daemon import log
from paragon_licensed.daemon.protocol import VarlinkError

if TYPE_CHECKING:
    from paragon_licensed.daemon.app import Daemon

ACTOR = "coordinator"


class Startup:
    def __init__(self, app: Daemon) -> None:
        self.app = app

    async def run(self) -> None:
        await self.activate_seeds()

    async def activate_seeds(self) -> None:
        """Activate each seeded tenant that has an activation key and no license yet."""
        app = self.app
        for seed in app.config.tenants:
            view = app.view.tenants.get(seed.id)
            if not seed.activation_key or view is None or view.state != "unlicensed":
                continue
            app.set_activity(f"activating tenant {seed.id}")

            async def report(step: str, message: str, tenant: str = seed.id) -> None:
                log.info(message, tenant=tenant, step=step)

            try:
                await app.licensing.activate(
                    seed.id, seed.activation_key, str(uuid.uuid4()), f"{ACTOR} {app.node} (seed)", report
                )
            except VarlinkError as exc:
                log.warning("activation from the configuration failed", tenant=seed.id, reason=exc.sentence())
        app.set_activity("idle")
