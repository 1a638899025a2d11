"""What the three command lines share: every option's default in ``--help``."""
import argparse

import pytest

from device.cli import build_parser as device_parser
from firmware_bridge.cli import build_parser as bridge_parser
from trainer.cli import build_parser as trainer_parser


def undocumented_defaults(parser: argparse.ArgumentParser) -> list[str]:
    """Options of every subcommand whose default is not stated in the ``--help`` text."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = []
    for name, sub in subparsers.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            one_of = any(action in g._group_actions and g.required for g in sub._mutually_exclusive_groups)
            if not action.option_strings or action.required or action.nargs == 0 or one_of:
                continue  # positionals, required options (alone or one of a group), switches and --help
            shown = formatter._get_help_string(action) % {"default": action.default} if action.help else ""
            if "default" not in shown:
                missing.append(f"{parser.prog} {name} {action.option_strings[0]}")
    return missing


@pytest.mark.parametrize("build", [device_parser, bridge_parser, trainer_parser])
def test_every_option_states_its_default_in_help(build):
    assert undocumented_defaults(build()) == []


def test_an_option_without_its_default_is_caught():
    p = argparse.ArgumentParser(prog="x")
    sub = p.add_subparsers()
    s = sub.add_parser("s")
    s.add_argument("--n", type=int, default=3)  # no help text, so no default shown
    assert undocumented_defaults(p) == ["x s --n"]
