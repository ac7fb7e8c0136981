-- Why a tenant was flagged, as a machine name (restore, upgrade, identity, nodes),
-- so the reactivation that clears the flag can say "after restore" or "after upgrade".
ALTER TABLE tenants ADD COLUMN flag_cause TEXT NOT NULL DEFAULT ''
