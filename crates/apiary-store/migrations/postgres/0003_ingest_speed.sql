-- sqlite 0003 clustered credentials on (session_id, seq) without a foreign key and
-- dropped a roll-up index; 0001 here already has that shape. Kept so schema versions
-- match across backends.
SELECT 1;
