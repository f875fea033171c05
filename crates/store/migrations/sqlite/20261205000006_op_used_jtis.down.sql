DROP TABLE IF EXISTS op_used_jtis;
