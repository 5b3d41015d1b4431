-- Routing: an operator's planned switch of a biller to one of its routes,
-- and what each process last saw of each route's health.

-- The route an operator switched a biller to (`billclear routes switch`);
-- NULL: the biller's priority order. It must be one of the biller's routes.
ALTER TABLE billers ADD COLUMN preferred_route text NULL;

CREATE FUNCTION billers_check_preferred_route() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.preferred_route IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM biller_routes r WHERE r.biller_id = NEW.id AND r.connector_id = NEW.preferred_route) THEN
        RAISE EXCEPTION 'route % is not one of biller %''s routes', NEW.preferred_route, NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billers_preferred_route_known BEFORE INSERT OR UPDATE OF preferred_route ON billers
    FOR EACH ROW EXECUTE FUNCTION billers_check_preferred_route();

-- Each process's circuit breakers, written by its heartbeat: what
-- `billclear routes list` shows. Rows of processes that stopped age out.
CREATE TABLE route_health (
    connector_id         text NOT NULL,
    worker               text NOT NULL,
    state                text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL CHECK (consecutive_failures >= 0),
    last_error           text NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (connector_id, worker)
);
