"""The Debian package: built with `scripts/build-deb`, checked by lintian, and
installed, upgraded and purged with apt in a throwaway Debian 12 root.

The upgrade is the real one: version N is installed and activated against the reference
portal, version N+1 of the package is installed over it, the daemon is restarted, and it
reactivates for the new build by itself. The daemon runs in the root directly (chroot),
never through systemd or any init; nothing is mounted there. `make package-test` runs
this module and tests/test_systemd_units.py (which also checks the packaged units).
"""

from __future__ import annotations

import gzip
import json
import re
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.package import (
    PACKAGE,
    ChrootDaemon,
    DebianRoot,
    Packages,
    changelog_version,
    deb_field,
    deb_files,
    environment_problems,
    next_version,
    run,
)
from support.portal import PortalProcess

from paragon_licensed.daemon.build import read_build
from paragon_licensed.daemon.config import ControlConfig, PathsConfig, ProductConfig

pytest_plugins = ["support.package", "support.portal"]
# One worker builds the packages once for every test that installs or inspects them.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.xdist_group("debian-package"),
]

REPO = Path(__file__).resolve().parents[1]
TENANT = "default"
ACTIVATION_KEY = "PKG-TEST-0001"
REACTIVATIONS = "/api/v1/reactivations"
VENV = "/opt/venvs/paragon-licensed"
# What the package may leave after `apt purge`, by design (docs/install.md, "Uninstalling"):
# the store and license copies. /run/paragon-licensed is the test's own (systemd's on a server).
KEPT_AFTER_PURGE = ("/var/lib/paragon-licensed", "/run/paragon-licensed")


def test_the_test_can_run_here() -> None:
    assert environment_problems() == []


# --- the version ------------------------------------------------------------------


def test_changelog_version_is_a_product_build_and_the_project_version(tmp_path: Path) -> None:
    version = changelog_version()
    build_file = tmp_path / "build"
    build_file.write_text(version + "\n")
    build = read_build(ProductConfig(build_file=str(build_file)))
    assert (build.value, build.problem) == (version, None)
    # The next release the package test builds is a build too, and dpkg orders it after.
    build_file.write_text(next_version(version) + "\n")
    assert read_build(ProductConfig(build_file=str(build_file))).value == next_version(version)
    run(["dpkg", "--compare-versions", next_version(version), "gt", version])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert version.split("-")[0].split("+")[0] == pyproject["project"]["version"]


def test_manual_pages_and_completion_are_packaged(packages: Packages, tmp_path: Path) -> None:
    """Generated from the parsers at build time: every ctl command is in its page and completion."""
    from paragon_licensed.ctl.main import COMMANDS

    unpacked = tmp_path / "unpacked"
    run(["dpkg-deb", "--extract", packages.current, unpacked])
    pages = {p.name for p in (unpacked / "usr/share/man/man1").iterdir()}
    assert {"paragon-licensed.1.gz", "paragon-licensed-ctl.1.gz"} <= pages
    # roff writes each hyphen with a backslash before it: read the page as a person does.
    raw = gzip.decompress((unpacked / "usr/share/man/man1/paragon-licensed-ctl.1.gz").read_bytes())
    ctl_page = raw.decode().replace("\\-", "-")
    bash = (unpacked / "usr/share/bash-completion/completions/paragon-licensed").read_text()
    assert (unpacked / "usr/share/zsh/vendor-completions/_paragon-licensed").is_file()
    for words in COMMANDS:
        assert words[-1] in ctl_page, words
        assert words[-1] in bash, words


def test_packaged_build_file_is_the_package_version(packages: Packages, tmp_path: Path) -> None:
    """The build the daemon reads by default is the package's version."""
    for deb, version in ((packages.current, packages.version), (packages.next, packages.next_version)):
        assert deb_field(deb, "Version") == version
        unpacked = tmp_path / version
        run(["dpkg-deb", "--extract", deb, unpacked])
        default = ProductConfig().build_file
        build = read_build(ProductConfig(build_file=str(unpacked / default.lstrip("/"))))
        assert (build.value, build.problem) == (version, None)


def test_lintian_reports_no_errors(packages: Packages) -> None:
    result = run(["lintian", "--fail-on", "error,warning", packages.current, packages.cockpit], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"^[EW]: ", result.stdout, re.M), result.stdout


