/* pinpipe--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION pinpipe UPDATE TO '0.2'" to load this file. \quit

--
-- Every schema change of 0.2 goes to two places: into its piece in src/sql
-- (the fresh install, pinpipe--0.2.sql, is built from the pieces) and here,
-- as the statements that bring a 0.1 schema to the same state: CREATE for a
-- new object, CREATE OR REPLACE FUNCTION for a changed body (ALTER FUNCTION
-- for its attributes), ALTER TABLE for columns, defaults and constraints,
-- and the same GRANT, REVOKE and COMMENT statements as the piece. A new
-- table that holds user data needs its pg_extension_config_dump() here too.
-- pinpipe--0.1.sql is never edited.
--
-- test/t/upgrade.pl tests it: an update from 0.1 must give the same catalog as
-- a fresh install of 0.2 (test/sql/catalog_snapshot.sql prints both).
--
-- 0.2 has the same objects as 0.1 so far (its install script is 0.1's,
-- split into pieces), so there is nothing to change yet.
