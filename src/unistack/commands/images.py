"""The image verbs of the Docker runtime: ``build`` (content-hashed, sizes reported) and ``images bootstrap``
(the base image made offline)."""

from __future__ import annotations

import click

from unistack.commands.options import Options, check_services, pass_options
from unistack.printer import columns


@click.command()
@click.option("--no-cache", is_flag=True, help="Build every step again (Docker's layer cache unused).")
@click.option("--bootstrap", is_flag=True, help="Make a missing base image offline (debootstrap).")
@click.argument("services", nargs=-1)
@pass_options
def build(opts: Options, no_cache: bool, bootstrap: bool, services: tuple[str, ...]) -> None:
    """Build the services' images (only those whose build context changed)."""
    from unistack.runtimes.docker import images
    from unistack.runtimes.docker.engine import client as docker_client

    project = opts.project()
    selected = check_services(project, services)
    plans = images.plans(project, selected or None)
    if not plans:
        click.echo(f"{project.name}: no service has a build section; nothing to build")
        return
    client = docker_client(timeout=600)
    results = []
    for plan in plans:
        tag = click.style(plan.image, fg="cyan", bold=True)
        click.echo(f"{tag}: checking {plan.context}")
        results.append(
            images.build(
                client,
                plan,
                lambda line, tag=tag: click.echo(f"{tag} | {line}"),  # type: ignore[misc]
                no_cache=no_cache,
                bootstrap=bootstrap,
            )
        )
    rows = [("IMAGE", "SERVICES", "RESULT", "TIME", "SIZE")]
    for r in results:
        what = "built" if r.built else "up to date"
        rows.append((r.image, ",".join(r.services), what, f"{r.seconds:.1f}s", images.human_size(r.size)))
    click.echo(columns(rows))


@click.group("images")
def images_group() -> None:
    """The base image and the project's images (the Docker runtime)."""


@images_group.command("bootstrap")
@click.option("--base", default="debian:bookworm-slim", show_default=True, help="Name to give the image.")
@click.option("--suite", default="bookworm", show_default=True, help="Debian release to install.")
@click.option("--mirror", envvar="UNISTACK_DEBIAN_MIRROR", metavar="URL", help="Debian mirror (deb.debian.org).")
@click.option("--force", is_flag=True, help="Make it again even if an image of that name exists.")
def images_bootstrap(base: str, suite: str, mirror: str | None, force: bool) -> None:
    """Make the base image offline: debootstrap a minimal Debian and `docker import` it."""
    from unistack.runtimes.docker import base_image, images
    from unistack.runtimes.docker.engine import client as docker_client

    client = docker_client(timeout=600)
    if not force and images.image_exists(client, base):
        click.echo(f"{base} is already here (use --force to make it again)")
        return
    result = base_image.bootstrap_base(
        client, base, suite=suite, mirror=mirror, emit=lambda line: click.echo(f"  {line}")
    )
    click.echo(f"{base}: made in {result.seconds:.0f} s ({images.human_size(result.size)})")
