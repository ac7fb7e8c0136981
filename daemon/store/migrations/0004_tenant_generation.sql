-- The generation at which each tenant last changed, so nodes read only the
-- tenants that changed since their last look instead of every tenant.
ALTER TABLE tenants ADD COLUMN updated_gen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tenants_updated ON tenants (updated_gen)
