"""The interface file is the single source of truth: every method has a handler and a ctl command."""

from __future__ import annotations

import varlink

from paragon_licensed.ctl.main import COMMANDS
from paragon_licensed.daemon.control.methods import METHODS
from paragon_licensed.interface.errors import INTERFACE_FILE

CHANGING = {
    "Activate",
    "Reactivate",
    "CreateOfflineRequest",
    "ImportLicense",
    "Transfer",
    "ForgetNode",
    "SetTenant",
    "SetCloudAdminEmail",
    "RunTenantCheck",
    "AckNotifications",
}


def interface_methods() -> set[str]:
    with open(INTERFACE_FILE, encoding="utf-8") as handle:
        interface = varlink.Interface(handle.read())
    return {name for name, member in interface.members.items() if isinstance(member, varlink.scanner._Method)}


def test_every_interface_method_has_a_handler_and_nothing_else_does() -> None:
    assert set(METHODS) == interface_methods()


def test_every_method_has_a_ctl_command() -> None:
    assert {method for _, _, method in COMMANDS.values()} == interface_methods()


def test_exactly_the_changing_methods_need_the_admin_group() -> None:
    assert {name for name, method in METHODS.items() if method.changing} == CHANGING


def test_every_ctl_command_resolves_to_a_function() -> None:
    import importlib

    for words, (module, function, _) in COMMANDS.items():
        loaded = importlib.import_module(f"paragon_licensed.ctl.{module}")
        assert callable(getattr(loaded, function)), words
