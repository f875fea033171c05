DROP TABLE IF EXISTS op_device_grants;
