-- What blob storage holds of an upload besides its size and hash state (on S3: the multipart
-- upload, its parts' ETags and the staged tail), saved after each chunk so any instance can take
-- the next one. Empty for uploads on a local disk.
ALTER TABLE blob_upload ADD COLUMN parts TEXT NOT NULL DEFAULT '';

-- Uploaded build contexts now live in the blob store; garbage collection keeps a blob while a
-- filedrop holds it.
CREATE INDEX filedrop_digest ON filedrop (digest);
