-- Postgres cannot remove an enum label. 0006's down removes every recover row, so the label stays unused until
-- 0001's down drops the type.
SELECT 1;
