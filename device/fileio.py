"""Files: whole files written and synced to disk, whole directories swapped into place, file checksums."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def write_synced(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` (creating parent directories) and sync it to disk.

    A new file is created with ``mode`` (less the umask), so that it is never more readable than that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def exchange_directories(a: Path, b: Path) -> None:
    """Swap two existing directories: in one atomic step where the system can (Linux), else by three renames.

    Both must be on the same file system.
    """
    if _exchange(a, b):
        return
    aside = b.with_name(f".{b.name}.swap")
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def publish_directory(tmp: Path, out: Path, keep: Path | None = None) -> None:
    """Put the complete directory ``tmp`` at ``out``, replacing any old one, never leaving half of one.

    An old ``out`` is swapped with ``tmp`` in one atomic step where the system can (Linux), so ``out``
    always names a complete directory, even across a power cut; elsewhere by renames. The old
    directory is then deleted, or with ``keep`` put there (replacing what was there before).
    ``tmp`` (and ``keep``) must be on the same file system as ``out`` (create them beside ``out``).
    """
    os.chmod(tmp, 0o755)
    if not out.exists():
        os.rename(tmp, out)
        return
    exchange_directories(tmp, out)  # tmp is now the old directory
    if keep is None:
        shutil.rmtree(tmp)
    elif keep.exists():
        exchange_directories(tmp, keep)
        shutil.rmtree(tmp)  # now the one kept before
    else:
        os.rename(tmp, keep)


def write_replacing(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically: written and synced beside it, then renamed over it.

    The file has ``mode`` from its creation on (a private key is never readable by others).
    """
    tmp = path.with_name(f".{path.name}.new")
    try:
        tmp.unlink(missing_ok=True)
        write_synced(tmp, data, mode)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
