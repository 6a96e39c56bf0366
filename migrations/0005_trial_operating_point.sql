-- A trial's operating point (the cut on P(attack) chosen for the grid's target, and its
-- out-of-fold and held-out rates), as JSON; NULL for trials without a target.
ALTER TABLE trials ADD COLUMN operating_point TEXT;
