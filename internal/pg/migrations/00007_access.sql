-- Credentials and the audit trail (package access).

-- +goose Up
CREATE TABLE credentials (
    id                 UUID PRIMARY KEY,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('merchant', 'bank', 'auditor', 'admin')),
    merchant           TEXT,
    provider           TEXT,
    markets            TEXT[] NOT NULL DEFAULT '{}',
    client_cert_sha256 TEXT CHECK (client_cert_sha256 ~ '^[0-9a-f]{64}$'),
    -- SHA-256 of the 32-byte random secret: the secret itself is never
    -- stored. A fast hash suffices for a secret with 256 bits of entropy.
    secret_hash        BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ,
    revoked_at         TIMESTAMPTZ,
    CHECK ((role = 'merchant') = (merchant IS NOT NULL)),
    CHECK ((role = 'bank') = (provider IS NOT NULL)),
    CHECK (role IN ('bank', 'auditor') OR markets = '{}')
);
CREATE INDEX credentials_role ON credentials (role, id);

CREATE TABLE audit_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    credential_id UUID,
    role          TEXT NOT NULL,
    method        TEXT NOT NULL,
    target        TEXT NOT NULL,
    code          TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX audit_events_credential ON audit_events (credential_id, id);

-- +goose Down
DROP TABLE audit_events, credentials;
