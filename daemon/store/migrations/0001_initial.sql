-- The first schema: every table of the store (ARCHITECTURE.md §6).
-- {serial} is the dialect's auto-increment primary key; times are UNIX seconds (UTC).

CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store_id TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    cloud_admin_email TEXT NOT NULL DEFAULT ''
);

CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    computer_id TEXT NOT NULL,
    machine_fp TEXT NOT NULL DEFAULT '',
    hardware_fp TEXT NOT NULL DEFAULT '',
    build TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    registered_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL
);

CREATE TABLE lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    term BIGINT NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    admin_email TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    license_row BIGINT,
    flag TEXT NOT NULL DEFAULT '',
    flag_reason TEXT NOT NULL DEFAULT '',
    flag_since DOUBLE PRECISION,
    grace_until DOUBLE PRECISION,
    retry_count INTEGER NOT NULL DEFAULT 0,
    next_retry_at DOUBLE PRECISION
);

CREATE TABLE licenses (
    id {serial},
    tenant_id TEXT NOT NULL,
    license_id TEXT NOT NULL,
    document TEXT NOT NULL,
    build TEXT NOT NULL,
    integrity_key TEXT NOT NULL,
    issued_at DOUBLE PRECISION NOT NULL,
    valid_until DOUBLE PRECISION NOT NULL,
    installed_at DOUBLE PRECISION NOT NULL,
    installed_by TEXT NOT NULL,
    cause TEXT NOT NULL,
    UNIQUE (tenant_id, license_id)
);

CREATE TABLE orders_used (
    integrity_key TEXT NOT NULL,
    order_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    product TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (integrity_key, order_id)
);

CREATE TABLE notifications (
    id {serial},
    tenant_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    acked_at DOUBLE PRECISION
);
CREATE INDEX notifications_tenant ON notifications (tenant_id, id);

CREATE TABLE outbox (
    id {serial},
    created_at DOUBLE PRECISION NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (sent_at, next_attempt_at);

CREATE TABLE mail_reminders (
    recipient TEXT NOT NULL,
    failure_key TEXT NOT NULL,
    last_sent_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (recipient, failure_key)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '',
    claimed_term BIGINT NOT NULL DEFAULT 0,
    progress TEXT NOT NULL DEFAULT '[]',
    result TEXT NOT NULL DEFAULT '',
    error_name TEXT NOT NULL DEFAULT '',
    error_params TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_state ON jobs (state, created_at);

CREATE TABLE audit (
    id {serial},
    at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant_id, id);

CREATE TABLE offline_requests (
    request_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    completed_at DOUBLE PRECISION
);
