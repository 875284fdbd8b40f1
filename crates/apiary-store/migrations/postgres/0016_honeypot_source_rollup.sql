-- Top attackers by honeypot (Store::top_sources) take their candidates from a roll-up of
-- (source address, honeypot), dimension 11, value "<address>\t<honeypot>": an address's
-- bound is then its count on one honeypot, not on all of them. Sessions stored before get
-- their hourly rows here; the 24-hour window is rebuilt by the writer's next batch.
-- host() prints addresses as the store does (IPv4 dotted, IPv6 compressed, lower case),
-- and honeypot is already in its stored (escaped) form.
DELETE FROM rollup_hourly WHERE dim = 11;
DELETE FROM rollup_window WHERE dim = 11;
INSERT INTO rollup_hourly (dim, hour, value, count)
SELECT 11, h, v, COUNT(*) FROM (
    SELECT floor(extract(epoch FROM ts) / 3600)::bigint AS h,
           host(source_ip) || E'\t' || honeypot AS v
    FROM sessions WHERE source_ip IS NOT NULL) s
GROUP BY h, v;
UPDATE counters SET value = -1 WHERE name = 'rollup_window_hour';
