--
-- What cannot be tracked gets a clear error that names it and says why;
-- each error's SQLSTATE is echoed after it.
--
CREATE TABLE plain (a int);
CREATE VIEW plain_view AS SELECT * FROM plain;
CREATE MATERIALIZED VIEW plain_mv AS SELECT * FROM plain;
CREATE SEQUENCE plain_seq;
CREATE INDEX plain_idx ON plain (a);
CREATE TYPE plain_type AS (a int);
CREATE FOREIGN DATA WRAPPER tsnap_dummy_fdw;
CREATE SERVER tsnap_dummy_server FOREIGN DATA WRAPPER tsnap_dummy_fdw;
CREATE FOREIGN TABLE plain_ft (a int) SERVER tsnap_dummy_server;
CREATE TEMP TABLE plain_temp (a int);

SELECT tsnap_track('plain_view');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_mv');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_ft');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_seq');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_idx');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_type');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('plain_temp');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('pg_catalog.pg_class');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track('no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track(0);
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_track(NULL);
SELECT tsnap_version('plain');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_untrack('plain_view');

-- the trigger can be neither dropped nor disabled while the table is tracked
SELECT tsnap_track('plain');
DROP TRIGGER tsnap_tracking ON plain;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE plain DISABLE TRIGGER tsnap_tracking;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE plain DISABLE TRIGGER ALL;
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER tsnap_tracking_replica ON plain;
\echo :LAST_ERROR_SQLSTATE
-- any enabled state is quietly set back: ALWAYS for the statement trigger,
-- REPLICA for the row trigger (logical replication apply)
ALTER TABLE plain ENABLE TRIGGER ALL;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'plain'::regclass ORDER BY tgname;
ALTER TABLE plain ENABLE REPLICA TRIGGER tsnap_tracking;
ALTER TABLE plain ENABLE ALWAYS TRIGGER tsnap_tracking_replica;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'plain'::regclass ORDER BY tgname;
-- the trigger function is for the trigger manager only
SELECT tsnap.tracking_trigger();
CREATE TRIGGER wrong BEFORE INSERT ON plain FOR EACH ROW EXECUTE FUNCTION tsnap.tracking_trigger();
INSERT INTO plain VALUES (1);
DROP TRIGGER wrong ON plain;
INSERT INTO plain VALUES (1);
SELECT tsnap_version('plain');

DROP TABLE plain CASCADE;
DROP SEQUENCE plain_seq;
DROP TYPE plain_type;
DROP FOREIGN TABLE plain_ft;
DROP SERVER tsnap_dummy_server;
DROP FOREIGN DATA WRAPPER tsnap_dummy_fdw;
