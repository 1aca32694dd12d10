-- When a pending delivery's next attempt is due, after a failed one (NULL: due now, or finished).
-- Keep in step with ../sqlite/0013_delivery_next_attempt.sql.
ALTER TABLE delivery ADD COLUMN next_attempt_at TIMESTAMPTZ;
