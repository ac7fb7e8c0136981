"""The configuration file: TOML parsed into typed sections, every problem reported at once.

Every key has a default, so an empty file is a valid single-node configuration.
Unknown keys are errors: a typo must not be ignored silently.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import tomllib
import types
import typing
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import msgspec

DEFAULT_CONFIG = "/etc/paragon-licensed/paragon-licensed.toml"
DEFAULT_SOCKET = "/run/paragon-licensed/io.paragon.License"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# The same rule as `ctl tenants set`: a tenant ID ends up in file names, log lines and URLs.
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TENANT_ID_RULE = (
    "a tenant ID of letters, digits, '.', '_' and '-' (up to 128, not starting with '.', '_' or '-')"
)


class Duration(float):
    """Seconds, written in the file as "90s", "15m", "2h" or "2d"."""

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(text)
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if not math.isfinite(seconds):
            # Hundreds of digits parse as infinity, which no sleep or timeout accepts.
            raise OverflowError(text)
        return cls(seconds)

    def __repr__(self) -> str:
        return format_duration(self)


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Secret(str):
    """A string that never shows itself in a repr or a log line."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


class NodeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = ""


class PathsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    state_dir: str = "/var/lib/paragon-licensed"


class ControlConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    socket: str = DEFAULT_SOCKET
    admin_group: str = "paragon-license"
    max_connections: int = 256
    max_connections_per_user: int = 32
    connection_rate_per_user: int = 100
    reserved_connections: int = 32
    max_message: int = 1024 * 1024
    idle_timeout: Duration = Duration(60)
    operation_timeout: Duration = Duration(900)


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    password_file: str = ""
    busy_timeout: Duration = Duration(10)


class ProductConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    build_file: str = "/opt/paragon/build"
    build: str = ""
    deployment: Literal["single-tenant", "multi-tenant"] = "single-tenant"


class IdentityConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    machine_id_file: str = "/etc/machine-id"
    product_uuid_file: str = "/sys/class/dmi/id/product_uuid"
    use_dbus: bool = True


class PortalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = ""
    public_keys: list[str] = msgspec.field(
        default_factory=lambda: ["/etc/paragon-licensed/portal-keys/*.pub"]
    )
    ca_bundle: str = ""
    timeout: Duration = Duration(10)
    deadline: Duration = Duration(120)
    max_response: int = 1024 * 1024
    max_concurrency: int = 16
    max_attempts: int = 5
    backoff: Duration = Duration(0.5)
    max_backoff: Duration = Duration(30)


class ClusterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    heartbeat: Duration = Duration(2)
    node_timeout: Duration = Duration(10)
    lease: Duration = Duration(15)
    renew: Duration = Duration(5)
    renew_deadline: Duration = Duration(10)


class ReactivationConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grace_period: Duration = Duration(14 * 86400)
    retry_schedule: list[Duration] = msgspec.field(
        default_factory=lambda: [Duration(900), Duration(1800), Duration(3600), Duration(21600)]
    )
    retry_jitter: float = 0.1
    grace_reminder: Duration = Duration(86400)


class TenantCheckConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval: Duration = Duration(3600)
    expiring_within: Duration = Duration(2 * 86400)
    reminder_interval: Duration = Duration(86400)
    splay: Duration = Duration(300)
    concurrency: int = 16
    breaker_failures: int = 5


class MailConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"sender": "from"}):
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    ca_bundle: str = ""
    username: str = ""
    password_file: str = ""
    sender: str = "paragon-licensed@localhost"
    timeout: Duration = Duration(10)
    retry_backoff: Duration = Duration(30)
    max_retry_backoff: Duration = Duration(3600)


class CloudConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    admin_email: str = ""


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = ""
    tenant_series: Literal["all", "attention", "none"] = "all"
    attention_within: Duration = Duration(30 * 86400)


