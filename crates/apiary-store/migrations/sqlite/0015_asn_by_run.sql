-- The ASN index led by the run of the session id, like the source index in 0014: with
-- thousands of ASNs, an index led by the ASN takes each insert at a random leaf (14 % of
-- the pages a commit wrote at 20M sessions once 0014 was in). Listing by ASN probes it once
-- per run whose time span overlaps the range asked for; see sqlite/runs.rs.
DROP INDEX sessions_asn;
CREATE INDEX sessions_asn_run ON sessions (id >> 16, asn, ts);
