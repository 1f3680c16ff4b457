package api_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// A payout batch pays merchants from what every provider credited its
// settlement bank, so only a credential bound to that bank creates one.
// MoMo's credential, or NAPAS's bound to no bank, creating a batch at VCB
// and completing its lines "paid" would have the ledger hold the merchants
// paid while VCB paid nothing. Each refusal writes nothing and is in the
// audit trail; VCB's own credential pays out, and is refused at BIDV.
func TestPayoutBatchesOnlyAtTheBankACredentialIsBoundTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m = "PO-BB-01"
	f := newPayoutFixture(t, "PO-BB", map[string]int64{m: 100000}, 100000)
	e := f.e
	bank := func(name, provider, settlementBank string) (access.Credential, pb.SettlementServiceClient) {
		c, secret := e.issue(t, access.IssueRequest{Name: name, Role: access.RoleBank, Provider: provider, Bank: settlementBank})
		return c, pb.NewSettlementServiceClient(e.dial(t, secret))
	}
	momo, momoSettle := bank("MoMo", "momo", "")
	napas, napasSettle := bank("NAPAS", "napas", "")
	_, vcbSettle := bank("NAPAS at VCB", "napas", "vcb")
	batchAt := func(settlementBank string) *pb.CreatePayoutBatchRequest {
		return &pb.CreatePayoutBatchRequest{IdempotencyKey: "payout-1", Bank: settlementBank, Market: f.market, CutOff: timestamppb.Now()}
	}

	for _, c := range []struct {
		name   string
		client pb.SettlementServiceClient
		bank   string
	}{
		{"MoMo, of no bank, at VCB", momoSettle, "vcb"},
		{"NAPAS, of no bank, at VCB", napasSettle, "vcb"},
		{"NAPAS at VCB, at BIDV", vcbSettle, "bidv"},
	} {
		before := e.snapshot(t)
		_, err := c.client.CreatePayoutBatch(ctx, batchAt(c.bank))
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("a payout batch by %s: %v; want PermissionDenied", c.name, err)
		}
		if after := e.snapshot(t); after != before {
			t.Errorf("a payout batch by %s was refused but wrote: %s -> %s", c.name, before, after)
		}
	}
	for _, c := range []access.Credential{momo, napas} {
		events, err := pb.NewAdminServiceClient(e.conn).ListAuditEvents(ctx, &pb.ListAuditEventsRequest{CredentialId: c.CredentialID, DeniedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(events.AuditEvents) != 1 || events.AuditEvents[0].Method != pb.SettlementService_CreatePayoutBatch_FullMethodName ||
			events.AuditEvents[0].Code != codes.PermissionDenied.String() || events.AuditEvents[0].Target != f.market {
			t.Errorf("%s's refusals in the audit trail: %v; want its payout batch", c.Name, events.AuditEvents)
		}
	}

	b, err := vcbSettle.CreatePayoutBatch(ctx, batchAt("vcb"))
	if err != nil {
		t.Fatalf("a payout batch by NAPAS at VCB, at VCB: %v", err)
	}
	if l := lineOf(b.Lines, m); l == nil || l.Status != pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN || l.Amount != "100000" {
		t.Fatalf("the batch at VCB: lines %v; want %s's 100000 open", b.Lines, m)
	}
	done, err := vcbSettle.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: b.Batch.Id,
		Results: []*pb.PayoutResult{{Merchant: m, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID, BankRef: "VCB-OUT-1"}}})
	if err != nil || done.Batch.Status != pb.PayoutBatchStatus_PAYOUT_BATCH_STATUS_COMPLETED {
		t.Fatalf("VCB completing its batch: %v, %v", done, err)
	}
	if bal := f.payable(t, m); bal.Posted != "0" {
		t.Errorf("%s's payable after its payout: %v; want 0", m, bal)
	}
	e.checkInvariants(t)
}

