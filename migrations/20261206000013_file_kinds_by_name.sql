-- A counterparty's file kind is named by the code (FileKind: every kind
-- the readers know, refused on import and on reading back when unknown),
-- so a new biller family's confirmation file needs no migration. The
-- database still refuses a kind that is not a well-formed name.

ALTER TABLE recon_files DROP CONSTRAINT recon_files_kind_check;
ALTER TABLE recon_files ADD CONSTRAINT recon_files_kind_check
    CHECK (kind ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(kind) <= 32);
