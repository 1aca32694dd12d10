-- Accounts (users, organizations, robots), teams, repositories, permissions, tokens, audit log.
-- Keep in step with ../postgres/0001_accounts.sql: same tables, columns and constraints.

CREATE TABLE account (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'org', 'robot')),
    email          TEXT UNIQUE,
    password_hash  TEXT,
    superuser      BOOLEAN NOT NULL DEFAULT FALSE,
    robot_owner_id INTEGER REFERENCES account (id) ON DELETE CASCADE,
    robot_token    TEXT,
    description    TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    CHECK ((kind = 'robot') = (robot_owner_id IS NOT NULL))
);

CREATE TABLE team (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('member', 'creator', 'admin')),
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE team_member (
    team_id    INTEGER NOT NULL REFERENCES team (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, account_id)
);
CREATE INDEX team_member_account ON team_member (account_id);

CREATE TABLE repository (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    visibility   TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    UNIQUE (namespace_id, name)
);

CREATE TABLE repo_user_permission (
    repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    account_id    INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (repository_id, account_id)
);
CREATE INDEX repo_user_permission_account ON repo_user_permission (account_id);

CREATE TABLE repo_team_permission (
    repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
    team_id       INTEGER NOT NULL REFERENCES team (id) ON DELETE CASCADE,
    role          TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (repository_id, team_id)
);
CREATE INDEX repo_team_permission_team ON repo_team_permission (team_id);

CREATE TABLE access_token (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    expires_at  TEXT
);

-- Audit log. repository_id deliberately has no foreign key: entries outlive the repository.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    namespace_id   INTEGER REFERENCES account (id) ON DELETE CASCADE,
    repository_id  INTEGER,
    performer_id   INTEGER REFERENCES account (id) ON DELETE SET NULL,
    performer_name TEXT,
    ip             TEXT,
    metadata       TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX audit_log_repository ON audit_log (repository_id, id);
CREATE INDEX audit_log_namespace ON audit_log (namespace_id, id);

-- Instance-wide secrets shared by every process on this database (e.g. the registry token key).
CREATE TABLE instance_secret (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