class TenantSeed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    admin_email: str = ""
    activation_key: Secret = Secret("")


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    node: NodeConfig = NodeConfig()
    paths: PathsConfig = PathsConfig()
    control: ControlConfig = ControlConfig()
    store: StoreConfig = StoreConfig()
    product: ProductConfig = ProductConfig()
    identity: IdentityConfig = IdentityConfig()
    portal: PortalConfig = PortalConfig()
    cluster: ClusterConfig = ClusterConfig()
    reactivation: ReactivationConfig = ReactivationConfig()
    tenant_check: TenantCheckConfig = TenantCheckConfig()
    mail: MailConfig = MailConfig()
    cloud: CloudConfig = CloudConfig()
    metrics: MetricsConfig = MetricsConfig()
    tenants: list[TenantSeed] = msgspec.field(default_factory=list)

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in the state directory."""
        return self.store.url or f"sqlite://{Path(self.paths.state_dir) / 'store.db'}"


@dataclass(frozen=True)
class Problem:
    key: str
    expected: str
    found: str

    def line(self, source: str) -> str:
        return f"{source}: {self.key}: expected {self.expected}, found {self.found}"


class ConfigError(Exception):
    """The configuration cannot be used; each problem is one line for the operator."""

    exit_code = 2

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.line(source) for p in problems))


def default_config_path() -> str:
    return os.environ.get("PARAGON_LICENSED_CONFIG", DEFAULT_CONFIG)


def load_config(path: str | None = None) -> Config:
    """Read and validate a configuration file; raise ConfigError listing every problem.

    When no path is given and the default file does not exist, the defaults apply:
    an absent default file is the same as an empty one. A path that was named
    explicitly must exist.
    """
    explicit = path is not None or "PARAGON_LICENSED_CONFIG" in os.environ
    source = path if path is not None else default_config_path()
    try:
        raw = Path(source).read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(source, [Problem("(file)", "a readable file", "no such file")]) from None
        raw = b""
    except OSError as exc:
        raise ConfigError(source, [Problem("(file)", "a readable file", exc.strerror or str(exc))]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, [Problem("(file)", "UTF-8 text", "undecodable bytes")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("(file)", "valid TOML", f"a syntax error ({exc})")]) from None
    return resolve_paths(parse_config(data, source), Path(source).resolve().parent)


def resolve_paths(config: Config, base: Path) -> Config:
    """Make every relative path in the file relative to the file's own folder."""

    def fix(path: str) -> str:
        return os.path.normpath(base / path) if path and not os.path.isabs(path) else path

    replace = msgspec.structs.replace
    store_url = config.store.url
    if store_url.startswith("sqlite://"):
        store_url = "sqlite://" + fix(store_url.removeprefix("sqlite://"))
    return replace(
        config,
        paths=replace(config.paths, state_dir=fix(config.paths.state_dir)),
        control=replace(config.control, socket=fix(config.control.socket)),
        store=replace(config.store, url=store_url, password_file=fix(config.store.password_file)),
        product=replace(config.product, build_file=fix(config.product.build_file)),
        identity=replace(
            config.identity,
            machine_id_file=fix(config.identity.machine_id_file),
            product_uuid_file=fix(config.identity.product_uuid_file),
        ),
        portal=replace(
            config.portal,
            public_keys=[fix(p) for p in config.portal.public_keys],
            ca_bundle=fix(config.portal.ca_bundle),
        ),
        mail=replace(
            config.mail, password_file=fix(config.mail.password_file), ca_bundle=fix(config.mail.ca_bundle)
        ),
    )


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    problems: list[Problem] = []
    values = _convert_struct(Config, data, "", problems)
    if not problems:
        config = Config(**values)
        problems.extend(_check_semantics(config))
        if not problems:
            return config
    raise ConfigError(source, problems)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value!r} ({type(value).__name__})"


def _expected(tp: Any) -> str:
    if tp is Duration:
        return 'a duration like "90s", "15m", "2h" or "2d"'
    if tp in (str, Secret):
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in get_args(tp))
    if get_origin(tp) is list:
        return f"an array of {_expected(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return "a table"
    return str(tp)


def _convert(tp: Any, value: Any, key: str, problems: list[Problem]) -> Any:
    """Convert one TOML value to the declared type, or record why it cannot be."""
    before = len(problems)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if isinstance(value, dict):
            fields = _convert_struct(tp, value, key + ".", problems)
            # A required key may be missing: build the section only when it converted cleanly.
            return tp(**fields) if len(problems) == before else None
    elif get_origin(tp) is list:
        if isinstance(value, list):
            (item_tp,) = get_args(tp)
            return [_convert(item_tp, v, f"{key}[{i}]", problems) for i, v in enumerate(value)]
    elif get_origin(tp) is Literal:
        if value in get_args(tp):
            return value
    elif tp is Duration:
        if isinstance(value, str):
            try:
                return Duration.parse(value)
            except (ValueError, OverflowError):
                pass
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    elif tp in (str, Secret) and isinstance(value, str):
        return tp(value)
    if len(problems) == before:
        problems.append(Problem(key, _expected(tp), _describe(value)))
    return None


