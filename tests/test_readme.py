"""Every example in the README runs as written (issue 13, item 8).

What runs, found anew in README.md each time (a new section's blocks are picked up by themselves):
- every ```python block, whole, each in a fresh interpreter;
- in ```bash / ```sh / ```shell blocks, every command that starts with ``gtpred`` or
  ``python -m gtpred_core`` (lines ending in ``\\`` joined), in README order, one after the other
  in the same folder and run store, so a later example may use what an earlier one stored.
Not run: ``gtpred app`` (a server that runs until stopped: tests/test_packaging.py and the browser
tests serve it), other programs' lines (pip, sudo, systemctl), and blocks in other languages:
``text`` for synopses with placeholders, ``ini`` and ``nginx`` for files that need a real server.

Where: a scratch folder holding ``model.keras`` (a copy of the demo model) and ``val/`` (a copy of
the demo's 797 images) — the names the README's examples use — with a fresh run store and cache.
``gtpred`` there is this checkout's ``python -m gtpred_core`` (a shell function; the README says
they are the same command), and ``python`` is the interpreter running the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gtpred_core.demo import DEMO_MODEL, demo_folder

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = {"bash", "sh", "shell"}


@dataclass(frozen=True)
class Example:
    line: int  # where it starts in README.md
    language: str
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    return [Example(text.count("\n", 0, m.start(2)) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def is_gtpred_command(command: str) -> bool:
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before the command
        words.pop(0)
    if words[:1] == ["gtpred"]:
        return words[1:2] != ["app"]
    return words[:2] in (["python", "-m"], ["python3", "-m"]) and len(words) > 2 and words[2].split(".")[0] == "gtpred_core"


def shell_commands() -> list[Example]:
    commands = []
    for block in readme_blocks():
        if block.language not in SHELL:
            continue
        pending, start = "", block.line
        for number, line in enumerate(block.code.splitlines(), start=block.line):
            if not pending:
                start = number
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            command, pending = (pending + line).strip(), ""
            if command and is_gtpred_command(command):
                commands.append(Example(start, block.language, command))
    return commands


PYTHON_BLOCKS = [block for block in readme_blocks() if block.language == "python"]


def _scratch(folder: Path) -> dict[str, str]:
    """Fill ``folder`` with ``model.keras`` and ``val/``; the environment the examples run in."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_MODEL, folder / "model.keras")
    shutil.copytree(demo_folder(), folder / "val")
    env = {k: v for k, v in os.environ.items() if k not in ("GTPRED_DATA_ROOT",)}
    env.update(
        PYTHONPATH=str(ROOT),
        GTPRED_DB=str(folder / "runs.sqlite3"),
        GTPRED_CACHE_DIR=str(folder / "cache"),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def test_the_readme_has_examples_to_run():
    commands = [c.code for c in shell_commands()]
    assert any(c.startswith("gtpred demo") for c in commands) and any(c.startswith("gtpred evaluate") for c in commands)
    assert any("evaluate_folder" in block.code for block in PYTHON_BLOCKS)
    assert all(block.language for block in readme_blocks()), "give every README block a language"


def test_every_gtpred_command_in_the_readme_runs(tmp_path):
    env = _scratch(tmp_path)
    prelude = f'gtpred() {{ {shlex.quote(sys.executable)} -m gtpred_core "$@"; }}\npython() {{ {shlex.quote(sys.executable)} "$@"; }}\npython3() {{ python "$@"; }}\n'
    for command in shell_commands():
        result = subprocess.run(["bash", "-c", prelude + command.code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}: {command.code}\n{result.stdout}\n{result.stderr}"
        assert "error:" not in result.stderr, f"{command}: {command.code}\n{result.stderr}"


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=str)
def test_every_python_block_in_the_readme_runs(block, tmp_path):
    env = _scratch(tmp_path)
    script = tmp_path / "example.py"
    script.write_text(block.code)
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{block}\n{block.code}\n{result.stdout}\n{result.stderr[-3000:]}"
