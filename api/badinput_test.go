package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// Every bad request gets the right code and a message naming the field, and
// writes nothing.
func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.account(t, "cash:M1", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "M1", false)
	e.account(t, "payable:M1", pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", "M1", true)
	e.account(t, "cash:M2", pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", "M2", false)
	e.account(t, "usd:M1", pb.AccountType_ACCOUNT_TYPE_ASSET, "USD", "M1", false)

	valid := func() *pb.PostEntryRequest {
		return &pb.PostEntryRequest{
			IdempotencyKey: "k", Market: "M1", Kind: "adjustment", Currency: "VND",
			Postings: []*pb.PostingInput{posting("cash:M1", debit, "150000"), posting("payable:M1", credit, "150000")},
		}
	}
	with := func(edit func(r *pb.PostEntryRequest)) *pb.PostEntryRequest {
		r := valid()
		edit(r)
		return r
	}
	bigMetadata := map[string]string{}
	for i := range 33 {
		bigMetadata["k"+string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
	}

	post := func(r *pb.PostEntryRequest) func() error {
		return func() error { _, err := e.client.PostEntry(ctx, r); return err }
	}
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string // the message must name it
	}{
		{"zero amount", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].Amount, r.Postings[1].Amount = "0", "0" })), codes.InvalidArgument, "postings[0].amount"},
		{"negative amount", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].Amount = "-5" })), codes.InvalidArgument, "postings[0].amount"},
		{"fractional VND", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].Amount, r.Postings[1].Amount = "1500.5", "1500.5" })), codes.InvalidArgument, "postings[0].amount"},
		{"overflowing amount", post(with(func(r *pb.PostEntryRequest) {
			r.Postings[0].Amount, r.Postings[1].Amount = "99999999999999999999", "99999999999999999999"
		})), codes.InvalidArgument, "postings[0].amount"},
		{"exponent notation", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].Amount = "1.5e5" })), codes.InvalidArgument, "postings[0].amount"},
		{"empty amount", post(with(func(r *pb.PostEntryRequest) { r.Postings[1].Amount = "" })), codes.InvalidArgument, "postings[1].amount"},
		{"unbalanced", post(with(func(r *pb.PostEntryRequest) { r.Postings[1].Amount = "149999" })), codes.InvalidArgument, "unbalanced"},
		{"single posting", post(with(func(r *pb.PostEntryRequest) { r.Postings = r.Postings[:1] })), codes.InvalidArgument, "postings"},
		{"no postings", post(with(func(r *pb.PostEntryRequest) { r.Postings = nil })), codes.InvalidArgument, "postings"},
		{"mixed currencies", post(with(func(r *pb.PostEntryRequest) {
			r.Postings = append(r.Postings, posting("usd:M1", debit, "10"), posting("payable:M1", credit, "10"))
		})), codes.InvalidArgument, "postings[2].account_code"},
		{"unknown currency", post(with(func(r *pb.PostEntryRequest) { r.Currency = "XYZ" })), codes.InvalidArgument, "currency"},
		{"unknown account", post(with(func(r *pb.PostEntryRequest) { r.Postings[1].AccountCode = "payable:nobody" })), codes.NotFound, "postings[1].account_code"},
		{"postings across markets", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].AccountCode = "cash:M2" })), codes.InvalidArgument, "postings[0].account_code"},
		{"malformed account code", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].AccountCode = "cash M1" })), codes.InvalidArgument, "postings[0].account_code"},
		{"unspecified direction", post(with(func(r *pb.PostEntryRequest) { r.Postings[0].Direction = pb.Direction_DIRECTION_UNSPECIFIED })), codes.InvalidArgument, "postings[0].direction"},
		{"too many metadata pairs", post(with(func(r *pb.PostEntryRequest) { r.Metadata = bigMetadata })), codes.InvalidArgument, "metadata"},
		{"oversized metadata value", post(with(func(r *pb.PostEntryRequest) { r.Metadata = map[string]string{"note": strings.Repeat("x", 801)} })), codes.InvalidArgument, "metadata[note]"},
		// PostgreSQL stores no NUL: refused as the caller's, never answered
		// Unavailable, which asks for the same request again.
		{"metadata value with a NUL", post(with(func(r *pb.PostEntryRequest) { r.Metadata = map[string]string{"note": "a\x00b"} })), codes.InvalidArgument, "metadata[note]"},
		{"missing idempotency key", post(with(func(r *pb.PostEntryRequest) { r.IdempotencyKey = "" })), codes.InvalidArgument, "idempotency_key"},
		{"idempotency key with spaces", post(with(func(r *pb.PostEntryRequest) { r.IdempotencyKey = "a b" })), codes.InvalidArgument, "idempotency_key"},
		{"missing market", post(with(func(r *pb.PostEntryRequest) { r.Market = "" })), codes.InvalidArgument, "market"},
		{"bad kind", post(with(func(r *pb.PostEntryRequest) { r.Kind = "Big Kind" })), codes.InvalidArgument, "kind"},
		{"timeout on a posted entry", post(with(func(r *pb.PostEntryRequest) { r.PendingTimeout = durationpb.New(time.Hour) })), codes.InvalidArgument, "pending_timeout"},
		{"timeout beyond 30 days", post(with(func(r *pb.PostEntryRequest) { r.Pending = true; r.PendingTimeout = durationpb.New(31 * 24 * time.Hour) })), codes.InvalidArgument, "pending_timeout"},
		{"occur time far ahead", post(with(func(r *pb.PostEntryRequest) { r.OccurTime = timestamppb.New(time.Now().Add(time.Hour)) })), codes.InvalidArgument, "occur_time"},
		// Go's zero time, which the server reads as unset, is not "now".
		{"occur time at year 1", post(with(func(r *pb.PostEntryRequest) { r.OccurTime = &timestamppb.Timestamp{Seconds: -62135596800} })), codes.InvalidArgument, "occur_time"},
		{"balance as of year 1", func() error {
			_, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "cash:M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Time{Time: &timestamppb.Timestamp{Seconds: -62135596800}}}})
			return err
		}, codes.InvalidArgument, "as_of.time"},
		{"debits beyond credits", post(with(func(r *pb.PostEntryRequest) {
			r.Postings = []*pb.PostingInput{posting("payable:M1", debit, "1"), posting("cash:M1", credit, "1")}
		})), codes.FailedPrecondition, "payable:M1"},
		{"malformed entry id", func() error { _, err := e.client.GetEntry(ctx, &pb.GetEntryRequest{Id: "42"}); return err }, codes.InvalidArgument, "id"},
		{"unknown entry id", func() error {
			_, err := e.client.GetEntry(ctx, &pb.GetEntryRequest{Id: "0190a3b4-0000-7000-8000-000000000000"})
			return err
		}, codes.NotFound, "id"},
		{"post malformed pending id", func() error {
			_, err := e.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{IdempotencyKey: "p", PendingEntryId: "x", Kind: "confirm"})
			return err
		}, codes.InvalidArgument, "pending_entry_id"},
		{"post unknown pending id", func() error {
			_, err := e.client.PostPendingEntry(ctx, &pb.PostPendingEntryRequest{IdempotencyKey: "p", PendingEntryId: "0190a3b4-0000-7000-8000-000000000000", Kind: "confirm"})
			return err
		}, codes.NotFound, "pending_entry_id"},
		{"void without kind", func() error {
			_, err := e.client.VoidPendingEntry(ctx, &pb.VoidPendingEntryRequest{IdempotencyKey: "v", PendingEntryId: "0190a3b4-0000-7000-8000-000000000000"})
			return err
		}, codes.InvalidArgument, "kind"},
		{"unknown account balance", func() error {
			_, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "nope"})
			return err
		}, codes.NotFound, "account_code"},
		{"balance as of the future", func() error {
			_, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "cash:M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 99}}})
			return err
		}, codes.InvalidArgument, "as_of.sequence"},
		{"negative page size", func() error {
			_, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"forged page token", func() error {
			_, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{PageToken: "bm9wZQ"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"account without type", func() error {
			_, err := e.client.CreateAccount(ctx, &pb.CreateAccountRequest{Code: "x", Currency: "VND", Market: "M1"})
			return err
		}, codes.InvalidArgument, "type"},
		{"account with another type", func() error {
			_, err := e.client.CreateAccount(ctx, &pb.CreateAccountRequest{Code: "cash:M1", Type: pb.AccountType_ACCOUNT_TYPE_LIABILITY, Currency: "VND", Market: "M1"})
			return err
		}, codes.AlreadyExists, "code"},
		{"account limiting both sides", func() error {
			_, err := e.client.CreateAccount(ctx, &pb.CreateAccountRequest{Code: "x", Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: "M1",
				DebitsMustNotExceedCredits: true, CreditsMustNotExceedDebits: true})
			return err
		}, codes.InvalidArgument, "credits_must_not_exceed_debits"},
		{"entries to a negative sequence", func() error {
			_, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{ToSequence: -1})
			return err
		}, codes.InvalidArgument, "to_sequence"},
		{"entries of an empty sequence range", func() error {
			_, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{FromSequence: 5, ToSequence: 3})
			return err
		}, codes.InvalidArgument, "to_sequence"},
		{"entries ending before they start", func() error {
			_, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{StartTime: timestamppb.New(time.Now()), EndTime: timestamppb.New(time.Now().Add(-time.Hour))})
			return err
		}, codes.InvalidArgument, "end_time"},
		{"payments ending before they start", func() error {
			_, err := e.payments.ListPayments(ctx, &pb.ListPaymentsRequest{Market: "TN-TEST", StartTime: timestamppb.New(time.Now()), EndTime: timestamppb.New(time.Now().Add(-time.Hour))})
			return err
		}, codes.InvalidArgument, "end_time"},
		{"verify from a negative sequence", func() error {
			_, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M1", FromSequence: -1})
			return err
		}, codes.InvalidArgument, "from_sequence"},
		{"verify without market", func() error {
			_, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{})
			return err
		}, codes.InvalidArgument, "market"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("got %v %q, want %v", st.Code(), st.Message(), tc.code)
			}
			if !strings.Contains(st.Message(), tc.field) {
				t.Fatalf("message %q does not name %q", st.Message(), tc.field)
			}
		})
	}

	var entries, postings int
	if err := e.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ledger_entries), (SELECT count(*) FROM ledger_postings)`).Scan(&entries, &postings); err != nil {
		t.Fatal(err)
	}
	if entries != 0 || postings != 0 {
		t.Fatalf("refused requests wrote %d entries and %d postings", entries, postings)
	}
	var moved int64
	if err := e.db.Pool.QueryRow(ctx, `SELECT COALESCE(SUM(debits_pending + credits_pending + debits_posted + credits_posted), 0) FROM ledger_accounts`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved != 0 {
		t.Fatalf("refused requests moved %d on account totals", moved)
	}
	// And a valid request still goes through afterwards.
	if _, err := e.client.PostEntry(ctx, valid()); err != nil {
		t.Fatalf("valid entry after refusals: %v", err)
	}
	e.checkInvariants(t)
}
