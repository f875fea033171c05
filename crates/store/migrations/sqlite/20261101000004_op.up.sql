-- OpenID Provider for apps. Every secret (client secrets, codes, tokens) is stored only as its
-- SHA-256; signing keys' private halves are sealed with secrets.cipher.
CREATE TABLE op_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    alg TEXT NOT NULL,
    private_sealed TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- NULL while the key signs; set when a newer key takes over. Retired keys stay published
    -- until retired_at + overlap so tokens they signed still verify.
    retired_at INTEGER
);
-- Small values the provider generates once (the pairwise subject salt).
CREATE TABLE op_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE op_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    -- The client's registration metadata and secret hashes, as JSON.
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE op_assignments (
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, identity_id)
);
CREATE TABLE op_consents (
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, identity_id)
);
-- Authorization requests waiting for sign-in or consent, kept server-side so neither can
-- tamper with them.
CREATE TABLE op_requests (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    params TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX op_requests_expires ON op_requests (expires_at);
CREATE TABLE op_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    used INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX op_codes_expires ON op_codes (expires_at);
-- Access and refresh tokens. `grant_id` ties every token issued from one authorization (code)
-- together, so a reused code or refresh token revokes the whole family.
CREATE TABLE op_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT REFERENCES identities(id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    used INTEGER NOT NULL,
    revoked INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX op_tokens_grant ON op_tokens (grant_id);
CREATE INDEX op_tokens_expires ON op_tokens (expires_at);
