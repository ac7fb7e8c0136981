"""Names shared by the daemon and its clients: the interface, the errors, their exit codes.

This module imports only the standard library, so ``ctl`` can use it without
paying for msgspec at start-up; the typed parameters and replies live in
``wire``, and both follow the ``io.paragon.License.varlink`` file next to them.
Each error is a class with its varlink name, typed parameters, the ctl exit code
and the sentence a person reads.
"""

from __future__ import annotations

import os

INTERFACE = "io.paragon.License"
SERVICE = "org.varlink.service"
INTERFACE_FILE = os.path.join(os.path.dirname(__file__), INTERFACE + ".varlink")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 69
EXIT_BUSY = 75
EXIT_PERMISSION = 77

CTL = "paragon-licensed ctl"


class VarlinkError(Exception):
    """An error with a stable name; what travels is its name and parameters, never free text."""

    name = "io.paragon.License.Error"
    exit_code = EXIT_FAILED

    def __init__(self, **parameters: object) -> None:
        super().__init__()
        self.parameters = parameters

    def __str__(self) -> str:
        return self.sentence()

    def sentence(self) -> str:
        return f"{self.name}: {self.parameters}"

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _p(error: VarlinkError, key: str, default: object = "") -> object:
    return error.parameters.get(key, default)


class NodesOffline(VarlinkError):
    name = f"{INTERFACE}.NodesOffline"

    def sentence(self) -> str:
        nodes = _p(self, "nodes", [])
        listed = (
            ", ".join(
                f"{n.get('name')} (last seen {n.get('last_seen') or 'never'})"
                for n in nodes
                if isinstance(n, dict)
            )
            if isinstance(nodes, list)
            else ""
        )
        return (
            f"Cluster (re)activation needs every management node online; offline: {listed}. "
            "Bring the node back, or if it is gone for good run "
            f"`{CTL} nodes forget NAME` and then `{CTL} license transfer --replace COMPUTER_ID`."
        )


class PortalUnreachable(VarlinkError):
    name = f"{INTERFACE}.PortalUnreachable"

    def sentence(self) -> str:
        return (
            f"The License Portal at {_p(self, 'url')} could not be reached ({_p(self, 'reason')}). "
            "Check the network and portal.url, or use offline activation: "
            f"`{CTL} license reactivate --offline --out request.txt`."
        )


class PortalRejected(VarlinkError):
    name = f"{INTERFACE}.PortalRejected"

    def sentence(self) -> str:
        return f"The License Portal refused the request ({_p(self, 'code')}): {_p(self, 'message')}"


class PortalBadAnswer(PortalUnreachable):
    """A kind of unreachable portal: what answers is not the License Portal API."""

    name = f"{INTERFACE}.PortalBadAnswer"

    def sentence(self) -> str:
        return (
            f"The License Portal at {_p(self, 'url')} sent an answer the daemon cannot use "
            f"({_p(self, 'reason')}). Check that portal.url points at the License Portal API "
            "(for example behind a proxy that answers with its own page), then try again."
        )


class PortalRedirected(PortalUnreachable):
    """A kind of unreachable portal: it points elsewhere, and the daemon does not follow."""

    name = f"{INTERFACE}.PortalRedirected"

    def sentence(self) -> str:
        return (
            f"The License Portal at {_p(self, 'url')} answered with a redirect to "
            f"{_p(self, 'location')}; the daemon never follows one, so that no activation key "
            "goes where it was not configured to go. If the portal has moved, set portal.url to "
            "its new address and reload the daemon (systemctl reload paragon-licensed)."
        )


class PortalNotConfigured(VarlinkError):
    name = f"{INTERFACE}.PortalNotConfigured"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return (
            "No License Portal is configured: set portal.url in the configuration, "
            "or use offline activation (--offline --out FILE)."
        )


class InvalidLicense(VarlinkError):
    name = f"{INTERFACE}.InvalidLicense"

    def sentence(self) -> str:
        return f"The license was rejected ({_p(self, 'reason')}): {_p(self, 'detail')}"


class IntegrityMismatch(VarlinkError):
    name = f"{INTERFACE}.IntegrityMismatch"

    def sentence(self) -> str:
        return (
            f"The license is bound to integrity key {_p(self, 'actual')}, but this installation's "
            f"is {_p(self, 'expected')}: it belongs to another installation or node set. "
            f"Reactivate (`{CTL} license reactivate`) or transfer the license."
        )


class NeedsTransfer(VarlinkError):
    name = f"{INTERFACE}.NeedsTransfer"

    def sentence(self) -> str:
        return (
            f"Tenant {_p(self, 'tenant')}: the license belongs to another computer ID "
            f"({_p(self, 'changed')}); it must be transferred: `{_p(self, 'command')}`."
        )


class PermissionDenied(VarlinkError):
    name = f"{INTERFACE}.PermissionDenied"
    exit_code = EXIT_PERMISSION

    def sentence(self) -> str:
        group = _p(self, "required_group")
        return (
            f"Permission denied: {_p(self, 'method')} changes the license state and needs root "
            f"or membership in the group '{group}' (as root: usermod -aG {group} USER, "
            "then log in again)."
        )


class NoSuchTenant(VarlinkError):
    name = f"{INTERFACE}.NoSuchTenant"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return f"There is no tenant '{_p(self, 'tenant')}'; `{CTL} tenants` lists them."