// Two credentials of one provider bound to different settlement banks are
// different clients: neither reads nor completes the other's payout
// batches, nor is answered with the other's writes for the same key. A
// credential bound to a bank reports credits to that bank only; one of a
// provider only, to any bank, as before.
func TestBanksOfOneProviderAtTwoSettlementBanksAreApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const m1, m2 = "PO-TB-01", "PO-TB-02"
	f := newPayoutFixture(t, "PO-TB", map[string]int64{m1: 60000, m2: 40000}, 0)
	e := f.e
	bank := func(name, settlementBank string) pb.SettlementServiceClient {
		_, secret := e.issue(t, access.IssueRequest{Name: name, Role: access.RoleBank, Provider: "napas", Bank: settlementBank})
		return pb.NewSettlementServiceClient(e.dial(t, secret))
	}
	vcb, vcbRotated, bidv, napas := bank("NAPAS at VCB", "vcb"), bank("NAPAS at VCB, rotated", "vcb"), bank("NAPAS at BIDV", "bidv"), bank("NAPAS", "")

	credit := func(bankRef, settlementBank string) *pb.RecordProviderSettlementRequest {
		return &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit-1", Channel: pb.Channel_CHANNEL_VIETQR, Market: f.market,
			Amount: "50000", Bank: settlementBank, BankRef: bankRef}
	}
	before := e.snapshot(t)
	if _, err := vcb.RecordProviderSettlement(ctx, credit("BIDV-IN-0", "bidv")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("NAPAS at VCB reporting a credit to BIDV: %v; want PermissionDenied", err)
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("a credit refused wrote: %s -> %s", before, after)
	}
	atVCB, err := vcb.RecordProviderSettlement(ctx, credit("VCB-IN-1", "vcb"))
	if err != nil {
		t.Fatalf("NAPAS at VCB reporting a credit to VCB: %v", err)
	}
	atBIDV, err := bidv.RecordProviderSettlement(ctx, credit("BIDV-IN-1", "bidv"))
	if err != nil || atBIDV.Replayed || atBIDV.Settlement.Bank != "bidv" || atBIDV.Settlement.EntryId == atVCB.Settlement.EntryId {
		t.Fatalf("NAPAS at BIDV sending the key NAPAS at VCB sent, for its own credit: %v, %v; want its own credit recorded", atBIDV, err)
	}
	if _, err := napas.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit-2", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: f.market, Amount: "1", Bank: "agribank", BankRef: "AGR-IN-1", AllowUnmatched: true}); err != nil {
		t.Errorf("NAPAS, of no bank, reporting a credit to Agribank: %v", err)
	}

	cutOff := timestamppb.New(e.now())
	batch := func(c pb.SettlementServiceClient, settlementBank string) *pb.CreatePayoutBatchResponse {
		t.Helper()
		r, err := c.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "payout-1", Bank: settlementBank, Market: f.market,
			CutOff: cutOff, PageSize: 100})
		if err != nil {
			t.Fatalf("a payout batch at %s: %v", settlementBank, err)
		}
		return r
	}
	vcbBatch := batch(vcb, "vcb")
	bidvBatch := batch(bidv, "bidv")
	if bidvBatch.Replayed || bidvBatch.Batch.Id == vcbBatch.Batch.Id || bidvBatch.Batch.Bank != "bidv" {
		t.Fatalf("NAPAS at BIDV sending the key of NAPAS at VCB's batch got %v (replayed %v); want its own batch", bidvBatch.Batch, bidvBatch.Replayed)
	}
	if again := batch(vcbRotated, "vcb"); !again.Replayed || again.Batch.Id != vcbBatch.Batch.Id {
		t.Errorf("the rotated credential at VCB sending its predecessor's batch again: %v (replayed %v)", again.Batch, again.Replayed)
	}
	var open string
	for _, l := range vcbBatch.Lines {
		if l.Status == pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN {
			open = l.Merchant
		}
	}
	if open == "" {
		t.Fatalf("the batch at VCB: lines %v; want one open", vcbBatch.Lines)
	}

	for _, c := range []struct {
		name   string
		client pb.SettlementServiceClient
		batch  *pb.PayoutBatch
	}{
		{"NAPAS at BIDV, VCB's", bidv, vcbBatch.Batch},
		{"NAPAS at VCB, BIDV's", vcb, bidvBatch.Batch},
		{"NAPAS of no bank, VCB's", napas, vcbBatch.Batch},
	} {
		if _, err := c.client.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: c.batch.Id}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s reading batch: %v; want PermissionDenied", c.name, err)
		}
		before := e.snapshot(t)
		_, err := c.client.CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: c.batch.Id,
			Results: []*pb.PayoutResult{{Merchant: open, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID, BankRef: "MADE-UP-1"}}})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s completing batch: %v; want PermissionDenied", c.name, err)
		}
		if after := e.snapshot(t); after != before {
			t.Errorf("%s completing batch was refused but wrote: %s -> %s", c.name, before, after)
		}
	}
	if _, err := vcbRotated.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: vcbBatch.Batch.Id}); err != nil {
		t.Errorf("the rotated credential at VCB reading its predecessor's batch: %v", err)
	}
	e.checkInvariants(t)
}

