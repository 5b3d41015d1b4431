-- One reconciliation of a date and scope at a time: a second run while one
-- is running is refused (two runs would each clear the other's fresh
-- breaks). A run that fails is finished with its reason; one that has not
-- finished an hour after it started is taken as dead and finished as such.
ALTER TABLE recon_runs ADD COLUMN failed text NULL;
CREATE UNIQUE INDEX recon_runs_one_running ON recon_runs (business_date, scope)
    WHERE finished_at IS NULL;
