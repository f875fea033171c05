-- Back-channel logout (OIDC Back-Channel Logout 1.0). `op_session_apps`: which apps with a
-- `backchannel_logout_uri` a session signed in to, and the `sub` and `sid` their id_tokens
-- carry (`token_sid` stays the same when a step-up replaces the session). When a session ends,
-- the same transaction turns its rows into `op_logout_notices`, which the OpenID Provider's
-- worker delivers (retried with backoff, leased so that one instance sends each).
CREATE TABLE op_session_apps (
    session_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    token_sid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);
CREATE TABLE op_logout_notices (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    sub TEXT NOT NULL,
    sid TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX op_logout_notices_due ON op_logout_notices (state, next_attempt_at);
