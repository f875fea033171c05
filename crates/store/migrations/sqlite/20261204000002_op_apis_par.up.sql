-- APIs (resource servers) apps ask access tokens for (RFC 8707 `resource`, RFC 9068 JWT access
-- tokens). `identifier` is the API's audience URI; `metadata` holds its name, scopes, token
-- lifetime and signing algorithm as JSON (owned by the provider crate). At most one API is the
-- default, the one a token request that names no resource is for: the partial unique index
-- makes a second default a uniqueness violation even when two instances race.
CREATE TABLE op_apis (
    id TEXT PRIMARY KEY NOT NULL,
    identifier TEXT NOT NULL UNIQUE,
    metadata TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX op_apis_one_default ON op_apis (is_default) WHERE is_default = 1;
-- Pushed authorization requests (RFC 9126): a validated request an app pushed, referred to by
-- the request_uri it was given (only its SHA-256 is stored), taken once (DELETE … RETURNING)
-- and short-lived.
CREATE TABLE op_par_requests (
    uri_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX op_par_requests_expires ON op_par_requests (expires_at);
