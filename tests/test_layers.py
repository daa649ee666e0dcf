"""The package's layering, checked from the source: no import cycles, lower layers never reach up
into the HTTP layer, and the client loads none of the server's machinery."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import retouch

SRC = Path(retouch.__file__).parent
PACKAGE = "retouch"

# Layers that sit below the HTTP layer and must never import it, even lazily or for types.
BELOW_API = (
    "retouch.ops",
    "retouch.engines",
    "retouch.billing",
    "retouch.jobs",
    "retouch.storage",
    "retouch.db",
    "retouch.schemas",
    "retouch.specs",
)

# What `import retouch.client` must not load: the server's runtimes, web stack and database.
SERVER_MODULES = (
    "onnxruntime",
    "cv2",
    "ncnn",
    "numpy",
    "sqlalchemy",
    "fastapi",
    "starlette",
    "ai_edge_litert",
    "tokenizers",
    "PIL",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in SRC.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> list[tuple[str, bool]]:
    """``(imported retouch module, runs at import or call time)`` for every import in ``module``.

    Imports anywhere count (module level, inside functions); those under ``if TYPE_CHECKING:``
    are reported with ``False``: they are dependencies, but never executed.
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from pkg import sub` imports the submodule; `from mod import name` the module.
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in MODULES else base, runtime))
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(tree, True)
    return [(name, runtime) for name, runtime in found if name.split(".")[0] == PACKAGE]


def _graph() -> dict[str, set[str]]:
    """Runtime import edges between retouch modules (an unknown name is the module's package)."""
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for name, runtime in _imports(module):
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if runtime and name != module:
                graph[module].add(name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete loop through a component, for a readable failure."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        step = min(graph[path[-1]] & members)
        if step in seen:
            return [*path[path.index(step) :], step]
        path.append(step)
        seen.add(step)


def test_the_walk_sees_the_package() -> None:
    graph = _graph()
    assert "retouch.client._wire" in graph["retouch.client"]
    # Lazy imports inside functions count too.
    assert ("retouch.batch", True) in _imports("retouch.cli"), "cli imports batch inside a function"


def test_no_import_cycles() -> None:
    graph = _graph()
    loops = [" -> ".join(_cycle_path(graph, component)) for component in _cycles(graph)]
    assert not loops, "import cycles between retouch modules:\n" + "\n".join(loops)


def test_lower_layers_never_import_the_http_layer() -> None:
    offences = [
        f"{module} imports {name}"
        for module in MODULES
        if any(module == layer or module.startswith(f"{layer}.") for layer in BELOW_API)
        for name, _ in _imports(module)
        if name == "retouch.api" or name.startswith("retouch.api.")
    ]
    assert not offences, "\n".join(offences)


def test_the_schemas_layer_needs_only_pydantic_and_the_standard_library() -> None:
    allowed = {PACKAGE, "pydantic", "pydantic_core", "typing_extensions", "annotated_types"}
    for module in ("retouch.schemas", "retouch.specs"):
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, f"{module} imports {name}"
        retouch_imports = {name for name, _ in _imports(module)}
        assert retouch_imports <= {"retouch.specs"}, f"{module} imports {retouch_imports}"


# The only retouch modules a client may load: itself, the request models and their value types.
CLIENT_MODULES = {"retouch", "retouch.schemas", "retouch.specs"} | {
    module for module in MODULES if module.startswith("retouch.client")
}

_PROBE = """
import json, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "modules": sorted(sys.modules)}}))
"""


def _probe(module: str) -> tuple[float, set[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    report = json.loads(out)
    return report["seconds"], set(report["modules"])


def _loaded_server_modules(modules: set[str]) -> list[str]:
    return sorted(
        name for name in modules if any(name.split(".")[0] == heavy for heavy in SERVER_MODULES)
    )


def test_the_client_loads_none_of_the_server_and_imports_quickly() -> None:
    # Best of three: the machine's other load is not the client's cost.
    runs = [_probe("retouch.client") for _ in range(3)]
    seconds = min(elapsed for elapsed, _ in runs)
    modules = runs[0][1]
    assert _loaded_server_modules(modules) == []
    own = {name for name in modules if name.split(".")[0] == PACKAGE}
    assert own - CLIENT_MODULES == set(), "the client reaches into the server's modules"
    assert seconds < 0.5, f"import retouch.client took {seconds:.3f} s"


def test_importing_the_package_loads_nothing_of_the_server() -> None:
    _, modules = _probe("retouch")
    assert _loaded_server_modules(modules) == []
    assert sorted(name for name in modules if name.startswith("retouch.")) == []


# Runs the client with every distribution except httpx and pydantic (and what they require)
# hidden, as in a virtualenv where only those are installed: `pip install --no-deps retouch
# httpx pydantic` (README, "Python client").
_ALONE = """
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

allowed, todo = {"retouch"}, ["httpx", "pydantic"]
while todo:
    name = canonicalize_name(todo.pop())
    if name in allowed:
        continue
    allowed.add(name)
    for line in md.requires(name) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
owners = md.packages_distributions()
hidden = set()

class OnlyTheClientsDependencies:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top == "retouch" or top not in owners:
            return None
        if any(canonicalize_name(dist) in allowed for dist in owners[top]):
            return None
        hidden.add(top)
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, OnlyTheClientsDependencies())
import httpx
from retouch.client import RetouchClient

def answer(request):
    if request.url.path == "/v1/credits":
        return httpx.Response(200, json={"credits_remaining": 7})
    return httpx.Response(200, json={"result_url": "https://example.com/out.png"})

with RetouchClient("sk_test", transport=httpx.MockTransport(answer)) as client:
    credits = client.credits()
    result = client.remove_background(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(32), crop=True)
print(json.dumps({"credits": credits, "url": result.url, "hidden": sorted(hidden)}))
"""


def test_the_client_works_with_only_httpx_and_pydantic_installed() -> None:
    out = subprocess.run([sys.executable, "-c", _ALONE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["credits"] == 7
    assert report["url"] == "https://example.com/out.png"