def test_the_cockpit_page_is_a_package_of_its_own(packages: Packages) -> None:
    """cockpit/ as it is, where Cockpit finds packages, for every architecture (docs/cockpit.md)."""
    assert deb_field(packages.cockpit, "Architecture") == "all"
    assert deb_field(packages.cockpit, "Version") == packages.version
    depends = deb_field(packages.cockpit, "Depends")
    assert "cockpit-bridge" in depends
    assert f"{PACKAGE} (>= {packages.version})" in depends
    page = sorted(f"/usr/share/cockpit/{PACKAGE}/{f.name}" for f in (REPO / "cockpit").iterdir())
    shipped = deb_files(packages.cockpit)
    assert sorted(f for f in shipped if f.startswith("/usr/share/cockpit/")) == page
    assert not [f for f in deb_files(packages.current) if "cockpit" in f]


# --- install, activate, upgrade, purge -----------------------------------------------


def operator_config(portal: PortalProcess) -> str:
    """What an operator writes over the sample: the portal, the tenant, and (this root has
    no DMI and no D-Bus) where the product UUID is."""
    return (
        "# written by the package test\n"
        "[identity]\n"
        'product_uuid_file = "/etc/paragon-licensed/product_uuid"\n'
        "use_dbus = false\n\n"
        "[portal]\n"
        f'url = "{portal.url}"\n\n'
        "[tenant_check]\n"
        'splay = "0s"\n\n'
        "[[tenants]]\n"
        f'id = "{TENANT}"\n'
        'admin_email = "admin@example.com"\n'
        f'activation_key = "{ACTIVATION_KEY}"\n'
    )


def prepare_like_systemd(root: DebianRoot) -> None:
    """The folders systemd makes for the units (StateDirectory=, the socket's folder)."""
    state = PathsConfig().state_dir
    socket_dir = str(Path(ControlConfig().socket).parent)
    root.chroot("install", "-d", "-m", "0700", "-o", PACKAGE, "-g", PACKAGE, state)
    # Without the socket unit the daemon binds the socket itself, so the folder is its own.
    root.chroot("install", "-d", "-m", "0755", "-o", PACKAGE, "-g", PACKAGE, socket_dir)


def ctl_json(daemon: ChrootDaemon, *args: str) -> Any:
    return json.loads(daemon.ctl(*args, "--json").stdout)


def tenant(daemon: ChrootDaemon) -> dict[str, Any]:
    found: dict[str, Any] = ctl_json(daemon, "tenants", "--tenant", TENANT, "--limit", "1")["tenants"][0]
    return found


def licensed_for(daemon: ChrootDaemon, build: str) -> dict[str, Any] | None:
    if tenant(daemon)["state"] != "active":
        return None
    info: dict[str, Any] = ctl_json(daemon, "license", "info")
    return info if info["build"] == build else None


