"""Where a result came from: the command, the code, the libraries, the machine, the data.

``code_version(method)`` hashes the *code* of the files that define a method's numbers (its module
and the project modules it imports, not comments or docstrings) and ``data_hash(files)`` the bytes
of the data (SHA-256), never times, so that a record is reused only while what made it is unchanged.
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from baselines import declared

# The checkout holding baselines/, scenarios/ and ctrl_bench/.
CODE_ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("baselines", "ctrl_bench", "scenarios")
# What defines every method's numbers besides its own module: the context it is built from, the
# runner (training, evaluation, resume) and its checkpoints, the metrics and the data (each with the
# project modules it imports). Code that decides how results look or reach the disk, not what they
# are (tables, figures, TensorBoard files, the atomic file writer), is left out, and so is everything
# a method does not import: editing i-CTRL's files reruns ctrl only.
SHARED_ENTRIES = ("baselines/__init__.py", "ctrl_bench/harness/runner.py", "ctrl_bench/harness/checkpoint.py",
                  "ctrl_bench/metrics.py", "scenarios/__init__.py")
NOT_NUMBERS = ("ctrl_bench/harness/tb_logger.py", "ctrl_bench/harness/results.py", "ctrl_bench/harness/plots.py",
               "ctrl_bench/harness/atomic.py")
LIBRARIES = ("torch", "torchvision", "avalanche-lib")


def _file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def hash_listing(files: list[str | Path], root: str | Path) -> str:
    """SHA-256 of a ``sha256sum``-style listing ("<sha256>  <path relative to root>" lines, sorted by path)."""
    names = sorted((Path(os.path.relpath(f, root)).as_posix(), f) for f in files)
    return hashlib.sha256("".join(f"{_file_sha256(f)}  {name}\n" for name, f in names).encode()).hexdigest()


def data_hash(files: list[str]) -> str:
    """One file (an .npz): the SHA-256 of its bytes, as ``sha256sum`` prints it. Several (a
    torchvision folder): :func:`hash_listing` of them relative to their common folder."""
    if len(files) == 1:
        return _file_sha256(files[0])
    if not files:
        raise FileNotFoundError("no data files to hash")
    return hash_listing(files, os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]))


def _module_file(root: Path, module: str) -> Path | None:
    """The project file of a dotted module name (a package's __init__.py), or None outside the project."""
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path) -> list[str]:
    """The project modules a file imports (at any depth of its code, relative imports resolved). For
    ``from pkg import name`` that is ``pkg.name`` when it is a module, else the module of ``pkg``'s
    __init__ that ``name`` comes from (so that a re-export does not pull in the whole package)."""
    tree = ast.parse(path.read_text())
    package = _module_name(root, path) if path.name == "__init__.py" else _module_name(root, path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append(module)
            for alias in node.names:
                if _module_file(root, f"{module}.{alias.name}") is not None:
                    found.append(f"{module}.{alias.name}")
                else:
                    found += _reexport_source(root, module, alias.name)
    return found


def _reexport_source(root: Path, package: str, name: str) -> list[str]:
    """The module a package's __init__.py takes ``name`` from (``from .mod import name``), if any."""
    init = _module_file(root, package)
    if init is None or init.name != "__init__.py":
        return []
    for node in ast.walk(ast.parse(init.read_text())):
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            module = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [node.module or ""]) \
                if node.level else node.module
            return [module.rstrip(".")]
    return []


def _closure(root: Path, entries: list[Path]) -> set[Path]:
    """``entries`` and every project module they import, directly or not, those of NOT_NUMBERS left
    out. A package's ``__init__.py`` that is only passed through (a parent package, or a package a name
    is taken from) is included but its own imports are not followed: they run, but a method does not
    use what it did not import."""
    followed: set[Path] = set()
    passed: set[Path] = set()
    todo = [p for p in entries if p.is_file()]
    while todo:
        path = todo.pop()
        if path in followed:
            continue
        followed.add(path)
        for module in _imports(root, path):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                found = _module_file(root, ".".join(parts[:i]))
                if found is None:
                    continue
                if found.name == "__init__.py":
                    passed.add(found)
                elif i == len(parts):
                    todo.append(found)
    return {p for p in followed | passed if p.relative_to(root).as_posix() not in NOT_NUMBERS}


def code_files(method: str) -> list[Path]:
    """The project files that define ``method``'s numbers: its ``baselines/<method>.py``, the shared
    entries (:data:`SHARED_ENTRIES`), every ``scenarios/`` file, the replay judge for a method it
    judges, and what these import."""
    root = Path(CODE_ROOT)
    entries = [root / "baselines" / f"{method}.py", *(root / e for e in SHARED_ENTRIES),
               *sorted((root / "scenarios").glob("*.py"))]
    if declared(method, "DECODES_MEMORY"):  # the judge draws from its memory after every experience
        entries.append(root / "ctrl_bench" / "harness" / "replay_judge.py")
    return sorted(_closure(root, entries))


def _code_text(path: Path) -> str:
    """The code of a file without comments, docstrings or layout: ``ast.dump`` of its parse tree with
    every docstring removed (so that editing prose reruns nothing)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_version(method: str) -> str:
    """Hash of the code (:func:`_code_text`) of the files that define ``method``'s results
    (:func:`code_files`), with their paths."""
    root = Path(CODE_ROOT)
    listing = "".join(f"{hashlib.sha256(_code_text(f).encode()).hexdigest()}  {f.relative_to(root).as_posix()}\n"
                      for f in code_files(method))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def git_commit() -> str:
    """The checkout's commit, with " (dirty)" when tracked or untracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(CODE_ROOT), *args], capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + (" (dirty)" if git("status", "--porcelain") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "amx_bf16", "amx_tile")


def cpu_build() -> dict:
    """What decides a CPU run's floating-point sums besides seed and threads: the CPU (model and its
    vector extensions), the kernels torch dispatches to (its CPU capability) and the BLAS / oneDNN
    builds. Two machines that differ here may give different numbers for the same command."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    build = {"cpu": cpu_name(), "simd": [f for f in SIMD_FLAGS if f in flags],
             "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if "Math Kernel Library" in line or line.startswith("OpenBLAS"):
            build["blas"] = line
        elif "MKL-DNN" in line or "oneDNN" in line:
            build["onednn"] = line
    return build


def device_name(device: torch.device) -> str:
    """e.g. "NVIDIA H100 80GB HBM3" or "cpu: AMD EPYC 7B13"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu: {cpu_name()}"


def environment(device: torch.device, command: str) -> dict:
    """Provenance shared by every record of one command."""
    return {
        "command": command,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        **{name.replace("-", "_"): metadata.version(name) for name in LIBRARIES},
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_build": cpu_build(),
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
