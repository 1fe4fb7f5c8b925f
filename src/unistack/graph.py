"""The dependency graph of a project's services: pure functions, no I/O.

Owns start order (dependencies first), stop order (dependents first), the layers that can start in parallel,
and cycle detection that names the loop. Never looks at files, processes or the clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    """The graph has a cycle; ``loop`` is the services along it, first repeated at the end."""

    def __init__(self, loop: list[str]) -> None:
        self.loop = loop
        super().__init__("dependency cycle: " + " -> ".join(loop))


Graph = Mapping[str, Iterable[str]]  # service -> the services it depends on


def find_cycle(graph: Graph) -> list[str] | None:
    """Return one loop as ``[a, b, a]`` or None. Edges to names outside the graph are ignored."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep not in colour:
                continue
            if colour[dep] == grey:
                return [*stack[stack.index(dep) :], dep]
            if colour[dep] == white and (loop := visit(dep)):
                return loop
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white and (loop := visit(node)):
            return loop
    return None


def layers(graph: Graph) -> list[list[str]]:
    """Services grouped so that each group depends only on earlier groups (sorted within a group)."""
    if loop := find_cycle(graph):
        raise CycleError(loop)
    deps = {node: {d for d in graph[node] if d in graph} for node in graph}
    done: set[str] = set()
    result: list[list[str]] = []
    while len(done) < len(deps):
        ready = sorted(n for n, ds in deps.items() if n not in done and ds <= done)
        result.append(ready)
        done.update(ready)
    return result


def start_order(graph: Graph) -> list[str]:
    """Dependencies before dependents."""
    return [name for layer in layers(graph) for name in layer]


def stop_order(graph: Graph) -> list[str]:
    """Dependents before their dependencies."""
    return list(reversed(start_order(graph)))


def dependents(graph: Graph, service: str) -> set[str]:
    """Every service that depends on ``service``, directly or not."""
    found: set[str] = set()
    todo = [service]
    while todo:
        current = todo.pop()
        for node, deps in graph.items():
            if current in deps and node not in found:
                found.add(node)
                todo.append(node)
    return found


def closure(graph: Graph, services: Iterable[str]) -> set[str]:
    """``services`` plus everything they depend on, directly or not."""
    found: set[str] = set()
    todo = list(services)
    while todo:
        current = todo.pop()
        if current in found or current not in graph:
            continue
        found.add(current)
        todo.extend(graph[current])
    return found
