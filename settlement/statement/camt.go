package statement

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// camtNamespace matches the versions whose entries have the shape read
// here; 01 predates it and later versions are unknown, so both are refused
// rather than read on hope.
var camtNamespace = regexp.MustCompile(`^urn:iso:std:iso:20022:tech:xsd:camt\.(053|054)\.001\.(0[2-9]|1[0-3])$`)

// maxXMLDepth is far beyond camt's real nesting (about 15) and low enough
// that a file of nested tags cannot make the decoder's stack use memory out
// of proportion to the file.
const maxXMLDepth = 64

// camt elements, kept to what a Line needs. Every element read is a slice,
// even those the schema allows once, so a repeated one is refused instead
// of the decoder silently keeping the last.
type camtReport struct {
	Stmts   []camtAccountReport `xml:"Stmt"`
	Ntfctns []camtAccountReport `xml:"Ntfctn"`
}

type camtAccountReport struct {
	ID      []string     `xml:"Id"`
	FrToDt  []camtPeriod `xml:"FrToDt"`
	Entries []camtEntry  `xml:"Ntry"`
}

type camtPeriod struct {
	FrDtTm []string `xml:"FrDtTm"`
	ToDtTm []string `xml:"ToDtTm"`
}

type camtEntry struct {
	NtryRef      []string           `xml:"NtryRef"`
	Amt          []camtAmount       `xml:"Amt"`
	CdtDbtInd    []string           `xml:"CdtDbtInd"`
	RvslInd      []string           `xml:"RvslInd"`
	Sts          []camtStatus       `xml:"Sts"`
	BookgDt      []camtDate         `xml:"BookgDt"`
	AcctSvcrRef  []string           `xml:"AcctSvcrRef"`
	NtryDtls     []camtEntryDetails `xml:"NtryDtls"`
	AddtlNtryInf string             `xml:"AddtlNtryInf"`
}

type camtAmount struct {
	Ccy   string `xml:"Ccy,attr"`
	Value string `xml:",chardata"`
}

// camtStatus holds both shapes: <Sts>BOOK</Sts> (up to version 07) and
// <Sts><Cd>BOOK</Cd></Sts> (08 on).
type camtStatus struct {
	Text string `xml:",chardata"`
	Cd   string `xml:"Cd"`
}

type camtDate struct {
	DtTm string `xml:"DtTm"`
	Dt   string `xml:"Dt"`
}

type camtEntryDetails struct {
	TxDtls []camtTx `xml:"TxDtls"`
}

type camtTx struct {
	Refs  []camtRefs `xml:"Refs"`
	Ustrd []string   `xml:"RmtInf>Ustrd"`
}

type camtRefs struct {
	AcctSvcrRef []string `xml:"AcctSvcrRef"`
	EndToEndID  []string `xml:"EndToEndId"`
}

// ParseCamt reads an ISO 20022 camt.053 or camt.054 document, telling which
// from its namespace and root child; see the package documentation for what
// is kept.
func ParseCamt(r io.Reader, opts Options) (Statement, error) {
	cfg, err := opts.config()
	if err != nil {
		return Statement{}, err
	}
	data, digest, err := readAll(r, cfg.maxBytes)
	if err != nil {
		return Statement{}, err
	}
	format, rep, err := decodeCamt(bytes.TrimPrefix(data, bom), cfg.maxLines)
	if err != nil {
		return Statement{}, err
	}

	reports, container := rep.Stmts, "Stmt"
	if format == FormatCamt054 {
		reports, container = rep.Ntfctns, "Ntfctn"
	}
	if len(reports) == 0 {
		// A second report is refused as it is read (strictTokens).
		return Statement{}, fileErr(container, "the document holds none, expected exactly one")
	}
	ar := reports[0]

	st := Statement{Format: format, Digest: digest}
	if len(ar.ID) > 1 {
		return Statement{}, fileErr(container+"/Id", "expected exactly one, got %d", len(ar.ID))
	}
	if len(ar.ID) == 1 {
		st.ID = strings.TrimSpace(ar.ID[0])
	}
	if st.ID == "" {
		return Statement{}, fileErr(container+"/Id", "is required")
	}
	if strings.ContainsFunc(st.ID, unicode.IsControl) || utf8.RuneCountInString(st.ID) > 140 {
		return Statement{}, fileErr(container+"/Id", "must be at most 140 printable characters: got %s", quote(st.ID))
	}

	start, end := cfg.start, cfg.end
	if !cfg.periodGiven && len(ar.FrToDt) > 1 {
		return Statement{}, fileErr(container+"/FrToDt", "expected at most one, got %d", len(ar.FrToDt))
	}
	if !cfg.periodGiven && len(ar.FrToDt) == 1 {
		if start, end, err = camtPeriodBounds(container, ar.FrToDt[0]); err != nil {
			return Statement{}, err
		}
	}
	st.PeriodStart, st.PeriodEnd = utcOrZero(start), utcOrZero(end)

	st.Lines = []Line{}
	seen := make(map[string]int) // ref -> entry ordinal
	for i, e := range ar.Entries {
		n := i + 1
		line, keep, err := camtLine(n, e, cfg, start, end)
		if err != nil {
			return Statement{}, err
		}
		if !keep {
			continue
		}
		if first, dup := seen[line.Ref]; dup {
			return Statement{}, entryErr(n, "ref", "duplicate reference %s, also in entry %d", quote(line.Ref), first)
		}
		seen[line.Ref] = n
		st.Lines = append(st.Lines, line)
	}
	return st, nil
}

