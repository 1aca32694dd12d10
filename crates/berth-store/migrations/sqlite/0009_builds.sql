-- Dockerfile builds, their logs, uploaded build contexts and build triggers.
-- Keep in step with ../postgres/0009_builds.sql.

-- A build trigger: a git source whose pushes (GitHub, GitLab or a generic JSON body) start builds.
CREATE TABLE build_trigger (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid              TEXT NOT NULL UNIQUE,
    repository_id     INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    service           TEXT NOT NULL CHECK (service IN ('custom-git', 'github', 'gitlab')),
    config            TEXT NOT NULL,
    secret            TEXT NOT NULL,
    activated         BOOLEAN NOT NULL DEFAULT FALSE,
    connected_user_id INTEGER REFERENCES account (id) ON DELETE SET NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX build_trigger_repository ON build_trigger (repository_id);

-- A build: where its context comes from, its phase, and what it produced.
CREATE TABLE build (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid             TEXT NOT NULL UNIQUE,
    repository_id    INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    phase            TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    docker_tags      TEXT NOT NULL,
    source           TEXT NOT NULL,
    dockerfile_path  TEXT NOT NULL,
    context          TEXT NOT NULL,
    trigger_id       INTEGER REFERENCES build_trigger (id) ON DELETE SET NULL,
    trigger_metadata TEXT NOT NULL,
    manual_user      TEXT,
    performer_id     INTEGER REFERENCES account (id) ON DELETE SET NULL,
    error            TEXT,
    image_id         TEXT,
    manifest_digests TEXT NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    credential_hash  TEXT UNIQUE,
    credential_until TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT
);
CREATE INDEX build_of_repository ON build (repository_id, id);

-- Log lines of a build, numbered from 0, fetched incrementally.
CREATE TABLE build_log (
    build_id   INTEGER NOT NULL REFERENCES build (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Uploaded build contexts (Quay's filedrop): created empty with a one-time upload token, then
-- filled by one PUT, then named by a build's file_id.
CREATE TABLE filedrop (
    id         TEXT PRIMARY KEY,
    owner_id   INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    mime_type  TEXT NOT NULL,
    content    BLOB,
    created_at TEXT NOT NULL
);
