"""Running a command-line action: expected errors become one message and an exit status, never a traceback."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from firmware_bridge.errors import SpectrumFileWarning


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless its text already says it or it is a switch.

    An option without a default value (None) states in its own help what happens without it.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)) \
                or action.required or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def add_subcommand(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` states every option's default (:class:`HelpWithDefaults`)."""
    return subparsers.add_parser(name, formatter_class=HelpWithDefaults, **kwargs)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (a width, a time)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"takes a number above 0; got {text!r}")
    return value


class OutputExistsError(Exception):
    """An output the user named exists and was not to be replaced (no ``--force``)."""


def refuse_existing(path, force: bool, option: str = "--out") -> None:
    """Refuse to replace what is at ``path`` (given with ``option``) unless ``force``; call before any work.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is false.
    """
    if path is not None and Path(path).exists() and not force:
        raise OutputExistsError(f"{path} already exists; give --force to replace it, or choose another {option}")


def _one_line_for_spectrum_files(show):
    """``show`` (a ``warnings.showwarning``), but a spectrum file's warning is one ``warning: ...`` line."""
    def show_warning(message, category, *where):
        if issubclass(category, SpectrumFileWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, *where)
    return show_warning


def run(func, args, errors: tuple, interrupted: str = "interrupted") -> int:
    """``func(args)``, its exit status; expected errors become one message.

    An exception of ``errors`` (or :class:`OutputExistsError`) prints ``error: ...`` and returns 2;
    Ctrl-C returns 130. A :class:`~firmware_bridge.errors.SpectrumFileWarning` prints ``warning: ...``.
    """
    errors = (*errors, OutputExistsError)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_for_spectrum_files(warnings.showwarning)
            return func(args)
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head` (before OSError)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
