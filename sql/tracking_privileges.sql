--
-- Who may do what.
--
CREATE ROLE regress_tsnap_owner LOGIN;
CREATE ROLE regress_tsnap_writer LOGIN;
CREATE ROLE regress_tsnap_nologin NOLOGIN;
GRANT CREATE ON SCHEMA public TO regress_tsnap_owner;

SET ROLE regress_tsnap_owner;
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
GRANT INSERT, UPDATE, SELECT ON accounts TO regress_tsnap_writer, regress_tsnap_nologin;
-- the owner may track its table
SELECT tsnap_track('accounts');
RESET ROLE;

-- others may not track or untrack it: 42501
SET ROLE regress_tsnap_writer;
SELECT tsnap_track('accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT tsnap_untrack('accounts');
\echo :LAST_ERROR_SQLSTATE

-- a writer with no rights on the catalog still bumps the version
INSERT INTO accounts VALUES (1, 100);
UPDATE accounts SET balance = balance + 1;
SELECT tsnap_version('accounts');
SELECT tbl, rows_version FROM tsnap.tracked;
-- and cannot forge or roll back a version, or (un)register a table
UPDATE tsnap.version_shards SET bumps = 0;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tsnap.version_shards;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO tsnap.version_shards VALUES ('accounts', 99, 1000);
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tsnap.tracked_tables;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO tsnap.tracked_tables (tbl) VALUES ('accounts');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tsnap.version_shards;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a NOLOGIN role reached through SET ROLE bumps it too
SET ROLE regress_tsnap_nologin;
INSERT INTO accounts VALUES (2, 5);
RESET ROLE;
SELECT tsnap_version('accounts');

-- a superuser may untrack and track any table
SELECT tsnap_untrack('accounts');
SELECT tsnap_track('accounts');

-- the catalog is owned by the extension's owner, not by users
SELECT c.relname, pg_get_userbyid(c.relowner) = current_user AS owned_by_installer,
	   has_table_privilege('regress_tsnap_writer', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') AS writable
FROM pg_class c WHERE c.relnamespace = 'tsnap'::regnamespace AND c.relkind IN ('r', 'v')
ORDER BY 1;

DROP TABLE accounts;
DROP OWNED BY regress_tsnap_owner, regress_tsnap_writer, regress_tsnap_nologin;
DROP ROLE regress_tsnap_owner, regress_tsnap_writer, regress_tsnap_nologin;
