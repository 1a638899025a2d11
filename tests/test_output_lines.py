"""OutputLines: waits on a child's output end at their deadline or at the end of the output, with what was said."""
import subprocess
import sys
import time

import pytest
from helpers import OutputLines

pytestmark = pytest.mark.device  # needs only the device extra

SILENT_AFTER_ONE_LINE = "import sys; print('starting', flush=True); sys.stdin.read()"


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_silent_child_fails_the_wait_at_its_deadline_with_the_output_so_far():
    proc = child(SILENT_AFTER_ONE_LINE)
    try:
        output = OutputLines(proc)
        assert output.read_until(timeout=30) == "starting\n"
        began = time.monotonic()
        with pytest.raises(AssertionError, match="still waiting after 0.2 s; output so far:\nstarting\n"):
            output.read_until(lambda line: line.startswith("ready:"), timeout=0.2)
        assert 0.2 <= time.monotonic() - began < 10
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdin.close()
        proc.stderr.close()


def test_lines_are_skipped_to_the_match_and_the_end_of_the_output_fails_with_stderr():
    proc = child("import sys; print('a'); print('ready: ready'); print('b'); sys.stderr.write('bye')")
    output = OutputLines(proc)
    assert output.read_until(lambda line: line.startswith("ready:"), timeout=30) == "ready: ready\n"
    assert output.lines == ["a\n", "ready: ready\n"]
    assert output.rest(timeout=30) == "b\n"
    ended = "output ended without such a line; output:\na\nready: ready\nb\nstderr:\nbye"
    with pytest.raises(AssertionError, match=ended):
        output.read_until(timeout=30)
    proc.stdin.close()
    proc.stderr.close()
