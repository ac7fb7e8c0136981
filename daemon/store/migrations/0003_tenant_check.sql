-- Tenant check runs: each run's tenants with the request_id each is reactivated
-- with, so a coordinator that takes over mid-run finishes it with the same
-- request_ids (the portal answers them as before) instead of starting again.
-- Failures wait in mail_pending until the run's end turns them into one digest
-- per recipient; they are written with the failure, so a crash loses none.

CREATE TABLE check_runs (
    id TEXT PRIMARY KEY,
    trigger TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    total INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);

CREATE TABLE check_items (
    run_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    valid_until DOUBLE PRECISION,
    PRIMARY KEY (run_id, tenant_id)
);
CREATE INDEX check_items_state ON check_items (run_id, state);

CREATE TABLE mail_pending (
    id {serial},
    run_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    failure_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    mailed_at DOUBLE PRECISION
);
CREATE INDEX mail_pending_open ON mail_pending (mailed_at, recipient);
