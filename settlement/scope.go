package settlement

import "errors"

// ErrBatchNotFound: no payout batch has the id.
var ErrBatchNotFound = errors.New("payout batch not found")

// ErrReportNotFound: no reconciliation report has the id.
var ErrReportNotFound = errors.New("reconciliation report not found")

// BatchScope is what access control needs to know of a payout batch.
type BatchScope struct {
	// Creator is the idempotency scope of the principal that created it
	// (access.Principal.Scope).
	Creator string
	// Markets the batch covers; nil for every market.
	Markets []string
}

// ReportScope is what access control needs to know of a reconciliation
// report.
type ReportScope struct {
	// Provider whose statement it reconciled.
	Provider string
	// Markets the report covers; nil for every market.
	Markets []string
}
