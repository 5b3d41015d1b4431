-- Dispatch: delivering accepted payments to billers, status inquiries for
-- payments whose outcome is unknown, and callbacks to channels.
--
-- Work is claimed from the outbox with FOR UPDATE SKIP LOCKED and held by a
-- lease: claiming moves available_at to the end of the lease and stamps a
-- claim token, so a process that dies leaves work that reappears when its
-- lease ends, and a process whose lease ended can no longer act on it
-- (every write checks the token).

ALTER TABLE outbox
    ADD COLUMN claim_token uuid NULL,
    ADD COLUMN claimed_by  text NULL,
    ADD COLUMN last_error  text NULL,
    -- Work given up after its bounded retries (done_at is set too).
    ADD COLUMN abandoned   boolean NOT NULL DEFAULT false;

-- At most one live dispatch job per payment: two could be claimed by two
-- workers at once and both send it.
CREATE UNIQUE INDEX outbox_one_live_dispatch ON outbox (aggregate_id)
    WHERE topic = 'dispatch' AND done_at IS NULL;

-- The route a payment was (last) sent through: status inquiries go there and
-- nowhere else. The biller's reference and the time it credited the payment
-- come from its answer.
ALTER TABLE payments
    ADD COLUMN connector_id     text NULL,
    ADD COLUMN biller_reference text NULL CHECK (length(biller_reference) BETWEEN 1 AND 128),
    ADD COLUMN confirmed_at     timestamptz NULL;

-- Every call to a biller about a payment: written before the call (so a
-- process that dies mid-call leaves an open attempt, which makes the payment
-- UNKNOWN and is never re-sent), finished once with its outcome.
CREATE TABLE dispatch_attempts (
    id            bigserial PRIMARY KEY,
    payment_id    uuid NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('pay', 'status')),
    connector_id  text NOT NULL,
    worker        text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NULL,
    -- credited     the biller credited the payment
    -- refused      the biller refused it for good
    -- not_applied  certainly not applied (connection refused, busy): may be sent again
    -- unknown      may have been applied (timeout, unreadable answer, echo mismatch)
    -- not_found    status inquiry: the biller has no record of our reference
    -- pending      status inquiry: the biller has not decided yet
    outcome       text NULL CHECK (outcome IN
                      ('credited', 'refused', 'not_applied', 'unknown', 'not_found', 'pending')),
    result_code   text NULL,
    detail        text NULL,
    CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX dispatch_attempts_payment ON dispatch_attempts (payment_id, id);

-- An attempt is finished once; nothing else about it ever changes.
CREATE FUNCTION dispatch_attempts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.finished_at IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.payment_id <> OLD.payment_id OR NEW.kind <> OLD.kind
       OR NEW.connector_id <> OLD.connector_id OR NEW.started_at <> OLD.started_at THEN
        RAISE EXCEPTION 'dispatch attempt %: % refused (attempts are finished once, never changed)',
            OLD.id, TG_OP USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER dispatch_attempts_finished_once BEFORE UPDATE OR DELETE ON dispatch_attempts
    FOR EACH ROW EXECUTE FUNCTION dispatch_attempts_guard();
