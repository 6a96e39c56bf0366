-- The boosting rounds a trial's model kept when early stopping (n_iter_no_change) was on;
-- NULL for every other trial.
ALTER TABLE trials ADD COLUMN n_estimators_used INTEGER;
