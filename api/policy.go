package api

import (
	"context"
	"errors"
	"strings"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// rule says which roles may call an RPC, and whether it writes (writes are
// recorded in the audit trail).
type rule struct {
	roles []access.Role
	write bool
}

var (
	adminOnly     = []access.Role{access.RoleAdmin}
	readers       = []access.Role{access.RoleAuditor, access.RoleAdmin}
	everyone      = []access.Role{access.RoleMerchant, access.RoleBank, access.RoleAuditor, access.RoleAdmin}
	merchantBank  = []access.Role{access.RoleMerchant, access.RoleBank, access.RoleAdmin}
	bankOnly      = []access.Role{access.RoleBank, access.RoleAdmin}
	merchantOnly  = []access.Role{access.RoleMerchant, access.RoleAdmin}
	ownerReaders  = []access.Role{access.RoleMerchant, access.RoleAuditor, access.RoleAdmin}
	scopedReaders = []access.Role{access.RoleMerchant, access.RoleBank, access.RoleAuditor, access.RoleAdmin}
	bankReaders   = []access.Role{access.RoleBank, access.RoleAuditor, access.RoleAdmin}
)

// policy is the one table of who may call what. An RPC missing from it is
// refused to everyone. Which rows a caller may touch within an RPC it may
// call is decided by bind, below.
var policy = map[string]rule{
	pb.LedgerService_CreateAccount_FullMethodName:    {adminOnly, true},
	pb.LedgerService_PostEntry_FullMethodName:        {adminOnly, true},
	pb.LedgerService_PostPendingEntry_FullMethodName: {adminOnly, true},
	pb.LedgerService_VoidPendingEntry_FullMethodName: {adminOnly, true},
	pb.LedgerService_GetAccount_FullMethodName:       {ownerReaders, false},
	pb.LedgerService_GetBalance_FullMethodName:       {ownerReaders, false},
	pb.LedgerService_ListAccounts_FullMethodName:     {readers, false},
	pb.LedgerService_GetEntry_FullMethodName:         {readers, false},
	pb.LedgerService_ListEntries_FullMethodName:      {readers, false},
	pb.LedgerService_StreamEntries_FullMethodName:    {readers, false},
	pb.LedgerService_GetTrialBalance_FullMethodName:  {readers, false},
	pb.LedgerService_VerifyJournal_FullMethodName:    {readers, false},

	pb.MerchantService_CreateMarket_FullMethodName:      {adminOnly, true},
	pb.MerchantService_UpdateMarket_FullMethodName:      {adminOnly, true},
	pb.MerchantService_CreateMerchant_FullMethodName:    {adminOnly, true},
	pb.MerchantService_UpdateMerchant_FullMethodName:    {adminOnly, true},
	pb.MerchantService_SuspendMerchant_FullMethodName:   {adminOnly, true},
	pb.MerchantService_ReinstateMerchant_FullMethodName: {adminOnly, true},
	pb.MerchantService_CloseMerchant_FullMethodName:     {adminOnly, true},
	pb.MerchantService_GetMarket_FullMethodName:         {everyone, false},
	pb.MerchantService_ListMarkets_FullMethodName:       {everyone, false},
	pb.MerchantService_GetMerchant_FullMethodName:       {scopedReaders, false},
	pb.MerchantService_ListMerchants_FullMethodName:     {bankReaders, false},
	pb.MerchantService_GetMerchantQr_FullMethodName:     {merchantOnly, false},

	pb.PaymentService_CreatePaymentRequest_FullMethodName: {merchantOnly, true},
	pb.PaymentService_RecordPayment_FullMethodName:        {merchantBank, true},
	pb.PaymentService_RecordPayments_FullMethodName:       {merchantBank, true},
	pb.PaymentService_ConfirmPayment_FullMethodName:       {bankOnly, true},
	pb.PaymentService_RejectPayment_FullMethodName:        {bankOnly, true},
	pb.PaymentService_RefundPayment_FullMethodName:        {merchantBank, true},
	pb.PaymentService_GetPayment_FullMethodName:           {scopedReaders, false},
	pb.PaymentService_ListPayments_FullMethodName:         {scopedReaders, false},

	pb.SettlementService_GetMerchantSettlement_FullMethodName:     {scopedReaders, false},
	pb.SettlementService_GetMarketSettlement_FullMethodName:       {bankReaders, false},
	pb.SettlementService_RecordProviderSettlement_FullMethodName:  {bankOnly, true},
	pb.SettlementService_ReclassifySuspense_FullMethodName:        {bankOnly, true},
	pb.SettlementService_CreatePayoutBatch_FullMethodName:         {bankOnly, true},
	pb.SettlementService_GetPayoutBatch_FullMethodName:            {bankReaders, false},
	pb.SettlementService_CompletePayoutBatch_FullMethodName:       {bankOnly, true},
	pb.SettlementService_ImportStatement_FullMethodName:           {bankOnly, true},
	pb.SettlementService_GetReconciliationReport_FullMethodName:   {bankReaders, false},
	pb.SettlementService_ListReconciliationReports_FullMethodName: {bankReaders, false},

	pb.AdminService_IssueCredential_FullMethodName:  {adminOnly, true},
	pb.AdminService_ListCredentials_FullMethodName:  {adminOnly, false},
	pb.AdminService_RevokeCredential_FullMethodName: {adminOnly, true},
	pb.AdminService_ListAuditEvents_FullMethodName:  {readers, false},
}

// errDenied is the one answer to a call outside the caller's binding. It
// names nothing, so that it does not tell whether the target exists.
var errDenied = errors.New("this credential may not do that")

// binder looks up what a request names, to check it against the caller's
// binding.
type binder struct {
	ledger     *ledger.Ledger
	merchants  *merchant.Store
	payments   *payment.Service
	settlement *settlement.Service
}

// bind checks that what req names lies within p's binding and returns it,
// for the audit trail. Admins and unbound auditors pass everything; the
// handler then answers NotFound for what does not exist.
func (b *binder) bind(ctx context.Context, p access.Principal, req any) (string, error) {
	switch r := req.(type) {
	// Ledger: merchants read their own payable account; auditors bound to
	// markets read those markets only.
	case *pb.GetAccountRequest:
		return r.GetCode(), b.account(ctx, p, r.GetCode())
	case *pb.GetBalanceRequest:
		return r.GetAccountCode(), b.account(ctx, p, r.GetAccountCode())
	case *pb.ListAccountsRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.GetEntryRequest:
		return r.GetId(), b.entry(ctx, p, r.GetId())
	case *pb.ListEntriesRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.StreamEntriesRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.GetTrialBalanceRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.VerifyJournalRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())

	// Merchants: a merchant sees itself; banks and auditors the merchants
	// of their markets.
	case *pb.GetMerchantRequest:
		return r.GetCode(), b.merchant(ctx, p, r.GetCode())
	case *pb.ListMerchantsRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.GetMerchantQrRequest:
		return r.GetCode(), b.merchant(ctx, p, r.GetCode())

	// Payments: a stall records for itself and from the stall only; a bank
	// for its provider's channel, in its markets, from the bank only.
	case *pb.CreatePaymentRequestRequest:
		return r.GetMerchant(), b.merchant(ctx, p, r.GetMerchant())
	case *pb.RecordPaymentRequest:
		err := b.record(ctx, p, r)
		return r.GetMerchant(), err
	case *pb.RecordPaymentsRequest:
		for _, item := range r.GetPayments() {
			if err := b.merchantOfRequest(ctx, p, item); err != nil {
				return item.GetMerchant(), err
			}
		}
		if p.Role == access.RoleBank {
			// One read for every merchant of the bulk, into the call's memo.
			codes := make([]string, len(r.GetPayments()))
			for i, item := range r.GetPayments() {
				codes[i] = item.GetMerchant()
			}
			if _, err := b.merchants.GetMerchants(ctx, codes); err != nil {
				return "bulk", err
			}
		}
		for _, item := range r.GetPayments() {
			if err := b.record(ctx, p, item); err != nil {
				return item.GetMerchant(), err
			}
		}
		return "bulk", nil
	case *pb.ConfirmPaymentRequest:
		return r.GetPaymentId(), b.payment(ctx, p, r.GetPaymentId())
	case *pb.RejectPaymentRequest:
		return r.GetPaymentId(), b.payment(ctx, p, r.GetPaymentId())
	case *pb.RefundPaymentRequest:
		return r.GetPaymentId(), b.payment(ctx, p, r.GetPaymentId())
	case *pb.GetPaymentRequest:
		return r.GetId(), b.payment(ctx, p, r.GetId())
	case *pb.ListPaymentsRequest:
		return r.GetMerchant() + r.GetMarket(), b.listPayments(ctx, p, r)

	// Settlement: a merchant its own, banks and auditors their markets; a
	// bank settles for its own provider only.
	case *pb.GetMerchantSettlementRequest:
		return r.GetMerchant(), b.merchant(ctx, p, r.GetMerchant())
	case *pb.GetMarketSettlementRequest:
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.RecordProviderSettlementRequest:
		// A bank bound to a settlement bank reports the credits to it; one
		// of a provider only, its provider's credits to any bank.
		if p.Role == access.RoleBank && (providerOf(r.GetChannel()) != p.Provider || !p.InMarket(codeAsRead(r.GetMarket())) ||
			(p.Bank != "" && r.GetBank() != p.Bank)) {
			return r.GetMarket(), errDenied
		}
		return r.GetMarket(), nil
	case *pb.ReclassifySuspenseRequest:
		// The bank of the provider the money is matched to.
		if p.Role == access.RoleBank && (providerOf(r.GetChannel()) != p.Provider || !p.InMarket(codeAsRead(r.GetMarket()))) {
			return r.GetMarket(), errDenied
		}
		return r.GetMarket(), nil

	// Payout batches: a bank pays out at the settlement bank it is bound to,
	// in its markets, and sees and completes the batches it created;
	// auditors read their markets' batches. A batch pays merchants from
	// what every provider credited its bank: only that bank knows what it
	// pays, so a credential bound to none creates none.
	case *pb.CreatePayoutBatchRequest:
		if p.Role == access.RoleBank && (p.Bank == "" || r.GetBank() != p.Bank) {
			return r.GetMarket(), errDenied
		}
		if r.GetMarket() == "" {
			return "", nil // the batch covers the caller's markets
		}
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.GetPayoutBatchRequest:
		return r.GetId(), b.payoutBatch(ctx, p, r.GetId())
	case *pb.CompletePayoutBatchRequest:
		return r.GetBatchId(), b.payoutBatch(ctx, p, r.GetBatchId())

	// Reconciliation: a bank imports and reads its own provider's
	// statements, in its markets; auditors read their markets' reports.
	case *pb.ImportStatementRequest:
		if p.Role == access.RoleBank && providerOf(r.GetChannel()) != p.Provider {
			return r.GetMarket(), errDenied
		}
		if r.GetMarket() == "" {
			return "", nil // the import covers the caller's markets
		}
		return r.GetMarket(), b.market(p, r.GetMarket())
	case *pb.GetReconciliationReportRequest:
		return r.GetId(), b.report(ctx, p, r.GetId())
	case *pb.ListReconciliationReportsRequest:
		if p.Role == access.RoleBank && r.GetChannel() != pb.Channel_CHANNEL_UNSPECIFIED && providerOf(r.GetChannel()) != p.Provider {
			return r.GetMarket(), errDenied
		}
		if r.GetMarket() == "" {
			return "", nil // the list is cut to the caller's scope
		}
		return r.GetMarket(), b.market(p, r.GetMarket())

	// The audit trail: an event names no market, and what it names (a
	// merchant, payment, account or market) and its message (a balance)
	// may be any market's, so it cannot be cut to a binding: only unbound
	// readers list it.
	case *pb.ListAuditEventsRequest:
		if !unbound(p) {
			return r.GetCredentialId(), errDenied
		}
		return r.GetCredentialId(), nil

	case *pb.RevokeCredentialRequest:
		return r.GetId(), nil
	case *pb.IssueCredentialRequest:
		return r.GetCredential().GetName(), nil
	case *pb.CreateMarketRequest:
		return r.GetMarket().GetCode(), nil
	case *pb.UpdateMarketRequest:
		return r.GetMarket().GetCode(), nil
	case *pb.CreateMerchantRequest:
		return r.GetMerchant().GetCode(), nil
	case *pb.UpdateMerchantRequest:
		return r.GetMerchant().GetCode(), nil
	case *pb.SuspendMerchantRequest:
		return r.GetCode(), nil
	case *pb.ReinstateMerchantRequest:
		return r.GetCode(), nil
	case *pb.CloseMerchantRequest:
		return r.GetCode(), nil
	case *pb.CreateAccountRequest:
		return r.GetCode(), nil
	case *pb.PostEntryRequest:
		return r.GetMarket(), nil
	case *pb.PostPendingEntryRequest:
		return r.GetPendingEntryId(), nil
	case *pb.VoidPendingEntryRequest:
		return r.GetPendingEntryId(), nil
	}
	// Requests that name nothing bound (markets are public; admin-only
	// calls were checked by role).
	return "", nil
}

