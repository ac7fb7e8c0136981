"""The generated manual pages and shell completion (`make man completions`) cover every ctl command.

The generator (scripts/man_completions.py) runs as the build runs it; every command of
ctl's ``COMMANDS`` table must then be offered by the bash completion of
``paragon-licensed`` (asked through bash itself, as a shell asks it), be named in the zsh
completion, and have its section in the ctl manual page.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from paragon_licensed.ctl.main import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "man_completions.py"


def generate(what: str, out: Path) -> list[Path]:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), what, str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [Path(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def completions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("completions")
    written = generate("completions", out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "bash/paragon-license-portal",
        "bash/paragon-licensed",
        "zsh/_paragon-license-portal",
        "zsh/_paragon-licensed",
    ]
    return out


@pytest.fixture(scope="module")
def man(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("man")
    generate("man", out)
    return out


def bash_complete(script: Path, words: list[str]) -> list[str]:
    """What bash offers after ``words`` (the last one being typed), from the completion script."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
        "_shtab_paragon_licensed\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True, text=True, timeout=30, check=False, cwd=script.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def roff_text(path: Path) -> str:
    """A manual page's text without roff's font escapes."""
    text = path.read_text()
    return re.sub(r"\\f[BIRP]|\\[,/&]", "", text).replace("\\-", "-")


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_bash_completion_offers_every_ctl_command(completions: Path, words: tuple[str, ...]) -> None:
    script = completions / "bash" / "paragon-licensed"
    *parents, last = words
    offered = bash_complete(script, ["paragon-licensed", "ctl", *parents, last[:1]])
    assert last in offered, offered
    # The command's own options are offered once it is typed (every ctl command has --json).
    options = bash_complete(script, ["paragon-licensed", "ctl", *words, "--"])
    assert "--json" in options, options


def test_bash_completion_covers_the_daemon_commands_and_files(completions: Path, tmp_path: Path) -> None:
    script = completions / "bash" / "paragon-licensed"
    assert bash_complete(script, ["paragon-licensed", ""]) == ["run", "identity", "check-config", "ctl"]
    assert "--config" in bash_complete(script, ["paragon-licensed", "run", "--"])
    # FILE arguments complete file names.
    (completions / "bash" / "response-file.txt").write_text("x")
    offered = bash_complete(script, ["paragon-licensed", "ctl", "license", "import", "resp"])
    assert offered == ["response-file.txt"]


def test_zsh_completion_names_every_ctl_command(completions: Path) -> None:
    text = (completions / "zsh" / "_paragon-licensed").read_text()
    assert text.startswith("#compdef paragon-licensed\n")
    for words in COMMANDS:
        prefix = "_shtab_paragon_licensed_ctl" + "".join("_" + w.replace("-", "_") for w in words[:-1])
        function = re.search(prefix + r"_commands\(\) \{\n  local _commands=\((.*?)\n  \)", text, re.S)
        if function is None:  # a command without subcommands: declared by its options
            assert f"{prefix}_{words[-1].replace('-', '_')}_options=(" in text, words
            continue
        assert re.search(rf"^\s+{re.escape(words[-1])}:'", function.group(1), re.M), words


def test_the_portal_completion_is_clicks_own(completions: Path) -> None:
    bash = (completions / "bash" / "paragon-license-portal").read_text()
    assert "_PARAGON_LICENSE_PORTAL_COMPLETE=bash_complete" in bash
    assert "complete -o nosort -F _paragon_license_portal_completion paragon-license-portal" in bash
    assert "#compdef paragon-license-portal" in (completions / "zsh" / "_paragon-license-portal").read_text()
    portal = Path(sys.executable).parent / "paragon-license-portal"
    result = subprocess.run(
        [str(portal)], capture_output=True, text=True, timeout=30, check=False,
        env={"COMP_WORDS": "paragon-license-portal offline ", "COMP_CWORD": "2",
             "_PARAGON_LICENSE_PORTAL_COMPLETE": "bash_complete", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.split() == ["plain,process"], result.stderr


def test_the_ctl_manual_page_has_a_section_for_every_command(man: Path) -> None:
    page = man / "paragon-licensed-ctl.1"
    text = roff_text(page)
    assert text.startswith('.TH PARAGON-LICENSED-CTL "1" ')
    assert "paragon-licensed-ctl - Talk to the running paragon-licensed daemon" in text  # whatis
    for words in COMMANDS:
        assert f".SH COMMAND 'paragon-licensed ctl {' '.join(words)}'" in text, words


def test_manual_pages_for_the_daemon_and_the_portal(man: Path) -> None:
    names = {p.name for p in man.glob("*.1")}
    assert {
        "paragon-licensed.1",
        "paragon-licensed-run.1",
        "paragon-licensed-identity.1",
        "paragon-licensed-check-config.1",
        "paragon-licensed-ctl.1",
        "paragon-license-portal.1",
        "paragon-license-portal-serve.1",
        "paragon-license-portal-offline-process.1",
        "paragon-license-portal-orders-add.1",
        "paragon-license-portal-keygen.1",
        "paragon-license-portal-requests.1",
    } <= names
    top = roff_text(man / "paragon-licensed.1")
    for command in ("run", "identity", "check-config", "ctl"):
        assert f"See paragon-licensed-{command}(1) for full documentation" in top, command
    serve = roff_text(man / "paragon-license-portal-serve.1")
    assert "--hold-after" in serve
