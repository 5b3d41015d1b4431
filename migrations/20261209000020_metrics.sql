-- The metrics' gauges read UNKNOWN payments every few seconds: a small
-- partial index keeps that cheap whatever the size of payments.
CREATE INDEX payments_unknown ON payments (updated_at) WHERE status = 'UNKNOWN';
