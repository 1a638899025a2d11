"""The documentation's commands exist as written.

Every ``raman-*`` command line in README.md and docs/ names a real subcommand and only options that
subcommand accepts.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from helpers import OutputLines

from device.cli import build_parser as device_parser
from firmware_bridge.cli import build_parser as bridge_parser
from trainer.cli import build_parser as trainer_parser

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {"raman-device": device_parser, "raman-train": trainer_parser, "raman-bridge": bridge_parser}
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def documented_commands(text: str) -> list[tuple[int, list[str]]]:
    """Every ``raman-*`` invocation in a Markdown text.

    Shell blocks (continuation lines joined) and inline code spans.

    Returns
    -------
    list of (line number, tokens from the program name on)
    """
    found = []
    lines = text.splitlines()
    in_shell, start, pending = False, 0, ""
    for no, line in enumerate(lines, 1):
        fence = line.strip().startswith("```")
        if fence:
            in_shell = not in_shell and line.strip() in ("```sh", "```bash", "```console")
            continue
        if in_shell:
            if not pending:
                start = no
            pending += line.rstrip().removesuffix("\\") + " "
            if line.rstrip().endswith("\\"):
                continue
            found += [(start, t) for t in _invocations(pending)]
            pending = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                found += [(no, t) for t in _invocations(span)]
    return found


def _invocations(command_line: str) -> list[list[str]]:
    """Split a shell line into the ``raman-*`` commands it runs (pipes, ``&&``, ``;`` and comments handled)."""
    try:
        tokens = shlex.split(command_line, comments=True)
    except ValueError:
        return []
    out, current = [], None
    for tok in tokens:
        if tok in ("|", "||", "&&", ";"):
            current = None
        elif Path(tok).name in PARSERS and current is None:
            current = [Path(tok).name]
            out.append(current)
        elif current is not None:
            current.append(tok)
    return out


def problems(tokens: list[str]) -> list[str]:
    """What in one documented invocation the real parser does not know: the subcommand or an option."""
    parser = PARSERS[tokens[0]]()
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = [t.strip("[]") for t in tokens[1:]]
    if not words or words[0] in ("-h", "--help"):
        return []
    if words[0] not in sub_action.choices:
        return [f"{tokens[0]} has no subcommand {words[0]!r}"]
    known = sub_action.choices[words[0]]._option_string_actions
    options = {w.split("=", 1)[0] for w in words[1:] if w.startswith("--") and len(w) > 2}
    return [f"{tokens[0]} {words[0]} has no option {o}" for o in sorted(options - set(known))]


@pytest.mark.slow
def test_documented_commands_exist():
    seen, wrong = 0, []
    for doc in DOCS:
        for no, tokens in documented_commands(doc.read_text(encoding="utf-8")):
            seen += 1
            wrong += [f"{doc.relative_to(ROOT)}:{no}: {p}" for p in problems(tokens)]
    assert seen >= 30, f"only {seen} documented commands found: the extraction is broken"
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("snippet, expected", [
    ("```sh\nraman-device classify --model M --no-such-option F\n```", "has no option --no-such-option"),
    ("Run `raman-train fitt DATA --out B` first.", "has no subcommand 'fitt'"),
    ("```sh\nraman-bridge probe --protocol obp \\\n    --bogus 1\n```", "has no option --bogus"),
    ("```sh\ncd x && raman-device info --model B --format table  # comment --ignored\n```",
     "info has no option --format"),
])
def test_a_wrong_command_is_caught(snippet, expected):
    found = [p for _, t in documented_commands(snippet) for p in problems(t)]
    assert any(expected in p for p in found), found


def test_extraction_reads_blocks_spans_and_continuations():
    text = ("x `raman-device info --model B` y\n```sh\nraman-train fit D \\\n  --out B --axis 1:2:3\n```\n"
            "```python\nraman-device = 1\n```")
    got = [t for _, t in documented_commands(text)]
    assert got == [["raman-device", "info", "--model", "B"],
                   ["raman-train", "fit", "D", "--out", "B", "--axis", "1:2:3"]]


def shell_block(doc: Path, heading: str) -> list[str]:
    """The command lines of the first shell block under a Markdown heading.

    Continuation lines joined, comment lines dropped, and optional ``[...]`` groups left out (the command
    as a newcomer first types it).
    """
    text = doc.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s#.*$", "", line).strip()
        if line and not line.startswith("#"):
            while re.search(r"\[[^\[\]]*\]", line):
                line = re.sub(r"\s*\[[^\[\]]*\]", "", line)
            commands.append(line)
    return commands


@pytest.mark.slow
def test_docs_simulator_walkthrough_runs_as_written(tmp_path):
    """The simulator block of docs/spectrometers.md, run word for word.

    Simulate, then probe, acquire and classify on its pty.
    """
    import json
    import subprocess
    import sys

    commands = shell_block(ROOT / "docs" / "spectrometers.md", "## Simulators")
    assert commands[0].startswith("raman-bridge simulate") and len(commands) >= 3, commands
    bin_ = Path(sys.executable).parent
    (tmp_path / "models").symlink_to(ROOT / "models")
    sim = subprocess.Popen([str(bin_ / "raman-bridge"), *shlex.split(commands[0])[1:]], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = re.search(r" on (/dev/\S+)", OutputLines(sim).read_until(timeout=30)).group(1)
        outputs = []
        for command in commands[1:]:
            argv = [a.replace("/dev/pts/3", port) for a in shlex.split(command)]
            r = subprocess.run([str(bin_ / argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, f"{command}\n{r.stderr}"
            outputs.append(r.stdout)
    finally:
        sim.terminate()
        sim.wait(10)
    verdict = json.loads(outputs[-1].splitlines()[0])
    assert verdict["file"] == "spectrum.csv" and verdict["model"].startswith("sers-pesticides@")
