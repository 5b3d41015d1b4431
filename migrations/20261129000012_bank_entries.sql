-- Bank statements as banks really send them: each entry is one fact,
-- whatever file it arrives in (a re-sent statement, a file repeating
-- earlier statements, a notification and then the day's statement), and
-- every "at most once" is a constraint here, not only in code.

ALTER TABLE recon_files DROP CONSTRAINT recon_files_kind_check;
ALTER TABLE recon_files ADD CONSTRAINT recon_files_kind_check CHECK (kind IN
    ('water-csv', 'power-xml', 'gas-fixed', 'hub-statement', 'coop-ack', 'camt053', 'camt054', 'mt940'));

-- One statement (or notification) of one of our accounts, recorded the
-- first time it arrives. Its identity: the account, its kind, its sequence
-- number (and MT940 page) or else its id. A statement's balances are
-- proven: opening + credits - debits = closing.
CREATE TABLE bank_statements (
    id             bigserial PRIMARY KEY,
    account        text NOT NULL,
    identity       text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('statement', 'notification')),
    format         text NOT NULL,
    statement_id   text NOT NULL,
    sequence       bigint NULL,
    page           text NULL,
    currency       char(3) NOT NULL,
    business_date  date NOT NULL,
    from_date      date NULL,
    opening_minor  bigint NULL,
    opening_date   date NULL,
    credits_minor  bigint NULL,
    debits_minor   bigint NULL,
    closing_minor  bigint NULL,
    closing_date   date NULL,
    -- Booked entries, and those not booked (pending, informational: counted only).
    entries        integer NOT NULL CHECK (entries >= 0),
    pending        integer NOT NULL CHECK (pending >= 0),
    file_id        bigint NOT NULL REFERENCES recon_files (id),
    recorded_at    timestamptz NOT NULL,
    UNIQUE (account, identity),
    CHECK ((kind = 'statement') = (opening_minor IS NOT NULL AND closing_minor IS NOT NULL
                                   AND credits_minor IS NOT NULL AND debits_minor IS NOT NULL)),
    CHECK (kind <> 'statement' OR opening_minor + credits_minor - debits_minor = closing_minor)
);
CREATE INDEX bank_statements_date ON bank_statements (business_date) WHERE kind = 'statement';
CREATE INDEX bank_statements_chain ON bank_statements (account, sequence, business_date) WHERE kind = 'statement';

-- One booked bank entry: recorded once, whatever file, statement or
-- notification brings it again.
CREATE TABLE bank_entries (
    id              bigserial PRIMARY KEY,
    account         text NOT NULL,
    -- The rule that recognised it first and the key it gave.
    rule            text NOT NULL CHECK (rule IN ('bank-reference', 'position', 'content')),
    identity        text NOT NULL,
    -- Its content with its occurrence in its statement (for matching a
    -- statement's entry to a notification's when the bank gave no reference).
    content_key     text NOT NULL,
    currency        char(3) NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor >= 0),
    credit          boolean NOT NULL,
    status          text NOT NULL,
    booking_date    date NOT NULL,
    value_date      date NULL,
    bank_reference  text NULL,
    end_to_end_id   text NULL,
    remittance      text NULL,
    -- Where it was first seen.
    statement_id    bigint NOT NULL REFERENCES bank_statements (id),
    position        integer NOT NULL CHECK (position >= 1),
    recorded_at     timestamptz NOT NULL,
    UNIQUE (account, identity)
);
CREATE INDEX bank_entries_date ON bank_entries (booking_date);
CREATE INDEX bank_entries_content ON bank_entries (account, content_key);
CREATE INDEX bank_entries_e2e ON bank_entries (end_to_end_id) WHERE end_to_end_id IS NOT NULL;

-- Every key an entry is known by: its own identity, and the one it has on
-- a message of the other kind (a statement's position for an entry first
-- seen on a notification). A key names one entry; an entry has at most one
-- key per kind of message, so no two entries of a statement can be taken
-- for the same notification entry.
CREATE TABLE bank_entry_keys (
    account   text NOT NULL,
    key       text NOT NULL,
    entry_id  bigint NOT NULL REFERENCES bank_entries (id),
    kind      text NOT NULL CHECK (kind IN ('statement', 'notification')),
    PRIMARY KEY (account, key),
    UNIQUE (entry_id, kind)
);

-- Which file brought which statement, each time (the audit of re-sends).
CREATE TABLE bank_statement_receipts (
    statement_id  bigint NOT NULL REFERENCES bank_statements (id),
    file_id       bigint NOT NULL REFERENCES recon_files (id),
    new_entries   integer NOT NULL CHECK (new_entries >= 0),
    known_entries integer NOT NULL CHECK (known_entries >= 0),
    PRIMARY KEY (statement_id, file_id)
);

CREATE TRIGGER bank_statements_kept BEFORE UPDATE OR DELETE ON bank_statements
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER bank_entries_kept BEFORE UPDATE OR DELETE ON bank_entries
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER bank_entry_keys_kept BEFORE UPDATE OR DELETE ON bank_entry_keys
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER bank_statement_receipts_kept BEFORE UPDATE OR DELETE ON bank_statement_receipts
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

-- Funding is booked per bank entry, never per file: one funding per entry.
-- (Rows booked before this migration name a bank line by its subject only.)
ALTER TABLE channel_fundings ADD COLUMN entry_id bigint NULL UNIQUE REFERENCES bank_entries (id);
CREATE INDEX channel_fundings_date ON channel_fundings (channel_id, business_date);

-- A settlement batch's payout, matched once: one entry pays one batch, and
-- a batch is paid by one entry (a second debit naming it is a break).
CREATE TABLE settlement_payouts (
    batch_id     uuid PRIMARY KEY REFERENCES settlement_batches (id),
    entry_id     bigint NOT NULL UNIQUE REFERENCES bank_entries (id),
    recorded_at  timestamptz NOT NULL
);
CREATE TRIGGER settlement_payouts_kept BEFORE UPDATE OR DELETE ON settlement_payouts
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

-- A gap or overlap in an account's chain of statements is a break of its own.
ALTER TABLE recon_breaks DROP CONSTRAINT recon_breaks_category_check;
ALTER TABLE recon_breaks ADD CONSTRAINT recon_breaks_category_check CHECK (category IN
    ('missing-at-biller', 'missing-at-us', 'amount-mismatch', 'duplicate-at-biller',
     'status-mismatch', 'reference-mismatch', 'settlement-mismatch', 'unmatched-bank-line',
     'statement-gap'));
