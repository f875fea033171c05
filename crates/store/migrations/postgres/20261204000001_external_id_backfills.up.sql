-- Kratos's `external_id`: optional, unique when set (NULLs do not collide), at most 64
-- characters as in Kratos's column; the engine refuses longer or empty values with a 400 first.
ALTER TABLE identities ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX identities_external_id ON identities (external_id);
-- Data fixes that need the identity schemas, which live in the configuration and not in the
-- database, so SQL cannot do them: the server runs each pending one once at start-up, in Rust,
-- and records it here. `password_identifiers` gives identities created before 20261204000001
-- without a password (social sign-up, admin create) the schema's password identifiers as a
-- password credential with no hash, as Kratos keeps them.
CREATE TABLE startup_backfills (
    name TEXT PRIMARY KEY NOT NULL,
    done_at BIGINT
);
INSERT INTO startup_backfills (name) VALUES ('password_identifiers');
