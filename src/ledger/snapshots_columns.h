/*-------------------------------------------------------------------------
 *
 * snapshots_columns.h
 *	  The columns of tsnap.snapshots, as heap_deform_tuple and index scan
 *	  keys number them; private to ledger/.  They follow the install
 *	  script, and an upgrade script that changes the table changes these.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSNAP_SNAPSHOTS_COLUMNS_H
#define TSNAP_SNAPSHOTS_COLUMNS_H

#define Natts_snapshots					14
#define Anum_snapshots_key				1
#define Anum_snapshots_tbl				2
#define Anum_snapshots_tracking_id		3
#define Anum_snapshots_rows_version		4
#define Anum_snapshots_fingerprint		5
#define Anum_snapshots_rows				6
#define Anum_snapshots_bytes			7
#define Anum_snapshots_etag				8
#define Anum_snapshots_parts			9
#define Anum_snapshots_created_at		10
#define Anum_snapshots_endpoint			11
#define Anum_snapshots_bucket			12
#define Anum_snapshots_timeline			13
#define Anum_snapshots_compression		14

#endif							/* TSNAP_SNAPSHOTS_COLUMNS_H */
