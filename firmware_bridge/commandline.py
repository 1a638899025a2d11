"""Running a command-line action: expected errors become one message and an exit status, never a traceback."""
from __future__ import annotations

import os
import sys


def run(func, args, errors: tuple, interrupted: str = "interrupted") -> int:
    """``func(args)``; an exception of ``errors`` prints ``error: ...`` and returns 2; Ctrl-C returns 130."""
    try:
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