func entryErr(n int, field, format string, args ...any) *Error {
	return &Error{Line: n, Field: field, Reason: fmt.Sprintf(format, args...), unit: "entry"}
}

// optional is the text of an element the schema allows at most once, ""
// when absent; ok is false when it is repeated.
func optional(vs []string) (v string, ok bool) {
	switch len(vs) {
	case 0:
		return "", true
	case 1:
		return vs[0], true
	}
	return "", false
}

// camtLine reads one entry; keep is false for entries that are not booked,
// which are skipped without further checks because nothing of them is used.
func camtLine(n int, e camtEntry, cfg config, start, end time.Time) (l Line, keep bool, err *Error) {
	if len(e.Sts) != 1 {
		return l, false, entryErr(n, "Sts", "expected exactly one, got %d", len(e.Sts))
	}
	status := strings.TrimSpace(e.Sts[0].Cd)
	if status == "" {
		status = strings.TrimSpace(e.Sts[0].Text)
	}
	if status != "BOOK" {
		return l, false, nil
	}
	l.Number = n

	if len(e.Amt) != 1 {
		return l, false, entryErr(n, "Amt", "expected exactly one, got %d", len(e.Amt))
	}
	l.Currency = strings.TrimSpace(e.Amt[0].Ccy)
	exp, why := checkCurrency(l.Currency, cfg.exponents)
	if why != "" {
		return l, false, entryErr(n, "Amt/@Ccy", "%s", why)
	}
	amount := strings.TrimSpace(e.Amt[0].Value)
	if amount == "" {
		return l, false, entryErr(n, "Amt", "is required")
	}
	if l.Amount, why = parseAmount(amount, l.Currency, exp); why != "" {
		return l, false, entryErr(n, "Amt", "%s", why)
	}

	if len(e.CdtDbtInd) != 1 {
		return l, false, entryErr(n, "CdtDbtInd", "expected exactly one, got %d", len(e.CdtDbtInd))
	}
	switch ind := strings.TrimSpace(e.CdtDbtInd[0]); ind {
	case "CRDT":
		l.Credit = true
	case "DBIT":
	default:
		return l, false, entryErr(n, "CdtDbtInd", "must be CRDT or DBIT: got %s", quote(ind))
	}
	// RvslInd (an xs:boolean, absent meaning false) turns the direction's
	// meaning around: a reversed credit is no payment.
	if len(e.RvslInd) > 1 {
		return l, false, entryErr(n, "RvslInd", "expected at most one, got %d", len(e.RvslInd))
	}
	if len(e.RvslInd) == 1 {
		switch v := strings.TrimSpace(e.RvslInd[0]); v {
		case "true", "1":
			l.Reversal = true
		case "false", "0":
		default:
			return l, false, entryErr(n, "RvslInd", "must be true or false: got %s", quote(v))
		}
	}

	if len(e.BookgDt) != 1 {
		return l, false, entryErr(n, "BookgDt", "expected exactly one on a booked entry, got %d", len(e.BookgDt))
	}
	t, field, why := camtBookingTime(e.BookgDt[0])
	if why != "" {
		return l, false, entryErr(n, field, "%s", why)
	}
	if why := checkPeriod(t, start, end); why != "" {
		return l, false, entryErr(n, field, "%s", why)
	}
	l.BookedAt, l.DateOnly = t.UTC(), field == "BookgDt/Dt"

	// A batch entry's amount is the total of its transactions, so one
	// transaction's reference would pair that total with the wrong
	// payment; only the entry's own references describe it.
	var txs []camtTx
	for _, d := range e.NtryDtls {
		txs = append(txs, d.TxDtls...)
	}
	type candidate struct {
		field  string
		values []string
	}
	var refs []candidate
	if len(txs) == 1 {
		const field = "NtryDtls/TxDtls/Refs"
		if len(txs[0].Refs) > 1 {
			return l, false, entryErr(n, field, "expected at most one, got %d", len(txs[0].Refs))
		}
		if len(txs[0].Refs) == 1 {
			r := txs[0].Refs[0]
			refs = append(refs, candidate{field + "/AcctSvcrRef", r.AcctSvcrRef}, candidate{field + "/EndToEndId", r.EndToEndID})
		}
	}
	refs = append(refs, candidate{"AcctSvcrRef", e.AcctSvcrRef}, candidate{"NtryRef", e.NtryRef})
	// Every candidate is checked, not only up to the one used: a repeated
	// reference is a malformed entry whichever of them is taken.
	refField := ""
	for _, c := range refs {
		v, ok := optional(c.values)
		if !ok {
			return l, false, entryErr(n, c.field, "expected at most one, got %d", len(c.values))
		}
		v = strings.TrimSpace(v)
		if strings.HasSuffix(c.field, "/EndToEndId") && v == "NOTPROVIDED" {
			continue
		}
		if v != "" && l.Ref == "" {
			l.Ref, refField = v, c.field
		}
	}
	if l.Ref == "" {
		return l, false, entryErr(n, "ref", "no reference: TxDtls/Refs/AcctSvcrRef, TxDtls/Refs/EndToEndId, AcctSvcrRef and NtryRef are all empty")
	}
	if why := checkCode(l.Ref, maxRef); why != "" {
		return l, false, entryErr(n, refField, "%s", why)
	}

	if len(txs) == 1 && len(txs[0].Ustrd) > 0 {
		l.Description = cleanDescription(strings.Join(txs[0].Ustrd, " "))
	}
	if l.Description == "" {
		l.Description = cleanDescription(e.AddtlNtryInf)
	}
	return l, true, nil
}

