package merchant

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/choledger/choledger/ledger"
)

// Kinds of failure beyond ledger.ErrInvalid, which every malformed request
// gets. Each is wrapped in a *ledger.Error naming the request field.
var (
	ErrMarketNotFound   = errors.New("market not found")
	ErrMerchantNotFound = errors.New("merchant not found")
	ErrMarketExists     = errors.New("market already exists")
	ErrMerchantExists   = errors.New("merchant already exists")
	// ErrStallTaken: another merchant holds the stall. Closing a merchant
	// releases its stalls.
	ErrStallTaken = errors.New("stall held by another merchant")
	// ErrMarketClosed: a closed market takes no new or reinstated merchants.
	ErrMarketClosed = errors.New("market closed")
	// ErrBadTransition: the merchant's status does not allow the change,
	// e.g. suspending one that is not active, or changing a closed one.
	ErrBadTransition = errors.New("not allowed in the merchant's status")
	// ErrNoCollectionAccount: the market has no collection account, so
	// there is nothing its merchants' VietQR could pay into.
	ErrNoCollectionAccount = errors.New("market has no collection account")
	// ErrCodeNotInQR: the merchant's code is longer than the 25
	// characters of the QR's tag 62/08, by which the bank tells whose
	// transfer it is, so it has no static QR.
	ErrCodeNotInQR = errors.New("merchant code too long for a QR")
	// ErrChannelNotAccepted: the merchant does not accept the channel, so
	// it gets nothing (such as a VietQR) that would bring it payments
	// over that channel.
	ErrChannelNotAccepted = errors.New("merchant does not accept the channel")
)

