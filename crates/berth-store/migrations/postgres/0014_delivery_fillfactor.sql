-- A delivery row is written once when its event is raised and updated once or more as attempts
-- finish (status, attempts, last error, next attempt), none of them indexed columns. With full
-- pages each update moved the row to another page and inserted into all four of its indexes; with
-- room left on each page the update stays on the page (a HOT update) and touches no index.
-- SQLite rewrites the row in its b-tree in place; its migration of the same name does nothing.
ALTER TABLE delivery SET (fillfactor = 50);