// A credential's settlement bank is a bank credential's, a settlement
// bank's code as a request's bank is; it is stored and listed.
func TestIssueCredentialBank(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	e.setUpMarket(t)
	admin := pb.NewAdminServiceClient(e.conn)
	issue := func(c *pb.Credential) (*pb.IssueCredentialResponse, error) {
		return admin.IssueCredential(ctx, &pb.IssueCredentialRequest{Credential: c})
	}
	for _, c := range []*pb.Credential{
		{Name: "stall", Role: pb.Role_ROLE_MERCHANT, Merchant: "TN-TEST-0001", Bank: "vcb"},
		{Name: "auditor", Role: pb.Role_ROLE_AUDITOR, Bank: "vcb"},
		{Name: "admin", Role: pb.Role_ROLE_ADMIN, Bank: "vcb"},
		{Name: "bank", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: "VCB"},
		{Name: "bank", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: "v"},
		{Name: "bank", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: " vcb"},
		{Name: "bank", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: "vcb/x"},
		{Name: "bank", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: strings.Repeat("b", 17)},
	} {
		before := e.countRows(t, "credentials")
		_, err := issue(c)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "credential.bank") {
			t.Errorf("a %v credential of bank %q: %v; want InvalidArgument naming credential.bank", c.Role, c.Bank, err)
		}
		if after := e.countRows(t, "credentials"); after != before {
			t.Errorf("a %v credential of bank %q was refused but stored", c.Role, c.Bank)
		}
	}
	issued, err := issue(&pb.Credential{Name: "NAPAS at VCB", Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: "vcb"})
	if err != nil || issued.Credential.Bank != "vcb" {
		t.Fatalf("a bank credential of VCB: %v, %v", issued, err)
	}
	list, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{Role: pb.Role_ROLE_BANK})
	if err != nil || len(list.Credentials) != 1 || list.Credentials[0].Bank != "vcb" {
		t.Errorf("bank credentials listed: %v, %v; want the one of VCB", list, err)
	}
}

