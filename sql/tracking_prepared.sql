--
-- Two-phase commit counts at PREPARE, visible at COMMIT PREPARED.  Apart
-- from tracking.sql because it needs max_prepared_transactions > 0, which a
-- standard cluster does not have (see REGRESS_HARNESS in the Makefile).
--
CREATE TABLE orders (id int PRIMARY KEY, item text, qty int);
SELECT tsnap_track('orders');
INSERT INTO orders VALUES (1, 'apple', 1);
SELECT tsnap_version('orders');

BEGIN;
INSERT INTO orders VALUES (20, 'date', 1);
PREPARE TRANSACTION 'tsnap_2pc';
SELECT tsnap_version('orders');
COMMIT PREPARED 'tsnap_2pc';
SELECT tsnap_version('orders');

DROP TABLE orders;
