package settlement

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/choledger/choledger/settlement/reconcile"
	"github.com/choledger/choledger/settlement/statement"
)

// Which unmatched payments are breaks, to the microsecond at the edges of
// the period's core, and the order of a report's items.
func TestItemsOfLeavesEdgePaymentsToTheNeighbour(t *testing.T) {
	start := time.Date(2026, 11, 19, 17, 0, 0, 0, time.UTC) // 2026-11-20 00:00 in Vietnam
	end := start.Add(24 * time.Hour)
	w := ReconcileWindow
	payments := []reconcile.Payment{
		{ID: "p-before-start", Amount: 1, BookedAt: start.Add(-time.Minute)},
		{ID: "p-at-start", Amount: 2, BookedAt: start},
		{ID: "p-just-before-core", Amount: 3, BookedAt: start.Add(w - time.Microsecond)},
		{ID: "p-core-start", Amount: 4, BookedAt: start.Add(w)},
		{ID: "p-noon", Amount: 5, BookedAt: start.Add(12 * time.Hour)},
		{ID: "p-core-last", Amount: 6, BookedAt: end.Add(-w - time.Microsecond)},
		{ID: "p-core-end", Amount: 7, BookedAt: end.Add(-w)},
		{ID: "p-after-end", Amount: 8, BookedAt: end.Add(time.Minute)},
		// Matched near the edge: kept whatever its time.
		{ID: "p-matched", ProviderRef: "R1", Amount: 9, BookedAt: end.Add(-time.Minute)},
	}
	lines := []statement.Line{
		{Number: 3, Ref: "R1", Amount: 9, Credit: true, BookedAt: end.Add(-2 * time.Minute)},
		{Number: 2, Ref: "R2", Amount: 100, Credit: true, BookedAt: start.Add(time.Hour)},
		{Number: 4, Ref: "R3", Amount: 100, Credit: false, BookedAt: start.Add(time.Hour)},
	}
	items := itemsOf(reconcile.Match(lines, payments, w, true), payments, start, end)
	var got []string
	for _, it := range items {
		got = append(got, string(it.Kind)+":"+it.StatementRef+":"+it.PaymentID)
	}
	want := []string{
		"missing_in_ledger:R2:",
		"matched:R1:p-matched",
		"missing_in_statement::p-core-last",
		"missing_in_statement::p-core-start",
		"missing_in_statement::p-noon",
	}
	if !slices.Equal(got, want) {
		t.Errorf("items\n got %v\nwant %v", got, want)
	}
}

// A report's place in a listing reads back as written, and a place this
// service never writes is refused.
func TestReportPlaceRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 20, 8, 0, 0, 123456000, time.UTC)
	id := "01890a5d-ac96-774b-bcce-b302099a8057"
	if gotAt, gotID, err := decodeReportPlace(strconv.FormatInt(at.UnixMicro(), 10) + ":" + id); err != nil || !gotAt.Equal(at) || gotID != id {
		t.Errorf("report place: %v %s %v", gotAt, gotID, err)
	}
	for _, bad := range []string{"x", "1:nope", "x:" + id, id} {
		if _, _, err := decodeReportPlace(bad); err == nil {
			t.Errorf("place %q accepted", bad)
		}
	}
}
