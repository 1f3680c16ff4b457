package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/api"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// watchingHandler is the test binary's log handler: it passes records on,
// and gives those logged while serving a call to the watcher of the
// server that served it (by the address the call came in on), so that a
// test can watch its own server's log while the others run in parallel.
type watchingHandler struct{ slog.Handler }

// logWatchers maps a server's address to the func given its records.
var logWatchers sync.Map

func (h watchingHandler) Handle(ctx context.Context, r slog.Record) error {
	if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
		if w, ok := logWatchers.Load(p.LocalAddr.String()); ok {
			w.(func(slog.Record))(r)
		}
	}
	return h.Handler.Handle(ctx, r)
}
func (h watchingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return watchingHandler{h.Handler.WithAttrs(as)}
}
func (h watchingHandler) WithGroup(g string) slog.Handler {
	return watchingHandler{h.Handler.WithGroup(g)}
}

// serverLog collects the records of errors and panics an env's server logs
// while serving calls. Records logged outside a call (background work)
// name no call and are not collected.
type serverLog struct {
	mu   sync.Mutex
	seen []string
}

func watchServerLog(t *testing.T, e *env) *serverLog {
	l := &serverLog{}
	logWatchers.Store(e.addr, func(r slog.Record) {
		if r.Level < slog.LevelError && !strings.Contains(r.Message, "panic") {
			return
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "stack" {
				fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			}
			return true
		})
		l.mu.Lock()
		l.seen = append(l.seen, b.String())
		l.mu.Unlock()
	})
	t.Cleanup(func() { logWatchers.Delete(e.addr) })
	return l
}

func (l *serverLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

// writeMark tells, table by table, whether anything was written to the
// database between two marks: the row count and the newest row version's
// transaction of every table but the audit trail (which records refused
// calls by design). A row inserted or updated is a row version of a
// transaction newer than any before it; a row deleted changes the count.
// (Cheaper than a digest of every row, which this test would read
// thousands of times.)
type writeMark struct {
	e     *env
	query string
}

func newWriteMark(t *testing.T, e *env) *writeMark {
	t.Helper()
	rows, err := e.db.Pool.Query(context.Background(), `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT IN ('audit_events') ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]string, 0, len(tables))
	for _, name := range tables {
		parts = append(parts, fmt.Sprintf(`(SELECT '%[1]s=' || count(*) || ':' || COALESCE(max(xmin::text::bigint), 0) FROM %[1]s)`, name))
	}
	return &writeMark{e: e, query: "SELECT concat_ws(',', " + strings.Join(parts, ", ") + ")"}
}

func (w *writeMark) take(t *testing.T) string {
	t.Helper()
	var s string
	if err := w.e.db.Pool.QueryRow(context.Background(), w.query).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshotDiff names the tables whose rows differ between two snapshots,
// with their row counts.
func snapshotDiff(a, b string) string {
	as, bs := strings.Split(a, ","), strings.Split(b, ",")
	var out []string
	for i := range as {
		if i < len(bs) && as[i] != bs[i] {
			name, x, _ := strings.Cut(as[i], "=")
			_, y, _ := strings.Cut(bs[i], "=")
			x, _, _ = strings.Cut(x, ":")
			y, _, _ = strings.Cut(y, ":")
			out = append(out, fmt.Sprintf("%s %s→%s rows", name, x, y))
		}
	}
	return strings.Join(out, "; ")
}

// hostileVariant is one bad value of a field.
type hostileVariant struct {
	name  string
	apply func(m protoreflect.Message, fd protoreflect.FieldDescriptor)
}

func strVariants(base string, extra map[string]string) []hostileVariant {
	vals := map[string]string{
		"empty":         "",
		"long10k":       strings.Repeat("x", 10000),
		"long10kUpper":  strings.Repeat("A", 10000),
		"nulSuffix":     base + "\x00",
		"nulMid":        "A\x00B",
		"vietnamese":    "Chợ Đồng Xuân – Hà Nội",
		"vietnameseNFD": "Cho\u031b\u0323",
		"emoji":         "🍜💸🇻🇳",
		"padded":        "  " + base + "  ",
		"newline":       base + "\n",
		"zeroWidth":     "\u200b" + base,
		"control":       "\x07\x1b[31m",
		"-1":            "-1",
		"1e30":          "1e30",
		"20 nines":      "99999999999999999999",
		"0x10":          "0x10",
		"1_000":         "1_000",
		"sql":           "'; DROP TABLE payments; --",
		"likeWildcard":  "%_\\",
		"badUUID":       "0190a3b4-0000-7000-8000-00000000000Z",
		"zeroUUID":      "00000000-0000-0000-0000-000000000000",
		"noSuchUUID":    "0190a3b4-0000-7000-8000-000000000000",
	}
	if base != "" {
		if l := strings.ToLower(base); l != base {
			vals["lower"] = l
		}
		if u := strings.ToUpper(base); u != base {
			vals["upper"] = u
		}
		if looksUUID(base) {
			vals["uuidBraced"] = "{" + base + "}"
			vals["uuidNoDashes"] = strings.ReplaceAll(base, "-", "")
			vals["uuidUrn"] = "urn:uuid:" + base
			vals["uuidShort"] = base[:len(base)-1]
		}
	}
	for k, v := range extra {
		vals[k] = v
	}
	out := make([]hostileVariant, 0, len(vals))
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		out = append(out, hostileVariant{k, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			m.Set(fd, protoreflect.ValueOfString(v))
		}})
	}
	return out
}

func looksUUID(s string) bool { return len(s) == 36 && strings.Count(s, "-") == 4 }

var amountVariants = map[string]string{
	"zero": "0", "negZero": "-0", "plus": "+1000", "exp": "1e3", "fraction": "1000.5", "trailingDot": "1000.", "dotFirst": ".5",
	"comma": "1,000", "fullwidth": "１０００", "NaN": "NaN", "Inf": "Infinity", "leading0": "0001000", "int64max": "9223372036854775807",
	"int64max+1": "9223372036854775808", "digits10k": strings.Repeat("9", 10000), "spaceInside": "1 000", "decimalZero": "1000.0",
	"tinyFraction": "0.0000000000000000000001", "hugeExp": "1e999999999",
}

var dayVariants = map[string]string{
	"feb30": "2026-02-30", "year1": "0001-01-01", "year9999": "9999-12-31", "short": "26-01-01", "unpadded": "2026-1-1",
	"rfc3339": "2026-01-01T00:00:00Z", "slashes": "2026/01/01", "month13": "2026-13-01", "neg": "-2026-01-01",
}

func tsVariants() []hostileVariant {
	vals := []struct {
		name string
		ts   *timestamppb.Timestamp
	}{
		{"nanosNeg", &timestamppb.Timestamp{Seconds: time.Now().Unix(), Nanos: -1}},
		{"nanos1e9", &timestamppb.Timestamp{Seconds: time.Now().Unix(), Nanos: 1e9}},
		{"belowYear1", &timestamppb.Timestamp{Seconds: -62135596801}},
		// Go's zero time, which the server reads as unset.
		{"zeroTime", &timestamppb.Timestamp{Seconds: -62135596800}},
		{"epoch", &timestamppb.Timestamp{}},
		{"year1900", timestamppb.New(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))},
		{"plus100y", timestamppb.New(time.Now().AddDate(100, 0, 0))},
		{"year9999", &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999999999}},
		{"aboveYear9999", &timestamppb.Timestamp{Seconds: 253402300800}},
		{"int64max", &timestamppb.Timestamp{Seconds: math.MaxInt64}},
		{"int64min", &timestamppb.Timestamp{Seconds: math.MinInt64}},
	}
	out := make([]hostileVariant, 0, len(vals))
	for _, v := range vals {
		ts := v.ts
		out = append(out, hostileVariant{v.name, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			m.Set(fd, protoreflect.ValueOfMessage(proto.Clone(ts).ProtoReflect()))
		}})
	}
	return out
}

func durVariants() []hostileVariant {
	vals := []struct {
		name string
		d    *durationpb.Duration
	}{
		{"zero", &durationpb.Duration{}},
		{"negative", durationpb.New(-time.Hour)},
		{"mixedSigns", &durationpb.Duration{Seconds: 10, Nanos: -5}},
		{"nanos1e9", &durationpb.Duration{Nanos: 1e9}},
		{"aboveMax", &durationpb.Duration{Seconds: 315576000001}},
		{"int64max", &durationpb.Duration{Seconds: math.MaxInt64}},
		{"1ns", &durationpb.Duration{Nanos: 1}},
		{"300y", &durationpb.Duration{Seconds: 315576000000}},
	}
	out := make([]hostileVariant, 0, len(vals))
	for _, v := range vals {
		d := v.d
		out = append(out, hostileVariant{v.name, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			m.Set(fd, protoreflect.ValueOfMessage(proto.Clone(d).ProtoReflect()))
		}})
	}
	return out
}

func intVariants(fd protoreflect.FieldDescriptor) []hostileVariant {
	var vals map[string]int64
	if fd.Kind() == protoreflect.Int32Kind {
		vals = map[string]int64{"-1": -1, "0": 0, "1001": 1001, "int32max": math.MaxInt32, "int32min": math.MinInt32}
	} else {
		vals = map[string]int64{"-1": -1, "0": 0, "int64max": math.MaxInt64, "int64min": math.MinInt64, "1e12": 1e12}
	}
	var out []hostileVariant
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		out = append(out, hostileVariant{k, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			if fd.Kind() == protoreflect.Int32Kind {
				m.Set(fd, protoreflect.ValueOfInt32(int32(v)))
			} else {
				m.Set(fd, protoreflect.ValueOfInt64(v))
			}
		}})
	}
	return out
}

func enumVariants() []hostileVariant {
	var out []hostileVariant
	for _, v := range []int32{99, -1, 0} {
		out = append(out, hostileVariant{fmt.Sprint("enum", v), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			m.Set(fd, protoreflect.ValueOfEnum(protoreflect.EnumNumber(v)))
		}})
	}
	return out
}

func bytesVariants() []hostileVariant {
	vals := map[string][]byte{
		"empty": nil, "nul": []byte("\x00\x00\x00"), "invalidUTF8": {0xff, 0xfe, '\n', 0xc3, 0x28}, "garbage10k": []byte(strings.Repeat("x,", 5000)),
		"bom":        []byte("\ufeffref,amount,currency,booked_at,direction,channel,description\n"),
		"headerOnly": []byte("ref,amount,currency,booked_at,direction,channel,description\n"),
		"xmlBomb":    []byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Document>&lol2;</Document>`),
		"xmlDeep":    []byte(strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000)),
		"over10MiB":  []byte(strings.Repeat("y", 10<<20+1)),
	}
	var out []hostileVariant
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		out = append(out, hostileVariant{k, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			m.Set(fd, protoreflect.ValueOfBytes(v))
		}})
	}
	return out
}

