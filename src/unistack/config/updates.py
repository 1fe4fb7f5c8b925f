"""How a changed service is replaced: Compose's ``deploy.update_config.order``, read from the resolved service.

The Compose schema already allows only ``stop-first`` (the default) and ``start-first`` there; this module owns
the reading, so the engine (which plans the update) and the process runtime (which gives a start-first service
a socket of its own) read it one way. Data only: no I/O.
"""

from __future__ import annotations

from typing import Literal

from unistack.config.model import Service

UpdateOrder = Literal["stop-first", "start-first"]


def update_order(service: Service) -> UpdateOrder:
    deploy = service.spec.get("deploy") or {}
    order = (deploy.get("update_config") or {}).get("order") if isinstance(deploy, dict) else None
    return "start-first" if order == "start-first" else "stop-first"
