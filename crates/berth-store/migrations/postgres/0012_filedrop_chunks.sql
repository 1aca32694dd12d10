-- A build context is stored as it arrives, in pieces, so that no upload is ever held whole in
-- memory. `receiving_at` marks the one upload in progress; `size` and `digest` are set when it
-- has all arrived (a filedrop with a size is filled). Earlier contents move into one piece.
CREATE TABLE filedrop_chunk (
    filedrop_id TEXT NOT NULL REFERENCES filedrop (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (filedrop_id, seq)
);

ALTER TABLE filedrop ADD COLUMN receiving_at TIMESTAMPTZ;
ALTER TABLE filedrop ADD COLUMN size BIGINT;
ALTER TABLE filedrop ADD COLUMN digest TEXT;

INSERT INTO filedrop_chunk (filedrop_id, seq, data)
    SELECT id, 0, content FROM filedrop WHERE content IS NOT NULL;
UPDATE filedrop SET size = octet_length(content), content = NULL WHERE content IS NOT NULL;
