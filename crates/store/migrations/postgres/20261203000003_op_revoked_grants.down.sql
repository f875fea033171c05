DROP TABLE op_revoked_grants;