def _convert_struct(
    cls: type[msgspec.Struct],
    data: dict[str, Any],
    prefix: str,
    problems: list[Problem],
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, localns=_LOCALS)
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(Problem(prefix + key, f"a known key (one of: {known})", "an unknown key"))
            continue
        values[field.name] = _convert(hints[field.name], value, prefix + key, problems)
    for name, field in fields.items():
        if field.required and field.name not in values:
            problems.append(Problem(prefix + name, "a value", "nothing (the key is required)"))
    return values


def _check_semantics(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, tenant in enumerate(config.tenants):
        if not tenant.id.strip():
            problems.append(Problem(f"tenants[{i}].id", "a non-empty tenant ID", '""'))
        elif not _TENANT_ID.fullmatch(tenant.id):
            problems.append(Problem(f"tenants[{i}].id", TENANT_ID_RULE, json.dumps(tenant.id)))
        elif tenant.id in seen:
            problems.append(Problem(f"tenants[{i}].id", "a tenant ID used once", f'"{tenant.id}" again'))
        seen.add(tenant.id)
        if tenant.admin_email and not _EMAIL.match(tenant.admin_email):
            problems.append(
                Problem(f"tenants[{i}].admin_email", "an e-mail address", _describe(tenant.admin_email))
            )
    for key, addr in (
        ("cloud.admin_email", config.cloud.admin_email),
        ("mail.from", config.mail.sender),
    ):
        if addr and not _EMAIL.match(addr):
            problems.append(Problem(key, "an e-mail address", _describe(addr)))
    if config.portal.url:
        reason = portal_url_problem(config.portal.url)
        if reason:
            problems.append(Problem("portal.url", reason, _describe(config.portal.url)))
    if config.store.url and not config.store.url.startswith(("sqlite://", "postgresql://", "postgres://")):
        url = config.store.url
        found = (
            f'a URL of scheme "{url.split(":", 1)[0]}" (the rest is not shown: it may hold a password)'
            if "@" in url or "password" in url.lower()
            else _describe(url)
        )
        problems.append(Problem("store.url", '"sqlite:///PATH" or "postgresql://USER@HOST/DB"', found))
    if config.metrics.listen:
        reason = listen_address_problem(config.metrics.listen)
        if reason:
            problems.append(Problem("metrics.listen", reason, _describe(config.metrics.listen)))
    problems.extend(check_ranges(config))
    if not config.reactivation.retry_schedule:
        problems.append(Problem("reactivation.retry_schedule", "at least one duration", "an empty array"))
    cluster = config.cluster
    if not cluster.renew < cluster.renew_deadline < cluster.lease:
        problems.append(
            Problem(
                "cluster.renew_deadline",
                "cluster.renew < cluster.renew_deadline < cluster.lease",
                f"renew {cluster.renew!r}, renew_deadline {cluster.renew_deadline!r}, "
                f"lease {cluster.lease!r}",
            )
        )
    if not cluster.heartbeat < cluster.node_timeout:
        problems.append(
            Problem(
                "cluster.node_timeout",
                "a timeout longer than cluster.heartbeat",
                f"{cluster.node_timeout!r} with heartbeat {cluster.heartbeat!r}",
            )
        )
    return problems


# Every number's range: (key, minimum, maximum). Outside it the daemon would spin (a zero
# period), hang (a zero limit) or overflow (a duration of centuries). Durations are seconds.
_MINUTE, _HOUR, _DAY = 60.0, 3600.0, 86400.0
RANGES: tuple[tuple[str, float, float], ...] = (
    ("control.max_connections", 1, 65536),
    ("control.max_connections_per_user", 1, 65536),
    ("control.connection_rate_per_user", 1, 1000000),
    ("control.reserved_connections", 0, 65536),
    ("control.max_message", 4096, 64 * 1024 * 1024),
    ("control.idle_timeout", 1.0, _DAY),
    ("control.operation_timeout", 1.0, _DAY),
    ("store.busy_timeout", 0.1, 10 * _MINUTE),
    ("portal.timeout", 1.0, 10 * _MINUTE),
    ("portal.deadline", 1.0, _DAY),
    ("portal.max_response", 4096, 64 * 1024 * 1024),
    ("portal.max_concurrency", 1, 256),
    ("portal.max_attempts", 1, 100),
    ("portal.backoff", 0.01, _HOUR),
    ("portal.max_backoff", 0.01, _DAY),
    ("cluster.heartbeat", 0.1, _MINUTE),
    ("cluster.node_timeout", 0.5, _DAY),
    ("cluster.lease", 1.0, _HOUR),
    ("cluster.renew", 0.1, _HOUR),
    ("cluster.renew_deadline", 0.5, _HOUR),
    ("reactivation.grace_period", 0.0, 365 * _DAY),
    ("reactivation.retry_schedule", 1.0, 30 * _DAY),
    ("reactivation.retry_jitter", 0.0, 1.0),
    ("reactivation.grace_reminder", 1.0, 365 * _DAY),
    ("tenant_check.interval", _MINUTE, 365 * _DAY),
    ("tenant_check.expiring_within", 0.0, 365 * _DAY),
    ("tenant_check.reminder_interval", 1.0, 365 * _DAY),
    ("tenant_check.splay", 0.0, 365 * _DAY),
    ("tenant_check.concurrency", 1, 256),
    ("tenant_check.breaker_failures", 1, 1000),
    ("mail.smtp_port", 1, 65535),
    ("mail.timeout", 1.0, 10 * _MINUTE),
    ("mail.retry_backoff", 1.0, _DAY),
    ("mail.max_retry_backoff", 1.0, 30 * _DAY),
    ("metrics.attention_within", 0.0, 365 * _DAY),
)


def _bound(value: float, duration: bool) -> str:
    if duration:
        return format_duration(value)
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_ranges(config: Config) -> list[Problem]:
    """Every numeric and duration key within its documented range; one problem per key."""
    problems: list[Problem] = []
    values = flatten(config)
    for key, low, high in RANGES:
        found = values[key]
        for index, value in enumerate(found) if isinstance(found, list) else [(None, found)]:
            if low <= value <= high:
                continue
            duration = isinstance(value, Duration)
            name = key if index is None else f"{key}[{index}]"
            kind = "a duration" if duration else "a number"
            expected = f"{kind} from {_bound(low, duration)} to {_bound(high, duration)}"
            problems.append(Problem(name, expected, _bound(value, duration)))
    if config.portal.max_backoff < config.portal.backoff:
        problems.append(
            Problem("portal.max_backoff", "at least portal.backoff", f"{config.portal.max_backoff!r}")
        )
    if config.mail.max_retry_backoff < config.mail.retry_backoff:
        problems.append(
            Problem(
                "mail.max_retry_backoff", "at least mail.retry_backoff", f"{config.mail.max_retry_backoff!r}"
            )
        )
    return problems


def portal_url_problem(url: str) -> str:
    """Why a portal URL is refused: plain HTTP is for loopback addresses only."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return ""
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        if host == "localhost":
            return ""
        try:
            if ipaddress.ip_address(host).is_loopback:
                return ""
        except ValueError:
            pass
        return "an https:// URL (plain http:// is accepted for loopback addresses only)"
    return "an https:// URL"


def parse_listen(text: str) -> tuple[str, int]:
    """ "HOST:PORT" or "[IPv6]:PORT" as (host, port); ValueError when it is neither."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError(text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)
    elif ":" in host:
        raise ValueError(text)  # an IPv6 address needs its brackets, or the port is ambiguous
    return host, int(port)


def listen_address_problem(text: str) -> str:
    """Why a listen address is refused (empty when it is fine)."""
    try:
        parse_listen(text)
    except ValueError:
        return 'an address like "127.0.0.1:9477" or "[::1]:9477" (HOST:PORT, port 0 to 65535)'
    return ""


def flatten(config: Config) -> dict[str, Any]:
    """Every key path with its value, secrets redacted; used to diff two configurations."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, msgspec.Struct):
            for field in msgspec.structs.fields(value):
                walk(f"{prefix}{field.encode_name}.", getattr(value, field.name))
        elif isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            for i, item in enumerate(value):
                walk(f"{prefix[:-1]}[{i}].", item)
        else:
            out[prefix[:-1]] = repr(value) if isinstance(value, Secret) else value

    walk("", config)
    return out


# Keys a running daemon applies on SIGHUP; every other key needs a restart.
RELOADABLE_PREFIXES = (
    "control.operation_timeout",
    "portal.",
    "tenant_check.",
    "mail.",
    "cloud.",
    "reactivation.",
    "tenants",
    "product.deployment",
    "control.admin_group",
    "control.idle_timeout",
    "metrics.tenant_series",
    "metrics.attention_within",
)


def changed_keys(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """The changed keys, split into (applied on reload, needing a restart)."""
    a, b = flatten(old), flatten(new)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    live = [k for k in changed if k.startswith(RELOADABLE_PREFIXES)]
    restart = [k for k in changed if not k.startswith(RELOADABLE_PREFIXES)]
    return live, restart


_LOCALS = {"Duration": Duration, "Secret": Secret, "Literal": Literal, "types": types}
