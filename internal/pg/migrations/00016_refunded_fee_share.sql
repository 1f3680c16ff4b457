-- A partially refunded payment has returned exactly its fee's share of all
-- refunded, rounded down (a fully refunded one, its whole fee: 00013). Each
-- refund returns that share less what earlier refunds returned, computed
-- from the payment as the refund read it; a refund computed from a payment
-- another refund changed meanwhile would return the wrong fee. It is
-- refused, and the flow computes it again.
--
-- NOT VALID: rows written before keep what they recorded; the next refund
-- of such a payment brings it back to the rule.

-- +goose Up
ALTER TABLE payments ADD CONSTRAINT payments_refunded_fee_share CHECK (
    status <> 'partially_refunded' OR fee_refunded = floor(fee::numeric * refunded_amount / confirmed_amount)) NOT VALID;

-- +goose Down
ALTER TABLE payments DROP CONSTRAINT payments_refunded_fee_share;