// codeAsRead is a market or merchant code a request names as the calls
// that take one read it: trimmed of spaces (merchant.Store's GetMarket,
// GetMerchant and ListMerchants). A binding is checked against the code
// the call acts on, or a bank, auditor or stall naming its own market or
// merchant with a space around it would be refused what an operator's same
// request is answered.
func codeAsRead(code string) string { return strings.TrimSpace(code) }

func unbound(p access.Principal) bool {
	return p.Role == access.RoleAdmin || (p.Role == access.RoleAuditor && len(p.Markets) == 0)
}

func (b *binder) market(p access.Principal, market string) error {
	if unbound(p) || p.Role == access.RoleMerchant {
		return nil // merchants never reach market-wide reads: the roles exclude them
	}
	if market = codeAsRead(market); market == "" || !p.InMarket(market) {
		return errDenied
	}
	return nil
}

func (b *binder) account(ctx context.Context, p access.Principal, code string) error {
	switch {
	case p.Role == access.RoleAdmin:
		return nil
	case p.Role == access.RoleMerchant:
		if code != merchant.PayableAccount(p.Merchant) {
			return errDenied
		}
		return nil
	case unbound(p):
		return nil
	}
	a, err := b.ledger.GetAccount(ctx, code)
	if err != nil {
		return lookupFailed(err)
	}
	if !p.InMarket(a.Market) {
		return errDenied
	}
	return nil
}

