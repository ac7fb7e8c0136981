"""The configuration file: every kind of problem as one exact line, defaults, paths, secrets.

Every key, its default and its range: etc/paragon-licensed.toml.

A problem line is ``FILE: KEY: expected X, found Y``; the operator reads it in
``check-config`` output and in the daemon's log, so the tests pin it word for word.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paragon_licensed.daemon.config import (
    DEFAULT_SOCKET,
    Config,
    ConfigError,
    ControlConfig,
    Duration,
    Secret,
    changed_keys,
    flatten,
    format_duration,
    load_config,
    parse_config,
)

CLI = Path(sys.executable).parent / "paragon-licensed"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_EXPECTED = 'a duration like "90s", "15m", "2h" or "2d"'


def known(cls: type[msgspec.Struct]) -> str:
    """The "expected" text for an unknown key in a section of this type."""
    names = ", ".join(sorted(f.encode_name for f in msgspec.structs.fields(cls)))
    return f"a known key (one of: {names})"


def write(tmp_path: Path, text: str | bytes, name: str = "paragon-licensed.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problem_lines(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert caught.value.exit_code == 2
    assert len(caught.value.problems) == len(str(caught.value).splitlines())
    return str(caught.value).splitlines()


def one_problem(tmp_path: Path, text: str | bytes) -> tuple[Path, str]:
    path = write(tmp_path, text)
    lines = problem_lines(path)
    assert len(lines) == 1, lines
    return path, lines[0]


# -- every kind of problem, one exact line each


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, 'nodes = "x"\n')
    assert line == f"{path}: nodes: expected {known(Config)}, found an unknown key"


def test_unknown_nested_key(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[control]\nsockett = "/run/x"\n')
    assert line == f"{path}: control.sockett: expected {known(ControlConfig)}, found an unknown key"


def test_unknown_key_inside_an_array_of_tables(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[[tenants]]\nid = "a"\nadmin_emial = "a@example.com"\n')
    assert line.startswith(f"{path}: tenants[0].admin_emial: expected a known key (one of: ")
    assert line.endswith("), found an unknown key")


def test_wrong_type_integer(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[control]\nmax_connections = "many"\n')
    assert line == f'{path}: control.max_connections: expected an integer, found "many"'


def test_wrong_type_boolean_is_not_an_integer(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "[mail]\nsmtp_port = true\n")
    assert line == f"{path}: mail.smtp_port: expected an integer, found true (a boolean)"


def test_wrong_type_bool(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[identity]\nuse_dbus = "yes"\n')
    assert line == f'{path}: identity.use_dbus: expected true or false, found "yes"'


def test_wrong_type_string(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "[node]\nname = 7\n")
    assert line == f"{path}: node.name: expected a string, found 7 (int)"


def test_wrong_type_section(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "control = 5\n")
    assert line == f"{path}: control: expected a table, found 5 (int)"


def test_wrong_type_array(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[portal]\npublic_keys = "/etc/keys/*.pub"\n')
    assert line == f'{path}: portal.public_keys: expected an array of strings, found "/etc/keys/*.pub"'


def test_wrong_type_array_item(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[portal]\npublic_keys = ["/etc/a.pub", 3]\n')
    assert line == f"{path}: portal.public_keys[1]: expected a string, found 3 (int)"


def test_missing_required_tenant_id(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[[tenants]]\nadmin_email = "a@example.com"\n')
    assert line == f"{path}: tenants[0].id: expected a value, found nothing (the key is required)"


@pytest.mark.parametrize("text", ["2 weeks", "15", "m", "1w", "-1s", "1.s", "", "s15"])
def test_bad_duration(tmp_path: Path, text: str) -> None:
    path, line = one_problem(tmp_path, f'[cluster]\nheartbeat = "{text}"\n')
    assert line == f'{path}: cluster.heartbeat: expected {DURATION_EXPECTED}, found "{text}"'


def test_duration_as_a_bare_number(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "[tenant_check]\ninterval = 3600\n")
    assert line == f"{path}: tenant_check.interval: expected {DURATION_EXPECTED}, found 3600 (int)"


def test_bad_duration_in_a_list(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[reactivation]\nretry_schedule = ["15m", "soon"]\n')
    assert line == f'{path}: reactivation.retry_schedule[1]: expected {DURATION_EXPECTED}, found "soon"'


def test_bad_enum(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[product]\ndeployment = "multi_tenant"\n')
    assert line == (
        f'{path}: product.deployment: expected one of "single-tenant", "multi-tenant", found "multi_tenant"'
    )


def test_duplicate_tenant_id(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[[tenants]]\nid = "acme"\n\n[[tenants]]\nid = "acme"\n')
    assert line == f'{path}: tenants[1].id: expected a tenant ID used once, found "acme" again'


def test_empty_tenant_id(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[[tenants]]\nid = " "\n')
    assert line == f'{path}: tenants[0].id: expected a non-empty tenant ID, found ""'


@pytest.mark.parametrize(
    ("section", "key", "shown"),
    [
        ('[[tenants]]\nid = "a"\nadmin_email = "{v}"\n', "tenants[0].admin_email", "admin.example.com"),
        ('[cloud]\nadmin_email = "{v}"\n', "cloud.admin_email", "cloud admin@example.com"),
        ('[mail]\nfrom = "{v}"\n', "mail.from", "@@"),
    ],
)
def test_bad_email(tmp_path: Path, section: str, key: str, shown: str) -> None:
    path, line = one_problem(tmp_path, section.format(v=shown))
    assert line == f'{path}: {key}: expected an e-mail address, found "{shown}"'


@pytest.mark.parametrize(
    "url",
    ["http://portal.example.com/api/v1", "http://10.0.0.5:8080/api/v1", "http://[2001:db8::1]/api/v1"],
)
def test_plain_http_portal_refused_for_other_hosts(tmp_path: Path, url: str) -> None:
    path, line = one_problem(tmp_path, f'[portal]\nurl = "{url}"\n')
    assert line == (
        f"{path}: portal.url: expected an https:// URL (plain http:// is accepted for loopback "
        f'addresses only), found "{url}"'
    )


@pytest.mark.parametrize("url", ["ftp://portal.example.com/", "portal.example.com/api/v1", "https://"])
def test_portal_url_without_https(tmp_path: Path, url: str) -> None:
    path, line = one_problem(tmp_path, f'[portal]\nurl = "{url}"\n')
    assert line == f'{path}: portal.url: expected an https:// URL, found "{url}"'


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api/v1",
        "http://127.1.2.3/api/v1",
        "http://localhost:9000/api/v1",
        "http://[::1]:8080/api/v1",
        "https://portal.example.com/api/v1",
    ],
)
def test_portal_url_accepted(tmp_path: Path, url: str) -> None:
    config = load_config(str(write(tmp_path, f'[portal]\nurl = "{url}"\n')))
    assert config.portal.url == url


@pytest.mark.parametrize("url", ["mysql://db/licenses", "/var/lib/store.db", "sqlite:/relative"])
def test_bad_store_url(tmp_path: Path, url: str) -> None:
    path, line = one_problem(tmp_path, f'[store]\nurl = "{url}"\n')
    assert (
        line == f'{path}: store.url: expected "sqlite:///PATH" or "postgresql://USER@HOST/DB", found "{url}"'
    )


def test_bad_store_url_with_a_password_is_not_echoed(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[store]\nurl = "postgresq://u:hunter2@db/x"\n')
    assert line == (
        f'{path}: store.url: expected "sqlite:///PATH" or "postgresql://USER@HOST/DB", '
        'found a URL of scheme "postgresq" (the rest is not shown: it may hold a password)'
    )


def test_renew_deadline_lease_ordering(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[cluster]\nrenew = "5s"\nrenew_deadline = "20s"\nlease = "15s"\n')
    assert line == (
        f"{path}: cluster.renew_deadline: expected cluster.renew < cluster.renew_deadline < cluster.lease, "
        "found renew 5s, renew_deadline 20s, lease 15s"
    )


def test_renew_not_before_deadline(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[cluster]\nrenew = "10s"\n')
    assert line == (
        f"{path}: cluster.renew_deadline: expected cluster.renew < cluster.renew_deadline < cluster.lease, "
        "found renew 10s, renew_deadline 10s, lease 15s"
    )


def test_node_timeout_not_after_heartbeat(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, '[cluster]\nheartbeat = "10s"\n')
    assert line == (
        f"{path}: cluster.node_timeout: expected a timeout longer than cluster.heartbeat, "
        "found 10s with heartbeat 10s"
    )


def test_counts_of_at_least_one(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "[control]\nmax_connections = 0\n")
    assert line == f"{path}: control.max_connections: expected a number from 1 to 65536, found 0"


def test_empty_retry_schedule(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, "[reactivation]\nretry_schedule = []\n")
    assert (
        line == f"{path}: reactivation.retry_schedule: expected at least one duration, found an empty array"
    )


def test_toml_syntax_error(tmp_path: Path) -> None:
    text = '[control]\nsocket = "/run/x\n'
    with pytest.raises(tomllib.TOMLDecodeError) as toml_error:
        tomllib.loads(text)
    path, line = one_problem(tmp_path, text)
    assert line == f"{path}: (file): expected valid TOML, found a syntax error ({toml_error.value})"
    assert "line 2" in line  # the operator is told where


def test_missing_explicit_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    assert problem_lines(path) == [f"{path}: (file): expected a readable file, found no such file"]


def test_missing_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nowhere.toml"
    monkeypatch.setenv("PARAGON_LICENSED_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == f"{path}: (file): expected a readable file, found no such file"


def test_unreadable_path(tmp_path: Path) -> None:
    assert problem_lines(tmp_path) == [f"{tmp_path}: (file): expected a readable file, found Is a directory"]


def test_non_utf8(tmp_path: Path) -> None:
    path, line = one_problem(tmp_path, b'[node]\nname = "mgmt-\xff"\n')
    assert line == f"{path}: (file): expected UTF-8 text, found undecodable bytes"


def test_several_problems_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                "bogus = 1",
                "[control]",
                'max_connections = "lots"',
                'idle_timeout = "forever"',
                "[product]",
                'deployment = "both"',
                "[cluster]",
                'heartbeat = "2 weeks"',
                "typo = true",
            ]
        ),
    )
    assert problem_lines(path) == [
        f"{path}: bogus: expected {known(Config)}, found an unknown key",
        f'{path}: control.max_connections: expected an integer, found "lots"',
        f'{path}: control.idle_timeout: expected {DURATION_EXPECTED}, found "forever"',
        f'{path}: product.deployment: expected one of "single-tenant", "multi-tenant", found "both"',
        f'{path}: cluster.heartbeat: expected {DURATION_EXPECTED}, found "2 weeks"',
        f"{path}: cluster.typo: expected {known(type(Config().cluster))}, found an unknown key",
    ]


def test_several_semantic_problems_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                "[portal]",
                'url = "http://portal.example.com/"',
                "[store]",
                'url = "mysql://x"',
                "[cloud]",
                'admin_email = "nobody"',
                "[[tenants]]",
                'id = "a"',
                "[[tenants]]",
                'id = "a"',
            ]
        ),
    )
    lines = problem_lines(path)
    assert [line.split(": ")[1] for line in lines] == [
        "tenants[1].id",
        "cloud.admin_email",
        "portal.url",
        "store.url",
    ]
    assert all(line.startswith(f"{path}: ") and ", found " in line for line in lines)


# -- what a valid file gives


def test_empty_file_is_valid_with_every_default(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, "")))
    assert config == Config()
    assert config.control.socket == DEFAULT_SOCKET
    assert config.control.admin_group == "paragon-license"
    assert (config.control.max_connections, config.control.max_message) == (256, 1024 * 1024)
    assert config.control.idle_timeout == 60.0
    assert config.paths.state_dir == "/var/lib/paragon-licensed"
    assert config.store_url == "sqlite:///var/lib/paragon-licensed/store.db"
    assert config.product.deployment == "single-tenant"
    assert config.product.build_file == "/opt/paragon/build"
    assert config.identity.use_dbus is True
    assert (config.cluster.heartbeat, config.cluster.node_timeout, config.cluster.lease) == (2.0, 10.0, 15.0)
    assert (config.cluster.renew, config.cluster.renew_deadline) == (5.0, 10.0)
    assert config.tenant_check.interval == 3600.0
    assert config.tenant_check.expiring_within == 2 * 86400.0
    assert config.tenant_check.reminder_interval == 86400.0
    assert config.reactivation.grace_period == 14 * 86400.0
    assert (config.mail.smtp_host, config.mail.smtp_port, config.mail.starttls) == ("localhost", 25, False)
    assert config.mail.sender == "paragon-licensed@localhost"
    assert config.portal.timeout == 10.0
    assert config.portal.max_concurrency == 16
    assert config.cloud.admin_email == ""
    assert config.tenants == []


def test_absent_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paragon_licensed.daemon.config as config_module

    monkeypatch.delenv("PARAGON_LICENSED_CONFIG", raising=False)
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", str(tmp_path / "absent.toml"))
    assert load_config() == Config()


def test_mail_from_is_spelled_from(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, '[mail]\nfrom = "licenses@example.com"\n')))
    assert config.mail.sender == "licenses@example.com"
    path, line = one_problem(tmp_path, '[mail]\nsender = "licenses@example.com"\n')
    assert line.startswith(f"{path}: mail.sender: expected a known key (one of: ")
    assert "from" in line


# -- durations


@given(
    number=st.one_of(
        st.integers(min_value=0, max_value=10**6).map(str),
        st.tuples(st.integers(0, 10**4), st.integers(0, 999)).map(lambda t: f"{t[0]}.{t[1]}"),
    ),
    unit=st.sampled_from(sorted(UNITS)),
)
@settings(max_examples=200, deadline=None)
def test_duration_parses_number_and_unit(number: str, unit: str) -> None:
    text = f"{number}{unit}"
    seconds = float(number) * UNITS[unit]
    assert Duration.parse(text) == pytest.approx(seconds)
    if 60 <= Duration.parse(text) <= 365 * 86400:  # tenant_check.interval's range
        config = parse_config({"tenant_check": {"interval": text}})
        assert config.tenant_check.interval == pytest.approx(seconds)
    else:
        with pytest.raises(ConfigError, match=r"tenant_check\.interval: expected a duration from 1m to 365d"):
            parse_config({"tenant_check": {"interval": text}})


@given(seconds=st.integers(min_value=1, max_value=10**7))
@settings(max_examples=200, deadline=None)
def test_duration_format_round_trips(seconds: int) -> None:
    assert Duration.parse(format_duration(seconds)) == float(seconds)


@given(text=st.text(max_size=12).filter(lambda t: t.strip()[-1:] not in ("s", "m", "h", "d")))
@settings(max_examples=200, deadline=None)
def test_text_without_a_unit_is_no_duration(text: str) -> None:
    with pytest.raises(ValueError):
        Duration.parse(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("2d", 172800), ("0.5s", 0.5), ("250ms", 0.25), ("1.5h", 5400)],
)
def test_duration_examples(text: str, seconds: float) -> None:
    assert Duration.parse(text) == pytest.approx(seconds)


def test_duration_repr_is_the_file_spelling() -> None:
    assert repr(Duration.parse("15m")) == "15m"
    assert repr(Duration.parse("2d")) == "2d"
    assert repr(Duration.parse("0.5s")) == "0.5s"


# -- relative paths


def test_relative_paths_resolve_against_the_file_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(
        folder,
        "\n".join(
            [
                "[paths]",
                'state_dir = "state"',
                "[control]",
                'socket = "run/io.paragon.License"',
                "[store]",
                'url = "sqlite://db/store.db"',
                'password_file = "secrets/db"',
                "[product]",
                'build_file = "../build"',
                "[identity]",
                'machine_id_file = "id/machine-id"',
                'product_uuid_file = "/sys/class/dmi/id/product_uuid"',
                "[portal]",
                'public_keys = ["keys/*.pub", "/etc/keys/*.pub"]',
                'ca_bundle = "ca.pem"',
                "[mail]",
                'password_file = "smtp-password"',
            ]
        ),
    )
    config = load_config(str(path))
    assert config.paths.state_dir == str(folder / "state")
    assert config.control.socket == str(folder / "run/io.paragon.License")
    assert config.store.url == f"sqlite://{folder / 'db/store.db'}"
    assert config.store_url == config.store.url
    assert config.store.password_file == str(folder / "secrets/db")
    assert config.product.build_file == str(folder.parent / "build")
    assert config.identity.machine_id_file == str(folder / "id/machine-id")
    assert config.identity.product_uuid_file == "/sys/class/dmi/id/product_uuid"
    assert config.portal.public_keys == [str(folder / "keys/*.pub"), "/etc/keys/*.pub"]
    assert config.portal.ca_bundle == str(folder / "ca.pem")
    assert config.mail.password_file == str(folder / "smtp-password")


def test_relative_config_path_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", '[paths]\nstate_dir = "state"\n', "x.toml")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/x.toml")
    assert config.paths.state_dir == str(tmp_path / "conf" / "state")
    assert config.store_url == f"sqlite://{tmp_path / 'conf' / 'state' / 'store.db'}"


def test_empty_paths_stay_empty(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, '[portal]\nca_bundle = ""\n')))
    assert config.portal.ca_bundle == ""
    assert config.mail.password_file == ""


# -- check-config through the installed console script


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=30, check=False)


def test_check_config_valid(tmp_path: Path) -> None:
    path = write(tmp_path, '[node]\nname = "mgmt-1"\n[[tenants]]\nid = "default"\n')
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: configuration is valid (0 portal public key(s) found)\n"
    assert result.stderr == ""


def test_check_config_refuses_an_unreadable_portal_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "broken.pub").write_text("not a key\n")
    path = write(tmp_path, f'[portal]\npublic_keys = ["{keys}/*.pub"]\n')
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{path}: portal.public_keys: expected a readable Ed25519 public key, "
        f"found {keys}/broken.pub: not a PEM public key\n"
    )


def test_check_config_empty_file(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, "")))
    assert result.returncode == 0, result.stderr


def test_check_config_problems(tmp_path: Path) -> None:
    path = write(tmp_path, '[control]\nmax_connections = "x"\n[cluster]\nlease = "ever"\n[nope]\n')
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{path}: control.max_connections: expected an integer, found "x"',
        f'{path}: cluster.lease: expected {DURATION_EXPECTED}, found "ever"',
        f"{path}: nope: expected {known(Config)}, found an unknown key",
    ]


def test_check_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}: (file): expected a readable file, found no such file\n"


def test_check_config_tenant_without_id_has_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[[tenants]]\nadmin_email = "a@example.com"\n')
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}: tenants[0].id: expected a value, found nothing (the key is required)\n"


def test_check_config_syntax_error_has_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[control\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"{path}: (file): expected valid TOML, found a syntax error (")
    assert "Traceback" not in result.stderr


# -- secrets


SECRET_KEY = "AK-7f3c9e1d-TOP-SECRET"


def test_activation_key_never_in_repr_or_flatten(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[tenants]]\nid = "acme"\nactivation_key = "{SECRET_KEY}"\n')
    config = load_config(str(path))
    assert config.tenants[0].activation_key == SECRET_KEY  # usable by the daemon
    assert isinstance(config.tenants[0].activation_key, Secret)
    for text in (repr(config), repr(config.tenants[0]), str(config.tenants), repr(flatten(config))):
        assert SECRET_KEY not in text
    assert flatten(config)["tenants[0].activation_key"] == "Secret('***')"
    assert repr(Secret("")) == "Secret('')"


def test_activation_key_never_in_problem_lines(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[tenants]]\nid = "acme"\nactivation_kee = "{SECRET_KEY}"\n')
    lines = problem_lines(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: tenants[0].activation_kee: expected a known key")
    assert SECRET_KEY not in lines[0]


# -- reload: which changed keys apply live


def test_changed_keys_split_live_and_restart() -> None:
    old = parse_config({"tenants": [{"id": "a"}]})
    new = parse_config(
        {
            "node": {"name": "mgmt-2"},
            "control": {"socket": "/run/other", "idle_timeout": "30s", "admin_group": "ops"},
            "cluster": {"heartbeat": "1s"},
            "store": {"url": "sqlite:///srv/store.db"},
            "portal": {"url": "https://portal.example.com/api/v1"},
            "tenant_check": {"interval": "2h"},
            "mail": {"smtp_host": "mail.example.com"},
            "cloud": {"admin_email": "cloud@example.com"},
            "product": {"deployment": "multi-tenant"},
            "tenants": [{"id": "a"}, {"id": "b", "admin_email": "b@example.com"}],
        }
    )
    live, restart = changed_keys(old, new)
    assert live == sorted(
        [
            "cloud.admin_email",
            "control.admin_group",
            "control.idle_timeout",
            "mail.smtp_host",
            "portal.url",
            "product.deployment",
            "tenant_check.interval",
            "tenants[1].activation_key",
            "tenants[1].admin_email",
            "tenants[1].id",
        ]
    )
    assert restart == ["cluster.heartbeat", "control.socket", "node.name", "store.url"]


def test_changed_keys_nothing_changed() -> None:
    config = parse_config({"node": {"name": "x"}})
    assert changed_keys(config, parse_config({"node": {"name": "x"}})) == ([], [])
