DROP TABLE IF EXISTS op_logout_notices;
DROP TABLE IF EXISTS op_session_apps;
