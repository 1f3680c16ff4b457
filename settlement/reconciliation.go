package settlement

import "context"

// ReconciliationScope returns who may see a reconciliation report.
func (s *Service) ReconciliationScope(ctx context.Context, id string) (ReportScope, error) {
	return ReportScope{}, fail(ErrReportNotFound, "id", "no reconciliation report %s", id)
}
