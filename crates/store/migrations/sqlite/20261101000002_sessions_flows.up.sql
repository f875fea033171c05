CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    active INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    authenticated_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    aal TEXT NOT NULL,
    methods TEXT NOT NULL
);
CREATE INDEX sessions_identity ON sessions (identity_id);
CREATE TABLE selfservice_flows (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    flow_type TEXT NOT NULL,
    state TEXT NOT NULL,
    request_url TEXT NOT NULL,
    return_to TEXT,
    csrf_hash TEXT NOT NULL,
    identity_id TEXT,
    ui TEXT NOT NULL,
    extra TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX selfservice_flows_expires ON selfservice_flows (expires_at);
