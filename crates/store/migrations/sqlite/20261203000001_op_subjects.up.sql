-- The first `sub` each identity was issued at each app whose subject is an expression (not `id`
-- or `pairwise`, which are functions of the identity id). Kept for good and unique per app, so
-- a subject is never issued to a second identity, even after the first is deleted or the value
-- it was read from changes; `DELETE /admin/clients/{id}/subjects/{subject}` releases one.
CREATE TABLE op_subjects (
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, identity_id)
);
CREATE UNIQUE INDEX op_subjects_subject ON op_subjects (client_id, subject);
