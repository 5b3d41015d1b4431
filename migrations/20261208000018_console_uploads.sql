-- Sheets of break resolutions uploaded in the finance console
-- (`POST /console/breaks-upload`): the file's facts and each row that
-- became a proposal. Every row was checked before any was applied; the
-- proposals themselves live on the breaks (recon_break_events), these only
-- say which upload brought them. Append-only.

CREATE TABLE console_uploads (
    id          bigserial PRIMARY KEY,
    file_name   text NOT NULL,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    uploaded_by text NOT NULL REFERENCES staff_users (id),
    uploaded_at timestamptz NOT NULL,
    rows        integer NOT NULL CHECK (rows BETWEEN 0 AND 2000)
);
CREATE INDEX console_uploads_recent ON console_uploads (uploaded_at DESC, id DESC);

CREATE TABLE console_upload_rows (
    upload_id  bigint NOT NULL REFERENCES console_uploads (id),
    sheet_row  integer NOT NULL CHECK (sheet_row >= 1),
    break_id   bigint NOT NULL REFERENCES recon_breaks (id),
    resolution text NOT NULL,
    note       text NOT NULL,
    connector  text NULL,
    PRIMARY KEY (upload_id, sheet_row),
    UNIQUE (upload_id, break_id)
);
CREATE INDEX console_upload_rows_break ON console_upload_rows (break_id);

CREATE TRIGGER console_uploads_kept BEFORE UPDATE OR DELETE ON console_uploads
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER console_upload_rows_kept BEFORE UPDATE OR DELETE ON console_upload_rows
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
