-- The vulnerability scanner's records. Keep in step with ../sqlite/0008_secscan.sql.

-- What one layer says (berth_scan::LayerIndex as JSON), kept per digest so shared layers are read once.
CREATE TABLE secscan_layer (
    digest     TEXT PRIMARY KEY,
    facts      JSONB NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL
);

-- The index of a manifest (berth_scan::ImageIndex as JSON), or why there is none.
CREATE TABLE secscan_manifest (
    digest     TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('scanned', 'failed', 'unsupported')),
    reason     TEXT,
    image      JSONB,
    indexed_at TIMESTAMPTZ NOT NULL
);

-- Imported OSV advisories, and the (ecosystem, package) pairs each names, for lookup.
CREATE TABLE advisory (
    id          TEXT PRIMARY KEY,
    modified    TEXT NOT NULL,
    body        JSONB NOT NULL,
    imported_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE advisory_package (
    advisory_id TEXT NOT NULL REFERENCES advisory (id) ON DELETE CASCADE,
    ecosystem   TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (advisory_id, ecosystem, name)
);
CREATE INDEX advisory_package_name ON advisory_package (name, ecosystem);

-- Vulnerabilities already announced for a manifest: `vulnerability_found` fires once per pair.
CREATE TABLE secscan_finding (
    manifest_digest TEXT NOT NULL,
    advisory_id     TEXT NOT NULL,
    first_seen      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (manifest_digest, advisory_id)
);
