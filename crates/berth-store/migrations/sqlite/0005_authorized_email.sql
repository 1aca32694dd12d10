-- Addresses authorized to receive a repository's e-mail notifications (Quay's
-- RepositoryAuthorizedEmail). Only a SHA-256 of the confirmation code is stored, and codes expire.
-- Keep in step with ../postgres/0005_authorized_email.sql.

CREATE TABLE repo_authorized_email (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id         INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    code_hash       TEXT NOT NULL UNIQUE,
    code_expires_at TEXT NOT NULL,
    confirmed       BOOLEAN NOT NULL DEFAULT FALSE,
    confirmed_at    TEXT,
    UNIQUE (repo_id, email)
);