func errorf(kind error, field, format string, args ...any) *ledger.Error {
	return &ledger.Error{Kind: kind, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func invalid(field, format string, args ...any) *ledger.Error {
	return errorf(ledger.ErrInvalid, field, format, args...)
}

// Channel is how a customer paid.
type Channel string

const (
	ChannelVietQR        Channel = "VIETQR" // bank transfer over NAPAS 247
	ChannelViettelMoney  Channel = "VIETTEL_MONEY"
	ChannelVNPTMoney     Channel = "VNPT_MONEY"
	ChannelMobifoneMoney Channel = "MOBIFONE_MONEY"
	ChannelMoMo          Channel = "MOMO"
	ChannelZaloPay       Channel = "ZALOPAY"
)

// Channels are every channel, in the order the API lists them.
var Channels = []Channel{ChannelVietQR, ChannelViettelMoney, ChannelVNPTMoney, ChannelMobifoneMoney, ChannelMoMo, ChannelZaloPay}

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool { return slices.Contains(Channels, c) }

// Provider is the provider that owes us for the channel's payments, as it
// appears in account codes. VietQR transfers are cleared by NAPAS whatever
// the payer's bank, so they share one clearing account per market.
func (c Channel) Provider() string {
	switch c {
	case ChannelVietQR:
		return "napas"
	case ChannelViettelMoney:
		return "viettelmoney"
	case ChannelVNPTMoney:
		return "vnptmoney"
	case ChannelMobifoneMoney:
		return "mobifonemoney"
	case ChannelMoMo:
		return "momo"
	case ChannelZaloPay:
		return "zalopay"
	}
	return ""
}

// Providers are the providers of Channels, each once: who may hold a bank
// credential.
func Providers() []string {
	var out []string
	for _, c := range Channels {
		if p := c.Provider(); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// MarketStatus is whether a market takes new merchants.
type MarketStatus string

const (
	MarketActive MarketStatus = "active"
	MarketClosed MarketStatus = "closed"
)

func (s MarketStatus) valid() bool { return s == MarketActive || s == MarketClosed }

// Status is a merchant's standing. Only an active merchant takes payments;
// closed is final.
type Status string

const (
	StatusPending   Status = "pending"
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusClosed    Status = "closed"
)

func (s Status) valid() bool {
	switch s {
	case StatusPending, StatusActive, StatusSuspended, StatusClosed:
		return true
	}
	return false
}

// Market is a market place; its code is also its ledger market.
type Market struct {
	Code     string
	Name     string
	Province string
	Ward     string
	Status   MarketStatus
	// Collection is the account at the market's collecting bank that
	// customers' VietQR transfers to its merchants are paid into: the
	// account every QR of the market names. Nil when none is registered,
	// and then the market's merchants get no QR.
	Collection *BankAccount
	CreatedAt  time.Time
}

// BankAccount is an account at a Vietnamese bank: a merchant's payout
// account, which payout batches pay, or a market's collection account.
type BankAccount struct {
	BankBIN       string // NAPAS bank identification number
	AccountNumber string
	HolderName    string
}

// FeePlan is the merchant discount rate.
type FeePlan struct {
	// BasisPoints per channel; a channel without an entry is charged 0 bps
	// (and so MinFee).
	BasisPoints map[Channel]int
	MinFee      int64 // whole đồng
}

// Fee is the merchant discount on a payment of amount whole đồng by channel
// ch: amount × bps / 10000, rounded half up to whole đồng (VND has no minor
// unit), then raised to MinFee, then capped at amount, so that a fee never
// exceeds the payment it is taken from. A non-positive amount has no fee.
func (p FeePlan) Fee(ch Channel, amount int64) int64 {
	if amount <= 0 {
		return 0
	}
	// Beyond 100% the cap below decides anyway; bounding bps keeps the
	// arithmetic in range.
	bps := int64(min(max(p.BasisPoints[ch], 0), 10000))
	// Split amount so that amount × bps cannot overflow: the whole ten
	// thousands carry no rounding, the rest is below 10000 × bps.
	q, r := amount/10000, amount%10000
	fee := q*bps + (r*bps+5000)/10000
	fee = max(fee, p.MinFee)
	return min(fee, amount)
}

// Merchant is a household business at one or more stalls of a market.
type Merchant struct {
	Code         string
	Market       string
	Stalls       []string // in code order
	DisplayName  string
	Owner        string // personal data
	Phone        string // personal data; 0xxxxxxxxx
	Status       Status
	StatusReason string       // why it was last suspended or closed
	Payout       *BankAccount // nil when none is registered
	Fees         FeePlan
	Channels     []Channel // in the order given
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Accepts reports whether the merchant takes payments by ch.
func (m Merchant) Accepts(ch Channel) bool { return slices.Contains(m.Channels, ch) }

// CanTakePayments reports whether the merchant may take new payments: only
// an active one may; a suspended or closed one keeps its history.
func (m Merchant) CanTakePayments() bool { return m.Status == StatusActive }

// Masked returns a copy of m with its personal data masked, for lists and
// for anyone who may see that a merchant exists but not who runs it. The
// family name stays (it is what the market knows the stall by) and the other
// names become initials; the phone keeps its carrier prefix and last three
// digits; the payout account keeps its last four characters, enough for the
// owner to recognise it.
func (m Merchant) Masked() Merchant {
	out := m.clone()
	out.Owner = maskName(m.Owner)
	out.Phone = maskPhone(m.Phone)
	if out.Payout != nil {
		*out.Payout = out.Payout.Masked()
	}
	return out
}

// Masked returns a with its number and holder masked, as Merchant.Masked
// shows them.
func (a BankAccount) Masked() BankAccount {
	a.AccountNumber = maskAccount(a.AccountNumber)
	a.HolderName = maskName(a.HolderName)
	return a
}

// clone copies m deeply, so that changing the copy never changes m.
func (m Merchant) clone() Merchant {
	out := m
	out.Stalls = slices.Clone(m.Stalls)
	out.Channels = slices.Clone(m.Channels)
	out.Fees.BasisPoints = maps.Clone(m.Fees.BasisPoints)
	if m.Payout != nil {
		p := *m.Payout
		out.Payout = &p
	}
	return out
}

// maskName keeps the first word (the family name, in Vietnamese order) and
// reduces each other word to its first letter: "Nguyễn Thị Lan" becomes
// "Nguyễn T. L.".
func maskName(name string) string {
	words := strings.Fields(name)
	for i := 1; i < len(words); i++ {
		r, _ := utf8.DecodeRuneInString(words[i])
		words[i] = string(r) + "."
	}
	return strings.Join(words, " ")
}

// maskPhone keeps the first three and last three digits: "0912345678"
// becomes "091****678". A number too short for that is masked whole.
func maskPhone(phone string) string {
	r := []rune(phone)
	if len(r) <= 6 {
		return strings.Repeat("*", len(r))
	}
	for i := 3; i < len(r)-3; i++ {
		r[i] = '*'
	}
	return string(r)
}

// maskAccount masks all but the last four characters.
func maskAccount(account string) string {
	r := []rune(account)
	for i := 0; i < len(r)-4; i++ {
		r[i] = '*'
	}
	return string(r)
}

// Chart of accounts (DESIGN.md section 3). Every account is in VND, in the
// ledger market named by the market code.

// PayableAccount is what we owe merchant: a liability that may never go
// below zero (ledger.FlagDebitsMustNotExceedCredits), so no payout or refund
// can take more than the merchant is owed.
func PayableAccount(merchant string) string { return "merchant:" + merchant + ":payable" }

// ClearingAccount is what ch's provider owes us for payments taken at
// market: an asset.
func ClearingAccount(ch Channel, market string) string {
	return "provider:" + ch.Provider() + ":market:" + market + ":clearing"
}

// FeesAccount is the revenue from merchant discounts at market.
func FeesAccount(market string) string { return "market:" + market + ":fees" }

// SuspenseAccount holds provider money of market not yet matched to a
// payment: a liability until it is reclassified.
func SuspenseAccount(market string) string { return "market:" + market + ":suspense" }

var bankRE = regexp.MustCompile(`^[a-z0-9]{2,16}$`)

// CheckBankCode refuses, naming field, what cannot be a settlement bank's
// code: 2-16 of [a-z0-9], e.g. "vcb".
func CheckBankCode(field, code string) error {
	if !bankRE.MatchString(code) {
		return invalid(field, "must be the settlement bank's code, 2-16 of [a-z0-9] (e.g. \"vcb\"), got %q", code)
	}
	return nil
}

// SettlementAccount is money received for market at settlement bank: an
// asset. Opened by settlement when a bank first settles, not here.
func SettlementAccount(bank, market string) string {
	return "bank:" + bank + ":market:" + market + ":settlement"
}

// Currency is the currency of every account this package opens.
const Currency = "VND"

// MarketAccounts are the accounts a market cannot take payments without,
// as it opens them.
func MarketAccounts(market string) []ledger.AccountSpec {
	specs := []ledger.AccountSpec{
		{Code: FeesAccount(market), Type: ledger.Revenue, Currency: Currency, Market: market},
		{Code: SuspenseAccount(market), Type: ledger.Liability, Currency: Currency, Market: market},
	}
	for _, ch := range Channels {
		specs = append(specs, ledger.AccountSpec{Code: ClearingAccount(ch, market), Type: ledger.Asset, Currency: Currency, Market: market})
	}
	return specs
}

// PayableSpec is the payable account of merchant m, as it opens it.
func PayableSpec(m Merchant) ledger.AccountSpec {
	return ledger.AccountSpec{
		Code: PayableAccount(m.Code), Type: ledger.Liability, Currency: Currency, Market: m.Market,
		Flags: ledger.FlagDebitsMustNotExceedCredits,
	}
}

// Limits of the fields.
const (
	MaxStalls      = 10
	MaxBasisPoints = 1000 // 10%
	MaxMinFee      = 1_000_000
	MaxReason      = 200
)

var (
	marketCodeRE   = regexp.MustCompile(`^[A-Z0-9-]{2,32}$`)
	merchantCodeRE = regexp.MustCompile(`^[A-Z0-9-]{2,40}$`)
	stallRE        = regexp.MustCompile(`^[A-Z0-9-]{1,16}$`)
	phoneRE        = regexp.MustCompile(`^0[35789][0-9]{8}$`)
	intlPhoneRE    = regexp.MustCompile(`^\+84[0-9]{9}$`)
	binRE          = regexp.MustCompile(`^[0-9]{6}$`)
	accountRE      = regexp.MustCompile(`^[0-9A-Za-z]{1,19}$`)
)

// text trims s and checks it is printable text of lo to hi characters.
func text(field, s string, lo, hi int) (string, *ledger.Error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", invalid(field, "must not contain control characters, got %U", r)
		}
	}
	if n := utf8.RuneCountInString(s); n < lo || n > hi {
		if lo > 0 && n == 0 {
			return "", invalid(field, "is required (%d-%d characters)", lo, hi)
		}
		return "", invalid(field, "must be %d-%d characters, got %d", lo, hi, n)
	}
	return s, nil
}

func code(field, s string, re *regexp.Regexp, rule string) (string, *ledger.Error) {
	s = strings.TrimSpace(s)
	if !re.MatchString(s) {
		return "", invalid(field, "must be %s, got %q", rule, s)
	}
	return s, nil
}

func marketCode(field, s string) (string, *ledger.Error) {
	c, err := code(field, s, marketCodeRE, marketCodeRule)
	if err == nil && !ledger.ValidMarket(c) { // cannot happen today; the ledger's rule is wider
		return "", invalid(field, "%q cannot name a ledger market", c)
	}
	return c, err
}

func merchantCode(field, s string) (string, *ledger.Error) {
	return code(field, s, merchantCodeRE, merchantCodeRule)
}

// Rules of codes, for messages.
const (
	marketCodeRule   = "2-32 of [A-Z0-9-]"
	merchantCodeRule = "2-40 of [A-Z0-9-]"
)

// ValidMarketCode reports whether s, as it is, can be a market's code:
// marketCodeRule. A query given anything else would find no market, or
// could not be sent at all (a NUL).
func ValidMarketCode(s string) bool { return marketCodeRE.MatchString(s) }

// ValidMerchantCode reports whether s, as it is, can be a merchant's code:
// merchantCodeRule.
func ValidMerchantCode(s string) bool { return merchantCodeRE.MatchString(s) }

// CheckMarketCode refuses, naming field, a market code a request gives that
// no market can have (ValidMarketCode).
func CheckMarketCode(field, s string) error {
	if !ValidMarketCode(s) {
		return invalid(field, "must be a market code, %s, got %q", marketCodeRule, s)
	}
	return nil
}

// CheckMerchantCode refuses, naming field, a merchant code a request gives
// that no merchant can have (ValidMerchantCode).
func CheckMerchantCode(field, s string) error {
	if !ValidMerchantCode(s) {
		return invalid(field, "must be a merchant code, %s, got %q", merchantCodeRule, s)
	}
	return nil
}

func reason(field, s string) (string, *ledger.Error) { return text(field, s, 0, MaxReason) }

// validate checks a market and returns it trimmed and with its defaults.
func (m Market) validate() (Market, *ledger.Error) {
	var err *ledger.Error
	if m.Code, err = marketCode("market.code", m.Code); err != nil {
		return m, err
	}
	for _, f := range marketFields {
		if err := f.check(&m); err != nil {
			return m, err
		}
	}
	if m.Status == "" {
		m.Status = MarketActive
	}
	return m, checkMarketStatus(m.Status)
}

func checkMarketStatus(s MarketStatus) *ledger.Error {
	if !s.valid() {
		return invalid("market.status", "must be active or closed, got %q", s)
	}
	return nil
}

// A maskField is one update_mask path: how to check it on its own and how to
// copy it from an update onto the stored value.
type maskField[T any] struct {
	path  string
	check func(*T) *ledger.Error
	copy  func(dst, src *T)
}

// textField is a field of free text of lo to hi characters, reported as
// name.
func textField[T any](path, name string, lo, hi int, get func(*T) *string) maskField[T] {
	return maskField[T]{
		path: path,
		check: func(v *T) (err *ledger.Error) {
			p := get(v)
			*p, err = text(name, *p, lo, hi)
			return err
		},
		copy: func(dst, src *T) { *get(dst) = *get(src) },
	}
}

var marketFields = []maskField[Market]{
	textField("name", "market.name", 1, 100, func(m *Market) *string { return &m.Name }),
	textField("province", "market.province", 1, 100, func(m *Market) *string { return &m.Province }),
	textField("ward", "market.ward", 0, 100, func(m *Market) *string { return &m.Ward }),
	{"collection_account", checkCollection, func(d, s *Market) { d.Collection = s.Collection }},
}

// marketUpdateFields are the paths UpdateMarket takes.
var marketUpdateFields = append(slices.Clip(marketFields), maskField[Market]{
	path:  "status",
	check: func(m *Market) *ledger.Error { return checkMarketStatus(m.Status) },
	copy:  func(dst, src *Market) { dst.Status = src.Status },
})

// checkCollection checks a market's collection account as a merchant's
// payout account is checked. Left out, it stays unset: the market then
// gets no QR until an update sets it.
func checkCollection(m *Market) *ledger.Error {
	var err *ledger.Error
	m.Collection, err = checkAccount("market.collection_account", m.Collection)
	return err
}

var merchantFields = []maskField[Merchant]{
	{"stalls", checkStalls, func(d, s *Merchant) { d.Stalls = s.Stalls }},
	textField("display_name", "merchant.display_name", 1, 100, func(m *Merchant) *string { return &m.DisplayName }),
	textField("owner_name", "merchant.owner_name", 1, 100, func(m *Merchant) *string { return &m.Owner }),
	{"phone", checkPhone, func(d, s *Merchant) { d.Phone = s.Phone }},
	{"payout_account", checkPayout, func(d, s *Merchant) { d.Payout = s.Payout }},
	// The fee plan is checked against the channels once both are known; see
	// checkFeesAccepted.
	{"fee_plan", checkFees, func(d, s *Merchant) { d.Fees = s.Fees }},
	{"channels", checkChannels, func(d, s *Merchant) { d.Channels = s.Channels }},
}

// validate checks a merchant to create and returns it trimmed and with its
// defaults. It does not look at the database.
func (m Merchant) validate() (Merchant, *ledger.Error) {
	m = m.clone()
	var err *ledger.Error
	if m.Code, err = merchantCode("merchant.code", m.Code); err != nil {
		return m, err
	}
	if m.Market, err = marketCode("merchant.market", m.Market); err != nil {
		return m, err
	}
	for _, f := range merchantFields {
		if err := f.check(&m); err != nil {
			return m, err
		}
	}
	if err := checkFeesAccepted(m); err != nil {
		return m, err
	}
	switch m.Status {
	case "":
		m.Status = StatusActive
	case StatusPending, StatusActive:
	default:
		return m, invalid("merchant.status", "a new merchant must be pending or active, got %q", m.Status)
	}
	if m.StatusReason, err = reason("merchant.status_reason", m.StatusReason); err != nil {
		return m, err
	}
	return m, nil
}

// checkStalls trims the stall codes and sorts them, so that a merchant's
// stalls read back in the order they are stored.
func checkStalls(m *Merchant) *ledger.Error {
	if n := len(m.Stalls); n < 1 || n > MaxStalls {
		return invalid("merchant.stalls", "must list 1-%d stalls, got %d", MaxStalls, n)
	}
	seen := make(map[string]int, len(m.Stalls))
	stalls := make([]string, len(m.Stalls))
	for i, s := range m.Stalls {
		f := fmt.Sprintf("merchant.stalls[%d]", i)
		c, err := code(f, s, stallRE, "1-16 of [A-Z0-9-]")
		if err != nil {
			return err
		}
		if j, dup := seen[c]; dup {
			return invalid(f, "stall %s is listed twice (also stalls[%d])", c, j)
		}
		seen[c] = i
		stalls[i] = c
	}
	slices.Sort(stalls)
	m.Stalls = stalls
	return nil
}

// checkPhone takes a Vietnamese mobile number in national (0...) or
// international (+84...) form and stores the national one, so that one
// phone is always one string.
func checkPhone(m *Merchant) *ledger.Error {
	p := strings.TrimSpace(m.Phone)
	if intlPhoneRE.MatchString(p) {
		p = "0" + p[3:]
	}
	if !phoneRE.MatchString(p) {
		// The message goes to the audit trail, which auditors read: the
		// phone is shown masked, as they see it everywhere else.
		return invalid("merchant.phone", "must be a Vietnamese mobile number, 0 then 9 digits (03, 05, 07, 08 or 09...) or +84 then 9 digits, got %q (masked)", maskPhone(strings.TrimSpace(m.Phone)))
	}
	m.Phone = p
	return nil
}

func checkPayout(m *Merchant) *ledger.Error {
	var err *ledger.Error
	m.Payout, err = checkAccount("merchant.payout_account", m.Payout)
	return err
}

// checkAccount checks the bank account a, reported as field, and returns
// it trimmed; nil is no account, and is kept.
func checkAccount(field string, a *BankAccount) (*BankAccount, *ledger.Error) {
	if a == nil {
		return nil, nil
	}
	p := *a
	var err *ledger.Error
	if p.BankBIN, err = code(field+".bank_bin", p.BankBIN, binRE, "exactly 6 digits"); err != nil {
		return nil, err
	}
	// Masked in the message, as for the phone.
	if p.AccountNumber = strings.TrimSpace(p.AccountNumber); !accountRE.MatchString(p.AccountNumber) {
		return nil, invalid(field+".account_number", "must be 1-19 of [0-9A-Za-z], got %q (masked, %d characters)",
			maskAccount(p.AccountNumber), utf8.RuneCountInString(p.AccountNumber))
	}
	if p.HolderName, err = text(field+".holder_name", p.HolderName, 1, 50); err != nil {
		return nil, err
	}
	return &p, nil
}

func checkFees(m *Merchant) *ledger.Error {
	for _, ch := range sortedChannels(m.Fees.BasisPoints) {
		if !ch.Valid() {
			return invalid("merchant.fee_plan.fees", "unknown channel %q", ch)
		}
		if bps := m.Fees.BasisPoints[ch]; bps < 0 || bps > MaxBasisPoints {
			return invalid("merchant.fee_plan.fees", "basis points of %s must be 0-%d, got %d", ch, MaxBasisPoints, bps)
		}
	}
	if m.Fees.MinFee < 0 || m.Fees.MinFee > MaxMinFee {
		return invalid("merchant.fee_plan.min_fee", "must be 0-%d đồng, got %d", MaxMinFee, m.Fees.MinFee)
	}
	if len(m.Fees.BasisPoints) == 0 {
		m.Fees.BasisPoints = nil
	}
	return nil
}

// checkFeesAccepted refuses a rate for a channel the merchant does not
// accept: it is almost certainly a mistake in one of the two lists.
func checkFeesAccepted(m Merchant) *ledger.Error {
	for _, ch := range sortedChannels(m.Fees.BasisPoints) {
		if !m.Accepts(ch) {
			return invalid("merchant.fee_plan.fees", "a fee for %s, which the merchant does not accept (channels: %v)", ch, m.Channels)
		}
	}
	return nil
}

func checkChannels(m *Merchant) *ledger.Error {
	if len(m.Channels) == 0 {
		return invalid("merchant.channels", "must list at least one channel")
	}
	for i, ch := range m.Channels {
		f := fmt.Sprintf("merchant.channels[%d]", i)
		if !ch.Valid() {
			return invalid(f, "must be one of %v, got %q", Channels, ch)
		}
		if j := slices.Index(m.Channels, ch); j < i {
			return invalid(f, "%s is listed twice (also channels[%d])", ch, j)
		}
	}
	return nil
}

// sortedChannels lists the map's channels in the order of Channels, unknown
// ones last, so that errors and storage are deterministic.
func sortedChannels(bps map[Channel]int) []Channel {
	out := slices.Collect(maps.Keys(bps))
	slices.SortFunc(out, func(a, b Channel) int {
		ia, ib := slices.Index(Channels, a), slices.Index(Channels, b)
		if ia < 0 {
			ia = len(Channels)
		}
		if ib < 0 {
			ib = len(Channels)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(string(a), string(b))
	})
	return out
}

// checkPaths checks an update mask against the fields an update may change.
func checkPaths[T any](paths []string, fields []maskField[T]) ([]maskField[T], *ledger.Error) {
	names := func() string {
		var b []string
		for _, f := range fields {
			b = append(b, f.path)
		}
		return strings.Join(b, ", ")
	}
	if len(paths) == 0 {
		return nil, invalid("update_mask", "must name the fields to change, among %s", names())
	}
	var out []maskField[T]
	for _, p := range paths {
		i := slices.IndexFunc(fields, func(f maskField[T]) bool { return f.path == p })
		if i < 0 {
			return nil, invalid("update_mask", "unknown or unchangeable field %q; the fields are %s", p, names())
		}
		if !slices.ContainsFunc(out, func(f maskField[T]) bool { return f.path == p }) {
			out = append(out, fields[i])
		}
	}
	return out, nil
}
