-- Duties that must run in one process of a fleet at a time (closing dates
-- at their cut-off, relaying the settlement outbox, the file routes,
-- pruning) are held under a lease: one row per duty, renewed by its holder
-- well before it expires; when the holder dies, another process takes the
-- duty once the lease has expired. Times are the database's clock, so
-- the processes' clocks do not matter.

CREATE TABLE duty_leases (
    duty        text PRIMARY KEY CHECK (duty ~ '^[a-z][a-z-]{1,40}$'),
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > renewed_at)
);

-- Who held each duty when: every acquisition (a first one, a take-over
-- from an expired holder, or after a release). Append-only.
CREATE TABLE duty_handovers (
    id              bigserial PRIMARY KEY,
    duty            text NOT NULL,
    holder          text NOT NULL,
    previous_holder text NULL,
    -- When the previous holder's lease had expired (null: released, or none).
    previous_expired_at timestamptz NULL,
    at              timestamptz NOT NULL
);
CREATE INDEX duty_handovers_duty ON duty_handovers (duty, id);
CREATE TRIGGER duty_handovers_kept BEFORE UPDATE OR DELETE ON duty_handovers
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
