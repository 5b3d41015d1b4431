-- billclear foundation: billers, channels, the double-entry ledger, payments,
-- idempotency and the dispatch outbox.
--
-- Invariants the database itself enforces (the Rust domain enforces them too):
--   * ledger journals and entries are append-only (no UPDATE, DELETE, TRUNCATE);
--   * every journal balances per currency and per layer (pending / posted);
--   * every journal has at least two entries;
--   * an entry's currency is its account's currency;
--   * a pending journal is resolved (posted or voided) at most once;
--   * payment events follow the payment state transition table.

-- ---------------------------------------------------------------- billers

CREATE TABLE billers (
    id                  text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind                text NOT NULL CHECK (kind IN ('water', 'electricity', 'gas')),
    currency            char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    account_regex       text NOT NULL,
    account_check_digit text NULL CHECK (account_check_digit IN ('luhn', 'mod11')),
    account_example     text NULL,
    amount_partial      boolean NOT NULL,
    amount_overpay      boolean NOT NULL,
    amount_min          numeric NOT NULL CHECK (amount_min > 0),
    amount_max          numeric NOT NULL CHECK (amount_max >= amount_min),
    status              text NOT NULL CHECK (status IN ('active', 'suspended')),
    maintenance_start   timestamptz NULL,
    maintenance_end     timestamptz NULL,
    cutoff_time         time NOT NULL,
    timezone            text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((maintenance_start IS NULL) = (maintenance_end IS NULL)),
    CHECK (maintenance_end IS NULL OR maintenance_end > maintenance_start)
);

-- Routes to a biller, in priority order (1 = tried first). The connector id
-- names a module in biller-connectors.
CREATE TABLE biller_routes (
    biller_id    text NOT NULL REFERENCES billers (id) ON DELETE CASCADE,
    priority     smallint NOT NULL CHECK (priority >= 1),
    connector_id text NOT NULL CHECK (length(connector_id) BETWEEN 1 AND 64),
    PRIMARY KEY (biller_id, priority),
    UNIQUE (biller_id, connector_id)
);

-- --------------------------------------------------------------- channels

CREATE TABLE channels (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    callback_url    text NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'disabled')),
    rate_limit_rps  integer NOT NULL CHECK (rate_limit_rps > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- API credentials. The secret is never stored in clear: it is sealed with
-- the service master key (XChaCha20-Poly1305, the key id as associated data).
CREATE TABLE channel_keys (
    key_id            text PRIMARY KEY,
    channel_id        text NOT NULL REFERENCES channels (id),
    secret_sealed     bytea NOT NULL,
    status            text NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    disabled_at       timestamptz NULL
);
CREATE INDEX channel_keys_channel ON channel_keys (channel_id);

-- Nonces seen per key; rows older than the clock-skew window are pruned.
CREATE TABLE auth_nonces (
    key_id   text NOT NULL,
    nonce    text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX auth_nonces_seen_at ON auth_nonces (seen_at);

-- ----------------------------------------------------------------- ledger

CREATE TABLE ledger_accounts (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    type        text NOT NULL CHECK (type IN ('asset', 'liability', 'income', 'expense')),
    currency    char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    owner_kind  text NOT NULL CHECK (owner_kind IN ('channel', 'biller', 'system')),
    owner_id    text NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, currency),
    CHECK ((owner_kind = 'system') = (owner_id IS NULL))
);

-- A journal is one atomic transfer. kind:
--   pending  a two-phase transfer reserved (pending layer only)
--   post     resolves a pending journal: releases the pending layer, books the posted layer
--   void     resolves a pending journal: releases the pending layer
--   posted   a single-phase transfer (posted layer only)
CREATE TABLE ledger_journals (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('pending', 'post', 'void', 'posted')),
    resolves      uuid NULL REFERENCES ledger_journals (id),
    payment_id    uuid NULL,
    description   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('post', 'void')) = (resolves IS NOT NULL))
);
-- A pending journal is resolved (posted or voided) at most once.
CREATE UNIQUE INDEX ledger_journals_resolves ON ledger_journals (resolves) WHERE resolves IS NOT NULL;

