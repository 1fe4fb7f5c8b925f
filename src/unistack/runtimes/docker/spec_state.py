"""One service's translation into container-create arguments while it is under way: pure, no engine, no files.

Owns what the translators of ``spec``, ``spec_networks`` and ``spec_mounts`` fill in (the create arguments, the
networks to join, the host folders bind mounts need) and the refusals they record, each a sentence naming the
service, the key and the fix; and ``service:NAME`` references turned into the container of that service.
Never decides what a key means (the translators do) and never talks to Docker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unistack.config.model import Project, Service
from unistack.runtimes.docker.resources import container_name

if TYPE_CHECKING:
    from unistack.runtimes.docker.spec_networks import Attachment


class Translation:
    """What one service's keys became so far: ``create`` filled, or a refusal (key, sentence) recorded for each."""

    def __init__(self, project: Project, service: Service) -> None:
        self.project, self.service = project, service
        self.spec = service.spec
        self.create: dict[str, Any] = {}
        self.attachments: list[Attachment] = []
        self.host_paths: list[str] = []
        self.refusals: list[tuple[str, str]] = []

    def refuse(self, key: str, why: str, fix: str = "remove it or use --runtime process") -> None:
        self.refusals.append((key, f"service {self.service.name!r}: {key} {why}; {fix}"))

    def put(self, kwarg: str, value: Any) -> None:
        self.create[kwarg] = value

    def service_reference(self, mode: str) -> str:
        """``service:NAME`` (network_mode, ipc) -> ``container:<that service's container>``."""
        if mode.startswith("service:"):
            other = self.project.services.get(mode.partition(":")[2])
            if other is None:
                raise ValueError(f"{mode!r} names no service of this project")
            return f"container:{container_name(self.project, other)}"
        return mode
