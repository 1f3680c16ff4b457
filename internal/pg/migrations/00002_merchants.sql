-- Markets and the merchants (household businesses at stalls) that take
-- payments there. Package merchant validates everything in Go first; the
-- constraints here are the second line, so that no other writer can store a
-- merchant the Go code would refuse.

-- +goose Up

CREATE TABLE markets (
    -- Also the market of the ledger partition the market's accounts live in.
    code       TEXT PRIMARY KEY CHECK (code ~ '^[A-Z0-9-]{2,32}$'),
    name       TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    province   TEXT NOT NULL CHECK (char_length(province) BETWEEN 1 AND 100),
    ward       TEXT NOT NULL DEFAULT '' CHECK (char_length(ward) <= 100),
    status     TEXT NOT NULL CHECK (status IN ('active', 'closed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX markets_province_code ON markets (province, code);

CREATE TABLE merchants (
    code          TEXT PRIMARY KEY CHECK (code ~ '^[A-Z0-9-]{2,40}$'),
    market        TEXT NOT NULL REFERENCES markets (code),
    display_name  TEXT NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    owner_name    TEXT NOT NULL CHECK (char_length(owner_name) BETWEEN 1 AND 100),
    phone         TEXT NOT NULL CHECK (phone ~ '^0[35789][0-9]{8}$'),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'active', 'suspended', 'closed')),
    status_reason TEXT NOT NULL DEFAULT '' CHECK (char_length(status_reason) <= 200),
    -- The payout account: all three or none.
    payout_bank_bin       TEXT CHECK (payout_bank_bin ~ '^[0-9]{6}$'),
    payout_account_number TEXT CHECK (payout_account_number ~ '^[0-9A-Za-z]{1,19}$'),
    payout_holder_name    TEXT CHECK (char_length(payout_holder_name) BETWEEN 1 AND 50),
    -- Accepted channels, in the order the merchant gave them.
    channels      TEXT[] NOT NULL CHECK (
        cardinality(channels) BETWEEN 1 AND 6
        AND channels <@ ARRAY['VIETQR', 'VIETTEL_MONEY', 'VNPT_MONEY', 'MOBIFONE_MONEY', 'MOMO', 'ZALOPAY']),
    -- The fee plan: fee_basis_points[i] is the rate of fee_channels[i]; a
    -- channel without a rate is charged 0 bps (and so min_fee).
    fee_channels     TEXT[] NOT NULL DEFAULT '{}',
    fee_basis_points INTEGER[] NOT NULL DEFAULT '{}',
    min_fee          BIGINT NOT NULL DEFAULT 0 CHECK (min_fee BETWEEN 0 AND 1000000),
    -- The stalls a closed merchant held. Closing releases them in
    -- merchant_stalls, so a new merchant can take the stall over, and keeps
    -- them here, so the closed merchant's record still says where it traded.
    released_stalls TEXT[] NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The target of merchant_stalls' foreign key, which makes a stall's
    -- market the market of its merchant.
    UNIQUE (code, market),
    CONSTRAINT merchants_payout_whole CHECK (
        (payout_bank_bin IS NULL) = (payout_account_number IS NULL)
        AND (payout_bank_bin IS NULL) = (payout_holder_name IS NULL)),
    CONSTRAINT merchants_fee_plan CHECK (
        cardinality(fee_channels) = cardinality(fee_basis_points)
        AND fee_channels <@ channels
        AND 0 <= ALL (fee_basis_points) AND 1000 >= ALL (fee_basis_points)),
    CONSTRAINT merchants_released_stalls CHECK (status = 'closed' OR cardinality(released_stalls) = 0)
);
CREATE INDEX merchants_market_code ON merchants (market, code);

-- Who holds which stall. The primary key is what guarantees that two
-- merchants never hold the same stall of a market, whatever races.
CREATE TABLE merchant_stalls (
    market   TEXT NOT NULL,
    stall    TEXT NOT NULL CHECK (stall ~ '^[A-Z0-9-]{1,16}$'),
    merchant TEXT NOT NULL,
    PRIMARY KEY (market, stall),
    FOREIGN KEY (merchant, market) REFERENCES merchants (code, market)
);
CREATE INDEX merchant_stalls_merchant ON merchant_stalls (merchant);

-- +goose Down
DROP TABLE merchant_stalls, merchants, markets;
