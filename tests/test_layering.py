"""Imports flow one way: firmware_bridge -> device -> trainer (each may import only those before it)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"firmware_bridge": set(), "device": {"firmware_bridge"}, "trainer": {"firmware_bridge", "device"}}
HEAVY = {"tensorflow", "keras", "scipy", "sklearn", "matplotlib"}


def imported_top_levels(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_import_direction(package):
    for f in (ROOT / package).rglob("*.py"):
        used = imported_top_levels(f) & set(ALLOWED)
        assert used <= ALLOWED[package] | {package}, f"{f.relative_to(ROOT)} imports {used}"


@pytest.mark.parametrize("package", ["device", "firmware_bridge"])
def test_device_side_never_imports_heavy_libraries(package):
    for f in (ROOT / package).rglob("*.py"):
        heavy = imported_top_levels(f) & HEAVY
        assert not heavy, f"{f.relative_to(ROOT)} imports {heavy}"
