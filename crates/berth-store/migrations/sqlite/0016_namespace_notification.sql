-- no-transaction
-- Namespace-wide notifications (Berth): a notification belongs either to one repository or to a
-- whole namespace (an organization or a user), where it fires for every repository, present and
-- future. Exactly one of the two is set.
-- Keep in step with ../postgres/0016_namespace_notification.sql.
--
-- SQLite cannot drop a NOT NULL, so the table is rebuilt as SQLite's documented procedure says:
-- with foreign keys off (which only works outside a transaction, hence `no-transaction`), so that
-- dropping the old table neither cascades to the delivery log and the revisions nor breaks their
-- references, which name the table and find the rebuilt one. The id sequence carries over, so an
-- id is never reused.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE repository_notification_new (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                  TEXT NOT NULL UNIQUE,
    repository_id         INTEGER REFERENCES repository (id) ON DELETE CASCADE,
    namespace_id          INTEGER REFERENCES account (id) ON DELETE CASCADE,
    event                 TEXT NOT NULL,
    method                TEXT NOT NULL,
    title                 TEXT,
    config                TEXT NOT NULL,
    event_config          TEXT NOT NULL,
    number_of_failures    INTEGER NOT NULL DEFAULT 0,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason       TEXT,
    created_at            TEXT NOT NULL,
    secret                TEXT,
    previous_secret       TEXT,
    previous_secret_until TEXT,
    disabled_at           TEXT,
    failing_since         TEXT,
    CHECK ((repository_id IS NULL) <> (namespace_id IS NULL))
);
INSERT INTO repository_notification_new (id, uuid, repository_id, event, method, title, config, event_config,
    number_of_failures, enabled, disabled_reason, created_at, secret, previous_secret, previous_secret_until,
    disabled_at, failing_since)
SELECT id, uuid, repository_id, event, method, title, config, event_config, number_of_failures, enabled,
    disabled_reason, created_at, secret, previous_secret, previous_secret_until, disabled_at, failing_since
FROM repository_notification;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'repository_notification_new', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'repository_notification_new');
UPDATE sqlite_sequence
    SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'repository_notification'), 0))
    WHERE name = 'repository_notification_new';
DROP TABLE repository_notification;
ALTER TABLE repository_notification_new RENAME TO repository_notification;
CREATE INDEX repository_notification_event ON repository_notification (repository_id, event);
CREATE INDEX repository_notification_namespace_event ON repository_notification (namespace_id, event);
COMMIT;
PRAGMA foreign_keys = ON;
