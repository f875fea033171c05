-- The `jti` of every `private_key_jwt` client assertion (RFC 7523 §3: single use), by its
-- SHA-256, kept until the assertion expires (at most ten minutes) so a replay is refused on any
-- instance: the primary key decides who used it first.
CREATE TABLE op_client_assertions (
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    jti_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX op_client_assertions_expires ON op_client_assertions (expires_at);
