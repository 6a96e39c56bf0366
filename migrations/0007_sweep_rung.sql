-- A sweep that is one rung of a halving search: the search it belongs to (a key shared by
-- all its rungs, on every shard and after every resume), the rung and its training rows.
-- NULL for grid and random sweeps.
ALTER TABLE sweeps ADD COLUMN search_key TEXT;
ALTER TABLE sweeps ADD COLUMN rung INTEGER;
ALTER TABLE sweeps ADD COLUMN rung_rows INTEGER;
