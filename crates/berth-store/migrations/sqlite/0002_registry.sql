-- Registry content: blobs, upload sessions, manifests (stored byte for byte), their references, tags.
-- Keep in step with ../postgres/0002_registry.sql.

CREATE TABLE blob (
    digest     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

-- A blob is visible in a repository once uploaded or mounted there: OCI access is per repository.
CREATE TABLE repo_blob (
    repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blob (digest) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repo_blob_digest ON repo_blob (digest);

-- An upload in progress. hash_state is the resumable digest state after `size` bytes, so any
-- instance can take the next chunk.
CREATE TABLE blob_upload (
    id            TEXT PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    size          BIGINT NOT NULL DEFAULT 0,
    hash_state    BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE manifest (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id  INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject_digest TEXT,
    size           BIGINT NOT NULL,
    content        BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifest_subject ON manifest (repository_id, subject_digest);

-- What a manifest needs: its config and layers ('blob'), or an index's children ('manifest').
CREATE TABLE manifest_ref (
    manifest_id INTEGER NOT NULL REFERENCES manifest (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    digest      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, kind, digest)
);
CREATE INDEX manifest_ref_digest ON manifest_ref (digest);

CREATE TABLE tag (
    repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    manifest_id   INTEGER NOT NULL REFERENCES manifest (id) ON DELETE CASCADE,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tag_manifest ON tag (manifest_id);
