-- Payments taken at market stalls. The payments table is a projection of the
-- journal: the payment package's projector writes it in the same transaction
-- as the ledger entries it derives from, and could rebuild it from them.

-- +goose Up
CREATE TABLE payments (
    id               UUID PRIMARY KEY,
    merchant         TEXT NOT NULL,
    market           TEXT NOT NULL,
    channel          TEXT NOT NULL,
    source           TEXT NOT NULL CHECK (source IN ('stall', 'bank')),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected', 'expired', 'partially_refunded', 'refunded')),
    currency         TEXT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    confirmed_amount BIGINT NOT NULL DEFAULT 0 CHECK (confirmed_amount >= 0 AND confirmed_amount <= amount),
    fee              BIGINT NOT NULL CHECK (fee >= 0),
    refunded_amount  BIGINT NOT NULL DEFAULT 0,
    fee_refunded     BIGINT NOT NULL DEFAULT 0,
    provider_ref     TEXT,
    request_id       UUID,
    bill_number      TEXT,
    occurred_at      TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ,
    pending_entry_id UUID UNIQUE,
    entry_ids        UUID[] NOT NULL,
    -- The guarantees behind "never refund more than remains", even when two
    -- refunds race: the loser's transaction fails here.
    CONSTRAINT payments_refund_within_confirmed CHECK (refunded_amount >= 0 AND refunded_amount <= confirmed_amount),
    CONSTRAINT payments_fee_refund_within_fee CHECK (fee_refunded >= 0 AND fee_refunded <= fee),
    CONSTRAINT payments_provider_ref_unique UNIQUE (channel, provider_ref)
);
CREATE INDEX payments_merchant_time ON payments (merchant, occurred_at, id);
CREATE INDEX payments_market_time ON payments (market, occurred_at, id);
CREATE INDEX payments_request ON payments (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE payment_refunds (
    entry_id     UUID PRIMARY KEY,
    payment_id   UUID NOT NULL REFERENCES payments (id),
    amount       BIGINT NOT NULL CHECK (amount > 0),
    fee_returned BIGINT NOT NULL CHECK (fee_returned >= 0),
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_refunds_payment ON payment_refunds (payment_id);

-- Payment requests: an amount asked of a payer, with its dynamic QR.
CREATE TABLE payment_requests (
    id              UUID PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash    BYTEA NOT NULL,
    merchant        TEXT NOT NULL,
    market          TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    bill_number     TEXT NOT NULL UNIQUE,
    purpose         TEXT NOT NULL,
    qr_payload      TEXT NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE payment_requests, payment_refunds, payments;
