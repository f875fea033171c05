DROP TABLE IF EXISTS op_par_requests;
DROP INDEX IF EXISTS op_apis_one_default;
DROP TABLE IF EXISTS op_apis;
