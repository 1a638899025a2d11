"""The emulated board's roots (tools/board/roots.py): a root is never deleted through a mount in it."""
import os
import subprocess

import pytest

from tools.board.roots import in_root, mounts_under, remove_root

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


@needs_root
def test_a_root_with_mounts_in_it_is_unmounted_before_it_is_deleted(tmp_path):
    outside = tmp_path / "outside"  # stands for the host's /dev: bind-mounted into the root
    outside.mkdir()
    (outside / "precious").write_text("must survive")
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "tmp").mkdir()
    subprocess.run(["mount", "--bind", str(outside), str(root / "dev")], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(root / "tmp")], check=True)
    try:
        assert set(mounts_under(root)) == {root / "dev", root / "tmp"}
        assert mounts_under(root / "dev" / "x") == []
        remove_root(root)
    finally:
        for point in mounts_under(tmp_path):
            subprocess.run(["umount", "-l", str(point)])
    assert not root.exists() and (outside / "precious").read_text() == "must survive"


def test_commands_run_offline_as_the_user_keeping_the_emulated_cpu(tmp_path):
    cmd = in_root(tmp_path, ["raman-device", "info"], user="pi")
    assert cmd[:1] == ["env"] and "QEMU_CPU=cortex-a72" in cmd
    unshare = cmd.index("unshare")
    assert cmd[unshare:unshare + 4] == ["unshare", "--net", "chroot", str(tmp_path)]
    assert cmd[unshare + 4:unshare + 8] == ["runuser", "-u", "pi", "--"] and cmd[-2:] == ["raman-device", "info"]
    assert "unshare" not in in_root(tmp_path, ["true"], offline=False)
