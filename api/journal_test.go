package api_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

func (e *env) postTransfers(t *testing.T, market string, n int) []*pb.Entry {
	t.Helper()
	var out []*pb.Entry
	for i := range n {
		resp, err := e.client.PostEntry(context.Background(), &pb.PostEntryRequest{
			IdempotencyKey: fmt.Sprintf("%s-%d", market, i), Market: market, Kind: "sale", Currency: "VND",
			Postings: []*pb.PostingInput{
				posting("cash:"+market, debit, fmt.Sprint(10000+i)),
				posting("payable:"+market, credit, fmt.Sprint(10000+i)),
			},
			Metadata: map[string]string{"stall": fmt.Sprint(i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Entry)
	}
	return out
}

func (e *env) marketAccounts(t *testing.T, markets ...string) {
	for _, m := range markets {
		e.account(t, "cash:"+m, pb.AccountType_ACCOUNT_TYPE_ASSET, "VND", m, false)
		e.account(t, "payable:"+m, pb.AccountType_ACCOUNT_TYPE_LIABILITY, "VND", m, true)
	}
}

// An entry changed behind the service's back, by a superuser with the
// append-only triggers disabled, is found by VerifyJournal: that entry and
// no other.
func TestVerifyJournalFindsTamperedEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		victim int
		sql    string
	}{
		{"posting amount", 6, `UPDATE ledger_postings SET amount = amount + 1000 WHERE entry_seq = $1`},
		{"metadata", 3, `UPDATE ledger_entries SET metadata = '{"stall": "99"}' WHERE seq = $1`},
		{"metadata not a string", 4, `UPDATE ledger_entries SET metadata = '{"stall": 99}' WHERE seq = $1`},
		{"occur time", 0, `UPDATE ledger_entries SET occurred_at = occurred_at - interval '1 day' WHERE seq = $1`},
		{"last entry", 9, `UPDATE ledger_entries SET kind = 'refund' WHERE seq = $1`},
		{"posting pending flag", 5, `UPDATE ledger_postings SET pending = true WHERE entry_seq = $1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ledgerOptions())
			e.marketAccounts(t, "M1", "M2")
			entries := e.postTransfers(t, "M1", 10)
			e.postTransfers(t, "M2", 5)
			v, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M1"})
			if err != nil || !v.Ok || v.EntriesChecked != 10 {
				t.Fatalf("before tampering: %v, %v", v, err)
			}
			victim := entries[tc.victim]
			conn, err := e.db.Pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, tc.sql, victim.Sequence); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `SET session_replication_role = origin`); err != nil {
				t.Fatal(err)
			}

			v, err = e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M1"})
			if err != nil {
				t.Fatal(err)
			}
			if v.Ok || v.FirstBroken.GetEntryId() != victim.Id || v.FirstBroken.Sequence != victim.Sequence || v.FirstBroken.Reason == "" {
				t.Fatalf("got %v, want the first broken link at entry %s (seq %d)", v, victim.Id, victim.Sequence)
			}
			// Only that entry: the entries after it still chain to its stored
			// hash, and the other market's chain is intact.
			after, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M1", FromSequence: victim.Sequence + 1})
			if err != nil || !after.Ok || after.EntriesChecked != int64(9-tc.victim) {
				t.Fatalf("entries after the tampered one: %v, %v", after, err)
			}
			other, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: "M2"})
			if err != nil || !other.Ok || other.EntriesChecked != 5 {
				t.Fatalf("other market: %v, %v", other, err)
			}
		})
	}
}

// VerifyJournal and the trial balance of a market the ledger holds nothing
// of, a code mistyped or written in lower case, are NotFound: they
// answered ok, with no entry checked, and balanced at zero, and an auditor
// read that the market's journal verified and that it owed and was owed
// nothing. A market with accounts and no entries yet is intact, and its
// trial balance lists them.
func TestVerifyJournalOfNoMarket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "TN-CHO", "TN-MOI")
	e.postTransfers(t, "TN-CHO", 3)
	for _, market := range []string{"TN-CHOO", "tn-cho"} {
		v, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: market})
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "market") || !strings.Contains(st.Message(), market) {
			t.Errorf("VerifyJournal of market %q: %v, %v; want NotFound naming market %s", market, v, err, market)
		}
		tb, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: market})
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "market") || !strings.Contains(st.Message(), market) {
			t.Errorf("GetTrialBalance of market %q: %v, %v; want NotFound naming market %s", market, tb, err, market)
		}
	}
	for market, checked := range map[string]int64{"TN-CHO": 3, "TN-MOI": 0} {
		v, err := e.client.VerifyJournal(ctx, &pb.VerifyJournalRequest{Market: market})
		if err != nil || !v.Ok || v.EntriesChecked != checked {
			t.Errorf("VerifyJournal of market %s: %v, %v; want intact, %d entries checked", market, v, err, checked)
		}
		tb, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: market})
		if err != nil || len(tb.Lines) == 0 {
			t.Errorf("GetTrialBalance of market %s: %v, %v; want its accounts", market, tb, err)
		}
	}
}

func TestJournalIsAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	e.postTransfers(t, "M1", 1)
	for _, sql := range []string{`UPDATE ledger_entries SET kind = 'x'`, `DELETE FROM ledger_postings`, `DELETE FROM ledger_entries`} {
		if _, err := e.db.Pool.Exec(ctx, sql); err == nil {
			t.Errorf("%s: the database allowed it", sql)
		}
	}
}

func TestHealthAndReflection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	h, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", h, err)
	}
	stream, err := grpc_reflection_v1.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		found[s.Name] = true
	}
	for _, want := range []string{"choledger.v1.LedgerService", "grpc.health.v1.Health"} {
		if !found[want] {
			t.Errorf("reflection does not list %s (lists %v)", want, found)
		}
	}
}

func TestListAndStreamEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	e.postTransfers(t, "M1", 7)
	e.postTransfers(t, "M2", 3)

	// Pages of 3 over market M1 give its 7 entries in order, then stop.
	var seqs []int64
	token := ""
	for {
		resp, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1", PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range resp.Entries {
			seqs = append(seqs, en.Sequence)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if len(seqs) != 7 {
		t.Fatalf("listed %v, want 7 entries of M1", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("not in ledger order: %v", seqs)
		}
	}
	byAccount, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{AccountCode: "payable:M2"})
	if err != nil || len(byAccount.Entries) != 3 {
		t.Fatalf("entries of payable:M2: %v, %v", byAccount, err)
	}

	// A following stream sends history from sequence 5, then what is
	// committed later.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := e.client.StreamEntries(sctx, &pb.StreamEntriesRequest{FromSequence: 5, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(5); want <= 10; want++ {
		msg, err := stream.Recv()
		if err != nil || msg.Entry.Sequence != want {
			t.Fatalf("stream: got %v, %v; want sequence %d", msg, err, want)
		}
	}
	resp, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{
		IdempotencyKey: "late", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "5000"), posting("payable:M1", credit, "5000")},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil || msg.Entry.Id != resp.Entry.Id {
		t.Fatalf("followed entry: %v, %v; want %s", msg, err, resp.Entry.Id)
	}
	cancel()

	// Without follow, the stream ends after the last entry.
	all, err := e.client.StreamEntries(ctx, &pb.StreamEntriesRequest{Market: "M2"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := all.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("streamed %d entries of M2, want 3", n)
	}
}

// A ListEntries page token continues the query that issued it: sent with
// another market, account, kind, sequence range or time bound it is
// refused, naming page_token, as AIP-158 has it. Taken as a place in
// another listing, it started that listing after the first one's last
// entry and left out, with no error, every entry of its own before it.
func TestListEntriesPageTokenContinuesItsOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	m2 := e.postTransfers(t, "M2", 3) // before M1's, where M1's first page ends
	m1 := e.postTransfers(t, "M1", 3)
	page, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1", PageSize: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	// The same query continues, at another page size too.
	rest, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{Market: "M1", PageSize: 10, PageToken: page.NextPageToken})
	if err != nil || len(rest.Entries) != 2 {
		t.Fatalf("the same query's next page: %d entries, %v; want the other 2", len(rest.GetEntries()), err)
	}
	from := m2[0].RecordTime
	for name, req := range map[string]*pb.ListEntriesRequest{
		"another market":     {Market: "M2"},
		"every market":       {},
		"an account":         {Market: "M1", AccountCode: "cash:M1"},
		"a kind":             {Market: "M1", Kind: "sale"},
		"a first sequence":   {Market: "M1", FromSequence: 1},
		"a last sequence":    {Market: "M1", ToSequence: m1[2].Sequence},
		"a start time":       {Market: "M1", StartTime: from},
		"an end time":        {Market: "M1", EndTime: timestamppb.New(time.Now().Add(time.Hour))},
		"another end time":   {Market: "M1", EndTime: timestamppb.New(time.Now().Add(2 * time.Hour))},
		"a start and an end": {Market: "M1", StartTime: from, EndTime: timestamppb.New(time.Now().Add(time.Hour))},
	} {
		req.PageToken = page.NextPageToken
		resp, err := e.client.ListEntries(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %d entries, %v; want InvalidArgument naming page_token", name, len(resp.GetEntries()), err)
		}
	}
}

// A ListAccounts page token continues the query that issued it: sent with
// another market or code prefix, or a token of another list (entries, a
// trial balance), it is refused, naming page_token, as AIP-158 has it.
// Taken as a place in the listing, it started the listing after the
// first one's last account, or a code another list's token happened to
// spell, and left out, with no error, every account before it.
func TestListAccountsPageTokenContinuesItsOwnQuery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	e.postTransfers(t, "M1", 2)
	page, err := e.client.ListAccounts(ctx, &pb.ListAccountsRequest{Market: "M2", PageSize: 1})
	if err != nil || page.NextPageToken == "" || page.Accounts[0].Code != "cash:M2" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	rest, err := e.client.ListAccounts(ctx, &pb.ListAccountsRequest{Market: "M2", PageSize: 10, PageToken: page.NextPageToken})
	if err != nil || len(rest.Accounts) != 1 || rest.Accounts[0].Code != "payable:M2" {
		t.Fatalf("the same query's next page: %v, %v; want payable:M2", rest.GetAccounts(), err)
	}
	entries, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{PageSize: 1})
	if err != nil || entries.NextPageToken == "" {
		t.Fatalf("entries: %v, %v", entries, err)
	}
	trial, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{PageSize: 1})
	if err != nil || trial.NextPageToken == "" {
		t.Fatalf("trial balance: %v, %v", trial, err)
	}
	for name, req := range map[string]*pb.ListAccountsRequest{
		"another market":             {Market: "M1", PageToken: page.NextPageToken},
		"every market":               {PageToken: page.NextPageToken},
		"a code prefix":              {Market: "M2", CodePrefix: "payable:", PageToken: page.NextPageToken},
		"a token of ListEntries":     {PageToken: entries.NextPageToken},
		"a token of a trial balance": {PageToken: trial.NextPageToken},
	} {
		resp, err := e.client.ListAccounts(ctx, req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("%s: %d accounts, %v; want InvalidArgument naming page_token", name, len(resp.GetAccounts()), err)
		}
	}
}

// A time bound of ListEntries is a point in nanoseconds, as a timestamp
// carries it, though entries are recorded in whole microseconds: an entry
// recorded a nanosecond before start_time is not listed from it, and one
// recorded a nanosecond before end_time is listed up to it.
func TestListEntriesTimeBoundsToTheNanosecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	entry := e.postTransfers(t, "M1", 1)[0]
	justAfter := timestamppb.New(entry.RecordTime.AsTime().Add(time.Nanosecond))
	for _, tc := range []struct {
		name string
		req  *pb.ListEntriesRequest
		want int
	}{
		{"from a nanosecond after it", &pb.ListEntriesRequest{Market: "M1", StartTime: justAfter}, 0},
		{"up to a nanosecond after it", &pb.ListEntriesRequest{Market: "M1", EndTime: justAfter}, 1},
		{"from its record time", &pb.ListEntriesRequest{Market: "M1", StartTime: entry.RecordTime}, 1},
		{"up to its record time", &pb.ListEntriesRequest{Market: "M1", EndTime: entry.RecordTime}, 0},
	} {
		resp, err := e.client.ListEntries(ctx, tc.req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Entries) != tc.want {
			t.Errorf("%s: listed %d entries, want %d (the entry was recorded at %s)", tc.name, len(resp.Entries), tc.want, entry.RecordTime.AsTime().Format(time.RFC3339Nano))
		}
	}
}

// Balances and trial balances as of a past point agree with what the
// ledger held then.
func TestBalanceAsOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	entries := e.postTransfers(t, "M1", 4) // 10000, 10001, 10002, 10003
	mid := entries[1]

	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "payable:M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: mid.Sequence}}})
	if err != nil {
		t.Fatal(err)
	}
	if bal.Balance.CreditsPosted != "20001" || bal.Balance.Posted != "20001" || bal.Balance.AsOfSequence != mid.Sequence {
		t.Fatalf("as of %d: %v", mid.Sequence, bal.Balance)
	}
	byTime, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "cash:M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(mid.RecordTime.AsTime())}}})
	if err != nil {
		t.Fatal(err)
	}
	if byTime.Balance.AsOfSequence < mid.Sequence || byTime.Balance.DebitsPosted == "0" {
		t.Fatalf("as of %s: %v", mid.RecordTime.AsTime(), byTime.Balance)
	}
	now, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "payable:M1"})
	if err != nil || now.Balance.CreditsPosted != "40006" {
		t.Fatalf("now: %v, %v", now, err)
	}
	tb, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: mid.Sequence}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Totals) != 1 || !tb.Totals[0].Balanced || tb.Totals[0].DebitsPosted != "20001" || len(tb.Lines) != 2 {
		t.Fatalf("trial balance as of %d: %v", mid.Sequence, tb)
	}
	_, err = e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "payable:M1", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 0}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("as of sequence 0: %v", err)
	}
}

// An answer as of a past point gives the account with its balance as of
// that point too, never today's beside it: a stall reading what it was
// owed last night, or an auditor a trial balance of a closed day, reads
// one figure per account.
func TestBalanceAsOfAccountAgrees(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	entries := e.postTransfers(t, "M1", 4) // 10000, 10001, 10002, 10003
	at := &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: entries[1].Sequence}}

	bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: "payable:M1", AsOf: at})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(bal.Account.Balance, bal.Balance) || bal.Balance.CreditsPosted != "20001" {
		t.Errorf("GetBalance as of %d: the account's balance %v, the balance %v; want both as of %[1]d, 20001 credited",
			entries[1].Sequence, bal.Account.Balance, bal.Balance)
	}
	tb, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", AsOf: at})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range tb.Lines {
		if !proto.Equal(line.Account.Balance, line.Balance) {
			t.Errorf("trial balance as of %d: %s's account balance %v, its line %v; want the same",
				entries[1].Sequence, line.Account.Code, line.Account.Balance, line.Balance)
		}
	}
}

// A stream that stays open, an auditor following the journal, ends when
// its credential is revoked or expires, as a new call is refused: with
// Unauthenticated, before it sends an entry written afterwards, and the
// trail records it.
func TestFollowingStreamEndsWithItsCredential(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"revoked", "expired"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			e := newEnv(t, ledgerOptions())
			e.marketAccounts(t, "M1")
			first := e.postTransfers(t, "M1", 1)[0]
			cred, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor, TTL: time.Hour})
			auditor := pb.NewLedgerServiceClient(e.dial(t, secret))
			stream, err := auditor.StreamEntries(ctx, &pb.StreamEntriesRequest{FromSequence: first.Sequence, Follow: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			if end == "revoked" {
				if _, err := pb.NewAdminServiceClient(e.conn).RevokeCredential(ctx, &pb.RevokeCredentialRequest{Id: cred.CredentialID}); err != nil {
					t.Fatal(err)
				}
			} else {
				e.advance(2 * time.Hour)
			}
			if _, err := auditor.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1"}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("a new call with the %s credential: %v, want Unauthenticated", end, err)
			}
			time.Sleep(1100 * time.Millisecond) // past the stream's next check
			e.postTransfers(t, "M1", 2)
			if msg, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("the stream of the %s credential: entry %v, %v; want Unauthenticated", end, msg.GetEntry().GetSequence(), err)
			}
			events, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: cred.CredentialID, PageSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			streamEnded := false
			for _, ev := range events.AuditEvents {
				streamEnded = streamEnded || (ev.Method == pb.LedgerService_StreamEntries_FullMethodName && ev.Code == "Unauthenticated")
			}
			if !streamEnded {
				t.Errorf("the trail does not record the stream ended for the %s credential: %v", end, events.AuditEvents)
			}
		})
	}
}

// A trial balance read in pages while entries are posted is one trial
// balance: every page as of the first page's sequence, so the lines of
// all pages balance and the totals do not move; a token continues only
// the listing it came from.
func TestTrialBalancePagesAreOnePoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1", "M2")
	e.postTransfers(t, "M1", 1)
	first, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", PageSize: 1})
	if err != nil || first.NextPageToken == "" || len(first.Lines) != 1 {
		t.Fatalf("first page: %v, %v", first, err)
	}
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "between", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "5000"), posting("payable:M1", credit, "5000")}}); err != nil {
		t.Fatal(err)
	}
	second, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", PageSize: 1, PageToken: first.NextPageToken})
	if err != nil || len(second.Lines) != 1 {
		t.Fatalf("second page: %v, %v", second, err)
	}
	if second.AsOfSequence != first.AsOfSequence {
		t.Errorf("page 2 is as of sequence %d, page 1 as of %d", second.AsOfSequence, first.AsOfSequence)
	}
	var debits, credits int64
	for _, l := range append(first.Lines, second.Lines...) {
		debits += num(l.Balance.DebitsPosted)
		credits += num(l.Balance.CreditsPosted)
	}
	if debits != 10000 || credits != 10000 {
		t.Errorf("the two pages' lines: debits %d, credits %d; want 10000 and 10000, as of page 1", debits, credits)
	}
	if fmt.Sprint(second.Totals) != fmt.Sprint(first.Totals) {
		t.Errorf("totals moved between pages: %v, then %v", first.Totals, second.Totals)
	}
	// A listing as of a time still to come stays as of its first page, and
	// takes the same as_of on every page.
	later := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.New(time.Now().Add(time.Hour))}}
	p1, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", PageSize: 1, AsOf: later})
	if err != nil || p1.NextPageToken == "" {
		t.Fatalf("first page as of an hour from now: %v, %v", p1, err)
	}
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "between-2", Market: "M1", Kind: "sale", Currency: "VND",
		Postings: []*pb.PostingInput{posting("cash:M1", debit, "700"), posting("payable:M1", credit, "700")}}); err != nil {
		t.Fatal(err)
	}
	p2, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", PageSize: 1, AsOf: later, PageToken: p1.NextPageToken})
	if err != nil || p2.AsOfSequence != p1.AsOfSequence {
		t.Errorf("page 2 as of an hour from now, sent with page 1's as_of: %v, %v; want it as of sequence %d", p2, err, p1.AsOfSequence)
	}
	for name, req := range map[string]*pb.GetTrialBalanceRequest{
		"another market": {Market: "M2", PageSize: 1, PageToken: first.NextPageToken},
		"another point":  {Market: "M1", PageSize: 1, PageToken: first.NextPageToken, AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 2}}},
	} {
		if _, err := e.client.GetTrialBalance(ctx, req); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_token") {
			t.Errorf("the token with %s: %v; want InvalidArgument naming page_token", name, err)
		}
	}
}

// A trial balance as of a sequence answers the same once the ledger has
// moved past it: the totals of a currency whose accounts nothing was
// posted to by then, the market's dollar cash, are zero, as they are when
// that sequence was the ledger's last, not left out.
func TestTrialBalanceAsOfASequenceKeepsItsCurrencies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	e.account(t, "cash-usd:M1", pb.AccountType_ACCOUNT_TYPE_ASSET, "USD", "M1", false)
	e.account(t, "sales-usd:M1", pb.AccountType_ACCOUNT_TYPE_REVENUE, "USD", "M1", false)
	head := e.postTransfers(t, "M1", 1)[0].Sequence
	at := &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: head}}
	then, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", AsOf: at})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: "later", Market: "M1", Kind: "sale", Currency: "USD",
		Postings: []*pb.PostingInput{posting("cash-usd:M1", debit, "12.34"), posting("sales-usd:M1", credit, "12.34")}}); err != nil {
		t.Fatal(err)
	}
	later, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: "M1", AsOf: at})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(then, later) {
		t.Errorf("trial balance as of sequence %d, while it was the last:\n%v\nasked again once the ledger moved on:\n%v", head, then, later)
	}
}

// Every account an answer gives carries its balance with the sequence it
// is as of, as Balance promises: ListAccounts and CreateAccount give the
// accounts' balances now, as of the ledger's last sequence, which
// GetBalance as of that sequence gives again; not as of sequence 0, before
// anything was posted.
func TestAccountsListedWithTheSequenceTheirBalanceIsAsOf(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	entries := e.postTransfers(t, "M1", 3)
	head := entries[len(entries)-1].Sequence

	check := func(what string, a *pb.Account) {
		t.Helper()
		if a.Balance.AsOfSequence != head {
			t.Errorf("%s: %s's balance %v is as of sequence %d; the ledger is at %d", what, a.Code, a.Balance, a.Balance.AsOfSequence, head)
			return
		}
		then, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: a.Code, AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: a.Balance.AsOfSequence}}})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(then.Balance, a.Balance) {
			t.Errorf("%s: %s's balance %v; GetBalance as of its sequence says %v", what, a.Code, a.Balance, then.Balance)
		}
	}
	list, err := e.client.ListAccounts(ctx, &pb.ListAccountsRequest{Market: "M1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Accounts) != 2 {
		t.Fatalf("accounts of M1: %v", list.Accounts)
	}
	for _, a := range list.Accounts {
		check("ListAccounts", a)
	}
	again, err := e.client.CreateAccount(ctx, &pb.CreateAccountRequest{Code: "cash:M1", Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: "M1"})
	if err != nil || again.Created {
		t.Fatalf("creating cash:M1 again: %v, %v", again, err)
	}
	check("CreateAccount of an existing account", again.Account)
}

// ListEntries of an account lists the entries that void its pending
// postings, a bank's rejection and the sweeper's expiry: they have no
// postings of their own, but release the pending amounts the account's
// balance holds. Left out, an account's entries of a day showed nothing
// where its pending credits fell by the payments rejected or expired.
func TestListEntriesOfAnAccountListsItsVoids(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	const a, payable = "TN-TEST-0001", "merchant:TN-TEST-0001:payable"
	stall := func(key string) *pb.Payment {
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: key, Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "100000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment
	}
	rejected, expiring := stall("rejected"), stall("expiring")
	start := time.Now()
	before, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: payable})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.payments.RejectPayment(ctx, &pb.RejectPaymentRequest{IdempotencyKey: "reject", PaymentId: rejected.Id}); err != nil {
		t.Fatal(err)
	}
	e.advance(24*time.Hour + time.Second)
	if n, err := e.ledger.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v; want 1", n, err)
	}
	expired, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: expiring.Id})
	if err != nil || expired.Payment.Status != pb.PaymentStatus_PAYMENT_STATUS_EXPIRED {
		t.Fatalf("the second payment: %v, %v; want it expired", expired, err)
	}
	after, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: payable})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := e.client.ListEntries(ctx, &pb.ListEntriesRequest{AccountCode: payable, StartTime: timestamppb.New(start)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range listed.Entries {
		got = append(got, en.Kind+" "+en.Id)
	}
	rejectedNow, err := e.payments.GetPayment(ctx, &pb.GetPaymentRequest{Id: rejected.Id})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"payment_reject " + rejectedNow.Payment.EntryIds[1], "expire " + expired.Payment.EntryIds[1]}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("entries of %s since %s: %v; want %v, which took its credits pending from %s to %s",
			payable, start.Format(time.RFC3339Nano), got, want, before.Balance.CreditsPending, after.Balance.CreditsPending)
	}
}
