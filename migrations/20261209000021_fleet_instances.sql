-- The processes of a fleet that share one database, each seen on its
-- heartbeat: fleet-wide limits (a biller's inquiry budget) are split
-- between the live ones (seen within `fleet.stale_ms`).
CREATE TABLE fleet_instances (
    name       text PRIMARY KEY,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);
