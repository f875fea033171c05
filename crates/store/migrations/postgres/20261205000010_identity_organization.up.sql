-- Kratos's `identity.organization_id`: the organization an identity was created in (set at
-- create or import, never changed afterwards). Deleting the organization keeps the identity.
ALTER TABLE identities ADD COLUMN organization_id TEXT REFERENCES organizations(id) ON DELETE SET NULL;
CREATE INDEX identities_organization ON identities (organization_id);
