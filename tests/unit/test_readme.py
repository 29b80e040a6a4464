"""The README's promises that other files must keep."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _command_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```sh\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    command = _command_after("## Test it")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines()


def test_every_setting_is_documented():
    for name in DEFAULTS:
        assert f"`COORDINATOR_{name}`" in README, name


def test_every_benchmark_is_documented():
    for bench in (ROOT / "bench").glob("*.py"):
        if bench.name == "common.py":  # shared scaffolding, not a benchmark
            continue
        assert f"`bench/{bench.name}`" in README, bench.name
