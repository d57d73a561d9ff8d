"""The layout's rules, read off the source: the model imports nothing from the simulator, the runtime
or the proofs (at module level or lazily inside a function); the model's import graph has no cycle;
the model reads no clock, environment, file or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "model"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("covalidator", *parts))


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in MODEL.rglob("*.py")}


def test_the_model_imports_nothing_from_the_simulator_the_runtime_or_the_proofs() -> None:
    offending = {
        name: sorted(
            i
            for i in imports(path)
            if i.startswith(("covalidator.sim", "covalidator.runtime", "covalidator.proofs"))
        )
        for name, path in MODULES.items()
    }
    assert {k: v for k, v in offending.items() if v} == {}


def model_graph() -> dict[str, set[str]]:
    """Module -> the model modules it imports at module level (what runs when it loads)."""
    return {
        name: {i for i in imports(path, top_level_only=True) if i in MODULES and i != name}
        for name, path in MODULES.items()
    }


def test_the_models_import_graph_has_no_cycle() -> None:
    graph = model_graph()
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in path, " -> ".join([*path[path.index(node) :], node])
        path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    assert len(done) == len(MODULES) > 40


LAZY = {  # imports the model makes inside a function, each for a reason
    "covalidator.model.logic": {"z3"},  # z3 only when a proof hands a symbolic value: not needed to run
    "covalidator.model.crypto.bls": {  # only the backend in use is imported (the others are optional)
        "covalidator.model.crypto.backends.arkworks",
        "covalidator.model.crypto.backends.blst",
        "covalidator.model.crypto.backends.pyecc",
    },
}


def test_the_model_imports_lazily_only_where_it_says_why() -> None:
    lazy = {
        name: {i for i in imports(path) - imports(path, top_level_only=True) if "." in i or i == "z3"}
        for name, path in MODULES.items()
    }
    lazy = {
        name: {i for i in found if not any(i.startswith(f"{m}.") for m in found)}
        for name, found in lazy.items()
    }
    assert {name: found for name, found in lazy.items() if found} == LAZY


def test_the_model_reads_no_clock_environment_file_or_randomness() -> None:
    forbidden = {"time", "datetime", "os", "random", "secrets", "socket", "asyncio", "pathlib", "subprocess"}
    found = {
        name: sorted(i for i in imports(path) if i.split(".")[0] in forbidden)
        for name, path in MODULES.items()
    }
    assert {k: v for k, v in found.items() if v} == {}
