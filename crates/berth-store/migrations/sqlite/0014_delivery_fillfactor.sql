-- PostgreSQL leaves room on each delivery page so that an attempt's update stays on its page (see
-- the PostgreSQL migration of the same name). SQLite rewrites a row in its b-tree in place and has
-- no such setting; this migration keeps both backends at the same version.
SELECT 1;