func (b *binder) entry(ctx context.Context, p access.Principal, id string) error {
	if unbound(p) {
		return nil
	}
	e, err := b.ledger.GetEntry(ctx, id)
	if err != nil {
		return lookupFailed(err)
	}
	if !p.InMarket(e.Market) {
		return errDenied
	}
	return nil
}

func (b *binder) merchant(ctx context.Context, p access.Principal, code string) error {
	switch {
	case unbound(p):
		return nil
	case p.Role == access.RoleMerchant:
		if codeAsRead(code) != p.Merchant {
			return errDenied
		}
		return nil
	}
	m, err := b.merchants.GetMerchant(ctx, code)
	if err != nil {
		return lookupFailed(err)
	}
	if !p.InMarket(m.Market) {
		return errDenied
	}
	return nil
}

// providerOf is the provider a channel's payments come from; a bank is
// bound to one.
func providerOf(ch pb.Channel) string {
	c, ok := channelFromProto(ch)
	if !ok {
		return ""
	}
	return c.Provider()
}

func (b *binder) record(ctx context.Context, p access.Principal, r *pb.RecordPaymentRequest) error {
	if err := b.merchantOfRequest(ctx, p, r); err != nil {
		return err
	}
	switch p.Role {
	case access.RoleAdmin:
		return nil
	case access.RoleMerchant:
		if codeAsRead(r.GetMerchant()) != p.Merchant || r.GetSource() != pb.PaymentSource_PAYMENT_SOURCE_STALL {
			return errDenied
		}
		return nil
	case access.RoleBank:
		if r.GetSource() != pb.PaymentSource_PAYMENT_SOURCE_BANK || providerOf(r.GetChannel()) != p.Provider {
			return errDenied
		}
		return b.merchant(ctx, p, r.GetMerchant())
	}
	return errDenied
}