func camtBookingTime(d camtDate) (time.Time, string, string) {
	dtTm, dt := strings.TrimSpace(d.DtTm), strings.TrimSpace(d.Dt)
	switch {
	case dtTm != "" && dt != "":
		return time.Time{}, "BookgDt", "has both Dt and DtTm"
	case dtTm != "":
		t, ok := parseISODateTime(dtTm)
		if !ok {
			return t, "BookgDt/DtTm", fmt.Sprintf("must be an ISO date-time like \"2026-03-10T08:15:00+07:00\": got %s", quote(dtTm))
		}
		return t, "BookgDt/DtTm", ""
	case dt != "":
		// A bare date is a Vietnamese banking day, which starts at local
		// midnight, not UTC midnight.
		t, err := time.ParseInLocation(time.DateOnly, dt, vietnam)
		if err != nil {
			return t, "BookgDt/Dt", fmt.Sprintf("must be an ISO date like \"2026-03-10\": got %s", quote(dt))
		}
		return t, "BookgDt/Dt", ""
	}
	return time.Time{}, "BookgDt", "needs Dt or DtTm"
}

// parseISODateTime reads ISO 20022's ISODateTime: with Z or an offset, or
// without one, which means local time (Vietnam for the banks we read).
func parseISODateTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, vietnam)
	return t, err == nil
}

