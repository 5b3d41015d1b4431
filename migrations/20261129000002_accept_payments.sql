-- Accepting a batch of payments in one round trip.
--
-- The Rust domain decides everything (ids, amounts, the balanced journal of
-- each payment, the response to store); this function only records a batch
-- atomically with the idempotency rules, so that the whole batch costs one
-- statement (and, in autocommit, one fsync). The caller removes in-batch
-- duplicates of (key_id, nonce) and (channel_id, idempotency key) first.
--
-- Outcome per payment id:
--   accepted             payment, idempotency record, pending journal with its
--                        entries, first event and dispatch outbox row written
--   nonce_reused         the nonce was recorded before: nothing written
--   key_taken            the idempotency key is held by an earlier request
--   duplicate_reference  the channel reference belongs to another payment
CREATE FUNCTION billclear_accept_payments(
    p_id uuid[], p_channel text[], p_key_id text[], p_nonce text[], p_idem_key text[],
    p_request_hash bytea[], p_response_status int2[], p_response_body text[],
    p_channel_reference text[], p_biller text[], p_account text[], p_bill_reference text[],
    p_amount numeric[], p_currency text[], p_journal uuid[], p_description text[], p_at timestamptz[],
    e_journal uuid[], e_account_code text[], e_currency text[], e_layer text[], e_side text[], e_amount numeric[]
) RETURNS TABLE (payment_id uuid, outcome text) LANGUAGE plpgsql AS $$
DECLARE
    fresh    uuid[];
    claimed  uuid[];
    accepted uuid[];
    expected bigint;
    written  bigint;
BEGIN
    -- 1. Nonces (sorted: concurrent batches take locks in one order).
    WITH ins AS (
        INSERT INTO auth_nonces AS a (key_id, nonce, seen_at)
        SELECT u.k, u.n, u.t FROM unnest(p_key_id, p_nonce, p_at) AS u(k, n, t)
         WHERE u.n IS NOT NULL ORDER BY u.k, u.n
        ON CONFLICT DO NOTHING RETURNING a.key_id, a.nonce)
    SELECT coalesce(array_agg(u.p), '{}') INTO fresh
      FROM unnest(p_id, p_key_id, p_nonce) AS u(p, k, n)
     WHERE u.n IS NULL OR EXISTS (SELECT 1 FROM ins WHERE ins.key_id = u.k AND ins.nonce = u.n);

    -- 2. Idempotency keys.
    WITH ins AS (
        INSERT INTO idempotency_keys AS i
            (channel_id, key, request_hash, payment_id, response_status, response_body, created_at)
        SELECT u.c, u.k, u.h, u.p, u.s, u.b, u.t
          FROM unnest(p_channel, p_idem_key, p_request_hash, p_id, p_response_status, p_response_body, p_at)
               AS u(c, k, h, p, s, b, t)
         WHERE u.p IN (SELECT unnest(fresh)) ORDER BY u.c, u.k
        ON CONFLICT DO NOTHING RETURNING i.payment_id)
    SELECT coalesce(array_agg(ins.payment_id), '{}') INTO claimed FROM ins;

    -- 3. Payments: the channel reference is unique per channel.
    WITH ins AS (
        INSERT INTO payments AS p (id, channel_id, channel_reference, biller_id, account_number, bill_reference,
                                   amount, currency, status, pending_journal_id, created_at, updated_at)
        SELECT u.p, u.c, u.r, u.b, u.a, u.br, u.amt, u.cur, 'RECEIVED', u.j, u.t, u.t
          FROM unnest(p_id, p_channel, p_channel_reference, p_biller, p_account, p_bill_reference,
                      p_amount, p_currency, p_journal, p_at) AS u(p, c, r, b, a, br, amt, cur, j, t)
         WHERE u.p IN (SELECT unnest(claimed)) ORDER BY u.c, u.r
        ON CONFLICT (channel_id, channel_reference) DO NOTHING RETURNING p.id)
    SELECT coalesce(array_agg(ins.id), '{}') INTO accepted FROM ins;

    IF cardinality(accepted) < cardinality(claimed) THEN
        -- Keys claimed by payments that lost on their reference: release them.
        DELETE FROM idempotency_keys i
         WHERE i.payment_id IN (SELECT unnest(claimed)) AND i.payment_id NOT IN (SELECT unnest(accepted));
    END IF;

    IF cardinality(accepted) > 0 THEN
        -- 4. Pending journals and their entries, in one statement.
        SELECT count(*) INTO expected FROM unnest(e_journal) AS e(j)
         WHERE e.j IN (SELECT u.j FROM unnest(p_journal, p_id) AS u(j, p) WHERE u.p IN (SELECT unnest(accepted)));
        WITH journals AS (
            INSERT INTO ledger_journals AS lj (id, kind, payment_id, description, created_at)
            SELECT u.j, 'pending', u.p, u.d, u.t FROM unnest(p_journal, p_id, p_description, p_at) AS u(j, p, d, t)
             WHERE u.p IN (SELECT unnest(accepted))
            RETURNING lj.id)
        INSERT INTO ledger_entries (journal_id, account_id, currency, layer, side, amount)
        SELECT e.j, a.id, e.cur, e.layer, e.side, e.amt
          FROM unnest(e_journal, e_account_code, e_currency, e_layer, e_side, e_amount)
               AS e(j, code, cur, layer, side, amt)
          JOIN ledger_accounts a ON a.code = e.code
         WHERE e.j IN (SELECT journals.id FROM journals);
        GET DIAGNOSTICS written = ROW_COUNT;
        IF written <> expected THEN
            RAISE EXCEPTION 'ledger account missing: % of % entries name an account that does not exist',
                expected - written, expected USING ERRCODE = 'foreign_key_violation';
        END IF;

        -- 5. First events and 6. dispatch outbox rows.
        INSERT INTO payment_events (payment_id, from_status, to_status, reason, at)
        SELECT u.p, NULL, 'RECEIVED', 'accepted from channel', u.t FROM unnest(p_id, p_at) AS u(p, t)
         WHERE u.p IN (SELECT unnest(accepted));
        INSERT INTO outbox (topic, aggregate_id, payload, created_at, available_at)
        SELECT 'dispatch', u.p, jsonb_build_object('payment_id', u.p, 'biller_id', u.b), u.t, u.t
          FROM unnest(p_id, p_biller, p_at) AS u(p, b, t)
         WHERE u.p IN (SELECT unnest(accepted));
    END IF;

    RETURN QUERY
    SELECT u.p,
           CASE WHEN u.p IN (SELECT unnest(accepted)) THEN 'accepted'
                WHEN u.p IN (SELECT unnest(claimed)) THEN 'duplicate_reference'
                WHEN u.p IN (SELECT unnest(fresh)) THEN 'key_taken'
                ELSE 'nonce_reused' END
      FROM unnest(p_id) AS u(p);
END $$;
