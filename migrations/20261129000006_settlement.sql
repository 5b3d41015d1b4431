-- Settlement: each biller's terms, one batch per biller and business date,
-- its items, the files written for it, returns to recover, and the keys
-- billers use to download their files.
--
-- A batch, its items, the payments moved to SETTLED (with their events), the
-- ledger journal and the outbox message are written in ONE transaction
-- (store::postgres::settlement). Batches and items are never changed or
-- deleted afterwards, except that a batch records when its files were
-- written.

-- How each biller is settled (imported with the billers file).
CREATE TABLE biller_settlement_terms (
    biller_id          text PRIMARY KEY REFERENCES billers (id),
    commission_kind    text NOT NULL CHECK (commission_kind IN ('percent', 'fixed')),
    commission_percent numeric NULL CHECK (commission_percent BETWEEN 0 AND 100),
    commission_fixed   numeric NULL CHECK (commission_fixed >= 0),
    commission_min     numeric NULL CHECK (commission_min >= 0),
    commission_max     numeric NULL CHECK (commission_max >= 0),
    rounding           text NOT NULL CHECK (rounding IN ('half-up', 'half-even', 'down', 'up')),
    file_format        text NOT NULL CHECK (file_format IN ('csv', 'fixed-width')),
    bank_name          text NOT NULL CHECK (length(bank_name) BETWEEN 1 AND 140),
    bank_account       text NOT NULL CHECK (bank_account ~ '^[A-Za-z0-9]{1,34}$'),
    bank_bic           text NOT NULL CHECK (bank_bic ~ '^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$'),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((commission_kind = 'percent') = (commission_percent IS NOT NULL)),
    CHECK ((commission_kind = 'fixed') = (commission_fixed IS NOT NULL)),
    CHECK (commission_kind = 'percent' OR (commission_min IS NULL AND commission_max IS NULL)),
    CHECK (commission_min IS NULL OR commission_max IS NULL OR commission_min <= commission_max)
);

-- One batch per biller and business date. An empty date gets a batch too:
-- the record that the date was closed (and a settlement file with no lines).
-- The terms and accounts in force at the close are copied in.
CREATE TABLE settlement_batches (
    id               uuid PRIMARY KEY,
    biller_id        text NOT NULL REFERENCES billers (id),
    biller_name      text NOT NULL,
    business_date    date NOT NULL,
    currency         char(3) NOT NULL,
    cutoff_at        timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    payments_count   bigint NOT NULL CHECK (payments_count >= 0),
    gross            numeric NOT NULL CHECK (gross >= 0),
    commission       numeric NOT NULL CHECK (commission >= 0),
    returns_count    bigint NOT NULL CHECK (returns_count >= 0),
    returns          numeric NOT NULL CHECK (returns >= 0),
    net              numeric NOT NULL CHECK (net >= 0),
    commission_rule  text NOT NULL,
    file_format      text NOT NULL CHECK (file_format IN ('csv', 'fixed-width')),
    creditor_name    text NOT NULL,
    creditor_account text NOT NULL,
    creditor_bic     text NOT NULL,
    debtor_name      text NOT NULL,
    debtor_account   text NOT NULL,
    debtor_bic       text NOT NULL,
    -- The ledger journal of the batch (none when gross and returns are zero).
    journal_id       uuid NULL,
    -- Set once, by the consumer, when every file is written and recorded.
    files_written_at timestamptz NULL,
    UNIQUE (biller_id, business_date),
    CHECK (net = gross - commission - returns)
);
CREATE INDEX settlement_batches_date ON settlement_batches (business_date);

-- A batch's lines, in file order (seq). A payment is settled once and a
-- return recovered once (unique per payment and kind). No row-level foreign
-- keys: a batch of a million items is written in one COPY, in the same
-- transaction as its batch row and its payments' update, which vouch for it.
CREATE TABLE settlement_items (
    batch_id    uuid NOT NULL,
    seq         integer NOT NULL CHECK (seq >= 1),
    payment_id  uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('payment', 'return')),
    channel_id  text NOT NULL,
    amount      numeric NOT NULL CHECK (amount > 0),
    commission  numeric NOT NULL CHECK (commission >= 0),
    PRIMARY KEY (batch_id, seq),
    CHECK (kind = 'payment' OR commission = 0)
);
CREATE UNIQUE INDEX settlement_items_once ON settlement_items (payment_id, kind);

-- The files of a batch as the consumer wrote them (name, SHA-256, size,
-- control totals). A biller downloads only files listed here.
CREATE TABLE settlement_files (
    batch_id    uuid NOT NULL REFERENCES settlement_batches (id),
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$'),
    kind        text NOT NULL CHECK (kind IN ('settlement', 'pain001', 'manifest')),
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    line_count  bigint NOT NULL CHECK (line_count >= 0),
    total       numeric NOT NULL,
    written_at  timestamptz NOT NULL,
    PRIMARY KEY (batch_id, name)
);

-- A payment the biller gave back after it was settled: reversed in the
-- ledger when recorded, recovered from a later batch of the same biller.
CREATE TABLE payment_returns (
    payment_id   uuid PRIMARY KEY,
    biller_id    text NOT NULL,
    channel_id   text NOT NULL,
    amount       numeric NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    returned_at  timestamptz NOT NULL,
    journal_id   uuid NOT NULL
);
CREATE INDEX payment_returns_biller ON payment_returns (biller_id, returned_at);

-- Closing a date reads the biller's confirmed payments up to the cut-off.
-- "Confirmed" is by our clock: updated_at of a CONFIRMED payment is when
-- its confirmation was committed here (the biller's own credit time, in
-- confirmed_at, is shown in the files but never decides the date).
CREATE INDEX payments_confirmed_unsettled ON payments (biller_id, updated_at)
    WHERE status = 'CONFIRMED';

-- Items, files and returns are append-only; a batch changes only to record
-- that its files were written (once).
CREATE TRIGGER settlement_items_append_only BEFORE UPDATE OR DELETE ON settlement_items
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER settlement_files_append_only BEFORE UPDATE OR DELETE ON settlement_files
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER payment_returns_append_only BEFORE UPDATE OR DELETE ON payment_returns
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE FUNCTION settlement_batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.files_written_at IS NOT NULL
       OR (to_jsonb(NEW) - 'files_written_at') <> (to_jsonb(OLD) - 'files_written_at') THEN
        RAISE EXCEPTION 'settlement batch %: only files_written_at may be set, once', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_batches_guarded BEFORE UPDATE OR DELETE ON settlement_batches
    FOR EACH ROW EXECUTE FUNCTION settlement_batches_guard();

-- Billers' API keys (downloading settlement files). Like channel keys, the
-- secret is sealed with the master key, the key id as associated data.
CREATE TABLE biller_keys (
    key_id        text PRIMARY KEY,
    biller_id     text NOT NULL REFERENCES billers (id),
    secret_sealed bytea NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz NULL
);
CREATE INDEX biller_keys_biller ON biller_keys (biller_id);
