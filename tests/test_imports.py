"""The import rules of ARCHITECTURE.md, checked on the source so the structure stays.

Every ``import`` and ``from ... import`` of the package's modules is read with
``ast`` (those under ``if TYPE_CHECKING:`` included: a dependency for types is
still a dependency) and checked against the rules below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "common": "paragon_licensed",
    "common/interface": "paragon_licensed.interface",
    "daemon": "paragon_licensed.daemon",
    "daemon/control": "paragon_licensed.daemon.control",
    "daemon/store": "paragon_licensed.daemon.store",
    "ctl": "paragon_licensed.ctl",
    "portal": "paragon_licensed.portal",
}
# The program's command tree lists `ctl` among its commands, and hands over to it.
COMMAND_TREES = {"paragon_licensed.daemon.cli"}
# The standard-library-only modules ctl may use besides its own.
CTL_MAY_IMPORT = ("paragon_licensed.ctl", "paragon_licensed.interface.errors", "paragon_licensed.text")


def modules() -> dict[str, set[str]]:
    """Module name -> the paragon_licensed modules it imports."""
    found: dict[str, set[str]] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.update(f"{node.module}.{alias.name}" for alias in node.names)
                    imported.add(node.module)
            found[name] = {m for m in imported if m.startswith("paragon_licensed")}
    return found


MODULES = modules()


def importers(prefix: str) -> dict[str, set[str]]:
    return {name: deps for name, deps in MODULES.items() if name == prefix or name.startswith(prefix + ".")}


def test_every_folder_was_read() -> None:
    assert {
        "paragon_licensed.interface.wire",
        "paragon_licensed.ctl.main",
        "paragon_licensed.daemon.app",
    } <= set(MODULES)


def test_the_interface_imports_nothing_but_itself() -> None:
    bad = {
        name: sorted(d for d in deps if not d.startswith("paragon_licensed.interface"))
        for name, deps in importers("paragon_licensed.interface").items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_ctl_imports_only_itself_the_interface_errors_and_text() -> None:
    bad = {
        name: sorted(d for d in deps if not d.startswith(CTL_MAY_IMPORT) and d != "paragon_licensed")
        for name, deps in importers("paragon_licensed.ctl").items()
    }
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("paragon_licensed.daemon", ("paragon_licensed.ctl", "paragon_licensed.portal")),
        ("paragon_licensed.portal", ("paragon_licensed.daemon", "paragon_licensed.ctl")),
        ("paragon_licensed.daemon.store", ("paragon_licensed.daemon.control", "paragon_licensed.interface")),
    ],
)
def test_packages_keep_to_their_side(package: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        name: sorted(d for d in deps if d.startswith(forbidden))
        for name, deps in importers(package).items()
        if name not in COMMAND_TREES
    }
    assert {k: v for k, v in bad.items() if v} == {}
