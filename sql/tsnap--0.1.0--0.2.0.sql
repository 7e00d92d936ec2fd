/* tsnap--0.1.0--0.2.0.sql: upgrade from tsnap 0.1.0 to 0.2.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tsnap UPDATE TO '0.2.0'" to load this file. \quit

/*
 * 0.2.0 has the same SQL objects as 0.1.0 so far, so this script changes
 * nothing.  Every later change to a SQL object in 0.2.0 goes into both this
 * file (for databases on 0.1.0) and tsnap--0.2.0.sql (for fresh installs);
 * sql/upgrade.sql compares the two results and fails when they differ.
 */
