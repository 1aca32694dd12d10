-- Namespace-wide notifications (Berth): a notification belongs either to one repository or to a
-- whole namespace (an organization or a user), where it fires for every repository, present and
-- future. Exactly one of the two is set.
-- Keep in step with ../sqlite/0016_namespace_notification.sql.
ALTER TABLE repository_notification ALTER COLUMN repository_id DROP NOT NULL;
ALTER TABLE repository_notification ADD COLUMN namespace_id BIGINT REFERENCES account (id) ON DELETE CASCADE;
ALTER TABLE repository_notification ADD CONSTRAINT repository_notification_one_scope
    CHECK ((repository_id IS NULL) <> (namespace_id IS NULL));
CREATE INDEX repository_notification_namespace_event ON repository_notification (namespace_id, event);
