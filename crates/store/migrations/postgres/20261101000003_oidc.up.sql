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
-- Native apps' social sign-in: the app holds the init code, the browser brings back the
-- return code; only both together redeem the session token (Kratos's token exchange).
CREATE TABLE session_token_exchanges (
    init_hash TEXT PRIMARY KEY NOT NULL,
    flow_id TEXT NOT NULL,
    return_hash TEXT,
    sealed_token TEXT,
    session_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX session_token_exchanges_flow ON session_token_exchanges (flow_id);
