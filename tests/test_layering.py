"""Imports flow one way: firmware_bridge -> device -> trainer, and within device, inference -> service -> uplink -> cli.

Each package (or sub-package) may import only those before it. ``tools`` (the demos and the soak) use the
device side and ``fleet`` (the fleet demo), ``fleet`` (the central side) the device side and nothing but
``tools`` imports it, and nothing on the device side imports a heavy library.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What each part may import besides itself: a package, a module or a name, by its dotted name.
ALLOWED = {
    "firmware_bridge": set(),
    "device.inference": {"firmware_bridge", "device.__version__", "device.errors", "device.fileio"},
    "device.service": {"firmware_bridge", "device.__version__", "device.errors", "device.fileio", "device.inference"},
    "device.uplink": {"firmware_bridge", "device.__version__", "device.errors", "device.fileio", "device.inference",
                      "device.service"},
    "device": {"firmware_bridge", "device.inference", "device.service", "device.uplink"},
    "tools": {"firmware_bridge", "device", "fleet"},
    "trainer": {"firmware_bridge", "device"},
    "fleet": {"firmware_bridge", "device"},
}
#: The parts whose rule the whole project obeys: nobody may import from a part not listed for it.
PARTS = ("firmware_bridge", "device.inference", "device.service", "device.uplink", "device", "tools", "trainer",
         "fleet")
HEAVY = {"tensorflow", "keras", "scipy", "sklearn", "matplotlib"}


def imported_modules(path: Path) -> set:
    """The dotted name of everything ``path`` imports: ``import a.b`` gives ``a.b``, ``from a import b`` ``a.b``.

    Relative imports fail the test (the code uses none).
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path.relative_to(ROOT)}: relative import of {node.module}"
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def part_of(module: str) -> str | None:
    """The most specific part of :data:`PARTS` that ``module`` belongs to, or None (the standard library...)."""
    matches = [p for p in PARTS if module == p or module.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def files_of(part: str) -> list:
    """The source files of ``part``, without those of a more specific part inside it."""
    inner = [p for p in PARTS if p.startswith(part + ".")]
    files = (ROOT / part.replace(".", "/")).rglob("*.py")
    return [f for f in files if not any(f.is_relative_to(ROOT / p.replace(".", "/")) for p in inner)]


def allowed(module: str, part: str) -> bool:
    """Whether code of ``part`` may import ``module``."""
    other = part_of(module)
    return other is None or other == part or any(module == a or module.startswith(a + ".") for a in ALLOWED[part])


@pytest.mark.parametrize("part", PARTS)
def test_import_direction(part):
    for f in files_of(part):
        wrong = sorted(m for m in imported_modules(f) if not allowed(m, part))
        assert not wrong, f"{f.relative_to(ROOT)} ({part}) imports {wrong}"


def test_the_rule_can_fail():
    """Negative controls: the imports that would break the layering are refused by :func:`allowed`."""
    assert not allowed("device.service.measurement", "device.inference")
    assert not allowed("device.cli", "device.service")
    assert not allowed("trainer.fit", "device.inference")
    assert not allowed("device.inference.bundle", "firmware_bridge")
    assert not allowed("trainer.data.degrade", "tools")
    assert not allowed("device.cli.main", "device.inference")
    assert not allowed("fleet.pki", "device") and not allowed("fleet.collector", "device.uplink")
    assert not allowed("device.uplink.connection", "device.service") and not allowed("fleet.broker", "trainer")
    assert allowed("device.inference.spectrum", "device.service") and allowed("numpy", "firmware_bridge")


@pytest.mark.parametrize("package", ["device", "firmware_bridge", "tools"])
def test_device_side_never_imports_heavy_libraries(package):
    for f in (ROOT / package).rglob("*.py"):
        heavy = {m.split(".")[0] for m in imported_modules(f)} & HEAVY
        assert not heavy, f"{f.relative_to(ROOT)} imports {heavy}"
