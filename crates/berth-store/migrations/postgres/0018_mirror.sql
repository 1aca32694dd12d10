-- Repository states and mirroring (Quay's): a repository is NORMAL, READ_ONLY or a MIRROR of a
-- repository of another registry, synced by a worker under a robot's identity.
-- Keep in step with ../sqlite/0018_mirror.sql.
ALTER TABLE repository ADD COLUMN state TEXT NOT NULL DEFAULT 'NORMAL';
CREATE TABLE repository_mirror (
    repository_id          BIGINT PRIMARY KEY REFERENCES repository (id) ON DELETE CASCADE,
    is_enabled             BOOLEAN NOT NULL,
    external_reference     TEXT NOT NULL,
    username               TEXT,
    -- Sealed: only berth-app opens it.
    password               TEXT,
    sync_interval          BIGINT NOT NULL,
    sync_start_date        TIMESTAMPTZ NOT NULL,
    robot_id               BIGINT NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    timeout_secs           BIGINT NOT NULL,
    root_rule              JSONB NOT NULL,
    registry_config        JSONB NOT NULL,
    architecture_filter    JSONB NOT NULL,
    sync_status            TEXT NOT NULL DEFAULT 'NEVER_RUN',
    sync_expiration_date   TIMESTAMPTZ,
    sync_retries_remaining INTEGER NOT NULL DEFAULT 3,
    last_error             TEXT,
    last_log               TEXT NOT NULL DEFAULT '',
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
