-- Device authorization grants (RFC 8628). Both codes are stored as SHA-256 hashes. `status`:
-- pending → approved (with `code_hash`, an authorization code row made at approval) or
-- denied → used (the device redeemed it). `last_poll_at` and `interval_secs` enforce the
-- polling interval (`slow_down`).
CREATE TABLE op_device_grants (
    device_hash TEXT PRIMARY KEY NOT NULL,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    code_hash TEXT,
    interval_secs BIGINT NOT NULL,
    last_poll_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX op_device_grants_expiry ON op_device_grants (expires_at);