func maskVariants() []hostileVariant {
	vals := map[string][]string{
		"nil": nil, "unknownPath": {"foo"}, "duplicate": {"display_name", "display_name"}, "prefixed": {"merchant.display_name"},
		"star": {"*"}, "emptyPath": {""}, "nulPath": {"name\x00"}, "upper": {"NAME"}, "code": {"code"}, "status": {"status"},
		"createTime": {"create_time"}, "nested": {"payout_account.bank_bin"}, "many": {"name", "province", "ward", "status", "stalls", "display_name", "owner_name", "phone", "payout_account", "fee_plan", "channels"},
	}
	var out []hostileVariant
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		v := vals[k]
		out = append(out, hostileVariant{"mask:" + k, func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			if v == nil {
				m.Clear(fd)
				return
			}
			m.Set(fd, protoreflect.ValueOfMessage((&fieldmaskpb.FieldMask{Paths: v}).ProtoReflect()))
		}})
	}
	return out
}

// mutation is one hostile value of one field of a request.
type mutation struct {
	path    string
	variant string
	apply   func(root protoreflect.Message)
}

// mutations walks a request and returns every hostile value of every field,
// one field at a time, recursing into set messages, list elements, and unset
// messages up to a depth.
func mutations(base proto.Message, extra func(path string, fd protoreflect.FieldDescriptor) map[string]string) []mutation {
	var out []mutation
	var walk func(prefix string, sample protoreflect.Message, get func(root protoreflect.Message) protoreflect.Message, depth int)
	walk = func(prefix string, sample protoreflect.Message, get func(root protoreflect.Message) protoreflect.Message, depth int) {
		fields := sample.Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			path := prefix + string(fd.Name())
			add := func(vs []hostileVariant) {
				for _, v := range vs {
					out = append(out, mutation{path, v.name, func(root protoreflect.Message) { v.apply(get(root), fd) }})
				}
			}
			switch {
			case fd.IsMap():
				// metadata: hostile keys and values, and too many pairs.
				for name, kv := range map[string][2]string{
					"nulKey": {"k\x00", "v"}, "nulValue": {"k", "v\x00"}, "emptyKey": {"", "v"}, "longKey": {strings.Repeat("k", 10000), "v"},
					"longValue": {"k", strings.Repeat("v", 10000)}, "emojiKey": {"🍜", "🍜"}, "vietnameseKey": {"ghi chú", "Chợ"},
				} {
					out = append(out, mutation{path, name, func(root protoreflect.Message) {
						mp := get(root).Mutable(fd).Map()
						mp.Set(protoreflect.ValueOfString(kv[0]).MapKey(), protoreflect.ValueOfString(kv[1]))
					}})
				}
				out = append(out, mutation{path, "1000pairs", func(root protoreflect.Message) {
					mp := get(root).Mutable(fd).Map()
					for j := range 1000 {
						mp.Set(protoreflect.ValueOfString(fmt.Sprint("k", j)).MapKey(), protoreflect.ValueOfString("v"))
					}
				}})
			case fd.IsList():
				out = append(out, mutation{path, "emptyList", func(root protoreflect.Message) { get(root).Clear(fd) }})
				switch fd.Kind() {
				case protoreflect.StringKind:
					for _, v := range strVariants("A-001", nil) {
						out = append(out, mutation{path, "one:" + v.name, func(root protoreflect.Message) {
							// Apply the variant to a scratch message to read the value.
							scratch := &pb.GetMarketRequest{}
							v.apply(scratch.ProtoReflect(), scratch.ProtoReflect().Descriptor().Fields().ByName("code"))
							l := get(root).Mutable(fd).List()
							l.Truncate(0)
							l.Append(protoreflect.ValueOfString(scratch.Code))
						}})
					}
					out = append(out, mutation{path, "10000elems", func(root protoreflect.Message) {
						l := get(root).Mutable(fd).List()
						for j := range 10000 {
							l.Append(protoreflect.ValueOfString(fmt.Sprintf("X-%d", j)))
						}
					}})
					out = append(out, mutation{path, "duplicate", func(root protoreflect.Message) {
						l := get(root).Mutable(fd).List()
						if l.Len() > 0 {
							l.Append(l.Get(0))
						} else {
							l.Append(protoreflect.ValueOfString("TN-TEST"))
							l.Append(protoreflect.ValueOfString("TN-TEST"))
						}
					}})
				case protoreflect.EnumKind:
					for _, n := range []int32{99, -1, 0} {
						out = append(out, mutation{path, fmt.Sprint("enum", n), func(root protoreflect.Message) {
							l := get(root).Mutable(fd).List()
							l.Truncate(0)
							l.Append(protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)))
						}})
					}
					out = append(out, mutation{path, "duplicate", func(root protoreflect.Message) {
						l := get(root).Mutable(fd).List()
						l.Truncate(0)
						l.Append(protoreflect.ValueOfEnum(1))
						l.Append(protoreflect.ValueOfEnum(1))
					}})
				case protoreflect.MessageKind:
					l := sample.Get(fd).List()
					for j := 0; j < l.Len() && j < 2; j++ {
						j := j
						walk(fmt.Sprintf("%s[%d].", path, j), l.Get(j).Message(), func(root protoreflect.Message) protoreflect.Message {
							return get(root).Mutable(fd).List().Get(j).Message()
						}, depth+1)
					}
					if l.Len() > 0 {
						out = append(out, mutation{path, "1001copies", func(root protoreflect.Message) {
							ml := get(root).Mutable(fd).List()
							first := ml.Get(0).Message().Interface()
							for ml.Len() < 1001 {
								ml.Append(protoreflect.ValueOfMessage(proto.Clone(first).ProtoReflect()))
							}
						}})
						out = append(out, mutation{path, "duplicateElem", func(root protoreflect.Message) {
							ml := get(root).Mutable(fd).List()
							ml.Append(protoreflect.ValueOfMessage(proto.Clone(ml.Get(0).Message().Interface()).ProtoReflect()))
						}})
					}
				}
			case fd.Kind() == protoreflect.StringKind:
				cur := sample.Get(fd).String()
				var ex map[string]string
				if extra != nil {
					ex = extra(path, fd)
				}
				add(strVariants(cur, ex))
			case fd.Kind() == protoreflect.BytesKind:
				add(bytesVariants())
			case fd.Kind() == protoreflect.EnumKind:
				add(enumVariants())
			case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Int64Kind:
				add(intVariants(fd))
			case fd.Kind() == protoreflect.BoolKind:
				if path == "follow" {
					continue
				}
				out = append(out, mutation{path, "toggle", func(root protoreflect.Message) {
					m := get(root)
					m.Set(fd, protoreflect.ValueOfBool(!m.Get(fd).Bool()))
				}})
			case fd.Kind() == protoreflect.MessageKind:
				switch fd.Message().FullName() {
				case "google.protobuf.Timestamp":
					add(tsVariants())
					out = append(out, mutation{path, "unset", func(root protoreflect.Message) { get(root).Clear(fd) }})
				case "google.protobuf.Duration":
					add(durVariants())
				case "google.protobuf.FieldMask":
					add(maskVariants())
				default:
					out = append(out, mutation{path, "unset", func(root protoreflect.Message) { get(root).Clear(fd) }})
					out = append(out, mutation{path, "emptyMessage", func(root protoreflect.Message) {
						m := get(root)
						m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
					}})
					if depth < 3 {
						var sub protoreflect.Message
						if sample.Has(fd) {
							sub = sample.Get(fd).Message()
						} else {
							sub = sample.NewField(fd).Message()
						}
						walk(path+".", sub, func(root protoreflect.Message) protoreflect.Message {
							return get(root).Mutable(fd).Message()
						}, depth+1)
					}
				}
			}
		}
	}
	walk("", base.ProtoReflect(), func(root protoreflect.Message) protoreflect.Message { return root }, 0)
	return out
}

