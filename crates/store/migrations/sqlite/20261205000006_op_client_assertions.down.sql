DROP TABLE IF EXISTS op_client_assertions;