// merchantOfRequest names, in a bank's notification that names a payment
// request and no merchant, the request's merchant, before the binding is
// checked against it and the call handled as if the bank had named it: a
// payment request's QR pays the market's collection account, and all the
// collecting bank learns from the transfer is the bill number. A request
// that does not exist is refused as the bank's binding refuses what is
// not its own.
func (b *binder) merchantOfRequest(ctx context.Context, p access.Principal, r *pb.RecordPaymentRequest) error {
	if r.GetMerchant() != "" || r.GetSource() != pb.PaymentSource_PAYMENT_SOURCE_BANK || (r.GetPaymentRequestId() == "" && r.GetBillNumber() == "") {
		return nil
	}
	code, err := b.payments.MerchantOfRequest(ctx, r.GetPaymentRequestId(), r.GetBillNumber())
	if err != nil {
		if !unbound(p) {
			return lookupFailed(err)
		}
		return err
	}
	r.Merchant = code
	return nil
}

func (b *binder) payment(ctx context.Context, p access.Principal, id string) error {
	if unbound(p) {
		return nil
	}
	pay, err := b.payments.Get(ctx, id)
	if err != nil {
		return lookupFailed(err)
	}
	switch p.Role {
	case access.RoleMerchant:
		if pay.Merchant != p.Merchant {
			return errDenied
		}
	case access.RoleBank:
		if pay.Channel.Provider() != p.Provider || !p.InMarket(pay.Market) {
			return errDenied
		}
	default:
		if !p.InMarket(pay.Market) {
			return errDenied
		}
	}
	return nil
}

