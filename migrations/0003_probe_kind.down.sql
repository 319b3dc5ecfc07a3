-- Postgres cannot remove an enum label. 0004's down removes every probe row, so the label stays unused until
-- 0001's down drops the type.
SELECT 1;
