-- A session's destination geolocation is the same for every session a sensor reports, yet
-- was stored as ~130 bytes of JSON in each row (a quarter of the row). New rows hold the
-- integer id of the JSON here instead; rows written before keep their inline JSON (reads
-- accept both, see sqlite/rows.rs), so no table rewrite is needed.
CREATE TABLE geo_places (
    id  INTEGER PRIMARY KEY,
    geo TEXT NOT NULL UNIQUE                 -- JSON GeoInfo
);
