-- A notification's configuration before an edit, kept for the deliveries queued before it: an
-- edit stamps the pending ones with the revision they were made under, and the engine sends them
-- with it. New deliveries (revision_id NULL) use the notification's current configuration.
-- Keep in step with ../postgres/0015_notification_revision.sql.
CREATE TABLE notification_revision (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id INTEGER NOT NULL REFERENCES repository_notification (id) ON DELETE CASCADE,
    config          TEXT NOT NULL,
    event_config    TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX notification_revision_of ON notification_revision (notification_id);
ALTER TABLE delivery ADD COLUMN revision_id INTEGER;
