DROP INDEX identities_organization;
ALTER TABLE identities DROP COLUMN organization_id;
