-- Postgres orders principal_changes by commit with a trigger (see its 0005).
-- SQLite needs nothing: it runs one writer at a time, so changes commit in
-- the order their seq was taken. Kept so that both backends share versions.
SELECT 1;
