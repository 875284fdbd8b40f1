-- sqlite 0012 moved destination geolocations out of the session rows; PostgreSQL keeps
-- them as JSONB in each row (TOAST-free at this size). Kept so schema versions match across
-- backends.
SELECT 1;
