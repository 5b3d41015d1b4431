-- Complaints payment apps raise about their payments, investigated by
-- machine then by finance staff, and refunds: a payment's amount given
-- back to its app, at most once (issue 18).

-- A refund before settlement reverses a CONFIRMED payment's transfer: it
-- is RETURNED without ever entering a settlement batch (the guard below
-- lets it, once its refund is recorded).
INSERT INTO payment_transitions VALUES ('CONFIRMED', 'RETURNED');

CREATE TABLE complaint_statuses (status text PRIMARY KEY);
INSERT INTO complaint_statuses VALUES
    ('OPEN'), ('INVESTIGATING'), ('PENDING_BILLER'), ('RESOLVED'), ('REJECTED'), ('ESCALATED');

-- Every allowed change of status; `domain::complaint::TRANSITIONS` is the
-- same table (a test keeps the two equal).
CREATE TABLE complaint_transitions (
    from_status text NOT NULL REFERENCES complaint_statuses (status),
    to_status   text NOT NULL REFERENCES complaint_statuses (status),
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO complaint_transitions VALUES
    ('OPEN', 'INVESTIGATING'), ('OPEN', 'PENDING_BILLER'), ('OPEN', 'RESOLVED'),
    ('OPEN', 'REJECTED'), ('OPEN', 'ESCALATED'),
    ('INVESTIGATING', 'PENDING_BILLER'), ('INVESTIGATING', 'RESOLVED'),
    ('INVESTIGATING', 'REJECTED'), ('INVESTIGATING', 'ESCALATED'),
    ('PENDING_BILLER', 'INVESTIGATING'), ('PENDING_BILLER', 'RESOLVED'),
    ('PENDING_BILLER', 'REJECTED'), ('PENDING_BILLER', 'ESCALATED'),
    ('ESCALATED', 'RESOLVED'), ('ESCALATED', 'REJECTED');

CREATE TABLE complaints (
    id               uuid PRIMARY KEY,
    channel_id       text NOT NULL REFERENCES channels (id),
    payment_id       uuid NOT NULL REFERENCES payments (id),
    biller_id        text NOT NULL,
    kind             text NOT NULL CHECK (kind IN
                         ('not_credited', 'credited_to_wrong_account', 'paid_twice',
                          'amount_differs', 'refund_not_received')),
    description      text NOT NULL CHECK (length(description) BETWEEN 1 AND 1000),
    status           text NOT NULL REFERENCES complaint_statuses (status),
    outcome          text NULL CHECK (outcome IN
                         ('credit_confirmed', 'nothing_taken', 'refunded', 'corrected')),
    -- Why it was rejected, how it was put right, or (while open) what
    -- staff should look at.
    reason           text NULL CHECK (length(reason) <= 1000),
    biller_reference text NULL,
    credited_at      timestamptz NULL,
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    request_hash     bytea NOT NULL,
    registered_at    timestamptz NOT NULL,
    due_at           timestamptz NOT NULL CHECK (due_at > registered_at),
    -- When the machine looks at it next (null: not the machine's now).
    next_check_at    timestamptz NULL,
    checks           integer NOT NULL DEFAULT 0,
    owner            text NULL,
    -- A staff refund waiting for its checker: {maker, note, at}.
    proposal         jsonb NULL,
    resolved_at      timestamptz NULL,
    escalated_at     timestamptz NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (channel_id, idempotency_key),
    CHECK ((status = 'RESOLVED') = (outcome IS NOT NULL)),
    CHECK ((status IN ('RESOLVED', 'REJECTED')) = (resolved_at IS NOT NULL)),
    CHECK (status <> 'REJECTED' OR reason IS NOT NULL),
    CHECK ((status = 'ESCALATED') <= (escalated_at IS NOT NULL))
);
-- One open complaint of a type per payment (a second is a 409).
CREATE UNIQUE INDEX complaints_one_open ON complaints (payment_id, kind)
    WHERE status NOT IN ('RESOLVED', 'REJECTED');
CREATE INDEX complaints_channel ON complaints (channel_id, registered_at, id);
CREATE INDEX complaints_machine ON complaints (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX complaints_due ON complaints (due_at)
    WHERE status IN ('OPEN', 'INVESTIGATING', 'PENDING_BILLER');
CREATE INDEX complaints_biller_month ON complaints (biller_id, registered_at);
CREATE INDEX complaints_payment ON complaints (payment_id);

CREATE FUNCTION complaints_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'complaint %: complaints are never deleted', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status <> OLD.status AND NOT EXISTS (
        SELECT 1 FROM complaint_transitions t
         WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
        RAISE EXCEPTION 'complaint %: % -> % is not in complaint_transitions',
            OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.id, NEW.channel_id, NEW.payment_id, NEW.kind, NEW.description, NEW.registered_at,
        NEW.idempotency_key, NEW.request_hash)
       IS DISTINCT FROM
       (OLD.id, OLD.channel_id, OLD.payment_id, OLD.kind, OLD.description, OLD.registered_at,
        OLD.idempotency_key, OLD.request_hash) THEN
        RAISE EXCEPTION 'complaint %: what was raised never changes', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER complaints_guarded BEFORE UPDATE OR DELETE ON complaints
    FOR EACH ROW EXECUTE FUNCTION complaints_guard();

-- The trail: every change of status, what the machine found, what staff
-- did. Append-only.
CREATE TABLE complaint_events (
    id           bigserial PRIMARY KEY,
    complaint_id uuid NOT NULL REFERENCES complaints (id),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    from_status  text NULL,
    to_status    text NOT NULL,
    note         text NOT NULL DEFAULT '',
    detail       jsonb NULL
);
CREATE INDEX complaint_events_complaint ON complaint_events (complaint_id, id);
CREATE TRIGGER complaint_events_kept BEFORE UPDATE OR DELETE ON complaint_events
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

-- A payment's amount given back to its app: at most once per payment.
CREATE TABLE refunds (
    id            uuid PRIMARY KEY,
    payment_id    uuid NOT NULL UNIQUE REFERENCES payments (id),
    complaint_id  uuid NULL REFERENCES complaints (id),
    channel_id    text NOT NULL,
    biller_id     text NOT NULL,
    amount        numeric NOT NULL CHECK (amount > 0),
    currency      char(3) NOT NULL,
    how           text NOT NULL CHECK (how IN ('reversal', 'return')),
    decided_by    text NOT NULL CHECK (decided_by IN ('rule', 'staff')),
    maker         text NULL,
    approver      text NULL,
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    journal_id    uuid NOT NULL,
    -- The date of the app's statement that lists it (the biller's
    -- business date when it was made).
    business_date date NOT NULL,
    refunded_at   timestamptz NOT NULL,
    CHECK ((decided_by = 'staff') = (maker IS NOT NULL AND approver IS NOT NULL)),
    CHECK (decided_by = 'rule' OR maker <> approver)
);
CREATE INDEX refunds_channel_date ON refunds (channel_id, business_date);
CREATE TRIGGER refunds_append_only BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- The payments' settlement guard (20261207000015) again, letting a
-- CONFIRMED payment that is in no batch become RETURNED when its refund
-- by reversal is recorded. Everything else is as it was.
CREATE OR REPLACE FUNCTION payments_settlement_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.amount IS DISTINCT FROM OLD.amount OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.biller_id IS DISTINCT FROM OLD.biller_id OR NEW.channel_id IS DISTINCT FROM OLD.channel_id THEN
        RAISE EXCEPTION 'payment %: its amount, currency, biller and channel never change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status IN ('CONFIRMED', 'SETTLED')
       AND EXISTS (SELECT 1 FROM settlement_items i WHERE i.payment_id = OLD.id AND i.kind = 'payment') THEN
        -- Settled: the return path only.
        IF NEW.status = 'RETURNED' THEN
            RETURN NEW;
        END IF;
        IF NEW.status IS DISTINCT FROM OLD.status OR NEW.updated_at IS DISTINCT FROM OLD.updated_at THEN
            RAISE EXCEPTION 'payment % is settled (batch item): it can only be RETURNED, not made %',
                OLD.id, NEW.status USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status = 'SETTLED' AND OLD.status IS DISTINCT FROM 'SETTLED' THEN
        RAISE EXCEPTION 'payment %: SETTLED is membership of a settlement batch, never written', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    -- A refund before settlement (issue 18): a CONFIRMED payment in no
    -- batch, whose refund (a reversal) is recorded first.
    IF OLD.status = 'CONFIRMED' AND NEW.status = 'RETURNED'
       AND EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = OLD.id AND r.how = 'reversal') THEN
        RETURN NEW;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND (NEW.status = 'RETURNED' OR OLD.status = 'RETURNED') THEN
        RAISE EXCEPTION 'payment % is %: only a settled payment is RETURNED, and RETURNED is final',
            OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status = 'CONFIRMED' THEN
        -- Confirmed now (or its time moved): behind any close raising the
        -- fence, and a straggler if the fence is past it.
        PERFORM pg_advisory_xact_lock_shared(hashtext('settlement-fence:' || NEW.biller_id));
        INSERT INTO settlement_stragglers (payment_id, biller_id, recorded_at)
        SELECT NEW.id, NEW.biller_id, clock_timestamp()
          FROM settlement_fences f
         WHERE f.biller_id = NEW.biller_id AND NEW.updated_at <= f.closed_through
        ON CONFLICT (payment_id) DO NOTHING;
    END IF;
    RETURN NEW;
END $$;
