-- Pending requests are looked up by tenant at every install (to complete them) and at
-- every restore check: without this index each lookup read the whole table, so a
-- mass reactivation of N tenants cost N x N row reads.
CREATE INDEX offline_requests_tenant ON offline_requests (tenant_id, completed_at)
