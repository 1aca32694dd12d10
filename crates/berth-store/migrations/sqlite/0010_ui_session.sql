-- Web UI sign-in sessions: the cookie's token is stored hashed, with the form token (CSRF) it
-- pairs with. Keep in step with ../postgres/0010_ui_session.sql.
CREATE TABLE ui_session (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX ui_session_expiry ON ui_session (expires_at);
