-- The finance console (served by `billclear serve` under /console/).
--
-- A staff user signs in with their bearer token once; the console then
-- keeps a server-side session. Only SHA-256 of the session cookie is kept.
-- A session remembers the token hash it was opened with: rotating the
-- token (or disabling the user) ends every session at once, because a
-- session is only valid while staff_users still holds that hash.

CREATE TABLE console_sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    staff_id     text NOT NULL REFERENCES staff_users (id),
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    -- The token every state-changing form of this session carries.
    csrf         text NOT NULL CHECK (length(csrf) >= 32),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    ended_at     timestamptz NULL,
    end_reason   text NULL,
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX console_sessions_open ON console_sessions (staff_id) WHERE ended_at IS NULL;

-- One-time sign-in links (`billclear staff sign-in-link`, the demo): used
-- once, before they expire, and only while the user's token is unchanged.
CREATE TABLE console_sign_in_links (
    code_hash  bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    staff_id   text NOT NULL REFERENCES staff_users (id),
    token_hash bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz NULL
);

-- What staff did in the console outside a break's own trail (a break's
-- actions are in recon_break_events): signing in and out, route switches,
-- uploaded files and sheets. Append-only; shown on the item it concerns.
CREATE TABLE staff_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z-]{1,40}$'),
    subject_kind text NOT NULL CHECK (subject_kind IN ('staff', 'biller', 'file', 'upload', 'payment')),
    subject      text NOT NULL,
    detail       jsonb NULL
);
CREATE INDEX staff_audit_subject ON staff_audit (subject_kind, subject, id);
CREATE TRIGGER staff_audit_kept BEFORE UPDATE OR DELETE ON staff_audit
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

-- The breaks queue: filtered by status and sorted by age or amount, paged.
CREATE INDEX recon_breaks_queue ON recon_breaks (opened_at, id);
CREATE INDEX recon_breaks_amount ON recon_breaks
    ((greatest(abs(coalesce(our_amount_minor, 0)), abs(coalesce(their_amount_minor, 0)))) DESC, id);
CREATE INDEX recon_breaks_scope ON recon_breaks (scope, business_date);
CREATE INDEX recon_breaks_subject ON recon_breaks (subject);