-- Integrity of entries is checked per statement, set-based (see
-- ledger_check_entries), not per row: the journal exists and the account
-- exists in the entry's currency. Accounts and journals are never deleted.
CREATE TABLE ledger_entries (
    id          bigserial PRIMARY KEY,
    journal_id  uuid NOT NULL,
    account_id  bigint NOT NULL,
    currency    char(3) NOT NULL,
    layer       text NOT NULL CHECK (layer IN ('pending', 'posted')),
    side        text NOT NULL CHECK (side IN ('debit', 'credit')),
    amount      numeric NOT NULL CHECK (amount > 0)
);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id) INCLUDE (layer, side, amount);

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', HINT = 'correct with a new reversing journal';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_journals_append_only BEFORE UPDATE OR DELETE ON ledger_journals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_journals_no_truncate BEFORE TRUNCATE ON ledger_journals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Every statement that inserts entries must bring, for each journal it
-- touches, debits equal to credits per currency and layer. Since every
-- statement's contribution balances, every journal balances whatever the
-- number of statements; and since amounts are positive, a journal with any
-- entry has at least two. The same statement-level check (set-based, one
-- pass over the statement's own rows) makes sure each entry's journal
-- exists and its account exists in the entry's currency.
CREATE FUNCTION ledger_check_entries() RETURNS trigger LANGUAGE plpgsql
    -- Look rows up by index: never scan a table that grows with every payment.
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.journal_id, n.currency, n.layer,
           sum(CASE WHEN n.side = 'debit' THEN n.amount ELSE 0 END) AS debits,
           sum(CASE WHEN n.side = 'credit' THEN n.amount ELSE 0 END) AS credits
      INTO bad
      FROM new_entries n
     GROUP BY n.journal_id, n.currency, n.layer
    HAVING sum(CASE WHEN n.side = 'debit' THEN n.amount ELSE -n.amount END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal % does not balance in % (% layer): debits % <> credits %',
            bad.journal_id, bad.currency, bad.layer, bad.debits, bad.credits
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT n.account_id, n.currency INTO bad
      FROM new_entries n LEFT JOIN ledger_accounts a ON a.id = n.account_id
     WHERE a.id IS NULL OR a.currency <> n.currency
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry names account % in %, which does not exist in that currency',
            bad.account_id, bad.currency USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.journal_id INTO bad
      FROM new_entries n LEFT JOIN ledger_journals j ON j.id = n.journal_id
     WHERE j.id IS NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'entry names journal %, which does not exist', bad.journal_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_checked AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries();

-- A post or void journal resolves a journal of kind pending.
CREATE FUNCTION ledger_check_resolves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_journals WHERE id = NEW.resolves AND kind = 'pending') THEN
        RAISE EXCEPTION 'journal % resolves %, which is not a pending journal', NEW.id, NEW.resolves
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_journals_resolve_pending AFTER INSERT ON ledger_journals
    FOR EACH ROW WHEN (NEW.resolves IS NOT NULL) EXECUTE FUNCTION ledger_check_resolves();

-- Accounts are referenced by entries: never deleted, never re-currencied.
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.currency <> OLD.currency OR NEW.code <> OLD.code THEN
        RAISE EXCEPTION 'ledger accounts are permanent: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_permanent BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();

-- A journal and its entries are written in ONE statement (a data-modifying
-- CTE: WITH j AS (INSERT INTO ledger_journals ...) INSERT INTO ledger_entries
-- ...). Statement-level AFTER triggers fire when that whole statement is
-- done, so here every new journal must already have entries (and so, by the
-- balance check, at least two). A journal written alone is refused.
-- The same pass checks a payment's pending journal against the payment.
CREATE FUNCTION ledger_check_new_journals() RETURNS trigger LANGUAGE plpgsql
    -- Look rows up by index: never scan a table that grows with every payment.
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.id INTO bad
      FROM new_journals n
     WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.journal_id = n.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal % has no entries; write a journal and its entries in one statement', bad
            USING ERRCODE = 'check_violation';
    END IF;
    -- A pending journal written for a payment is that payment's pending
    -- journal (the payment row is written first, in the same transaction).
    SELECT n.id INTO bad
      FROM new_journals n
     WHERE n.kind = 'pending' AND n.payment_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = n.payment_id AND p.pending_journal_id = n.id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pending journal % names a payment that does not name it back', bad
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_journals_have_entries AFTER INSERT ON ledger_journals
    REFERENCING NEW TABLE AS new_journals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_new_journals();

-- --------------------------------------------------------------- payments

CREATE TABLE payment_statuses (status text PRIMARY KEY);
INSERT INTO payment_statuses VALUES
    ('RECEIVED'), ('SUBMITTED'), ('CONFIRMED'), ('REJECTED'), ('UNKNOWN'), ('SETTLED'), ('RETURNED');

-- The transition table (mirrors domain::payment::TRANSITIONS; a test keeps them equal).
CREATE TABLE payment_transitions (
    from_status text NOT NULL REFERENCES payment_statuses (status),
    to_status   text NOT NULL REFERENCES payment_statuses (status),
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO payment_transitions VALUES
    ('RECEIVED',  'SUBMITTED'),
    ('RECEIVED',  'REJECTED'),
    ('SUBMITTED', 'CONFIRMED'),
    ('SUBMITTED', 'REJECTED'),
    ('SUBMITTED', 'UNKNOWN'),
    ('UNKNOWN',   'CONFIRMED'),
    ('UNKNOWN',   'REJECTED'),
    ('CONFIRMED', 'SETTLED'),
    ('SETTLED',   'RETURNED');

CREATE TABLE payments (
    id                 uuid PRIMARY KEY,
    channel_id         text NOT NULL,
    channel_reference  text NOT NULL CHECK (length(channel_reference) BETWEEN 1 AND 64),
    biller_id          text NOT NULL,
    account_number     text NOT NULL CHECK (length(account_number) BETWEEN 1 AND 64),
    bill_reference     text NULL CHECK (length(bill_reference) BETWEEN 1 AND 64),
    amount             numeric NOT NULL CHECK (amount > 0),
    currency           char(3) NOT NULL,
    status             text NOT NULL CHECK (status IN
                           ('RECEIVED', 'SUBMITTED', 'CONFIRMED', 'REJECTED', 'UNKNOWN', 'SETTLED', 'RETURNED')),
    pending_journal_id uuid NOT NULL,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    UNIQUE (channel_id, channel_reference)
);

-- The channel and biller of new payments exist (checked per statement,
-- set-based). Channels and billers are never deleted: they are disabled.
CREATE FUNCTION payments_check_parties() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.channel_id, n.biller_id INTO bad
      FROM new_payments n
      LEFT JOIN channels c ON c.id = n.channel_id
      LEFT JOIN billers b ON b.id = n.biller_id
     WHERE c.id IS NULL OR b.id IS NULL
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payment % names channel % and biller %, one of which does not exist',
            bad.id, bad.channel_id, bad.biller_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER payments_parties_exist AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments
    FOR EACH STATEMENT EXECUTE FUNCTION payments_check_parties();

CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted (disable or suspend instead)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER channels_never_deleted BEFORE DELETE ON channels FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER billers_never_deleted BEFORE DELETE ON billers FOR EACH ROW EXECUTE FUNCTION refuse_delete();

CREATE TABLE payment_events (
    id          bigserial PRIMARY KEY,
    payment_id  uuid NOT NULL,
    from_status text NULL,
    to_status   text NOT NULL CHECK (to_status IN
                    ('RECEIVED', 'SUBMITTED', 'CONFIRMED', 'REJECTED', 'UNKNOWN', 'SETTLED', 'RETURNED')),
    reason      text NOT NULL,
    at          timestamptz NOT NULL,
    CHECK (from_status IS NOT NULL OR to_status = 'RECEIVED')
);
CREATE INDEX payment_events_payment ON payment_events (payment_id);

CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- References between payments, their events (and the transition table) and
-- their pending journals are
-- checked per statement, set-based, rather than by row-level foreign keys:
-- a foreign key locks every referenced row (FOR KEY SHARE), which costs a
-- WAL record per payment on the hot path. Payments are never deleted.
CREATE TRIGGER payments_never_deleted BEFORE DELETE ON payments FOR EACH ROW EXECUTE FUNCTION refuse_delete();

CREATE FUNCTION payment_events_check_payment() RETURNS trigger LANGUAGE plpgsql
    -- Look rows up by index: never scan a table that grows with every payment.
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT n.payment_id INTO bad
      FROM new_events n WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = n.payment_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'event for payment %, which does not exist', bad USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.payment_id INTO bad
      FROM new_events n
     WHERE n.from_status IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM payment_transitions t
                        WHERE t.from_status = n.from_status AND t.to_status = n.to_status)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payment % event is not in payment_transitions', bad USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER payment_events_payment_exists AFTER INSERT ON payment_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION payment_events_check_payment();


-- Idempotency: the key scoped to the channel, a hash of the canonical request
-- and the response first given. Same key, other hash: 409. (Written in the
-- same transaction as its payment, whose foreign keys vouch for the channel.)
CREATE TABLE idempotency_keys (
    channel_id      text NOT NULL,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash    bytea NOT NULL,
    payment_id      uuid NOT NULL,
    response_status smallint NOT NULL,
    response_body   text NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (channel_id, key)
);

-- Transactional outbox: written in the same transaction as the business
-- change; workers claim rows with FOR UPDATE SKIP LOCKED or a lease.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    topic         text NOT NULL CHECK (topic IN ('dispatch', 'callback', 'settlement')),
    aggregate_id  uuid NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    available_at  timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    lease_until   timestamptz NULL,
    done_at       timestamptz NULL
);
CREATE INDEX outbox_ready ON outbox (topic, available_at) WHERE done_at IS NULL;
