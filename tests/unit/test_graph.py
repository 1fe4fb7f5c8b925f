import pytest

from unistack import graph


def test_start_and_stop_order_follow_dependencies() -> None:
    g = {"proxy": ["backend", "frontend"], "backend": ["db", "migrate"], "migrate": ["db"], "db": [], "frontend": []}
    order = graph.start_order(g)
    for node, deps in g.items():
        for dep in deps:
            assert order.index(dep) < order.index(node)
    assert graph.stop_order(g) == list(reversed(order))


def test_layers_group_independent_services() -> None:
    g = {"a": [], "b": [], "c": ["a", "b"], "d": ["c"]}
    assert graph.layers(g) == [["a", "b"], ["c"], ["d"]]


@pytest.mark.parametrize(
    ("g", "loop"),
    [
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"a": ["a"]}, ["a", "a"]),
        ({"x": [], "a": ["b"], "b": ["c"], "c": ["b"]}, ["b", "c", "b"]),
    ],
)
def test_cycles_are_named(g: dict[str, list[str]], loop: list[str]) -> None:
    assert graph.find_cycle(g) == loop
    with pytest.raises(graph.CycleError, match=" -> ".join(loop)):
        graph.start_order(g)


def test_edges_to_unknown_services_are_ignored_by_ordering() -> None:
    assert graph.start_order({"a": ["optional"], "b": ["a"]}) == ["a", "b"]


def test_dependents_and_closure() -> None:
    g = {"proxy": ["backend"], "backend": ["db"], "db": [], "other": []}
    assert graph.dependents(g, "db") == {"backend", "proxy"}
    assert graph.closure(g, ["proxy"]) == {"proxy", "backend", "db"}
