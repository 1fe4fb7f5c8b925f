"""Delivering ``service_fatal`` (and other) events to the notifiers of top-level ``x-unistack.notify``.

A command receives the event as one JSON line on stdin; a webhook receives it as a JSON POST. A notifier that
fails or times out is reported back as a sentence, never raised: notification must not take the daemon down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unistack.config.model import Notifier


async def deliver(notifier: Notifier, event: Mapping[str, Any], cwd: Path, env: Mapping[str, str]) -> str | None:
    """Send ``event``; return None on success or a sentence saying what failed."""
    body = json.dumps(event, sort_keys=True, default=str)
    if notifier.command:
        return await _run_command(notifier.command, body, cwd, env, notifier.timeout)
    if notifier.webhook:
        return await _post(notifier.webhook, body, notifier.timeout)
    return "notifier has neither command nor webhook"


async def _run_command(
    argv: tuple[str, ...], body: str, cwd: Path, env: Mapping[str, str], timeout: float
) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        return f"notify command {argv[0]!r} could not run: {exc.strerror}"
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate((body + "\n").encode())
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"notify command {argv[0]!r} timed out after {timeout:g}s"
    if proc.returncode != 0:
        tail = out.decode("utf-8", "replace").strip()[-300:]
        return f"notify command {argv[0]!r} exited with code {proc.returncode}: {tail}"
    return None


async def _post(url: str, body: str, timeout: float) -> str | None:
    import httpx  # only when a webhook is configured: it is the heaviest import of the daemon

    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        return f"notify webhook {url} failed: {exc}"
    if response.is_error:
        return f"notify webhook {url} answered {response.status_code}"
    return None
