-- The delivery engine's records: per-notification signing secrets (Standard Webhooks), when a
-- notification was disabled, and the delivery log (every delivery and each of its attempts).
-- Keep in step with ../postgres/0006_delivery.sql.

ALTER TABLE repository_notification ADD COLUMN secret TEXT;
ALTER TABLE repository_notification ADD COLUMN previous_secret TEXT;
ALTER TABLE repository_notification ADD COLUMN previous_secret_until TEXT;
ALTER TABLE repository_notification ADD COLUMN disabled_at TEXT;
ALTER TABLE repository_notification ADD COLUMN failing_since TEXT;

-- One row per (event occurrence, notification): pending, delivered, failed, or skipped (the
-- notification was disabled when the event happened). The job body is kept for redelivery.
CREATE TABLE delivery (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id       TEXT NOT NULL UNIQUE,
    notification_id INTEGER NOT NULL REFERENCES repository_notification (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    status          TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX delivery_of_notification ON delivery (notification_id, id);
CREATE INDEX delivery_created ON delivery (created_at);

CREATE TABLE delivery_attempt (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES delivery (id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    started_at       TEXT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    request_url      TEXT NOT NULL,
    request_headers  TEXT NOT NULL,
    request_body     TEXT NOT NULL,
    response_status  INTEGER,
    response_headers TEXT,
    response_body    TEXT,
    error            TEXT,
    outcome          TEXT NOT NULL
);
CREATE INDEX delivery_attempt_of ON delivery_attempt (delivery_id, attempt);
