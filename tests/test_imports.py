"""The import rules of ARCHITECTURE.md, checked on the source so the structure stays.

Every ``import`` and ``from ... import`` of the package's modules is read with
``ast`` (those under ``if TYPE_CHECKING:`` included: a dependency for types is
still a dependency) and checked against the rules below.

What the installed programs really load is checked in new processes: the daemon's
modules when imported, a running idle daemon (its ``sys.modules`` read from inside,
``support.modules``), and ctl after a few commands.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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


# -- What the programs really import (the installed package, in new processes) ---------------------

# Libraries a 1-tenant node without portal, mail, metrics or D-Bus does not need: each is
# imported where it is first used (ARCHITECTURE.md, "Import rules").
IDLE_NODE_NEVER_LOADS = (
    "click",  # `run` goes straight to the daemon
    "cryptography",  # no key to read and no license to verify
    "dbus_fast",  # identity.use_dbus = false
    "email",
    "http.client",
    "prometheus_client",
    "psycopg",
    "requests",
    "smtplib",
    "urllib.request",
    "wsgiref",
)
# The daemon's modules do not import these at all: only the code that uses them does.
DAEMON_IMPORT_NEVER_LOADS = (*IDLE_NODE_NEVER_LOADS, "paragon_licensed.daemon.metrics")


def loaded(names: set[str], heavy: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in heavy))


def test_importing_the_daemon_loads_no_heavy_library() -> None:
    from support.modules import in_a_fresh_interpreter

    names = in_a_fresh_interpreter(
        "import paragon_licensed.daemon.app, paragon_licensed.daemon.service, paragon_licensed.cli"
    )
    assert "paragon_licensed.daemon.app" in names
    assert loaded(names, DAEMON_IMPORT_NEVER_LOADS) == []


@pytest.mark.e2e
def test_an_idle_one_tenant_node_loads_no_heavy_library(tmp_path: Path) -> None:
    from support.daemon import DaemonProcess
    from support.modules import modules_now, wrapper

    daemon = DaemonProcess(tmp_path, config={"tenants": [{"id": "default"}]})
    dump = tmp_path / "modules.json"
    daemon.start(wrapper=wrapper(dump))
    try:
        # Idle: the coordinator's start-up duties ran (the first tenant check among them).
        daemon.wait_until(lambda: "tenant check finished" in daemon.log(), 30, what="first tenant check")
        daemon.wait_until(lambda: daemon.status()["activity"] == "idle", 30, what="idle")
        names = modules_now(dump)
    finally:
        daemon.stop()
    assert "paragon_licensed.daemon.app" in names
    assert loaded(names, IDLE_NODE_NEVER_LOADS) == []


def test_run_with_other_arguments_is_still_clicks() -> None:
    from support.daemon import DAEMON

    shown = subprocess.run([DAEMON, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    assert "--config FILE" in shown.stdout
    wrong = subprocess.run([DAEMON, "run", "--nope"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2
    assert "No such option '--nope'" in wrong.stderr


@pytest.mark.e2e
def test_ctl_loads_only_the_standard_library_and_its_own_modules(tmp_path: Path) -> None:
    from support.daemon import DaemonProcess
    from support.modules import in_a_fresh_interpreter

    daemon = DaemonProcess(tmp_path, config={"tenants": [{"id": "default"}]})
    daemon.start()
    try:
        run_ctl = (
            "from paragon_licensed.cli import main\n"
            "sys.argv = ['paragon-licensed', 'ctl', '--socket', *sys.argv[1:]]\n"
            "main()"
        )
        commands = {
            verb: in_a_fresh_interpreter(run_ctl, daemon.socket, *verb)
            for verb in (("status",), ("check",), ("identity",), ("license", "info"))
        }
    finally:
        daemon.stop()
    bare = in_a_fresh_interpreter("pass")
    ours = {
        "paragon_licensed",
        "paragon_licensed.cli",
        "paragon_licensed.ctl",
        "paragon_licensed.text",
        "paragon_licensed.interface",
        "paragon_licensed.interface.errors",
    }
    for verb, names in commands.items():
        assert "paragon_licensed.ctl.main" in names, verb
        outside = sorted(
            n
            for n in names - bare
            if n.split(".")[0] not in sys.stdlib_module_names
            and n not in ours
            and not n.startswith("paragon_licensed.ctl.")
        )
        assert outside == [], verb
        # Nor the standard library's heavier parts that ctl has no use for.
        assert loaded(names, ("shutil", "dataclasses", "inspect", "http", "email", "asyncio")) == [], verb
    # The monitoring plugin, run every few seconds, does not even load typing.
    assert "typing" not in commands[("check",)]
