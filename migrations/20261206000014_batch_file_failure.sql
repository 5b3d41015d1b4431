-- A batch whose files cannot be written, for a reason that no retry fixes
-- (a file of the batch's own name already there with other bytes, a value
-- its layout cannot carry, control totals off), records that failure once:
-- when, and why (the file and both digests). It is told once, shown by
-- `billclear settle`, `settlements list` and `settlements show`, and never
-- retried on a timer; a replayed message retries it after the cause is
-- fixed, and success then records files_written_at beside the failure,
-- which stays as history.

ALTER TABLE settlement_batches
    ADD COLUMN files_failed_at timestamptz NULL,
    ADD COLUMN files_failure   text NULL,
    ADD CONSTRAINT settlement_batches_failure_whole
        CHECK ((files_failed_at IS NULL) = (files_failure IS NULL)),
    ADD CONSTRAINT settlement_batches_failure_text
        CHECK (files_failure IS NULL OR length(files_failure) BETWEEN 1 AND 4000);

-- A batch is still never deleted and its closing never changed. Only the
-- file columns change: files_written_at is set once (nothing changes after
-- it), and the failure (both columns together) is set once, before the
-- files were written, and never changed or cleared.
CREATE OR REPLACE FUNCTION settlement_batches_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    file_columns text[] := ARRAY['files_written_at', 'files_failed_at', 'files_failure'];
BEGIN
    IF TG_OP = 'DELETE' OR OLD.files_written_at IS NOT NULL
       OR (to_jsonb(NEW) - file_columns) <> (to_jsonb(OLD) - file_columns)
       OR (OLD.files_failed_at IS NOT NULL
           AND (NEW.files_failed_at IS DISTINCT FROM OLD.files_failed_at
                OR NEW.files_failure IS DISTINCT FROM OLD.files_failure)) THEN
        RAISE EXCEPTION 'settlement batch %: only files_written_at may be set, once, and a files failure recorded, once, before it', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
