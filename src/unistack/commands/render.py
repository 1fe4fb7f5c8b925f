"""``unistack render kubernetes``: the project's manifests for a Kubernetes cluster, on stdout or into a folder
with an apply script (``targets/kubernetes``). Never contacts a cluster; warnings go to stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from unistack.commands.options import Options, pass_options


@click.group()
def render() -> None:
    """Render the project for another platform (nothing is run or contacted)."""


@render.command()
@click.option("--env", "env_name", metavar="NAME", help="Environment (the same as the global --env).")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), help="Folder to write (else stdout).")
@click.option("--registry", metavar="URL", help="Registry prefix of every image (where the cluster pulls from).")
@click.option(
    "--entry",
    type=click.Choice(["ingress", "loadbalancer"]),
    default="ingress",
    show_default=True,
    help="How the published ports are reached: an Ingress, or a LoadBalancer Service.",
)
@click.option("--host", metavar="NAME", help="The Ingress rule's host name (default: any).")
@click.option("--ingress-class", metavar="NAME", help="The Ingress's ingressClassName (default: the cluster's).")
@click.option("--volume-size", default="1Gi", show_default=True, metavar="SIZE", help="Each volume claim's size.")
@pass_options
def kubernetes(
    opts: Options,
    env_name: str | None,
    output: Path | None,
    registry: str | None,
    entry: str,
    host: str | None,
    ingress_class: str | None,
    volume_size: str,
) -> None:
    """Kubernetes manifests: Deployments, StatefulSets, Jobs, Services, an Ingress, NetworkPolicies, Secrets and
    ConfigMaps (docs/deployment.md)."""
    from unistack.targets.kubernetes import render as renderer
    from unistack.targets.kubernetes import write

    if env_name:
        opts.env_name = env_name
    options = renderer.Options(
        registry=registry,
        entry="loadbalancer" if entry == "loadbalancer" else "ingress",
        host=host,
        ingress_class=ingress_class,
        volume_size=volume_size,
    )
    rendered = renderer.render(opts.project(), options, _locator(opts))
    for warning in rendered.warnings:
        click.echo(f"warning: {warning}", err=True)
    if output is None:
        click.echo(write.stream(rendered.all()), nl=False)
        return
    written = write.write(rendered, output)
    click.echo(f"wrote {len(written)} files to {output} (apply them in order: {output / 'apply.sh'})", err=True)


def _locator(opts: Options) -> Callable[[tuple[str, ...]], tuple[Path | None, int | None]]:
    """Where a refusal's key was written (the file and line; an overlay's when it won): the files are loaded
    again with their locations, once, on that path only."""
    from unistack.config.examining import examine
    from unistack.config.sources import Loaded

    loaded: list[Loaded] = []

    def locate(key: tuple[str, ...]) -> tuple[Path | None, int | None]:
        if not loaded:
            files, cwd = opts._where()  # the same files and folder as the project's
            loaded.append(
                examine(
                    files,
                    project_name=opts.project_name,
                    env_name=opts.env_name,
                    env_files=opts.env_files or None,
                    profiles=opts.profiles,
                    cwd=cwd,
                )
            )
        return loaded[0].origin(key)

    return locate
