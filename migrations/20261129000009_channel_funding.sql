-- Channel funding seen on our bank statement: a payment app paying what its
-- statement of a date says it owes. Each bank line is booked once
-- (Dr bank:settlement / Cr the channel's receivable), however often the
-- date is reconciled.
CREATE TABLE channel_fundings (
    subject       text PRIMARY KEY,
    channel_id    text NOT NULL REFERENCES channels (id),
    business_date date NOT NULL,
    amount        numeric NOT NULL CHECK (amount > 0),
    currency      char(3) NOT NULL,
    file_id       bigint NOT NULL REFERENCES recon_files (id),
    journal_id    uuid NOT NULL,
    recorded_at   timestamptz NOT NULL
);

CREATE TRIGGER channel_fundings_kept BEFORE UPDATE OR DELETE ON channel_fundings
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
