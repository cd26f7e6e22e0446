"""The package's modules import one another without circles and only downwards, read from the code's own
imports with ``ast``.

Every ``import`` counts, those inside functions too (moving an import into a function hides a circle, it does
not cut it); one under ``if TYPE_CHECKING:`` counts when it crosses from one subpackage to another. The
circles that still stand are listed below, each to be cut where its concept belongs: the test fails on a new
circle, and on a listed one that is gone (so the list only shrinks).

``LAYERS`` is the package's layer order, top first, written once here; docs/development.md shows the same
table (a test compares them). A module may import its own package's modules and those of any lower layer;
two packages of one layer know nothing of each other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tui_merge"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("tui", "plain"),
    ("wizard", "headless", "search", "tools"),
    ("plan_view", "report_view"),
    ("engine",),
    ("evaluation", "compatibility"),
    ("vocab",),
    ("config",),
    ("models", "methods"),
    ("devices", "samples", "units", "user_cache", "__init__"),
    ("errors",),
)
"""Each layer's top-level packages and modules (``__init__`` is the package's own, which holds the version)."""

DEVELOPMENT_DOC = PACKAGE.parent / "docs" / "development.md"

STANDING_CIRCLES: set[frozenset[str]] = set()
"""Circles not cut yet; none may be added. (The last ones were cut by giving device choice and the finiteness
checks modules of their own, and a config's located text one of its own.)"""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def subpackage(module: str) -> str:
    return module.split(".")[0] or "__init__"


def layer_of(package: str) -> int:
    """The index of ``package``'s layer in ``LAYERS`` (0 is the top)."""
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"{package} is in no layer: add it to LAYERS and to docs/development.md's table")


def arrows_up(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module in another package of its own layer or of a layer above."""
    return sorted(
        f"{module} -> {imported}"
        for module, imports in graph.items()
        for imported in imports
        if subpackage(module) != subpackage(imported) and layer_of(subpackage(imported)) <= layer_of(subpackage(module))
    )


def type_checking_nodes(tree: ast.Module) -> set[int]:
    """The ids of the import nodes under ``if TYPE_CHECKING:``."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = type_checking_nodes(tree)
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".") if here else []
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = (node.module or "").removeprefix("tui_merge").lstrip(".")
                    if not (node.module or "").startswith("tui_merge"):
                        continue
                names = [target, *(f"{target}.{alias.name}".lstrip(".") for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name.removeprefix("tui_merge").lstrip(".") for alias in node.names
                         if alias.name.startswith("tui_merge")]  # fmt: skip
            else:
                continue
            for name in names:
                if name in modules and name != module:
                    if id(node) in typing_only and subpackage(name) == subpackage(module):
                        continue  # a type named within one subpackage
                    graph[module].add(name)
    return graph


def circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.add(frozenset(group))
    return found


def test_the_finder_finds_a_circle_it_is_shown() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
    assert circles({"a": {"b"}, "b": set()}) == set()


def test_no_new_import_circle_and_none_listed_that_is_gone() -> None:
    found = circles(import_graph())

    new = [sorted(group) for group in found - STANDING_CIRCLES]
    gone = [sorted(group) for group in STANDING_CIRCLES - found]
    assert not new, f"new import circles: {new}; cut them where the concept belongs"
    assert not gone, f"circles cut (well done): take them off STANDING_CIRCLES: {gone}"


def test_the_layer_check_finds_an_arrow_up_and_one_within_a_layer() -> None:
    assert arrows_up({"models.reader": {"engine.plan"}, "engine.plan": {"models.info"}}) == [
        "models.reader -> engine.plan"
    ]
    assert arrows_up({"tui.app": {"plain.flow"}}) == ["tui.app -> plain.flow"]


def test_every_package_is_in_a_layer_and_every_import_points_down() -> None:
    graph = import_graph()
    for package in {subpackage(module) for module in graph} | {subpackage(m) for i in graph.values() for m in i}:
        layer_of(package)

    assert arrows_up(graph) == []


def test_the_development_guide_shows_the_same_layers() -> None:
    section = DEVELOPMENT_DOC.read_text().split("\n## Layers\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    shown = tuple(tuple(name.strip("`/") for name in row.split("|")[1].split()) for row in rows)

    assert shown == tuple(tuple(name for name in layer if name != "__init__") for layer in LAYERS)