def test_install_activate_upgrade_reactivates_and_purge_leaves_nothing(
    packages: Packages, debian_root: DebianRoot, portal: PortalProcess, tmp_path: Path
) -> None:
    root = debian_root
    # -- install version N
    root.install(packages.current)
    version = root.chroot("dpkg-query", "-W", "-f", "${Version}", PACKAGE).stdout
    assert version == packages.version

    # The files are where the units and the docs expect them.
    program = root.file(f"{VENV}/bin/paragon-licensed")
    assert root.file("/usr/bin/paragon-licensed").is_symlink()
    assert Path(root.chroot("readlink", "-f", "/usr/bin/paragon-licensed").stdout.strip()) == Path(
        f"{VENV}/bin/paragon-licensed"
    )
    assert program.is_file()
    for unit in ("paragon-licensed.service", "paragon-licensed.socket"):
        installed = root.file(f"/usr/lib/systemd/system/{unit}")
        assert installed.read_text() == (REPO / "systemd" / unit).read_text()
    sysusers = REPO / "systemd" / "sysusers.d" / "paragon-licensed.conf"
    assert root.file("/usr/lib/sysusers.d/paragon-licensed.conf").read_text() == sysusers.read_text()
    assert root.file("/usr/bin/kill").exists()  # ExecReload=/bin/kill (procps; /bin is /usr/bin)
    config = root.file("/etc/paragon-licensed/paragon-licensed.toml")
    assert config.read_text() == (REPO / "etc" / "paragon-licensed.toml").read_text()
    conffiles = root.chroot("dpkg-query", "-W", "-f", "${Conffiles}", PACKAGE).stdout
    assert "/etc/paragon-licensed/paragon-licensed.toml" in conffiles
    assert root.file(ProductConfig().build_file).read_text() == packages.version + "\n"
    # The accounts (systemd-sysusers), and the units enabled for the next boot.
    assert root.chroot("getent", "group", "paragon-license").returncode == 0
    account = root.chroot("getent", "passwd", PACKAGE).stdout
    assert root.file("/etc/systemd/system/sockets.target.wants/paragon-licensed.socket").is_symlink()
    assert root.file("/etc/systemd/system/multi-user.target.wants/paragon-licensed.service").is_symlink()
    # ctl and the program are on PATH; the installed sample is a valid configuration.
    assert "--socket PATH" in root.chroot("paragon-licensed", "ctl", "--help").stdout
    result = root.chroot("paragon-licensed", "check-config")
    assert "configuration is valid" in result.stdout

    # -- the operator's part: the portal key, the portal, a tenant
    portal.add_order(ACTIVATION_KEY, TENANT)
    keys = root.file("/etc/paragon-licensed/portal-keys")
    keys.mkdir()
    for public in Path(portal.key_dir).glob("*.pub"):
        (keys / public.name).write_bytes(public.read_bytes())
    root.file("/etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    root.file("/etc/paragon-licensed/product_uuid").write_text(str(uuid.uuid4()) + "\n")
    config.write_text(operator_config(portal))
    assert "1 portal public key(s)" in root.chroot("paragon-licensed", "check-config").stdout
    prepare_like_systemd(root)

    daemon = ChrootDaemon(root, tmp_path / "daemon.log")
    try:
        daemon.start()
        identity = daemon.wait_until(lambda: ctl_json(daemon, "identity"), what="the control socket")
        assert isinstance(identity, dict)
        assert identity["computer_id"]
        first = daemon.wait_until(
            lambda: licensed_for(daemon, packages.version), what=f"a license for {packages.version}"
        )
        assert isinstance(first, dict)
        assert ctl_json(daemon, "status")["build"] == packages.version
        notes_before = {n["id"] for n in ctl_json(daemon, "notifications")}
        assert daemon.stop() == 0

        # -- install version N+1 over it; the daemon restarts and reactivates by itself
        mark = max((r.id for r in portal.requests()), default=0)
        root.install(packages.next)
        assert root.chroot("dpkg-query", "-W", "-f", "${Version}", PACKAGE).stdout == packages.next_version
        assert root.file(ProductConfig().build_file).read_text() == packages.next_version + "\n"
        assert config.read_text() == operator_config(portal), "the changed conffile is kept"
        assert root.chroot("getent", "passwd", PACKAGE).stdout == account

        daemon.start()
        second = daemon.wait_until(
            lambda: licensed_for(daemon, packages.next_version),
            what=f"a license reactivated for {packages.next_version}",
        )
        assert isinstance(second, dict)
        assert second["license_id"] != first["license_id"]
        assert ctl_json(daemon, "status")["build"] == packages.next_version
        reactivations = portal.requests(path=REACTIVATIONS, after_id=mark)
        assert [(r.method, r.status) for r in reactivations] == [("POST", 200)]
        notes = [n for n in ctl_json(daemon, "notifications") if n["id"] not in notes_before]
        upgrade = [n for n in notes if n["title"] == "License reactivated after upgrade"]
        assert len(upgrade) == 1, notes
        assert f"Reactivated after upgrade to {packages.next_version}" in upgrade[0]["text"]
        assert daemon.stop() == 0
    finally:
        daemon.stop()

    # -- purge: nothing of the package is left, except the store (and the account)
    shipped = deb_files(packages.next)
    root.apt("purge", PACKAGE)
    assert root.chroot("dpkg-query", "-W", PACKAGE, check=False).returncode != 0 or (
        "not-installed" in root.chroot("dpkg-query", "-W", "-f", "${db:Status-Status}", PACKAGE).stdout
    )
    left = [path for path in shipped if root.file(path).exists() or root.file(path).is_symlink()]
    assert left == []
    named = run(["find", root.path, "-name", "*paragon*"]).stdout.split()
    named = ["/" + str(Path(p).relative_to(root.path)) for p in named]
    stray = [p for p in named if not p.startswith(KEPT_AFTER_PURGE)]
    assert stray == []
    for path in ("/etc/paragon-licensed", VENV, "/opt/paragon"):
        assert not root.file(path).exists(), path
    assert root.file(f"{PathsConfig().state_dir}/store.db").exists(), "purge keeps the store"
    assert root.chroot("getent", "passwd", PACKAGE).stdout == account, "purge keeps the account"
