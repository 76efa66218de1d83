"""The package's layers only look down, as ARCHITECTURE.md draws them, and no import cycles."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_forget"


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _layers() -> dict[str, int]:
    """``{top-level module or package: layer}`` from ARCHITECTURE.md's table."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    layers = {}
    for number, names in re.findall(r"^\| (\d+) \| ([^|]+) \|$", text, re.M):
        for name in names.split(","):
            layers[name.strip()] = int(number)
    return layers


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
    """Every keras_forget module ``name`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("keras_forget")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                package = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{package}.{node.module}"
            if not base.startswith("keras_forget"):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {m for m in found if m in modules and m != name}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer_in_architecture_md():
    layers = _layers()
    missing = sorted({_top(m) for m in _modules() if _top(m)} - set(layers))
    assert not missing, f"ARCHITECTURE.md's layer table lacks {missing}"


def test_imports_only_look_down():
    layers = _layers()
    upward = []
    for module, imported in _graph().items():
        if not _top(module):  # the package root re-exports the public API
            continue
        for other in imported:
            same_package = _top(other) == _top(module)
            if not same_package and layers[_top(other)] >= layers[_top(module)]:
                upward.append(f"{module} -> {other}")
    assert not upward, "imports that do not look down:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state and _top(node):
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_each_module_imports_alone_in_a_fresh_interpreter():
    names = sorted(_modules())
    script = (
        "import importlib, sys, traceback\n"
        f"names = {names!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('keras_forget')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed.append(name + ': ' + traceback.format_exc().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
