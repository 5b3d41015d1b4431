-- Daily reconciliation: imported counterparty files, runs, the automatic
-- decisions on UNKNOWN payments, and breaks as work items with their
-- audit trail.
--
-- A file is imported whole or not at all. Its bytes are kept verbatim in
-- the reconciliation directory under their SHA-256 (the same bytes twice
-- are one file); a run reads them again from there, checking the digest.

CREATE TABLE recon_files (
    id                   bigserial PRIMARY KEY,
    sha256               text NOT NULL UNIQUE CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    kind                 text NOT NULL CHECK (kind IN
                             ('water-csv', 'power-xml', 'gas-fixed', 'hub-statement', 'coop-ack', 'camt053')),
    -- What the importer named (--source): a biller id, "hub" or "bank".
    source               text NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    biller_id            text NULL,
    business_date        date NOT NULL,
    -- A later file with the same identity replaces the earlier one in runs
    -- (a re-issued statement), which stays stored.
    identity             text NOT NULL,
    file_name            text NOT NULL,
    byte_size            bigint NOT NULL CHECK (byte_size >= 0),
    records              bigint NOT NULL CHECK (records >= 0),
    credited             bigint NOT NULL CHECK (credited >= 0),
    credited_total_minor bigint NOT NULL,
    currency             text NULL,
    imported_at          timestamptz NOT NULL,
    imported_by          text NOT NULL,
    superseded_by        bigint NULL REFERENCES recon_files (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX recon_files_date ON recon_files (business_date, kind) WHERE superseded_by IS NULL;
CREATE UNIQUE INDEX recon_files_one_current ON recon_files (identity) WHERE superseded_by IS NULL;

-- Files are facts: only superseded_by may be set, once.
CREATE FUNCTION recon_files_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.superseded_by IS NOT NULL
       OR (to_jsonb(NEW) - 'superseded_by') <> (to_jsonb(OLD) - 'superseded_by') THEN
        RAISE EXCEPTION 'recon file %: % refused (imported files are never changed)', OLD.id, TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER recon_files_append_only BEFORE UPDATE OR DELETE ON recon_files
    FOR EACH ROW EXECUTE FUNCTION recon_files_guard();

-- One reconciliation of one biller (or of the bank statement: scope
-- 'bank') for one business date. The latest run of a scope and date is its
-- result; earlier runs stay as history.
CREATE TABLE recon_runs (
    id            bigserial PRIMARY KEY,
    business_date date NOT NULL,
    scope         text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NULL,
    run_by        text NOT NULL,
    file_ids      bigint[] NOT NULL,
    summary       jsonb NULL,
    reports       text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX recon_runs_scope ON recon_runs (business_date, scope, id);

-- Each automatic decision on an UNKNOWN payment, with its evidence. At most
-- one per payment: the payment moved once.
CREATE TABLE recon_decisions (
    id            bigserial PRIMARY KEY,
    run_id        bigint NOT NULL REFERENCES recon_runs (id),
    payment_id    uuid NOT NULL UNIQUE REFERENCES payments (id),
    business_date date NOT NULL,
    biller_id     text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('confirm', 'reject')),
    evidence      jsonb NOT NULL,
    decided_at    timestamptz NOT NULL
);
CREATE INDEX recon_decisions_date ON recon_decisions (business_date, biller_id);

CREATE TABLE recon_breaks (
    id                 bigserial PRIMARY KEY,
    business_date      date NOT NULL,
    scope              text NOT NULL,
    category           text NOT NULL CHECK (category IN
                           ('missing-at-biller', 'missing-at-us', 'amount-mismatch', 'duplicate-at-biller',
                            'status-mismatch', 'reference-mismatch', 'settlement-mismatch', 'unmatched-bank-line')),
    -- What the break is about: our reference, a batch id, a bank line.
    subject            text NOT NULL,
    our_reference      text NOT NULL,
    their_reference    text NOT NULL,
    our_amount_minor   bigint NULL,
    their_amount_minor bigint NULL,
    currency           text NOT NULL,
    detail             text NOT NULL,
    evidence           jsonb NOT NULL,
    status             text NOT NULL CHECK (status IN
                           ('open', 'investigating', 'pending-approval', 'resolved', 'written-off')),
    owner              text NULL,
    proposal           jsonb NULL,
    resolution         text NULL,
    first_run          bigint NOT NULL REFERENCES recon_runs (id),
    last_run           bigint NOT NULL REFERENCES recon_runs (id),
    -- The last run that found it (null once a re-run no longer does).
    found_by_run       bigint NULL REFERENCES recon_runs (id),
    opened_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    UNIQUE (business_date, scope, category, subject),
    CHECK ((status = 'pending-approval') = (proposal IS NOT NULL)),
    CHECK ((status IN ('resolved', 'written-off')) = (resolution IS NOT NULL))
);
CREATE INDEX recon_breaks_status ON recon_breaks (status, business_date);

CREATE FUNCTION recon_breaks_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'recon break %: breaks are never deleted', OLD.id USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER recon_breaks_kept BEFORE DELETE ON recon_breaks
    FOR EACH ROW EXECUTE FUNCTION recon_breaks_no_delete();

-- The audit trail: every state change, comment, proposal, approval and
-- re-run finding of a break. Append-only.
CREATE TABLE recon_break_events (
    id          bigserial PRIMARY KEY,
    break_id    bigint NOT NULL REFERENCES recon_breaks (id),
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    from_status text NULL,
    to_status   text NOT NULL,
    note        text NOT NULL DEFAULT '',
    detail      jsonb NULL
);
CREATE INDEX recon_break_events_break ON recon_break_events (break_id, id);

CREATE FUNCTION recon_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: rows are append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER recon_break_events_kept BEFORE UPDATE OR DELETE ON recon_break_events
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

CREATE TRIGGER recon_decisions_kept BEFORE UPDATE OR DELETE ON recon_decisions
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

-- Tolerance per biller (minor units; 0 = exact), reported when used.
ALTER TABLE billers ADD COLUMN recon_tolerance_minor bigint NOT NULL DEFAULT 0
    CHECK (recon_tolerance_minor >= 0);

-- Reconciliation reads a biller's payments of a date range in reference
-- (id) order.
CREATE INDEX payments_biller_created ON payments (biller_id, created_at);