// camtPeriodBounds turns FrToDt into [start, end). ToDtTm is the last
// instant covered (banks write 23:59:59), so the exclusive end is the next
// whole second after it.
func camtPeriodBounds(container string, p camtPeriod) (time.Time, time.Time, error) {
	field := container + "/FrToDt"
	if len(p.FrDtTm) != 1 {
		return time.Time{}, time.Time{}, fileErr(field+"/FrDtTm", "expected exactly one, got %d", len(p.FrDtTm))
	}
	if len(p.ToDtTm) != 1 {
		return time.Time{}, time.Time{}, fileErr(field+"/ToDtTm", "expected exactly one, got %d", len(p.ToDtTm))
	}
	from, to := strings.TrimSpace(p.FrDtTm[0]), strings.TrimSpace(p.ToDtTm[0])
	start, ok := parseISODateTime(from)
	if !ok {
		return start, start, fileErr(field+"/FrDtTm", "must be an ISO date-time: got %s", quote(from))
	}
	last, ok := parseISODateTime(to)
	if !ok {
		return start, last, fileErr(field+"/ToDtTm", "must be an ISO date-time: got %s", quote(to))
	}
	end := last.Truncate(time.Second).Add(time.Second)
	if !end.After(start) {
		return start, end, fileErr(field, "ToDtTm %s is before FrDtTm %s", to, from)
	}
	return start, end, nil
}

// decodeCamt checks the envelope by hand (root, namespace, root child) and
// lets encoding/xml fill the structs from there, refusing a second report
// or more than maxEntries entries as they come.
func decodeCamt(data []byte, maxEntries int) (Format, camtReport, error) {
	var rep camtReport
	raw := xml.NewDecoder(bytes.NewReader(data))
	raw.Strict = true // unknown entities are errors
	// Only UTF-8: the decoder calls this for any other declared encoding.
	raw.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("only UTF-8 is accepted")
	}
	st := &strictTokens{raw: raw, maxEntries: maxEntries, reports: map[string]bool{}}
	dec := xml.NewTokenDecoder(&namespaceTokens{dec: xml.NewTokenDecoder(st)})
	fail := func(err error) (Format, camtReport, error) {
		var refused *Error
		if errors.As(err, &refused) {
			return "", rep, refused
		}
		return "", rep, xmlErr(err, raw)
	}

	root, err := nextElement(dec)
	if err != nil {
		return fail(err)
	}
	if root == nil {
		return "", rep, fileErr("Document", "no root element")
	}
	if root.Name.Local != "Document" {
		return "", rep, fileErr("Document", "root element is %s, expected Document", quote(root.Name.Local))
	}
	m := camtNamespace.FindStringSubmatch(root.Name.Space)
	if m == nil {
		return "", rep, fileErr("Document", "namespace %s is not camt.053 or camt.054 version 02 to 13", quote(root.Name.Space))
	}
	format, want := FormatCamt053, "BkToCstmrStmt"
	if m[1] == "054" {
		format, want = FormatCamt054, "BkToCstmrDbtCdtNtfctn"
	}

	child, err := nextElement(dec)
	if err != nil {
		return fail(err)
	}
	if child == nil {
		return "", rep, fileErr("Document", "is empty, expected %s", want)
	}
	if child.Name.Local != want {
		// The namespace and the content must agree, or we would not know
		// which of the two the sender meant. (A child in another namespace
		// than the root's is refused by namespaceTokens.)
		return "", rep, fileErr("Document", "namespace is %s but the document holds %s, expected %s", format, quote(child.Name.Local), want)
	}
	if err := dec.DecodeElement(&rep, child); err != nil {
		return fail(err)
	}
	// Only the end of Document may follow: a second report or trailing
	// content would be data we silently ignored.
	next, err := nextElement(dec)
	if err != nil {
		return fail(err)
	}
	if next != nil {
		return "", rep, fileErr("Document", "unexpected %s after %s", quote(next.Name.Local), want)
	}
	if trailing, err := nextElement(dec); err != nil {
		return fail(err)
	} else if trailing != nil {
		return "", rep, fileErr("Document", "unexpected %s after Document", quote(trailing.Name.Local))
	}
	return format, rep, nil
}

// nextElement returns the next start element at this level, or nil at the
// end of the enclosing element or of the input. Text other than whitespace
// is refused: no camt container holds any.
func nextElement(dec *xml.Decoder) (*xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return &t, nil
		case xml.EndElement:
			return nil, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, errors.New("unexpected text outside elements")
			}
		}
	}
}

