-- Social sign-in attempts in flight. The state is single use: taking it deletes the row.
CREATE TABLE oidc_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    flow_id TEXT NOT NULL REFERENCES selfservice_flows(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    continuity_hash TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_states_expires ON oidc_states (expires_at);
-- Errors shown to users by id (/self-service/errors?id=), as in Kratos, so error pages never
-- render text taken from a URL.
CREATE TABLE selfservice_errors (
    id TEXT PRIMARY KEY NOT NULL,
    error TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