// rawCodec sends pre-encoded requests as they are, so that what
// protobuf-go refuses to marshal (invalid UTF-8 in a string field) can
// still reach the server.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (rawCodec) Name() string                       { return "proto" }

var _ encoding.Codec = rawCodec{}

// Every RPC of every service, called by an admin (so that validation, not
// access, answers) with hostile values in every field, one at a time: no
// call is answered Internal or Unknown or panics, an InvalidArgument names
// a field, and a refused call writes nothing.
func TestHostileInputEveryRPC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	logs := watchServerLog(t, e)
	marks := newWriteMark(t, e)
	f := e.accessFixture(t)
	const a, b = "TN-TEST-0001", "TN-TEST-0002"
	admin := pb.NewAdminServiceClient(e.conn)

	// Spare merchants for the lifecycle and update calls, so that what
	// they accept does not stop the others.
	for _, code := range []string{"TN-TEST-0008", "TN-TEST-0009"} {
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{Code: code, Market: testMarket, Stalls: []string{"Z-" + code[len(code)-3:]},
			DisplayName: "Hàng phụ", OwnerName: "Phạm Văn Phụ", Phone: "0911111111", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR}, FeePlan: &pb.FeePlan{MinFee: "0"}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Suspense holding money, and NAPAS owing more, for ReclassifySuspense
	// and RecordProviderSettlement.
	if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: "hx-susp", Channel: pb.Channel_CHANNEL_VIETQR,
		Market: testMarket, Amount: "10000000", Bank: "vcb", BankRef: "VCB-HX-SUSP", AllowUnmatched: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("hx-owe-", i), Merchant: "TN-TEST-0008", Channel: pb.Channel_CHANNEL_VIETQR, Amount: "90000000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-HX-OWE-", i)})
	}

	// Real page tokens of every list, to send to the others.
	tokens := map[string]string{}
	// The paged reports pin their point of the ledger: their base requests
	// below continue the pages collected here, as of the same time.
	reportsAsOf := &pb.AsOf{Point: &pb.AsOf_Time{Time: timestamppb.Now()}}
	// A token of a list with filters continues its own query alone: the
	// base requests below are the ones their pages were collected with.
	reportsQuery := func(token string) *pb.ListReconciliationReportsRequest {
		return &pb.ListReconciliationReportsRequest{Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, PageSize: 1, PageToken: token}
	}
	marketsQuery := func(token string) *pb.ListMarketsRequest {
		return &pb.ListMarketsRequest{Province: "Thái Nguyên", Status: pb.MarketStatus_MARKET_STATUS_ACTIVE, PageSize: 1, PageToken: token}
	}
	merchantsQuery := func(token string) *pb.ListMerchantsRequest {
		return &pb.ListMerchantsRequest{Market: testMarket, Status: pb.MerchantStatus_MERCHANT_STATUS_ACTIVE, PageSize: 1, PageToken: token}
	}
	accountsQuery := func(token string) *pb.ListAccountsRequest {
		return &pb.ListAccountsRequest{Market: testMarket, CodePrefix: "merchant:", PageSize: 1, PageToken: token}
	}
	paymentsFrom, paymentsTo := timestamppb.New(time.Now().Add(-24*time.Hour)), timestamppb.New(time.Now().Add(time.Hour))
	paymentsQuery := func(token string) *pb.ListPaymentsRequest {
		return &pb.ListPaymentsRequest{Merchant: a, Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR,
			StartTime: proto.Clone(paymentsFrom).(*timestamppb.Timestamp), EndTime: proto.Clone(paymentsTo).(*timestamppb.Timestamp), PageSize: 1, PageToken: token}
	}
	entriesFrom, entriesTo := timestamppb.New(time.Now().Add(-time.Hour)), timestamppb.New(time.Now().Add(time.Hour))
	entriesQuery := func(token string) *pb.ListEntriesRequest {
		return &pb.ListEntriesRequest{Market: testMarket, AccountCode: "merchant:" + a + ":payable", Kind: "payment", FromSequence: 1, ToSequence: 100,
			StartTime: proto.Clone(entriesFrom).(*timestamppb.Timestamp), EndTime: proto.Clone(entriesTo).(*timestamppb.Timestamp), PageSize: 1, PageToken: token}
	}
	keep := func(name, tok string, err error) {
		if err != nil {
			t.Fatalf("page of %s: %v", name, err)
		}
		if tok != "" {
			tokens[name] = tok
		}
	}
	{
		r1, err := e.client.ListAccounts(ctx, accountsQuery(""))
		keep("accounts", r1.GetNextPageToken(), err)
		r2, err := e.client.ListEntries(ctx, entriesQuery(""))
		keep("entries", r2.GetNextPageToken(), err)
		r3, err := e.client.GetTrialBalance(ctx, &pb.GetTrialBalanceRequest{Market: testMarket, AsOf: reportsAsOf, PageSize: 2})
		keep("trial", r3.GetNextPageToken(), err)
		r4, err := e.merchants.ListMarkets(ctx, marketsQuery(""))
		keep("markets", r4.GetNextPageToken(), err)
		r5, err := e.merchants.ListMerchants(ctx, merchantsQuery(""))
		keep("merchants", r5.GetNextPageToken(), err)
		r6, err := e.payments.ListPayments(ctx, paymentsQuery(""))
		keep("payments", r6.GetNextPageToken(), err)
		r7, err := admin.ListCredentials(ctx, &pb.ListCredentialsRequest{PageSize: 1})
		keep("credentials", r7.GetNextPageToken(), err)
		r8, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{PageSize: 1})
		keep("audit", r8.GetNextPageToken(), err)
		r9, err := e.settle.GetMarketSettlement(ctx, &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today(), EndDay: today(), AsOf: reportsAsOf,
			PageSize: 1, OrderBy: pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE})
		keep("marketSettlement", r9.GetNextPageToken(), err)
		r10, err := e.settle.GetReconciliationReport(ctx, &pb.GetReconciliationReportRequest{Id: f.report.Id, PageSize: 1, IncludeMatched: true})
		keep("reconItems", r10.GetNextPageToken(), err)
		r11, err := e.settle.GetPayoutBatch(ctx, &pb.GetPayoutBatchRequest{Id: f.batch.Id, PageSize: 1})
		keep("batchLines", r11.GetNextPageToken(), err)
		r12, err := e.settle.ListReconciliationReports(ctx, reportsQuery(""))
		keep("reports", r12.GetNextPageToken(), err)
	}
	t.Logf("page tokens collected from: %v", func() []string {
		var k []string
		for n := range tokens {
			k = append(k, n)
		}
		sort.Strings(k)
		return k
	}())

	// Fresh targets, made before the call's snapshot.
	var seq int
	uniq := func() int { seq++; return seq }
	newPending := func() string {
		n := uniq()
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("hx-pend-", n), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "40000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_STALL}).Payment.Id
	}
	newConfirmed := func() string {
		n := uniq()
		return e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("hx-conf-", n), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "90000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-HX-CONF-", n)}).Payment.Id
	}
	newHold := func() string {
		n := uniq()
		r, err := e.client.PostEntry(ctx, &pb.PostEntryRequest{IdempotencyKey: fmt.Sprint("hx-hold-", n), Market: testMarket, Kind: "hold", Currency: "VND", Pending: true,
			Postings: []*pb.PostingInput{posting("hold:TN-TEST:a", debit, "100"), posting("hold:TN-TEST:b", credit, "100")}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Entry.Id
	}
	newCredential := func() string {
		c, _ := e.issue(t, access.IssueRequest{Name: fmt.Sprint("hx-", uniq()), Role: access.RoleAuditor})
		return c.CredentialID
	}
	// newBatch is an open batch with an open line, and its merchant.
	newBatch := func() (string, string) {
		n := uniq()
		code := fmt.Sprintf("TN-HXB-%04d", n)
		if _, err := e.merchants.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{Code: code, Market: testMarket, Stalls: []string{fmt.Sprintf("HXB-%d", n)},
			DisplayName: "Hàng lô", OwnerName: "Lê Văn Lô", Phone: "0911111111", Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR},
			PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011001234567", HolderName: "LE VAN LO"}}}); err != nil {
			t.Fatal(err)
		}
		e.record(t, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("hx-bp-", n), Merchant: code, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "20000",
			Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-HX-BP-", n)})
		if _, err := e.settle.RecordProviderSettlement(ctx, &pb.RecordProviderSettlementRequest{IdempotencyKey: fmt.Sprint("hx-bs-", n), Channel: pb.Channel_CHANNEL_VIETQR,
			Market: testMarket, Amount: "20000", Bank: "vcb", BankRef: fmt.Sprint("VCB-HX-BS-", n)}); err != nil {
			t.Fatal(err)
		}
		r, err := e.settle.CreatePayoutBatch(ctx, &pb.CreatePayoutBatchRequest{IdempotencyKey: fmt.Sprint("hx-batch-", n), Bank: "vcb", Market: testMarket, CutOff: timestamppb.Now(), PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range r.Lines {
			if l.Status == pb.PayoutLineStatus_PAYOUT_LINE_STATUS_OPEN && l.Merchant == code {
				return r.Batch.Id, l.Merchant
			}
		}
		t.Fatalf("batch %s has no open line: %v", r.Batch.Id, r.Lines)
		return "", ""
	}

	type rpc struct {
		method string
		write  bool
		build  func() proto.Message
	}
	key := func(p string) string { return fmt.Sprint("hx-", p, "-", uniq()) }
	rpcs := []rpc{
		// LedgerService
		{pb.LedgerService_CreateAccount_FullMethodName, true, func() proto.Message {
			return &pb.CreateAccountRequest{Code: fmt.Sprint("extra:hx:", uniq()), Type: pb.AccountType_ACCOUNT_TYPE_ASSET, Currency: "VND", Market: testMarket}
		}},
		{pb.LedgerService_GetAccount_FullMethodName, false, func() proto.Message { return &pb.GetAccountRequest{Code: "merchant:" + a + ":payable"} }},
		{pb.LedgerService_ListAccounts_FullMethodName, false, func() proto.Message {
			return accountsQuery(tokens["accounts"])
		}},
		{pb.LedgerService_GetBalance_FullMethodName, false, func() proto.Message {
			return &pb.GetBalanceRequest{AccountCode: "merchant:" + a + ":payable", AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 1}}}
		}},
		{pb.LedgerService_PostEntry_FullMethodName, true, func() proto.Message {
			return &pb.PostEntryRequest{IdempotencyKey: key("pe"), Market: testMarket, Kind: "adjustment", Currency: "VND", ExternalRef: key("ext"),
				Postings:  []*pb.PostingInput{posting("hold:TN-TEST:a", debit, "1"), posting("hold:TN-TEST:b", credit, "1")},
				OccurTime: timestamppb.Now(), Metadata: map[string]string{"note": "ok"}}
		}},
		{pb.LedgerService_PostPendingEntry_FullMethodName, true, func() proto.Message {
			return &pb.PostPendingEntryRequest{IdempotencyKey: key("pp"), PendingEntryId: newHold(), Kind: "release", ExternalRef: key("ext"),
				Postings:  []*pb.PostingInput{posting("hold:TN-TEST:a", debit, "50"), posting("hold:TN-TEST:b", credit, "50")},
				OccurTime: timestamppb.Now(), Metadata: map[string]string{"note": "ok"}}
		}},
		{pb.LedgerService_VoidPendingEntry_FullMethodName, true, func() proto.Message {
			return &pb.VoidPendingEntryRequest{IdempotencyKey: key("vp"), PendingEntryId: newHold(), Kind: "release", ExternalRef: key("ext"),
				OccurTime: timestamppb.Now(), Metadata: map[string]string{"note": "ok"}}
		}},
		{pb.LedgerService_GetEntry_FullMethodName, false, func() proto.Message { return &pb.GetEntryRequest{Id: f.entry.Id} }},
		{pb.LedgerService_ListEntries_FullMethodName, false, func() proto.Message {
			return entriesQuery(tokens["entries"])
		}},
		{pb.LedgerService_StreamEntries_FullMethodName, false, func() proto.Message {
			return &pb.StreamEntriesRequest{FromSequence: 1, Market: testMarket}
		}},
		{pb.LedgerService_GetTrialBalance_FullMethodName, false, func() proto.Message {
			return &pb.GetTrialBalanceRequest{Market: testMarket, AsOf: proto.Clone(reportsAsOf).(*pb.AsOf), PageSize: 2, PageToken: tokens["trial"]}
		}},
		{pb.LedgerService_VerifyJournal_FullMethodName, false, func() proto.Message {
			return &pb.VerifyJournalRequest{Market: testMarket, FromSequence: 1, ToSequence: 100}
		}},

		// MerchantService
		{pb.MerchantService_CreateMarket_FullMethodName, true, func() proto.Message {
			return &pb.CreateMarketRequest{Market: &pb.Market{Code: fmt.Sprint("HX-", uniq()), Name: "Chợ Mới", Province: "Thái Nguyên", Ward: "Phường Mới",
				Status: pb.MarketStatus_MARKET_STATUS_ACTIVE}}
		}},
		{pb.MerchantService_GetMarket_FullMethodName, false, func() proto.Message { return &pb.GetMarketRequest{Code: testMarket} }},
		{pb.MerchantService_ListMarkets_FullMethodName, false, func() proto.Message {
			return marketsQuery(tokens["markets"])
		}},
		{pb.MerchantService_UpdateMarket_FullMethodName, true, func() proto.Message {
			return &pb.UpdateMarketRequest{Market: &pb.Market{Code: "TN-OTHER", Name: "Chợ Khác", Province: "Thái Nguyên", Ward: "Phường Khác",
				Status: pb.MarketStatus_MARKET_STATUS_ACTIVE}, UpdateMask: mask("name", "province", "ward", "status")}
		}},
		{pb.MerchantService_CreateMerchant_FullMethodName, true, func() proto.Message {
			n := uniq()
			return &pb.CreateMerchantRequest{Merchant: &pb.Merchant{Code: fmt.Sprintf("TN-HX-%04d", n), Market: testMarket, Stalls: []string{fmt.Sprintf("HX-%d", n)},
				DisplayName: "Hàng mới", OwnerName: "Phạm Văn Mới", Phone: "0911111111", Status: pb.MerchantStatus_MERCHANT_STATUS_ACTIVE,
				PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011001234567", HolderName: "PHAM VAN MOI"},
				Channels:      []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO},
				FeePlan: &pb.FeePlan{MinFee: "500", Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: 50},
					{Channel: pb.Channel_CHANNEL_MOMO, BasisPoints: 150}}}}}
		}},
		{pb.MerchantService_GetMerchant_FullMethodName, false, func() proto.Message { return &pb.GetMerchantRequest{Code: a} }},
		{pb.MerchantService_ListMerchants_FullMethodName, false, func() proto.Message {
			return merchantsQuery(tokens["merchants"])
		}},
		{pb.MerchantService_UpdateMerchant_FullMethodName, true, func() proto.Message {
			return &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{Code: "TN-TEST-0008", Market: testMarket, Stalls: []string{"Z-008"},
				DisplayName: "Hàng phụ", OwnerName: "Phạm Văn Phụ", Phone: "0911111111",
				PayoutAccount: &pb.PayoutAccount{BankBin: "970436", AccountNumber: "0011001234567", HolderName: "PHAM VAN PHU"},
				Channels:      []pb.Channel{pb.Channel_CHANNEL_VIETQR},
				FeePlan:       &pb.FeePlan{MinFee: "100", Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_VIETQR, BasisPoints: 10}}}},
				UpdateMask: mask("stalls", "display_name", "owner_name", "phone", "payout_account", "fee_plan", "channels")}
		}},
		{pb.MerchantService_SuspendMerchant_FullMethodName, true, func() proto.Message {
			return &pb.SuspendMerchantRequest{Code: "TN-TEST-0009", Reason: "kiểm tra"}
		}},
		{pb.MerchantService_ReinstateMerchant_FullMethodName, true, func() proto.Message { return &pb.ReinstateMerchantRequest{Code: "TN-TEST-0009"} }},
		{pb.MerchantService_CloseMerchant_FullMethodName, true, func() proto.Message {
			return &pb.CloseMerchantRequest{Code: "TN-TEST-0009", Reason: "kiểm tra"}
		}},
		{pb.MerchantService_GetMerchantQr_FullMethodName, false, func() proto.Message { return &pb.GetMerchantQrRequest{Code: a} }},

		// PaymentService
		{pb.PaymentService_CreatePaymentRequest_FullMethodName, true, func() proto.Message {
			return &pb.CreatePaymentRequestRequest{IdempotencyKey: key("cpr"), Merchant: a, Amount: "25000", Purpose: "rau cai"}
		}},
		{pb.PaymentService_RecordPayment_FullMethodName, true, func() proto.Message {
			n := uniq()
			return &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("hx-rp-", n), Merchant: a, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "15000",
				Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-HX-RP-", n), OccurTime: timestamppb.Now()}
		}},
		{pb.PaymentService_RecordPayments_FullMethodName, true, func() proto.Message {
			n := uniq()
			return &pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{{IdempotencyKey: fmt.Sprint("hx-rps-", n), Merchant: a,
				Channel: pb.Channel_CHANNEL_VIETQR, Amount: "15000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-HX-RPS-", n),
				OccurTime: timestamppb.Now()}}}
		}},
		{pb.PaymentService_ConfirmPayment_FullMethodName, true, func() proto.Message {
			return &pb.ConfirmPaymentRequest{IdempotencyKey: key("cp"), PaymentId: newPending(), Amount: "30000", ProviderRef: key("FT-CP")}
		}},
		{pb.PaymentService_RejectPayment_FullMethodName, true, func() proto.Message {
			return &pb.RejectPaymentRequest{IdempotencyKey: key("rj"), PaymentId: newPending(), Reason: "không nhận được tiền"}
		}},
		{pb.PaymentService_RefundPayment_FullMethodName, true, func() proto.Message {
			return &pb.RefundPaymentRequest{IdempotencyKey: key("rf"), PaymentId: newConfirmed(), Amount: "1000", Reason: "trả lại"}
		}},
		{pb.PaymentService_GetPayment_FullMethodName, false, func() proto.Message { return &pb.GetPaymentRequest{Id: f.confirmedA.Id} }},
		{pb.PaymentService_ListPayments_FullMethodName, false, func() proto.Message {
			return paymentsQuery(tokens["payments"])
		}},

		// SettlementService
		{pb.SettlementService_GetMerchantSettlement_FullMethodName, false, func() proto.Message {
			return &pb.GetMerchantSettlementRequest{Merchant: a, StartDay: today(), EndDay: today(), AsOf: &pb.AsOf{Point: &pb.AsOf_Sequence{Sequence: 2}}}
		}},
		{pb.SettlementService_GetMarketSettlement_FullMethodName, false, func() proto.Message {
			return &pb.GetMarketSettlementRequest{Market: testMarket, StartDay: today(), EndDay: today(), AsOf: proto.Clone(reportsAsOf).(*pb.AsOf),
				PageSize: 1, PageToken: tokens["marketSettlement"], OrderBy: pb.MerchantSettlementOrder_MERCHANT_SETTLEMENT_ORDER_AMOUNT_DUE}
		}},
		{pb.SettlementService_RecordProviderSettlement_FullMethodName, true, func() proto.Message {
			return &pb.RecordProviderSettlementRequest{IdempotencyKey: key("ps"), Channel: pb.Channel_CHANNEL_VIETQR, Market: testMarket, Amount: "1000", Bank: "vcb", BankRef: key("VCB")}
		}},
		{pb.SettlementService_ReclassifySuspense_FullMethodName, true, func() proto.Message {
			return &pb.ReclassifySuspenseRequest{IdempotencyKey: key("rs"), Market: testMarket, Channel: pb.Channel_CHANNEL_VIETQR, Amount: "1000", Reason: "FT-HX late"}
		}},
		{pb.SettlementService_CreatePayoutBatch_FullMethodName, true, func() proto.Message {
			return &pb.CreatePayoutBatchRequest{IdempotencyKey: key("pb"), Bank: "vcb", Market: testMarket, CutOff: timestamppb.Now(), PageSize: 10}
		}},
		{pb.SettlementService_GetPayoutBatch_FullMethodName, false, func() proto.Message {
			return &pb.GetPayoutBatchRequest{Id: f.batch.Id, PageSize: 1, PageToken: tokens["batchLines"]}
		}},
		{pb.SettlementService_CompletePayoutBatch_FullMethodName, true, func() proto.Message {
			id, m := newBatch()
			return &pb.CompletePayoutBatchRequest{BatchId: id, Results: []*pb.PayoutResult{{Merchant: m, Status: pb.PayoutLineStatus_PAYOUT_LINE_STATUS_PAID,
				BankRef: key("VCB-OUT"), FailureReason: ""}}}
		}},
		{pb.SettlementService_ImportStatement_FullMethodName, true, func() proto.Message { return f.statement(key("FT-ST")) }},
		{pb.SettlementService_GetReconciliationReport_FullMethodName, false, func() proto.Message {
			return &pb.GetReconciliationReportRequest{Id: f.report.Id, PageSize: 1, PageToken: tokens["reconItems"], IncludeMatched: true}
		}},
		{pb.SettlementService_ListReconciliationReports_FullMethodName, false, func() proto.Message {
			return reportsQuery(tokens["reports"])
		}},

		// AdminService
		{pb.AdminService_IssueCredential_FullMethodName, true, func() proto.Message {
			return &pb.IssueCredentialRequest{Credential: &pb.Credential{Name: key("cred"), Role: pb.Role_ROLE_BANK, Provider: "napas", Bank: "vcb", Markets: []string{testMarket},
				ClientCertSha256: strings.Repeat("ab", 32)}, Ttl: durationpb.New(time.Hour)}
		}},
		{pb.AdminService_IssueCredential_FullMethodName, true, func() proto.Message {
			return &pb.IssueCredentialRequest{Credential: &pb.Credential{Name: key("cred"), Role: pb.Role_ROLE_MERCHANT, Merchant: a}}
		}},
		{pb.AdminService_ListCredentials_FullMethodName, false, func() proto.Message {
			return &pb.ListCredentialsRequest{PageSize: 1, PageToken: tokens["credentials"]}
		}},
		{pb.AdminService_RevokeCredential_FullMethodName, true, func() proto.Message { return &pb.RevokeCredentialRequest{Id: newCredential()} }},
		{pb.AdminService_ListAuditEvents_FullMethodName, false, func() proto.Message {
			// Without a token: the trail's, of every event, continues
			// another query.
			return &pb.ListAuditEventsRequest{CredentialId: f.spareCredential, DeniedOnly: true, PageSize: 1}
		}},
	}

	// Every RPC is in the table.
	covered := map[string]bool{}
	for _, r := range rpcs {
		covered[r.method] = true
	}
	for _, sd := range serviceDescs {
		for _, m := range sd.desc.Methods {
			if n := "/" + sd.desc.ServiceName + "/" + m.MethodName; !covered[n] {
				t.Errorf("no hostile inputs for %s", n)
			}
		}
		for _, m := range sd.desc.Streams {
			if n := "/" + sd.desc.ServiceName + "/" + m.StreamName; !covered[n] {
				t.Errorf("no hostile inputs for %s", n)
			}
		}
	}

	// Field-specific values on top of the generic ones.
	extra := func(path string, fd protoreflect.FieldDescriptor) map[string]string {
		leaf := string(fd.Name())
		ex := map[string]string{}
		switch {
		case leaf == "amount" || leaf == "min_fee":
			ex = amountVariants
		case strings.HasSuffix(leaf, "_day"):
			ex = dayVariants
		case leaf == "page_token":
			for n, tok := range tokens {
				ex["tokenOf:"+n] = tok
				if len(tok) > 4 {
					ex["truncated:"+n] = tok[:len(tok)-3]
					ex["flipped:"+n] = tok[:len(tok)/2] + string(rune('A'+(tok[len(tok)/2]+1)%26)) + tok[len(tok)/2+1:]
				}
			}
			ex["forged"] = "bm9wZQ"
			ex["base64json"] = "eyJzZXEiOi0xLCJpZCI6IicifQ"
			ex["b64padding"] = "AAAA===="
		}
		return ex
	}

	// mustRefuse names the hostile values a call must refuse though
	// accepting them would fail nothing at once: a timestamp set to Go's
	// zero time, which the server must not read as unset ("now", "no
	// bound"), and a credential that names no provider, market or merchant.
	outputOnly := map[string]bool{"create_time": true, "update_time": true, "expire_time": true, "revoke_time": true}
	mustRefuse := func(path, variant string, req proto.Message) bool {
		if variant == "zeroTime" {
			return !outputOnly[leafOf(path)]
		}
		if r, ok := req.(*pb.IssueCredentialRequest); ok {
			switch c := r.GetCredential(); {
			case path == "credential.provider" && c.GetRole() == pb.Role_ROLE_BANK:
				return true // no variant of "napas" names a provider
			case path == "credential.markets" && c.GetRole() == pb.Role_ROLE_BANK:
				// A list of one hostile value; "-1" and "20 nines" are
				// shaped like market codes.
				return strings.HasPrefix(variant, "one:") && variant != "one:-1" && variant != "one:20 nines"
			case path == "credential.merchant" && c.GetRole() == pb.Role_ROLE_MERCHANT:
				// Some are merchant codes CreateMerchant's variants made.
				_, err := e.merchants.GetMerchant(ctx, &pb.GetMerchantRequest{Code: c.GetMerchant()})
				return err != nil
			}
		}
		return false
	}

	type violation struct{ method, path, variant, what string }
	var violations []violation
	var accepted []string
	var unsendable, calls int
	isWrite := map[string]bool{}
	for _, r := range rpcs {
		isWrite[r.method] = r.write
	}

	check := func(method, path, variant string, req proto.Message) {
		calls++
		if _, err := proto.Marshal(req); err != nil {
			unsendable++
			return
		}
		before := marks.take(t)
		callCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		reply := replyForAny(method)
		var err error
		if method == pb.LedgerService_StreamEntries_FullMethodName {
			err = invoke(callCtx, e.conn, method, req)
		} else {
			err = e.conn.Invoke(callCtx, method, req, reply, grpc.MaxCallSendMsgSize(64<<20))
		}
		cancel()
		after := marks.take(t)
		st := status.Convert(err)
		code := st.Code()
		bad := func(what string) { violations = append(violations, violation{method, path, variant, what}) }
		for _, l := range logs.take() {
			bad("server log: " + trunc(l, 400))
		}
		switch code {
		case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
			bad(fmt.Sprintf("%v %q", code, trunc(st.Message(), 300)))
		case codes.InvalidArgument:
			if !namesField(st, path) {
				bad(fmt.Sprintf("InvalidArgument names no field: %q", trunc(st.Message(), 300)))
			}
		}
		refused := code != codes.OK
		if rr, ok := reply.(*pb.RecordPaymentsResponse); ok && code == codes.OK {
			allFailed := len(rr.Results) > 0
			for i, res := range rr.Results {
				if ie := res.GetError(); ie != nil {
					c := codes.Code(ie.Code)
					if c == codes.Internal || c == codes.Unknown {
						bad(fmt.Sprintf("item %d: %v %q", i, c, trunc(ie.Message, 300)))
					}
					if c == codes.InvalidArgument && !strings.Contains(ie.Message, leafOf(path)) && !strings.Contains(ie.Message, "payments") {
						bad(fmt.Sprintf("item %d InvalidArgument names no field: %q", i, trunc(ie.Message, 300)))
					}
				} else {
					allFailed = false
				}
			}
			refused = allFailed
		}
		if refused && path == "" {
			// Else every variant of it is refused for what the base
			// request already got wrong, and proves nothing.
			bad(fmt.Sprintf("the valid request is refused: %v %q", code, trunc(st.Message(), 300)))
		}
		if refused && before != after {
			bad(fmt.Sprintf("refused with %v %q but wrote: %s", code, trunc(st.Message(), 200), snapshotDiff(before, after)))
		}
		if !refused && path != "" && mustRefuse(path, variant, req) {
			bad("accepted; must be refused")
		}
		if !refused && isWrite[method] && path != "" {
			accepted = append(accepted, fmt.Sprintf("%s %s=%s", shortMethod(method), path, variant))
		}
	}

	for _, r := range rpcs {
		// The valid request itself goes through (or the table is wrong).
		baseReq := r.build()
		check(r.method, "", "valid", baseReq)
		for _, m := range mutations(baseReq, extra) {
			req := r.build()
			m.apply(req.ProtoReflect())
			check(r.method, m.path, m.variant, req)
		}
	}

	// Special shapes the walker does not make, sent raw: AsOf with both
	// points on the wire (the last one wins in protobuf), strings with
	// invalid UTF-8 that protobuf-go will not marshal, and a truncated
	// message. The last two do not decode: they are refused InvalidArgument,
	// saying why, and write nothing (grpc-go's own codec answered them
	// Internal, "grpc: failed to unmarshal", the server's fault).
	cat := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	str := func(num protowire.Number, v []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	ts, err := proto.Marshal(timestamppb.Now())
	if err != nil {
		t.Fatal(err)
	}
	asOfBoth := cat(varint(1, 1), str(2, ts))
	rawCases := []struct {
		name, method string
		body         []byte
		undecodable  bool // it does not decode
	}{
		{"GetBalance as_of both points", pb.LedgerService_GetBalance_FullMethodName, cat(str(1, []byte("merchant:"+a+":payable")), str(2, asOfBoth)), false},
		{"GetMarket invalid UTF-8 code", pb.MerchantService_GetMarket_FullMethodName, str(1, []byte{0xff}), true},
		{"GetMerchant invalid UTF-8 code", pb.MerchantService_GetMerchant_FullMethodName, str(1, []byte{'T', 'N', 0xc3, 0x28}), true},
		{"CreateMarket invalid UTF-8 name", pb.MerchantService_CreateMarket_FullMethodName, str(1, cat(str(1, []byte("HX-RAW")), str(2, []byte{0xff}), str(3, []byte("Thái Nguyên")))), true},
		{"PostEntry invalid UTF-8 metadata", pb.LedgerService_PostEntry_FullMethodName, cat(str(1, []byte("hx-raw-pe")), str(2, []byte(testMarket)), str(3, []byte("adjustment")), str(4, []byte("VND")),
			str(5, cat(str(1, []byte("hold:TN-TEST:a")), varint(2, 1), str(3, []byte("1")))),
			str(5, cat(str(1, []byte("hold:TN-TEST:b")), varint(2, 2), str(3, []byte("1")))),
			str(10, cat(str(1, []byte("k")), str(2, []byte{0xff})))), true},
		{"truncated message", pb.MerchantService_GetMarket_FullMethodName, []byte{0x0a, 0x10, 'T'}, true},
	}
	for _, rc := range rawCases {
		before := marks.take(t)
		err := e.conn.Invoke(ctx, rc.method, rc.body, replyForAny(rc.method), grpc.ForceCodec(rawCodec{}))
		after := marks.take(t)
		st := status.Convert(err)
		calls++
		bad := func(what string) { violations = append(violations, violation{rc.method, "raw", rc.name, what}) }
		for _, l := range logs.take() {
			bad("server log: " + trunc(l, 400))
		}
		c := st.Code()
		switch {
		case rc.undecodable && (c != codes.InvalidArgument || !strings.Contains(st.Message(), "the request is not a valid")):
			bad(fmt.Sprintf("a message that does not decode: %v %q, want InvalidArgument saying so", c, trunc(st.Message(), 300)))
		case c == codes.Internal || c == codes.Unknown:
			bad(fmt.Sprintf("%v %q", c, trunc(st.Message(), 300)))
		}
		if c != codes.OK && before != after {
			bad("refused but wrote: " + snapshotDiff(before, after))
		}
	}

	sort.Slice(violations, func(i, j int) bool {
		if violations[i].method != violations[j].method {
			return violations[i].method < violations[j].method
		}
		if violations[i].path != violations[j].path {
			return violations[i].path < violations[j].path
		}
		return violations[i].variant < violations[j].variant
	})
	t.Logf("%d calls (%d not sendable: protobuf-go refuses to marshal them), %d violations, %d hostile writes accepted", calls, unsendable, len(violations), len(accepted))
	for _, v := range violations {
		t.Errorf("%s %s=%s: %s", shortMethod(v.method), v.path, v.variant, v.what)
	}
	if testing.Verbose() {
		for _, s := range accepted {
			t.Logf("accepted: %s", s)
		}
	}
}