var errDirective = errors.New("DOCTYPE, ENTITY and other <!...> declarations are not allowed")

// strictTokens feeds the namespace-aware decoder from the raw one, refusing
// what encoding/xml would otherwise let through: <!DOCTYPE> and <!ENTITY>
// declarations (encoding/xml never expands them, but a statement has no
// business carrying them, and refusing them keeps us safe if the file is
// ever handed to another XML parser) and absurd nesting. It also refuses a
// second report (Stmt, Ntfctn) and a report's entry past maxEntries as they
// come: encoding/xml decodes every one into memory before the counts can
// be checked, and an empty <Ntry/>, 7 bytes of the file, takes some 200 of
// memory, so a 10 MiB file of them took a gigabyte to be refused.
type strictTokens struct {
	raw        *xml.Decoder
	depth      int
	maxEntries int
	reports    map[string]bool // the report elements seen
	report     string          // the report element the tokens are in, "" outside one
	entries    int             // of that report
}

func (s *strictTokens) Token() (xml.Token, error) {
	tok, err := s.raw.RawToken()
	switch t := tok.(type) {
	case xml.Directive:
		return nil, errDirective
	case xml.StartElement:
		if s.depth++; s.depth > maxXMLDepth {
			return nil, fmt.Errorf("elements nested deeper than %d", maxXMLDepth)
		}
		// Document, the root child, then the reports and their entries.
		switch name := t.Name.Local; {
		case s.depth == 3 && (name == "Stmt" || name == "Ntfctn"):
			if s.reports[name] {
				// One Statement has one id and one period; merging several
				// would blur which account and day a line belongs to.
				return nil, fileErr(name, "the document holds more than one, expected exactly one")
			}
			s.reports[name], s.report, s.entries = true, name, 0
		case s.depth == 4 && s.report != "" && name == "Ntry":
			if s.entries++; s.entries > s.maxEntries {
				return nil, entryErr(s.entries, "Ntry", "more than %d entries", s.maxEntries)
			}
		}
	case xml.EndElement:
		if s.depth == 3 {
			s.report = ""
		}
		s.depth--
	}
	return tok, err
}

// namespaceTokens refuses an element outside the document's namespace (the
// root's). encoding/xml matches a struct field on the local name alone, so
// <Ntry xmlns="urn:other"> would be read as an entry; but it is not camt's
// Ntry, and no camt schema allows a foreign element there. The exception is
// the content of SplmtryData/Envlp, which ISO 20022 leaves to any schema
// and which is never read.
//
// It reads names already resolved from dec and hands them on without their
// xmlns declarations, so the decoder reading from it has no prefix left to
// resolve a second time.
type namespaceTokens struct {
	dec   *xml.Decoder
	space string // the root's namespace
	depth int
	envlp int // depth of the Envlp whose content is passed unchecked; 0 outside one
}

func (n *namespaceTokens) Token() (xml.Token, error) {
	tok, err := n.dec.Token()
	switch t := tok.(type) {
	case xml.StartElement:
		n.depth++
		switch {
		case n.depth == 1:
			n.space = t.Name.Space
		case n.envlp != 0:
		case t.Name.Space != n.space:
			return nil, fmt.Errorf("element %s in namespace %s: only the document's namespace is read, and only SplmtryData/Envlp may hold another", quote(t.Name.Local), quote(t.Name.Space))
		case t.Name.Local == "Envlp":
			n.envlp = n.depth
		}
		t.Attr = slices.DeleteFunc(slices.Clone(t.Attr), func(a xml.Attr) bool {
			return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
		})
		return t, err
	case xml.EndElement:
		if n.depth == n.envlp {
			n.envlp = 0
		}
		n.depth--
	}
	return tok, err
}

// xmlErr makes an XML failure a whole-document *Error, naming the line of
// the file where the decoder stopped.
func xmlErr(err error, raw *xml.Decoder) error {
	line, _ := raw.InputPos()
	msg := err.Error()
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		msg = se.Msg
	}
	msg = strings.TrimPrefix(msg, "xml: ")
	return fileErr("xml", "%s (XML line %d)", msg, line)
}
