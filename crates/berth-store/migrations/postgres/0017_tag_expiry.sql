-- Tag expiration (Quay's API): a tag may expire at a time, set through the API or by the
-- `quay.expires-after` label of a pushed image; the expiry worker removes it then. Each
-- `repo_image_expiry` notification hears of a tag once per expiry time: a notice row says it did.
-- Keep in step with ../sqlite/0017_tag_expiry.sql.
ALTER TABLE tag ADD COLUMN expires_at TIMESTAMPTZ;
CREATE INDEX tag_expires ON tag (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE expiry_notice (
    notification_id BIGINT NOT NULL REFERENCES repository_notification (id) ON DELETE CASCADE,
    repository_id   BIGINT NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    tag             TEXT COLLATE "C" NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (notification_id, repository_id, tag, expires_at)
);
CREATE INDEX expiry_notice_repository ON expiry_notice (repository_id);
