-- A payment refunded in full has returned its whole fee. Each refund returns
-- its share of the fee, rounded down, and the one that refunds the last đồng
-- returns whatever is left; two partial refunds computed from the same
-- state could otherwise both round down and leave a fully refunded payment
-- with part of its fee kept. The refund that breaks this is refused, and
-- the flow computes it again from the payment as the other one left it.
--
-- NOT VALID: the rule holds for every write from now on; rows written
-- before are left as they are rather than block the migration.

-- +goose Up
ALTER TABLE payments ADD CONSTRAINT payments_refund_returns_fee CHECK (status <> 'refunded' OR fee_refunded = fee) NOT VALID;

-- +goose Down
ALTER TABLE payments DROP CONSTRAINT payments_refund_returns_fee;