func (b *binder) listPayments(ctx context.Context, p access.Principal, r *pb.ListPaymentsRequest) error {
	switch {
	case unbound(p):
		return nil
	case p.Role == access.RoleMerchant:
		if codeAsRead(r.GetMerchant()) != p.Merchant {
			return errDenied
		}
		return nil
	case p.Role == access.RoleBank && providerOf(r.GetChannel()) != p.Provider:
		// A bank lists its own provider's channel only.
		return errDenied
	}
	if r.GetMarket() != "" {
		return b.market(p, r.GetMarket())
	}
	return b.merchant(ctx, p, r.GetMerchant())
}

// within reports whether every market a batch or report covers lies in p's
// binding; nil (every market) lies in no bound principal's.
func within(p access.Principal, markets []string) bool {
	if markets == nil {
		return len(p.Markets) == 0
	}
	for _, m := range markets {
		if !p.InMarket(m) {
			return false
		}
	}
	return true
}

func (b *binder) payoutBatch(ctx context.Context, p access.Principal, id string) error {
	if unbound(p) {
		return nil
	}
	scope, err := b.settlement.PayoutBatchScope(ctx, id)
	if err != nil {
		return lookupFailed(err)
	}
	if !within(p, scope.Markets) || (p.Role == access.RoleBank && scope.Creator != p.Scope()) {
		return errDenied
	}
	return nil
}

func (b *binder) report(ctx context.Context, p access.Principal, id string) error {
	if unbound(p) {
		return nil
	}
	scope, err := b.settlement.ReconciliationScope(ctx, id)
	if err != nil {
		return lookupFailed(err)
	}
	if !within(p, scope.Markets) || (p.Role == access.RoleBank && scope.Provider != p.Provider) {
		return errDenied
	}
	return nil
}

// lookupFailed answers a failed look-up of what a request names: a target
// that does not exist (or cannot, being malformed) is denied like one out
// of reach, so the answer tells nothing; any other failure (a timeout, the
// database) is passed on, so the client retries instead of being told no.
func lookupFailed(err error) error {
	for _, notThere := range []error{ledger.ErrInvalid, ledger.ErrAccountNotFound, ledger.ErrEntryNotFound,
		merchant.ErrMerchantNotFound, payment.ErrPaymentNotFound, payment.ErrRequestNotFound, settlement.ErrBatchNotFound, settlement.ErrReportNotFound} {
		if errors.Is(err, notThere) {
			return errDenied
		}
	}
	return err
}
