#!/bin/sh
# Self-contained (exam test runs each task's solution in a session of its own): the table first, if it is not there.
psql -h db -U postgres -v ON_ERROR_STOP=1 shop <<'SQL'
CREATE TABLE IF NOT EXISTS inventory (item text PRIMARY KEY, qty integer);
INSERT INTO inventory VALUES ('widget', 42);
SQL
