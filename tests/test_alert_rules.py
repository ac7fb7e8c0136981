"""The shipped alert rules: valid for Prometheus, and each one firing (and only then) as
tests/data/prometheus/rules_test.yml expects, with the summary and description it promises."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.prometheus import tool

ROOT = Path(__file__).parent.parent
RULES = ROOT / "etc" / "prometheus" / "paragon-licensed.rules.yml"
RULES_TEST = ROOT / "tests" / "data" / "prometheus" / "rules_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, check=False)


def test_the_rules_file_is_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_fire_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_test_and_says_what_to_do() -> None:
    rules = RULES.read_text()
    tests = RULES_TEST.read_text()
    names = [
        line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")
    ]
    assert len(names) == 10, names
    for name in names:
        assert f"alertname: {name}\n" in tests, name
    for rule in rules.split("- alert:")[1:]:
        assert "summary:" in rule, rule
        description = rule.split("description:", 1)[1]
        assert "paragon-licensed ctl" in " ".join(description.split()), rule
