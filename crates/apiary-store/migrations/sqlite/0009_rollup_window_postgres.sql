-- postgres 0009 added the sliding 24-hour roll-up that sqlite 0007 already has. Kept so
-- schema versions match across backends.
SELECT 1;
