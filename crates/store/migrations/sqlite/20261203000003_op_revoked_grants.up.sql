-- Grants (every token issued from one authorization) revoked after a reused code or refresh
-- token. Tokens inserted for a grant are checked against this after the insert, so tokens a
-- racing request issues for a grant the same moment it is revoked are born revoked.
CREATE TABLE op_revoked_grants (
    grant_id TEXT PRIMARY KEY NOT NULL,
    revoked_at INTEGER NOT NULL
);
