"""The package's shape: its parts import each other only down the layer order of the allow-list, no import cycles
(imports inside functions included), the method imports no NNI, and importing the package or its strategy changes
nothing in NNI until asked."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nni_asenas

PACKAGE = Path(nni_asenas.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every nni_asenas module ``path`` imports, at any depth of the file (absolute and relative imports)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


#: The layers of the package, lowest first: a part (a subpackage, or a module at the top, ``nni_asenas`` for the
#: package's ``__init__``) may import parts of lower layers only, and of those only what :data:`ALLOWED` lists.
LAYERS = [
    ("errors", "nni_asenas"),
    ("config", "threads"),
    ("core",),
    ("search", "nni_tools"),
    ("nasbench", "imagenet"),
    ("adapters", "comparison", "trials"),
    ("cli",),
]
ALLOWED = {
    "errors": set(),
    "nni_asenas": set(),  # its public names are imported lazily, by name
    "config": {"errors"},
    "threads": set(),
    "core": {"config", "threads"},
    "search": {"core", "errors"},  # the loop needs the searcher's types only
    "nni_tools": {"config", "errors"},
    "nasbench": {"search", "core", "nni_tools", "config", "errors"},
    "imagenet": {"search", "core", "nni_tools", "config", "errors", "threads"},
    "adapters": {"nasbench", "search", "core", "nni_tools", "config", "errors"},  # nasbench: NAS-Bench-201 strings
    "comparison": {"nasbench"},
    "trials": {"nasbench", "imagenet", "nni_tools", "errors"},
    "cli": {"nni_asenas", "comparison", "nasbench", "imagenet", "nni_tools", "search", "config", "errors"},
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_the_allow_list_runs_down_the_layers() -> None:
    layer = {part: level for level, parts in enumerate(LAYERS) for part in parts}
    on_disk = {part_of(name) for name in graph()}
    assert set(layer) == set(ALLOWED) == on_disk, "every part of the package has its layer and its allow-list"
    for part, allowed in ALLOWED.items():
        upward = sorted(other for other in allowed if layer[other] >= layer[part])
        assert not upward, f"{part} may not import {upward}: not below it in LAYERS"


def test_parts_import_only_what_the_allow_list_allows() -> None:
    found = []
    for name, imported in sorted(graph().items()):
        for other in sorted(imported):
            source, target = part_of(name), part_of(other)
            if source != target and target not in ALLOWED[source]:
                found.append(f"{name} imports {other} ({source} -> {target} is not in ALLOWED)")
    assert not found, "\n".join(found)


def test_no_import_cycles() -> None:
    edges = graph()
    # a package's __init__ re-exporting its own submodule is not a cycle of the code
    for name in edges:
        edges[name] = {m for m in edges[name] if not (m.startswith(name + ".") and PACKAGE.joinpath(*name.split(".")[1:], "__init__.py").exists())}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_the_method_the_search_loop_and_the_trial_ledger_import_no_nni() -> None:
    paths = [*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "search").rglob("*.py"), PACKAGE / "config.py",
             PACKAGE / "adapters" / "ledger.py"]
    for path in paths:
        top_level = {m.split(".")[0] for m in imports_of(path)}
        assert "nni" not in top_level, f"{path.relative_to(PACKAGE)} imports nni"


def test_importing_the_package_and_strategy_changes_nothing_in_nni() -> None:
    code = (
        "import nni.nas.benchmark.nasbench201.schema as s201, nni.nas.benchmark.nasbench101.schema as s101\n"
        "import nni.nas.utils.serializer as ser\n"
        "before = (s201.proxy.obj, s101.proxy.obj, type(ser.get_default_serializer()))\n"
        "import nni_asenas, nni_asenas.adapters.strategy, nni_asenas.adapters.tuner\n"
        "from nni_asenas import AseNas\n"
        "after = (s201.proxy.obj, s101.proxy.obj, type(ser.get_default_serializer()))\n"
        "assert before == after, (before, after)\n"
        "from nni_asenas.nasbench import databases\n"
        "databases.install()\n"
        "assert s201.proxy.obj is not None and s101.proxy.obj is not None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_importing_the_package_needs_neither_torch_nor_nni() -> None:
    code = "import sys, nni_asenas, nni_asenas.config; print(sorted(m for m in ('torch', 'nni') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]
