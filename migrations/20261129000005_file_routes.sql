-- File routes: billers with no online interface (the co-op) get their
-- payments as one batch file per business date, delivered at their
-- cut-off, and answer with an acknowledgement file.

-- A batch: prepared (its lines assigned) in one transaction, then written
-- to the biller's drop directory (a file of the same name already there
-- means it was delivered before), then answered.
CREATE TABLE file_batches (
    id            bigserial PRIMARY KEY,
    connector_id  text NOT NULL,
    biller_id     text NOT NULL,
    business_date date NOT NULL,
    seq           integer NOT NULL CHECK (seq BETWEEN 1 AND 999),
    file_id       text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    delivered_at  timestamptz NULL,
    answered_at   timestamptz NULL,
    UNIQUE (connector_id, business_date, seq)
);

-- A payment waiting for (or in) a batch. Never in two batches.
CREATE TABLE file_batch_lines (
    payment_id    uuid PRIMARY KEY,
    connector_id  text NOT NULL,
    biller_id     text NOT NULL,
    queued_at     timestamptz NOT NULL,
    batch_id      bigint NULL REFERENCES file_batches (id),
    line_no       integer NULL CHECK (line_no >= 1),
    CHECK ((batch_id IS NULL) = (line_no IS NULL)),
    UNIQUE (batch_id, line_no)
);
CREATE INDEX file_batch_lines_waiting ON file_batch_lines (connector_id, queued_at) WHERE batch_id IS NULL;
