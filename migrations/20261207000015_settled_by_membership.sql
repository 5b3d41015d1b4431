-- Settled by membership. A payment's settlement is its 'payment' item in a
-- settlement batch (written with the batch's one COPY); closing a date no
-- longer rewrites its payments. The stored status of a settled payment
-- stays CONFIRMED (until it is RETURNED); SETTLED is derived wherever a
-- payment is read (payment_states), and so is the CONFIRMED -> SETTLED step
-- of its history (payment_history), at the batch's created_at.
--
-- The database keeps the invariants:
--   * an item is written only with its batch, all of the batch's items in
--     one statement, numbered 1..n, and adding up to the batch's totals;
--   * a 'payment' item names a CONFIRMED payment of the batch's biller, in
--     its currency, with the payment's amount and channel; a 'return' item
--     a recorded return of that biller (settlement_items_checked);
--   * a payment is in one batch at most (settlement_items_once, unique
--     per payment and kind, since 20261129000006);
--   * a settled payment changes only to RETURNED, and only a settled one is
--     returned; SETTLED is never written; a payment's amount, currency,
--     biller and channel never change (payments_settlement_guarded);
--   * every CONFIRMED payment is closed exactly once, without reading the
--     past: a close reads the biller's payments confirmed after its latest
--     batch's cut-off, plus the stragglers (below).
--
-- Stragglers. updated_at of a CONFIRMED payment is when we confirmed it, as
-- the confirming process stamped it; that process may commit after a close
-- of that time has read the payments. Before a close reads, it raises the
-- biller's fence to its cut-off, in a transaction of its own that waits for
-- every confirming transaction of the biller in flight (an advisory lock
-- they hold shared). A payment confirmed later at or before the fence is
-- recorded as a straggler, and the next close takes it.

-- ----------------------------------------------------------------- reading

-- Payments as shown: SETTLED when a CONFIRMED payment has a 'payment' item,
-- updated then (the batch's created_at). The subqueries run only for a
-- CONFIRMED payment (one index lookup each); `SELECT ... FOR UPDATE` on the
-- view locks the payment row alone. A column added to payments later must
-- be added here too (CREATE OR REPLACE VIEW).
CREATE VIEW payment_states AS
SELECT p.id, p.channel_id, p.channel_reference, p.biller_id, p.account_number, p.bill_reference,
       p.amount, p.currency,
       CASE WHEN p.status = 'CONFIRMED'
                 AND EXISTS (SELECT 1 FROM settlement_items i
                              WHERE i.payment_id = p.id AND i.kind = 'payment')
            THEN 'SETTLED' ELSE p.status END AS status,
       p.pending_journal_id, p.created_at,
       CASE WHEN p.status = 'CONFIRMED'
            THEN coalesce((SELECT b.created_at FROM settlement_items i
                             JOIN settlement_batches b ON b.id = i.batch_id
                            WHERE i.payment_id = p.id AND i.kind = 'payment'), p.updated_at)
            ELSE p.updated_at END AS updated_at,
       p.connector_id, p.biller_reference, p.confirmed_at
  FROM payments p;

-- A payment's history as shown: its events, and the CONFIRMED -> SETTLED
-- step of a payment settled by membership (reason as
-- domain::settlement::settled_reason writes it; a test keeps them equal),
-- ordered by (phase, seq): the steps before settlement, the settlement, the
-- return. A payment settled before this migration has its stored event.
CREATE VIEW payment_history AS
SELECT e.payment_id, e.from_status, e.to_status, e.reason, e.at,
       CASE WHEN e.to_status = 'RETURNED' THEN 2 ELSE 0 END AS phase, e.id AS seq
  FROM payment_events e
UNION ALL
SELECT i.payment_id, 'CONFIRMED', 'SETTLED',
       format('settled in batch %s (%s %s)', b.id, b.biller_id, to_char(b.business_date, 'YYYY-MM-DD')),
       b.created_at, 1, 0
  FROM settlement_items i
  JOIN settlement_batches b ON b.id = i.batch_id
 WHERE i.kind = 'payment'
   AND NOT EXISTS (SELECT 1 FROM payment_events e
                    WHERE e.payment_id = i.payment_id AND e.to_status = 'SETTLED');

-- ------------------------------------------------------------------ items

-- Checked per statement, set-based, in one pass over the transition table:
-- per batch, its numbering and totals, and each payment item against its
-- payment by index (a batch's payments are the day's: their index entries
-- and rows are read in order); then the return items (few) against the
-- recorded returns. A refusal looks again for the item to name.
CREATE FUNCTION settlement_items_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t record;
    bad uuid;
BEGIN
    FOR t IN
        SELECT a.*, b.id AS found, b.biller_id, b.currency,
               (b.payments_count, b.gross, b.commission, b.returns_count, b.returns)
                   IS NOT DISTINCT FROM (a.payments, a.gross, a.commission, a.returns_count, a.returns)
                   AS adds_up
          FROM (SELECT n.batch_id,
                       count(*) AS items, min(n.seq) AS first_seq, max(n.seq) AS last_seq,
                       count(*) FILTER (WHERE n.kind = 'payment') AS payments,
                       coalesce(sum(n.amount) FILTER (WHERE n.kind = 'payment'), 0) AS gross,
                       coalesce(sum(n.commission), 0) AS commission,
                       count(*) FILTER (WHERE n.kind = 'return') AS returns_count,
                       coalesce(sum(n.amount) FILTER (WHERE n.kind = 'return'), 0) AS returns,
                       -- Payment items whose payment is not CONFIRMED, not
                       -- theirs in amount or channel, or missing; and the
                       -- billers and currencies of the others.
                       count(*) FILTER (WHERE n.kind = 'payment'
                                          AND (p.id IS NULL OR p.status <> 'CONFIRMED'
                                               OR p.amount <> n.amount OR p.channel_id <> n.channel_id))
                           AS unfit,
                       min(p.biller_id) AS biller_lo, max(p.biller_id) AS biller_hi,
                       min(p.currency) AS currency_lo, max(p.currency) AS currency_hi
                  FROM new_items n
                  LEFT JOIN payments p ON n.kind = 'payment' AND p.id = n.payment_id
                 GROUP BY n.batch_id) a
          LEFT JOIN settlement_batches b ON b.id = a.batch_id
    LOOP
        IF t.found IS NULL OR t.first_seq <> 1 OR t.last_seq <> t.items OR NOT t.adds_up THEN
            RAISE EXCEPTION 'settlement batch %: %', t.batch_id,
                CASE WHEN t.found IS NULL THEN 'no such batch (write the batch first)'
                     ELSE 'its items are written in one statement, numbered from 1, and add up to its totals' END
                USING ERRCODE = 'check_violation';
        END IF;
        IF t.unfit > 0 OR (t.payments > 0 AND (t.biller_lo <> t.biller_id OR t.biller_hi <> t.biller_id
                                               OR t.currency_lo <> t.currency OR t.currency_hi <> t.currency)) THEN
            SELECT n.payment_id INTO bad
              FROM new_items n LEFT JOIN payments p ON p.id = n.payment_id
             WHERE n.batch_id = t.batch_id AND n.kind = 'payment'
               AND (p.id IS NULL OR p.status <> 'CONFIRMED' OR p.biller_id <> t.biller_id
                    OR p.currency <> t.currency OR p.amount <> n.amount OR p.channel_id <> n.channel_id)
             LIMIT 1;
            RAISE EXCEPTION 'settlement batch %: payment item for payment %, which is not a CONFIRMED payment of the batch''s biller with that amount and channel',
                t.batch_id, bad USING ERRCODE = 'check_violation';
        END IF;
        IF t.returns_count > 0 THEN
            SELECT n.payment_id INTO bad
              FROM new_items n LEFT JOIN payment_returns r ON r.payment_id = n.payment_id
             WHERE n.batch_id = t.batch_id AND n.kind = 'return'
               AND (r.payment_id IS NULL OR r.biller_id <> t.biller_id OR r.currency <> t.currency
                    OR r.amount <> n.amount OR r.channel_id <> n.channel_id)
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'settlement batch %: return item for payment %, which is not a recorded return of the batch''s biller with that amount and channel',
                    t.batch_id, bad USING ERRCODE = 'check_violation';
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER settlement_items_checked AFTER INSERT ON settlement_items
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION settlement_items_check();

-- -------------------------------------------------------- fences, stragglers

-- Per biller: every CONFIRMED payment stamped at or before closed_through
-- was visible to a close, or is a straggler. Only ever raised.
CREATE TABLE settlement_fences (
    biller_id      text PRIMARY KEY REFERENCES billers (id),
    closed_through timestamptz NOT NULL
);

CREATE FUNCTION settlement_fences_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.biller_id <> OLD.biller_id OR NEW.closed_through < OLD.closed_through THEN
        RAISE EXCEPTION 'settlement fence of %: only ever raised', OLD.biller_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_fences_raised_only BEFORE UPDATE OR DELETE ON settlement_fences
    FOR EACH ROW EXECUTE FUNCTION settlement_fences_guard();

-- Payments confirmed at or before their biller's fence after it was
-- raised: the next close takes them (whatever their date). Append-only.
CREATE TABLE settlement_stragglers (
    payment_id  uuid PRIMARY KEY,
    biller_id   text NOT NULL,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX settlement_stragglers_biller ON settlement_stragglers (biller_id);
CREATE TRIGGER settlement_stragglers_append_only BEFORE UPDATE OR DELETE ON settlement_stragglers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- The payments already waiting: confirmed at or before their biller's
-- latest cut-off and not settled (before this migration a settled payment
-- was stored SETTLED).
INSERT INTO settlement_fences (biller_id, closed_through)
SELECT biller_id, max(cutoff_at) FROM settlement_batches GROUP BY biller_id;
INSERT INTO settlement_stragglers (payment_id, biller_id, recorded_at)
SELECT p.id, p.biller_id, now()
  FROM payments p JOIN settlement_fences f ON f.biller_id = p.biller_id
 WHERE p.status = 'CONFIRMED' AND p.updated_at <= f.closed_through
   AND NOT EXISTS (SELECT 1 FROM settlement_items i WHERE i.payment_id = p.id AND i.kind = 'payment');

-- --------------------------------------------------------------- payments

-- Row by row, only for the updates that matter (the trigger's WHEN filters
-- every other dispatch transition out before any function is called).
CREATE FUNCTION payments_settlement_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER payments_settlement_guarded BEFORE UPDATE ON payments
    FOR EACH ROW
    WHEN ((NEW.status IS DISTINCT FROM OLD.status
           AND (OLD.status IN ('CONFIRMED', 'SETTLED', 'RETURNED')
                OR NEW.status IN ('CONFIRMED', 'SETTLED', 'RETURNED')))
          OR (NEW.status IN ('CONFIRMED', 'SETTLED') AND NEW.updated_at IS DISTINCT FROM OLD.updated_at)
          OR NEW.amount IS DISTINCT FROM OLD.amount OR NEW.currency IS DISTINCT FROM OLD.currency
          OR NEW.biller_id IS DISTINCT FROM OLD.biller_id OR NEW.channel_id IS DISTINCT FROM OLD.channel_id)
    EXECUTE FUNCTION payments_settlement_guard();

-- Payments written CONFIRMED (imports, benches, tests): the same fence,
-- per statement. None is written SETTLED or RETURNED.
CREATE FUNCTION payments_check_inserted_states() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b text;
BEGIN
    IF EXISTS (SELECT 1 FROM new_payments n WHERE n.status IN ('SETTLED', 'RETURNED')) THEN
        RAISE EXCEPTION 'a payment is never written SETTLED or RETURNED'
            USING ERRCODE = 'check_violation';
    END IF;
    FOR b IN SELECT DISTINCT n.biller_id FROM new_payments n WHERE n.status = 'CONFIRMED' ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtext('settlement-fence:' || b));
        INSERT INTO settlement_stragglers (payment_id, biller_id, recorded_at)
        SELECT n.id, n.biller_id, clock_timestamp()
          FROM new_payments n JOIN settlement_fences f ON f.biller_id = n.biller_id
         WHERE n.biller_id = b AND n.status = 'CONFIRMED' AND n.updated_at <= f.closed_through
        ON CONFLICT (payment_id) DO NOTHING;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER payments_inserted_states AFTER INSERT ON payments
    REFERENCING NEW TABLE AS new_payments
    FOR EACH STATEMENT EXECUTE FUNCTION payments_check_inserted_states();

-- The close reads the biller's CONFIRMED payments stamped after its latest
-- cut-off: payments_confirmed_unsettled (biller_id, updated_at) WHERE status
-- = 'CONFIRMED' still serves it (it now also holds settled payments, which
-- the close's window never reaches).
COMMENT ON INDEX payments_confirmed_unsettled IS
    'CONFIRMED payments by biller and confirmation time, settled or not: a close reads those after the biller''s latest cut-off';
