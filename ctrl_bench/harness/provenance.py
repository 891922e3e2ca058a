"""Where a result came from: the command, the code, the libraries, the machine, the data.

``code_version(method)`` and ``data_hash(files)`` hash file *contents* (SHA-256), never times, so
that a record is reused only while the files that made it are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

# The checkout holding run_bench.py, baselines/, scenarios/ and ctrl_bench/.
CODE_ROOT = Path(__file__).resolve().parents[2]
# What defines a method's numbers besides its own baselines/<method>.py: the harness, the scenarios
# and the networks (whole packages), and the shared parts of baselines/: the registry and the helper
# modules, every baselines/_*.py.
CODE_PACKAGES = ("ctrl_bench", "scenarios")
SHARED_CODE_FILES = ("run_bench.py",)
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


def code_files(method: str) -> list[Path]:
    root = Path(CODE_ROOT)
    files = [root / "baselines" / f"{method}.py", *(root / name for name in SHARED_CODE_FILES),
             *sorted((root / "baselines").glob("_*.py"))]
    for package in CODE_PACKAGES:
        files += sorted((root / package).rglob("*.py"))
    return [f for f in files if f.is_file()]


def code_version(method: str) -> str:
    """Hash of the contents of the files that define ``method``'s results (see :func:`code_files`)."""
    return hash_listing(code_files(method), CODE_ROOT)[:16]


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
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
