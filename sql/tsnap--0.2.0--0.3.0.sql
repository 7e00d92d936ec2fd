/* tsnap--0.2.0--0.3.0.sql: from release 0.2.0 to 0.3.0 (snapshot jobs) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tsnap UPDATE TO '0.3.0'" to load this file. \quit
