"""The shape of the code: no import circle, imports at the top unless a comment says why, and a
harness that names no method."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ctrl_bench", "baselines", "scenarios")
METHOD_WORD = re.compile(r"(?<![\w-])ctrl(?![\w-])")  # "ctrl", not "ctrl-bench" nor "ctrl_bench"


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict) -> list[tuple[str, ast.stmt]]:
    """(project module, import statement) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        edges += [(target, node) for target in targets if target in known]
    return edges


def test_no_module_of_the_package_imports_itself_back():
    known = modules()
    graph = {name: {target for target, _ in imported(name, path, known) if target != name}
             for name, path in known.items()}
    state: dict[str, str] = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " → ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_imports_sit_at_the_top_unless_a_comment_says_why():
    unexplained = []
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    near = lines[max(0, inner.lineno - 3):inner.lineno]  # the line and the two above it
                    if not any("#" in line for line in near):
                        unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {near[-1].strip()}")
    assert not unexplained, "function-local imports without a comment saying why:\n" + "\n".join(unexplained)


def test_the_harness_names_no_method():
    """Outside docstrings and the default method list, no string of the harness is a method's name or
    speaks of ctrl (a method's name inside prose, as in "replay judge", is a word, not a method)."""
    from baselines import method_names

    names = set(method_names())
    found = []
    for path in sorted((ROOT / "ctrl_bench" / "harness").glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        defaults = {id(c) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "DEFAULT_METHODS" for t in n.targets)
                    for c in ast.walk(n.value)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | defaults:
                if METHOD_WORD.search(node.value) or node.value in names:
                    found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert not found, "the harness names a method:\n" + "\n".join(found)
