-- In-app ("bell") notifications: one row per receiving account, so dismissal is per user.
-- Keep in step with ../postgres/0004_inapp.sql.

CREATE TABLE user_notification (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    target_id    INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    organization TEXT,
    metadata     TEXT NOT NULL,
    dismissed    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TEXT NOT NULL
);
CREATE INDEX user_notification_target ON user_notification (target_id, dismissed, id);
