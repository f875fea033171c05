DROP TABLE startup_backfills;
DROP INDEX identities_external_id;
ALTER TABLE identities DROP COLUMN external_id;
