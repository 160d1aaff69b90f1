-- Nothing on SQLite: the PostgreSQL twin installs functions that make a locking use
-- case one round trip; SQLite has no round trips, and its writers already take turns
-- (BEGIN IMMEDIATE), so the same use cases run as several statements in a transaction.
SELECT 1;
