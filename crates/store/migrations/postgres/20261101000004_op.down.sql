DROP TABLE op_tokens;
DROP TABLE op_codes;
DROP TABLE op_requests;
DROP TABLE op_consents;
DROP TABLE op_assignments;
DROP TABLE op_clients;
DROP TABLE op_meta;
DROP TABLE op_keys;
