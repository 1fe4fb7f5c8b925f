"""A host-process service's environment: the OS environment, then its ``environment``, then
``x-unistack.process.environment``, then the ``UNISTACK_*`` variables of its instance. Imports nothing heavy: the
process runtime starts services with it, and a backup runs a database's own tools with it (``process_data.py``)
without loading the runtime. Never starts anything."""

from __future__ import annotations

from collections.abc import Mapping

from unistack.config.model import Project, Service


def instance_variables(project: Project) -> dict[str, str]:
    return {
        "UNISTACK_PROJECT": project.name,
        "UNISTACK_ENV": project.environment,
        "UNISTACK_STATE_DIR": str(project.state_dir),
        "UNISTACK_RUN_DIR": str(project.run_dir),
        "UNISTACK_VOLUMES_DIR": str(project.volumes_dir),
    }


def service_environment(base: Mapping[str, str], project: Project, service: Service) -> dict[str, str]:
    env = dict(base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(service.environment)
    if service.process is not None:
        env.update(service.process.environment)
    env.update(instance_variables(project))
    env["UNISTACK_SERVICE"] = service.name
    return env
