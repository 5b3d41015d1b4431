-- Finance staff: users with one role each, authenticated by a bearer token.
-- Only SHA-256 of the token is kept (the token is 256 random bits, shown once
-- when issued). Users are never deleted, only disabled: what they did in
-- reconciliation stays attributable to them.

CREATE TABLE staff_users (
    id              text PRIMARY KEY CHECK (id ~ '^[a-z0-9._-]{1,64}$'),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    role            text NOT NULL CHECK (role IN ('viewer', 'operator', 'approver')),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When the current token was issued (created_at, or the last rotation).
    token_issued_at timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz
);

CREATE FUNCTION staff_users_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'staff users are never deleted: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', HINT = 'disable the user instead';
END $$;

CREATE TRIGGER staff_users_no_delete BEFORE DELETE ON staff_users
    FOR EACH ROW EXECUTE FUNCTION staff_users_refuse_delete();
CREATE TRIGGER staff_users_no_truncate BEFORE TRUNCATE ON staff_users
    FOR EACH STATEMENT EXECUTE FUNCTION staff_users_refuse_delete();
