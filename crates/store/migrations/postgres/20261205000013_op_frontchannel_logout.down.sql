DELETE FROM op_session_apps WHERE backchannel = 0;
ALTER TABLE op_session_apps DROP COLUMN backchannel;
