-- Re-sends decided by reconciliation: a payment our books hold as
-- delivered (CONFIRMED or SETTLED) that the biller's files prove never
-- arrived, sent once more through another route after a second person
-- approved it. The row is written (with the proof) BEFORE the call, so a
-- process that dies mid-call leaves an open re-send: its outcome is
-- unknown and the payment is never sent again.
-- A break whose approved re-send is on its way: nothing but a comment is
-- possible until the re-send's answer is recorded.
ALTER TABLE recon_breaks DROP CONSTRAINT recon_breaks_status_check,
    ADD CONSTRAINT recon_breaks_status_check CHECK (status IN
        ('open', 'investigating', 'pending-approval', 'resending', 'resolved', 'written-off'));

CREATE TABLE recon_resends (
    id                bigserial PRIMARY KEY,
    break_id          bigint NOT NULL REFERENCES recon_breaks (id),
    payment_id        uuid NOT NULL REFERENCES payments (id),
    -- the route the payment went through first, and the one re-sent on
    from_connector    text NULL,
    connector_id      text NOT NULL,
    attempt_id        bigint NOT NULL REFERENCES dispatch_attempts (id),
    maker             text NOT NULL,
    approver          text NOT NULL,
    -- the evidence of absence: files and both routes' answers
    proof             jsonb NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NULL,
    -- credited | refused | not_applied | unknown (NULL while the call runs,
    -- or if its process died during it)
    outcome           text NULL CHECK (outcome IN ('credited', 'refused', 'not_applied', 'unknown')),
    biller_reference  text NULL,
    detail            text NULL,
    CHECK ((finished_at IS NULL) = (outcome IS NULL)),
    CHECK (maker <> approver)
);

-- At most one re-send of a payment that may have reached a biller: a second
-- one is possible only after the first was certainly not applied.
CREATE UNIQUE INDEX recon_resends_once ON recon_resends (payment_id)
    WHERE outcome IS NULL OR outcome IN ('credited', 'unknown');
CREATE INDEX recon_resends_started ON recon_resends (started_at);

-- Finished once; never changed after, never deleted.
CREATE FUNCTION recon_resends_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.finished_at IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.payment_id <> OLD.payment_id
       OR NEW.connector_id <> OLD.connector_id OR NEW.started_at <> OLD.started_at
       OR NEW.proof <> OLD.proof THEN
        RAISE EXCEPTION 'recon re-send %: % refused (re-sends are finished once, never changed)',
            OLD.id, TG_OP USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER recon_resends_finished_once BEFORE UPDATE OR DELETE ON recon_resends
    FOR EACH ROW EXECUTE FUNCTION recon_resends_guard();
