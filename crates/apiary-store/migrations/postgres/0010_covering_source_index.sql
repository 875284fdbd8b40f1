-- sqlite 0010 made its source-address index covering for top attackers, the intel feed and
-- attacker stats. Not here: INCLUDE columns holding wire text (honeypot, sensor) would make
-- a hostile 12 kB value fail its insert (an index row holds at most 8 kB), and index-only
-- scans depend on the visibility map anyway. Kept so schema versions match across backends.
SELECT 1;
