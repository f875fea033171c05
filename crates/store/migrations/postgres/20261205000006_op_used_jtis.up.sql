-- Single-use JWT ids (`jti`) the OpenID Provider has accepted: `private_key_jwt` client
-- assertions (RFC 7523 §3) and DPoP proofs (RFC 9449 §11.1), by the SHA-256 of their kind, owner
-- and jti, kept until they could no longer be accepted anyway (minutes). The primary key decides
-- who used one first, so a replay is refused on every instance.
CREATE TABLE op_used_jtis (
    jti_hash TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX op_used_jtis_expires ON op_used_jtis (expires_at);