func shortMethod(m string) string { return m[strings.LastIndex(m, "/")+1:] }

func leafOf(path string) string {
	p := path
	if i := strings.LastIndex(p, "."); i >= 0 {
		p = p[i+1:]
	}
	if i := strings.Index(p, "["); i >= 0 {
		p = p[:i]
	}
	return p
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// namesField reports whether an InvalidArgument names a field: in its
// BadRequest details, or the field mutated (or its parent) in its message.
func namesField(st *status.Status, path string) bool {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() != "" {
					return true
				}
			}
		}
	}
	msg := st.Message()
	if path == "" {
		return false
	}
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		if len(part) > 2 && strings.Contains(msg, part) {
			return true
		}
	}
	return false
}

// replyForAny makes an empty reply of a method, unary or streaming.
func replyForAny(method string) proto.Message {
	if method == pb.LedgerService_StreamEntries_FullMethodName {
		return &pb.StreamEntriesResponse{}
	}
	return replyFor(method)
}

// A request of more values than any call accepts is refused before it is
// decoded, with or without a credential: an empty bulk item is 2 bytes of
// the message and a few hundred of memory decoded, so a request of the
// receive limit made of them took a gigabyte before anything checked it.
// The largest request a call accepts is decoded as before.
func TestRequestOfTooManyValuesIsRefusedUndecoded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	_, secret := e.issue(t, access.IssueRequest{Name: "VietQR bank", Role: access.RoleBank, Provider: "napas"})
	// 512 Ki empty items of RecordPaymentsRequest.payments (field 1): 1 MiB.
	req := bytes.Repeat([]byte{0x0a, 0x00}, 1<<19)
	for name, conn := range map[string]*grpc.ClientConn{"no credential": e.dial(t, ""), "a bank": e.dial(t, secret)} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := conn.Invoke(ctx, pb.PaymentService_RecordPayments_FullMethodName, req, &pb.RecordPaymentsResponse{}, grpc.ForceCodec(rawCodec{}))
		runtime.ReadMemStats(&after)
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "more than 10000 values") {
			t.Errorf("%s: got %v, want ResourceExhausted naming the limit", name, err)
		}
		// The client's copy, gRPC's buffers on both sides and the count.
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 8*uint64(len(req)) {
			t.Errorf("%s: a request of %d bytes allocated %d bytes, %d times its size", name, len(req), allocated, allocated/uint64(len(req)))
		}
	}

	// A bulk of the most items, each with its time, is decoded and answered
	// item by item (its merchant does not exist).
	bulk := &pb.RecordPaymentsRequest{}
	for i := range 1000 {
		bulk.Payments = append(bulk.Payments, &pb.RecordPaymentRequest{IdempotencyKey: fmt.Sprint("big-", i), Merchant: "TN-NONE-0001",
			Channel: pb.Channel_CHANNEL_VIETQR, Amount: "10000", Source: pb.PaymentSource_PAYMENT_SOURCE_BANK, ProviderRef: fmt.Sprint("FT-BIG-", i),
			OccurTime: timestamppb.Now()})
	}
	resp, err := pb.NewPaymentServiceClient(e.conn).RecordPayments(ctx, bulk)
	if err != nil || len(resp.Results) != 1000 || resp.Results[0].GetError().GetCode() != int32(codes.NotFound) {
		t.Fatalf("the largest bulk: %v, %v", err, resp.GetResults()[:min(1, len(resp.GetResults()))])
	}
}

// The bound on a request's values is also the bound on a credential's
// markets, the one list no call bounds itself: an IssueCredential holds
// the request, the credential and each market (and a ttl, when it has
// one), so a credential names at most 9,998 markets.
func TestCredentialMarketsAreBoundByTheRequestValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, ledgerOptions())
	issue := func(n int) error {
		markets := make([]string, n)
		for i := range markets {
			markets[i] = fmt.Sprintf("TN-M%05d", i)
		}
		_, err := pb.NewAdminServiceClient(e.conn).IssueCredential(ctx, &pb.IssueCredentialRequest{Credential: &pb.Credential{
			Name: fmt.Sprint("auditor of ", n, " markets"), Role: pb.Role_ROLE_AUDITOR, Markets: markets}})
		return err
	}
	if err := issue(api.MaxRequestValues - 2); err != nil {
		t.Errorf("a credential of %d markets: %v", api.MaxRequestValues-2, err)
	}
	if err := issue(api.MaxRequestValues - 1); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a credential of %d markets: got %v, want ResourceExhausted", api.MaxRequestValues-1, err)
	}
}
