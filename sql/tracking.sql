--
-- Change tracking: which statements bump rows_version, and when.
--
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
SELECT tsnap_track('orders');
SELECT tsnap_track('orders');		-- a no-op with a NOTICE
SELECT tbl, rows_version FROM tsnap.tracked;
SELECT tsnap_version('orders');

-- a statement-level AFTER trigger enabled ALWAYS, and a row-level AFTER
-- trigger for replica sessions (logical replication apply fires no statement
-- triggers for row changes)
SELECT tgname, tgenabled, tgtype FROM pg_trigger WHERE tgrelid = 'orders'::regclass ORDER BY tgname;

-- every kind of write bumps the version once per statement
INSERT INTO orders VALUES (1, 'apple', 1), (2, 'pear', 2);
SELECT tsnap_version('orders');
INSERT INTO orders VALUES (1, 'apple', 5) ON CONFLICT (id) DO UPDATE SET qty = excluded.qty;
SELECT tsnap_version('orders');
UPDATE orders SET qty = qty + 1 WHERE id = 2;
SELECT tsnap_version('orders');
DELETE FROM orders WHERE id = 2;
SELECT tsnap_version('orders');
MERGE INTO orders o USING (VALUES (1, 'apple', 9), (3, 'fig', 3)) AS s(id, item, qty) ON o.id = s.id
	WHEN MATCHED THEN UPDATE SET qty = s.qty
	WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.item, s.qty);
SELECT tsnap_version('orders');
COPY orders FROM STDIN;
4	kiwi	4
5	plum	5
\.
SELECT tsnap_version('orders');
WITH moved AS (DELETE FROM orders WHERE id = 5 RETURNING *)
	INSERT INTO orders SELECT id + 100, item, qty FROM moved;
SELECT tsnap_version('orders');
CREATE VIEW big_orders AS SELECT * FROM orders WHERE qty > 3;
UPDATE big_orders SET qty = qty * 2;
SELECT tsnap_version('orders');
TRUNCATE orders;
SELECT tsnap_version('orders');
-- a statement that changes no rows may bump too
DELETE FROM orders WHERE id = -1;
SELECT tsnap_version('orders');
-- reads never do
SELECT count(*) FROM orders;
SELECT tsnap_version('orders');

-- rolled back work leaves the committed version unchanged
BEGIN;
INSERT INTO orders VALUES (10, 'lime', 1);
SELECT tsnap_version('orders');		-- sees its own write, like any query
ROLLBACK;
SELECT tsnap_version('orders');
BEGIN;
INSERT INTO orders VALUES (11, 'lime', 1);
SAVEPOINT s1;
INSERT INTO orders VALUES (12, 'lime', 1);
UPDATE orders SET qty = 2;
ROLLBACK TO s1;
SELECT tsnap_version('orders');
SAVEPOINT s2;
UPDATE orders SET qty = 3;
RELEASE s2;
COMMIT;
SELECT tsnap_version('orders');
-- a failed statement aborts its transaction: nothing counted
BEGIN;
INSERT INTO orders VALUES (11, 'dup', 1);
COMMIT;
SELECT tsnap_version('orders');

-- two-phase commit: tracking_prepared.sql, which needs
-- max_prepared_transactions

-- procedures that commit count each of their transactions
CREATE PROCEDURE add_two() LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO orders VALUES (30, 'nut', 1);
	COMMIT;
	INSERT INTO orders VALUES (31, 'nut', 1);
	ROLLBACK;
	INSERT INTO orders VALUES (32, 'nut', 1);
END $$;
CALL add_two();
SELECT tsnap_version('orders');

-- logical replication apply runs with session_replication_role = replica;
-- a replica session counts each row too (more bumps are harmless)
SET session_replication_role = replica;
INSERT INTO orders VALUES (40, 'yam', 1);
RESET session_replication_role;
SELECT tsnap_version('orders');

-- several statements in one transaction add up; versions only increase
BEGIN;
INSERT INTO orders VALUES (50, 'a', 1);
INSERT INTO orders VALUES (51, 'b', 1);
UPDATE orders SET qty = 0 WHERE id = 50;
COMMIT;
SELECT tsnap_version('orders');

--
-- Partitions and inheritance: writes through the parent and directly to a
-- partition both count, for partitions created or attached after tracking.
--
CREATE TABLE events (id int, at date, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT tsnap_track('events');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
	PARTITION BY LIST (what);
CREATE TABLE events_2026_a PARTITION OF events_2026 FOR VALUES IN ('a');
CREATE TABLE events_2027 (id int, at date, what text);
ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT tgrelid::regclass AS rel, tgenabled FROM pg_trigger
	WHERE tgname = 'tsnap_tracking' AND tgrelid::regclass::text LIKE 'events%' ORDER BY tgrelid::regclass::text;
SELECT tsnap_version('events');
INSERT INTO events VALUES (1, '2025-05-01', 'x');
SELECT tsnap_version('events');
INSERT INTO events_2025 VALUES (2, '2025-06-01', 'x');
SELECT tsnap_version('events');
INSERT INTO events_2026_a VALUES (3, '2026-06-01', 'a');
SELECT tsnap_version('events');
UPDATE events_2027 SET what = 'y';
SELECT tsnap_version('events');
DELETE FROM events WHERE id = 1;
SELECT tsnap_version('events');
TRUNCATE events_2025;
SELECT tsnap_version('events');
-- a partition tracked on its own counts writes routed through its parent
SELECT tsnap_track('events_2026_a');
INSERT INTO events VALUES (4, '2026-07-01', 'a');
SELECT tsnap_version('events'), tsnap_version('events_2026_a');
-- untracking the parent keeps the triggers the partition still needs
SELECT tsnap_untrack('events');
SELECT tgrelid::regclass AS rel FROM pg_trigger
	WHERE tgname = 'tsnap_tracking' AND tgrelid::regclass::text LIKE 'events%' ORDER BY tgrelid::regclass::text;
INSERT INTO events VALUES (5, '2026-08-01', 'a');
SELECT tsnap_version('events_2026_a');
SELECT tsnap_untrack('events_2026_a');
SELECT count(*) FROM pg_trigger WHERE tgname = 'tsnap_tracking' AND tgrelid::regclass::text LIKE 'events%';

CREATE TABLE animals (name text);
CREATE TABLE dogs (breed text) INHERITS (animals);
SELECT tsnap_track('animals');
INSERT INTO dogs VALUES ('rex', 'collie');
SELECT tsnap_version('animals');
CREATE TABLE cats () INHERITS (animals);
INSERT INTO cats VALUES ('tom');
SELECT tsnap_version('animals');

--
-- Lifecycle
--
SELECT tsnap_untrack('orders');
SELECT tsnap_untrack('orders');		-- a no-op with a NOTICE
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass;
SELECT tsnap_track('orders');		-- tracked anew: a new tracking_id
SELECT tsnap_version('orders');
-- DROP TABLE removes the entry
CREATE TABLE doomed (a int);
SELECT tsnap_track('doomed');
DROP TABLE doomed;
SELECT tbl FROM tsnap.tracked ORDER BY tbl::text;
SELECT count(*) FROM tsnap.version_shards WHERE tbl::text = 'doomed';
-- DROP EXTENSION leaves no trigger behind, without CASCADE
DROP EXTENSION tsnap;
SELECT count(*) FROM pg_trigger WHERE tgname = 'tsnap_tracking';
CREATE EXTENSION tsnap;
DROP TABLE orders, events, animals CASCADE;
