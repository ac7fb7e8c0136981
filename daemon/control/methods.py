"""The method table: every method of io.paragon.License, its handler, parameters and rights.

One visible table, as the interface file lists them; a test checks that the
two agree and that ctl has a command for each method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from paragon_licensed.daemon.control import admin_handlers as admin
from paragon_licensed.daemon.control import license_handlers as lic
from paragon_licensed.daemon.control import status_handlers as status
from paragon_licensed.daemon.control.server import CallContext
from paragon_licensed.interface import wire


@dataclass(frozen=True)
class Method:
    handler: Callable[[CallContext, Any], Awaitable[Any]]
    params: type[wire.Struct]
    changing: bool = False  # needs root or the admin group
    needs_more: bool = False  # a stream that only makes sense with "more"
    reply: type[wire.Struct] | None = None  # when the handler answers pre-encoded bytes of this type


METHODS: dict[str, Method] = {
    "GetIdentity": Method(status.get_identity, wire.Empty),
    "GetStatus": Method(status.get_status, wire.Empty, reply=wire.GetStatusOut),
    "GetLicense": Method(lic.get_license, wire.GetLicenseIn),
    "Activate": Method(lic.activate, wire.ActivateIn, changing=True),
    "Reactivate": Method(lic.reactivate, wire.ReactivateIn, changing=True),
    "CreateOfflineRequest": Method(lic.create_offline_request, wire.CreateOfflineRequestIn, changing=True),
    "ImportLicense": Method(lic.import_license, wire.ImportLicenseIn, changing=True),
    "Transfer": Method(lic.transfer, wire.TransferIn, changing=True),
    "ListNodes": Method(status.list_nodes, wire.Empty),
    "ForgetNode": Method(admin.forget_node, wire.ForgetNodeIn, changing=True),
    "ListTenants": Method(admin.list_tenants, wire.ListTenantsIn),
    "SetTenant": Method(admin.set_tenant, wire.SetTenantIn, changing=True),
    "SetCloudAdminEmail": Method(admin.set_cloud_admin_email, wire.SetCloudAdminEmailIn, changing=True),
    "RunTenantCheck": Method(admin.run_tenant_check, wire.Empty, changing=True),
    "ListNotifications": Method(admin.list_notifications, wire.ListNotificationsIn),
    "AckNotifications": Method(admin.ack_notifications, wire.AckNotificationsIn, changing=True),
    "Watch": Method(admin.watch, wire.Empty, needs_more=True),
}
