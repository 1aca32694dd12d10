-- Repository notifications (Quay's model) and the durable job queue that carries their deliveries.
-- Keep in step with ../postgres/0003_events.sql.

CREATE TABLE repository_notification (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid               TEXT NOT NULL UNIQUE,
    repository_id      INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    event              TEXT NOT NULL,
    method             TEXT NOT NULL,
    title              TEXT,
    config             TEXT NOT NULL,
    event_config       TEXT NOT NULL,
    number_of_failures INTEGER NOT NULL DEFAULT 0,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason    TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX repository_notification_event ON repository_notification (repository_id, event);

-- One generic queue for every kind of background work (notification deliveries, later builds and
-- scans). Rows are written in the same transaction as the change that caused them (outbox rule).
CREATE TABLE queue_item (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    queue              TEXT NOT NULL,
    name               TEXT NOT NULL,
    body               TEXT NOT NULL,
    available_after    TEXT NOT NULL,
    processing_expires TEXT,
    retries_remaining  INTEGER NOT NULL,
    attempt            INTEGER NOT NULL DEFAULT 0,
    state_id           TEXT NOT NULL,
    last_error         TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX queue_item_ready ON queue_item (queue, available_after);
