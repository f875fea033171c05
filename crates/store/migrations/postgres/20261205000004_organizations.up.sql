-- Organizations (a tree), organization roles (one shared set), memberships at any node, e-mail
-- domains and rules that make members just in time, flat groups, and the allow rules that say
-- who may use an app. The same file runs on SQLite and PostgreSQL.
--
-- `id_path` is '/<root id>/…/<own id>/': a descendant test is a prefix test, and ids are UUIDs
-- ending in '/', so one id is never a prefix of another. Moving a subtree rewrites the paths
-- of the whole subtree in one transaction (store `orgs.rs`).
CREATE TABLE organizations (
    id TEXT PRIMARY KEY NOT NULL,
    parent_id TEXT REFERENCES organizations(id) ON DELETE RESTRICT,
    alias TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    id_path TEXT NOT NULL UNIQUE,
    external_id TEXT UNIQUE,
    metadata_public TEXT NOT NULL DEFAULT '{}',
    metadata_admin TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- An alias is unique among siblings, roots included (NULL parents compare equal here).
CREATE UNIQUE INDEX organizations_alias ON organizations (COALESCE(parent_id, ''), alias);
CREATE INDEX organizations_parent ON organizations (parent_id);

CREATE TABLE organization_roles (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

-- `source` is manual | import | domain | rule; `rule_id` names the organization rule that made
-- a `rule` row, so pruning removes only what that rule added.
CREATE TABLE organization_members (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    rule_id TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, identity_id)
);
CREATE INDEX organization_members_identity ON organization_members (identity_id);

CREATE TABLE organization_member_roles (
    organization_id TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    role_id TEXT NOT NULL REFERENCES organization_roles(id) ON DELETE CASCADE,
    PRIMARY KEY (organization_id, identity_id, role_id),
    FOREIGN KEY (organization_id, identity_id)
        REFERENCES organization_members (organization_id, identity_id) ON DELETE CASCADE
);
CREATE INDEX organization_member_roles_identity ON organization_member_roles (identity_id);

-- One organization per domain (lowercase); `roles` is a JSON array of role names.
CREATE TABLE organization_domains (
    domain TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    jit BIGINT NOT NULL DEFAULT 0,
    roles TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX organization_domains_org ON organization_domains (organization_id);

-- Just-in-time membership from identity data an administrator or an upstream controls.
CREATE TABLE organization_rules (
    id TEXT PRIMARY KEY NOT NULL,
    expression TEXT NOT NULL,
    organization_by TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    prune BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE groups (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    external_id TEXT UNIQUE,
    metadata_public TEXT NOT NULL DEFAULT '{}',
    metadata_admin TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, identity_id)
);
CREATE INDEX group_members_identity ON group_members (identity_id);

-- Who may use an app (`access: assigned`) and which app roles they get: additive allow rules.
-- Exactly one subject column is set; each has its own foreign key, so deleting the identity,
-- organization or group deletes its rules.
CREATE TABLE op_access_rules (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES op_clients(client_id) ON DELETE CASCADE,
    subject_type TEXT NOT NULL CHECK (subject_type IN ('identity', 'organization', 'group')),
    identity_id TEXT REFERENCES identities(id) ON DELETE CASCADE,
    organization_id TEXT REFERENCES organizations(id) ON DELETE CASCADE,
    group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,
    include_descendants BIGINT NOT NULL DEFAULT 1,
    app_roles TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    CHECK ((CASE WHEN identity_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN organization_id IS NULL THEN 0 ELSE 1 END)
         + (CASE WHEN group_id IS NULL THEN 0 ELSE 1 END) = 1)
);
CREATE INDEX op_access_rules_client ON op_access_rules (client_id);
CREATE UNIQUE INDEX op_access_rules_identity ON op_access_rules (client_id, identity_id);
CREATE UNIQUE INDEX op_access_rules_organization ON op_access_rules (client_id, organization_id);
CREATE UNIQUE INDEX op_access_rules_group ON op_access_rules (client_id, group_id);
-- An organization rule limited to members with some organization roles. RESTRICT: deleting
-- such a role must not silently widen the rule to every member.
CREATE TABLE op_access_rule_roles (
    rule_id TEXT NOT NULL REFERENCES op_access_rules(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES organization_roles(id) ON DELETE RESTRICT,
    PRIMARY KEY (rule_id, role_id)
);
CREATE INDEX op_access_rule_roles_role ON op_access_rule_roles (role_id);

-- Existing assignments become identity rules (their endpoints are unchanged).
INSERT INTO op_access_rules (id, client_id, subject_type, identity_id, include_descendants, app_roles, created_at)
    SELECT 'assignment:' || client_id || ':' || identity_id, client_id, 'identity', identity_id, 1, '[]', created_at
    FROM op_assignments;
DROP TABLE op_assignments;
