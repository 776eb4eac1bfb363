"""The package's shape: no import cycles (imports inside functions included), the method imports no NNI, and
importing the package or its strategy changes nothing in NNI until asked."""

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


def test_the_method_imports_no_nni() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        top_level = {m.split(".")[0] for m in imports_of(path)}
        assert "nni" not in top_level, f"{path.name} imports nni"
    assert "nni" not in {m.split(".")[0] for m in imports_of(PACKAGE / "config.py")}


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
