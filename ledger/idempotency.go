package ledger

import (
	"fmt"
	"maps"
)

// Entries are found by idempotency key through the keys' digest,
// ledger_key_digest (migration 00012), the only index of keys, and the full
// key is compared too, so that an entry is only ever found by its own key. A
// condition without the digest reads the whole journal.

// entryKeyIs matches entries of e whose key is the SQL expression key.
func entryKeyIs(key string) string {
	return `ledger_key_digest(e.idempotency_key) = ledger_key_digest(` + key + `) AND e.idempotency_key = ` + key
}

// entryKeyIn matches entries of e whose key is in the text[] $1.
const entryKeyIn = `ledger_key_digest(e.idempotency_key) = ANY(ARRAY(SELECT ledger_key_digest(k) FROM unnest($1::text[]) AS k))
   AND e.idempotency_key = ANY($1::text[])`

// describeDifference names the first field in which a request differs from
// the entry its idempotency key already recorded, so that a client sees
// what it changed instead of a bare refusal.
func describeDifference(stored Entry, o *op) string {
	if r := o.entry; r != nil {
		wantPhase := PhasePosted
		if r.Pending {
			wantPhase = PhasePending
		}
		switch {
		case stored.Phase != wantPhase:
			return fmt.Sprintf("the key recorded a %s entry, this request asks for a %s entry", stored.Phase, wantPhase)
		case stored.Market != r.Market:
			return fmt.Sprintf("market: stored %q, got %q", stored.Market, r.Market)
		case stored.Kind != r.Kind:
			return fmt.Sprintf("kind: stored %q, got %q", stored.Kind, r.Kind)
		case stored.Currency != r.Currency:
			return fmt.Sprintf("currency: stored %q, got %q", stored.Currency, r.Currency)
		}
		if d := diffPostings(stored.Currency, stored.Postings, o.postings); d != "" {
			return d
		}
		return diffCommon(stored, r.ExternalRef, r.Metadata, r.OccurredAt.IsZero(), r.OccurredAt.UnixMicro())
	}
	r := o.close
	wantPhase := PhasePostPending
	if r.Void {
		wantPhase = PhaseVoidPending
	}
	switch {
	case stored.Phase != wantPhase:
		return fmt.Sprintf("the key recorded a %s entry, this request asks for a %s entry", stored.Phase, wantPhase)
	case stored.PendingID != r.PendingID:
		return fmt.Sprintf("pending_entry_id: stored %q, got %q", stored.PendingID, r.PendingID)
	case stored.Kind != r.Kind:
		return fmt.Sprintf("kind: stored %q, got %q", stored.Kind, r.Kind)
	}
	if len(r.Postings) > 0 {
		if posted, err := convertPostings(stored.Currency, r.Postings); err == nil {
			if d := diffPostings(stored.Currency, stored.Postings, posted); d != "" {
				return d
			}
		}
	}
	return diffCommon(stored, r.ExternalRef, r.Metadata, r.OccurredAt.IsZero(), r.OccurredAt.UnixMicro())
}

func diffPostings(currency string, stored, got []Posting) string {
	if len(stored) != len(got) {
		return fmt.Sprintf("postings: stored %d, got %d", len(stored), len(got))
	}
	for i := range stored {
		s, g := stored[i], got[i]
		switch {
		case s.AccountCode != g.AccountCode:
			return fmt.Sprintf("postings[%d].account_code: stored %q, got %q", i, s.AccountCode, g.AccountCode)
		case s.Direction != g.Direction:
			return fmt.Sprintf("postings[%d].direction: stored %s, got %s", i, s.Direction, g.Direction)
		case s.Amount != g.Amount:
			return fmt.Sprintf("postings[%d].amount: stored %q, got %q", i, FormatAmount(currency, s.Amount), FormatAmount(currency, g.Amount))
		}
	}
	return ""
}

func diffCommon(stored Entry, ref string, md map[string]string, noOccurred bool, occurredMicro int64) string {
	switch {
	case stored.ExternalRef != ref:
		return fmt.Sprintf("external_ref: stored %q, got %q", stored.ExternalRef, ref)
	case !maps.Equal(stored.Metadata, nonNil(md)):
		return "metadata differs"
	case !noOccurred && stored.OccurredAt.UnixMicro() != occurredMicro:
		return fmt.Sprintf("occur_time: stored %s", stored.OccurredAt.Format("2006-01-02T15:04:05.999999Z07:00"))
	}
	return "the request differs from the original (occur_time or pending_timeout)"
}