// The market's settlement banks create their payout batches at once, each
// funded by the providers for one merchant's money: each batch takes the
// first merchant the others have not, so they take one another's merchants
// in turn. Every creation is made, none refused for the race, and each
// merchant is in one batch.
func TestPayoutBatchesAtManyBanksAtOnceAreAllMade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const market, banks = "PO-MB", 16
	merchants := map[string]int64{}
	for i := range banks {
		merchants[fmt.Sprintf("PO-MB-%02d", i)] = 100000
	}
	f := newPayoutFixture(t, market, merchants, 0)
	e := f.e
	clients := make([]pb.SettlementServiceClient, banks)
	for i := range banks {
		bank := fmt.Sprint("mb", i)
		_, secret := e.issue(t, access.IssueRequest{Name: "NAPAS at " + bank, Role: access.RoleBank, Provider: "napas", Bank: bank})
		clients[i] = pb.NewSettlementServiceClient(e.dial(t, secret))
		if _, err := clients[i].RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "credit", Channel: pb.Channel_CHANNEL_VIETQR,
			Market: market, Amount: "100000", Bank: bank, BankRef: "IN-" + bank}); err != nil {
			t.Fatal(err)
		}
	}
	batches := make([]*pb.CreatePayoutBatchResponse, banks)
	var wg sync.WaitGroup
	for i := range banks {
		wg.Go(func() {
			b, err := clients[i].CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: "daily", Bank: fmt.Sprint("mb", i), Market: market, CutOff: timestamppb.Now()})
			if err != nil {
				t.Errorf("the batch at bank mb%d: %v", i, err)
			}
			batches[i] = b
		})
	}
	wg.Wait()
	in := map[string]string{}
	for i, b := range batches {
		for _, l := range b.GetLines() {
			if l.Status != pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN {
				continue
			}
			if other, ok := in[l.Merchant]; ok {
				t.Errorf("%s is in the batches of %s and mb%d", l.Merchant, other, i)
			}
			in[l.Merchant] = fmt.Sprint("mb", i)
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}

// Provider credits at settlement banks new to the market, more than the
// provider owes so that some are refused, race payout batches at those
// banks made by the credentials bound to them, each write sent twice; then
// the batches' lines are completed paid at once by two copies of each
// request and a third naming for each line another line's reference.
// Each bank's account exists exactly when a credit to it was recorded and
// holds the credits acknowledged, each line is paid once and each
// reference pays one line, what each merchant was paid left its payable
// and what is reserved stays so, no bank pays more than it received, and
// the ledger's invariants and rollups hold.
func TestCreditsAndPayoutsAtNewBanksAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const market, banks, owed = "PO-NB", 8, 100000
	merchants := map[string]int64{}
	for i := range 8 {
		merchants[fmt.Sprintf("PO-NB-%02d", i)] = owed
	}
	f := newPayoutFixture(t, market, merchants, 0)
	e := f.e
	bankCode := func(i int) string { return fmt.Sprint("nb", i) }
	clients := make([]pb.SettlementServiceClient, banks)
	for i := range banks {
		_, secret := e.issue(t, access.IssueRequest{Name: "NAPAS at " + bankCode(i), Role: access.RoleBank, Provider: "napas", Bank: bankCode(i)})
		clients[i] = pb.NewSettlementServiceClient(e.dial(t, secret))
	}
	allowed := func(what string, err error, codes ...codes.Code) {
		t.Helper()
		for _, c := range codes {
			if status.Code(err) == c {
				return
			}
		}
		t.Errorf("%s: %v", what, err)
	}

	var mu sync.Mutex
	credited := make([]int64, banks) // acknowledged, by bank
	batches := map[string]int{}      // batch id -> bank
	var wg sync.WaitGroup
	for i := range banks {
		wg.Go(func() {
			for k := range 2 {
				req := &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprint("credit-", i, "-", k), Channel: pb.Channel_CHANNEL_VIETQR,
					Market: market, Amount: "150000", Bank: bankCode(i), BankRef: fmt.Sprint("IN-", i, "-", k)}
				var first *pb.RecordProviderSettlementResponse
				for range 2 {
					r, err := clients[i].RecordProviderSettlement(ctx, req)
					allowed(req.IdempotencyKey, err, codes.OK, codes.FailedPrecondition)
					if err != nil {
						continue
					}
					if first != nil && r.Settlement.EntryId != first.Settlement.EntryId {
						t.Errorf("%s sent again recorded another credit: %v, then %v", req.IdempotencyKey, first, r)
					}
					if first == nil {
						first = r
						mu.Lock()
						credited[i] += 150000
						mu.Unlock()
					}
				}
			}
		})
		wg.Go(func() {
			for k := range 3 {
				req := &pb.CreatePayoutBatchRequest{IdempotencyKey: fmt.Sprint("batch-", i, "-", k), Bank: bankCode(i), Market: market, CutOff: timestamppb.Now(), PageSize: 1000}
				var id string
				for range 2 {
					r, err := clients[i].CreatePayoutBatch(ctx, req)
					allowed(req.IdempotencyKey, err, codes.OK)
					if err != nil {
						continue
					}
					if id != "" && r.Batch.Id != id {
						t.Errorf("%s sent again made another batch: %s, then %s", req.IdempotencyKey, id, r.Batch.Id)
					}
					id = r.Batch.Id
				}
				if id != "" {
					mu.Lock()
					batches[id] = i
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()

	var total int64
	for i := range banks {
		total += credited[i]
		code := "bank:" + bankCode(i) + ":market:" + market + ":settlement"
		bal, err := e.client.GetBalance(ctx, &pb.GetBalanceRequest{AccountCode: code})
		switch {
		case credited[i] == 0 && status.Code(err) != codes.NotFound:
			t.Errorf("bank %s was credited nothing, yet its account: %v, %v", bankCode(i), bal, err)
		case credited[i] > 0 && (err != nil || bal.Balance.DebitsPosted != strconv.FormatInt(credited[i], 10)):
			t.Errorf("bank %s was credited %d; its account: %v, %v", bankCode(i), credited[i], bal, err)
		}
	}
	if total > int64(len(merchants))*owed {
		t.Errorf("credits of %d acknowledged; NAPAS owed %d", total, int64(len(merchants))*owed)
	}

	// Every open line paid, each by two copies of one request at once; a
	// third request names for each line the reference of the line before,
	// and may come first: a reference pays one line, whichever.
	paidRef := map[string]string{} // merchant -> the reference its line is paid with
	for id, i := range batches {
		b, err := clients[i].GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: id, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var results, stolen []*pb.PayoutResult
		for _, l := range b.Lines {
			if l.Status != pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN {
				continue
			}
			ref := "OUT-" + l.Merchant
			if len(results) > 0 {
				stolen = append(stolen, &pb.PayoutResult{Merchant: l.Merchant, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID, BankRef: results[len(results)-1].BankRef})
			}
			results = append(results, &pb.PayoutResult{Merchant: l.Merchant, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID, BankRef: ref})
		}
		if len(results) == 0 {
			continue
		}
		for range 2 {
			wg.Go(func() {
				_, err := clients[i].CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: results})
				allowed("complete "+id, err, codes.OK, codes.FailedPrecondition, codes.AlreadyExists)
			})
		}
		if len(stolen) > 0 {
			wg.Go(func() {
				_, err := clients[i].CompletePayoutBatch(ctx, &pb.CompletePayoutBatchRequest{BatchId: id, Results: stolen})
				allowed("complete "+id+" with the references of other lines", err, codes.FailedPrecondition, codes.AlreadyExists, codes.OK)
			})
		}
	}
	wg.Wait()

	paidAt := make([]int64, banks)
	open := map[string]bool{}       // merchant -> its line is open still
	paidWith := map[string]string{} // bank reference -> the merchant it paid
	for id, i := range batches {
		b, err := clients[i].GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: id, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range b.Lines {
			switch l.Status {
			case pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN:
				open[l.Merchant] = true
				continue
			case pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID:
			default:
				continue
			}
			if prev, ok := paidRef[l.Merchant]; ok {
				t.Errorf("%s paid twice: %s and %s", l.Merchant, prev, l.BankRef)
			}
			if other, ok := paidWith[bankCode(i)+" "+l.BankRef]; ok {
				t.Errorf("bank %s reference %s paid %s and %s", bankCode(i), l.BankRef, other, l.Merchant)
			}
			paidRef[l.Merchant], paidWith[bankCode(i)+" "+l.BankRef] = l.BankRef, l.Merchant
			n, _ := strconv.ParseInt(l.Amount, 10, 64)
			paidAt[i] += n
		}
	}
	for code := range merchants {
		posted, pending := "100000", "0"
		if _, ok := paidRef[code]; ok {
			posted = "0"
		}
		if open[code] {
			pending = "100000"
		}
		if bal := f.payable(t, code); bal.Posted != posted || bal.DebitsPending != pending {
			t.Errorf("%s's payable: %v; want %s posted and %s reserved", code, bal, posted, pending)
		}
	}
	for i := range banks {
		if paidAt[i] > credited[i] {
			t.Errorf("bank %s paid out %d of the %d credited", bankCode(i), paidAt[i], credited[i])
		}
	}
	e.checkInvariants(t)
	e.checkRollups(t)
}
