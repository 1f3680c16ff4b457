package settlement

import "context"

// PayoutBatchScope returns who may see and complete a payout batch.
func (s *Service) PayoutBatchScope(ctx context.Context, id string) (BatchScope, error) {
	return BatchScope{}, fail(ErrBatchNotFound, "id", "no payout batch %s", id)
}