class TenantRequired(VarlinkError):
    name = f"{INTERFACE}.TenantRequired"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        tenants = _p(self, "tenants", [])
        names = ", ".join(str(t) for t in tenants) if isinstance(tenants, list) else ""
        if not names:
            return f"No tenant exists yet: create one with `{CTL} tenants set TENANT`."
        return f"Several tenants exist ({names}); name one with --tenant."


class NotActivated(VarlinkError):
    name = f"{INTERFACE}.NotActivated"

    def sentence(self) -> str:
        tenant = _p(self, "tenant")
        return (
            f"Tenant {tenant} has no license yet: activate it with "
            f"`{CTL} license activate --key ACTIVATION_KEY --tenant {tenant}`."
        )


class NoSuchNode(VarlinkError):
    name = f"{INTERFACE}.NoSuchNode"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return f"There is no node '{_p(self, 'name')}'; `{CTL} nodes` lists them."


class NodeOnline(VarlinkError):
    name = f"{INTERFACE}.NodeOnline"

    def sentence(self) -> str:
        return (
            f"Node {_p(self, 'name')} is online (last seen {_p(self, 'last_seen')}); only a node that is "
            "gone for good may be forgotten: stop it first."
        )


class BuildUnknown(VarlinkError):
    name = f"{INTERFACE}.BuildUnknown"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return (
            f"The product build is unknown ({_p(self, 'reason')}): set {_p(self, 'key')} "
            'in the configuration (product.build = "X.Y.Z" or product.build_file = PATH).'
        )


class StoreUnavailable(VarlinkError):
    name = f"{INTERFACE}.StoreUnavailable"

    def sentence(self) -> str:
        return (
            f"The license store is unavailable ({_p(self, 'reason')}); the daemon keeps "
            "reconnecting. Check the database, then try again."
        )


class DuplicateComputerId(VarlinkError):
    name = f"{INTERFACE}.DuplicateComputerId"

    def sentence(self) -> str:
        nodes = _p(self, "nodes", [])
        names = ", ".join(str(n) for n in nodes) if isinstance(nodes, list) else ""
        return (
            f"Nodes {names} report the same computer ID {_p(self, 'computer_id')} (a cloned "
            "machine?). Give each node its own machine-id (systemd-machine-id-setup), restart it, "
            "then reactivate."
        )


class OperationTimeout(VarlinkError):
    name = f"{INTERFACE}.OperationTimeout"

    def sentence(self) -> str:
        return (
            f"{_p(self, 'operation')} did not finish within {_p(self, 'seconds')} s and was "
            "stopped (a slow or unreachable portal, or no coordinator). Check "
            f"`{CTL} status` and `{CTL} license info --history`, then try again."
        )


class ConnectionLimit(VarlinkError):
    name = f"{INTERFACE}.ConnectionLimit"
    exit_code = EXIT_BUSY

    def sentence(self) -> str:
        reached = (
            f"The daemon is busy: its connection limit is reached (scope {_p(self, 'scope')}, "
            f"{_p(self, 'limit')} connections)."
        )
        if _p(self, "scope") == "user":
            return f"{reached} Close some of this user's clients (`watch` commands, scripts), then try again."
        return f"{reached} Try again shortly; root and the admin group always have slots kept for them."


class MessageTooLarge(VarlinkError):
    name = f"{INTERFACE}.MessageTooLarge"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return (
            f"The message was larger than the daemon accepts ({_p(self, 'limit')} bytes, "
            "control.max_message); the connection was closed. Send a smaller document."
        )


class InternalError(VarlinkError):
    name = f"{INTERFACE}.InternalError"

    def sentence(self) -> str:
        return (
            "The daemon hit an internal error; its log (journalctl -u paragon-licensed) has the "
            f"details under reference {_p(self, 'reference')}."
        )


class InvalidParameter(VarlinkError):
    name = f"{SERVICE}.InvalidParameter"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return f"Invalid parameter: {_p(self, 'parameter')}."


class MethodNotFound(VarlinkError):
    name = f"{SERVICE}.MethodNotFound"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return (
            f"The daemon does not know the method {_p(self, 'method')}: is it an older version "
            "than this client?"
        )


class InterfaceNotFound(VarlinkError):
    name = f"{SERVICE}.InterfaceNotFound"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return f"The daemon does not serve the interface {_p(self, 'interface')}."


class ExpectedMore(VarlinkError):
    name = f"{SERVICE}.ExpectedMore"
    exit_code = EXIT_USAGE

    def sentence(self) -> str:
        return 'This method streams its replies: call it with "more": true.'


ERRORS: dict[str, type[VarlinkError]] = {
    cls.name: cls
    for cls in (
        NodesOffline,
        PortalUnreachable,
        PortalRejected,
        PortalBadAnswer,
        PortalRedirected,
        PortalNotConfigured,
        InvalidLicense,
        IntegrityMismatch,
        NeedsTransfer,
        PermissionDenied,
        NoSuchTenant,
        TenantRequired,
        NotActivated,
        NoSuchNode,
        NodeOnline,
        BuildUnknown,
        StoreUnavailable,
        DuplicateComputerId,
        OperationTimeout,
        ConnectionLimit,
        MessageTooLarge,
        InternalError,
        InvalidParameter,
        MethodNotFound,
        InterfaceNotFound,
        ExpectedMore,
    )
}


def error_from_reply(name: str, parameters: dict[str, object] | None) -> VarlinkError:
    """Rebuild the error class a reply names; an unknown name keeps its name and parameters."""
    cls: type[VarlinkError] | None = ERRORS.get(name)
    if cls is None:
        cls = type("UnknownError", (VarlinkError,), {"name": name})
    return cls(**(parameters or {}))
