-- Push-back (issue 15): a biller whose oldest payment waiting for dispatch
-- is older than intake.backlog_max_age_ms gets new payments refused with
-- 503 biller_backlogged.
--
-- The oldest waiting payment of each biller is one probe of this index
-- (only RECEIVED payments are in it: it stays small however large the
-- payments table grows).
CREATE INDEX payments_waiting ON payments (biller_id, created_at)
    WHERE status = 'RECEIVED';

-- Each process's refusals, written by its backlog watch: what
-- `billclear routes list` shows. Rows of processes that stopped age out.
CREATE TABLE biller_backlog (
    biller_id      text NOT NULL,
    process        text NOT NULL,
    refused        bigint NOT NULL CHECK (refused >= 0),
    refusing_since timestamptz NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (biller_id, process)
);
