CREATE TABLE op_assignments (
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, identity_id)
);
INSERT INTO op_assignments (client_id, identity_id, created_at)
    SELECT client_id, identity_id, created_at FROM op_access_rules WHERE identity_id IS NOT NULL;
DROP TABLE op_access_rule_roles;
DROP TABLE op_access_rules;
DROP TABLE group_members;
DROP TABLE groups;
DROP TABLE organization_rules;
DROP TABLE organization_domains;
DROP TABLE organization_member_roles;
DROP TABLE organization_members;
DROP TABLE organization_roles;
DROP TABLE organizations;
