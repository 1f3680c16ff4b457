package api

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
)

// authorizer authenticates every call but health checks and reflection,
// applies the policy table and the caller's binding, and records writes and
// denied calls in the audit trail.
type authorizer struct {
	credentials *access.Store
	audit       *access.Audit
	binder      *binder
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p access.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalOf is the caller of the call ctx belongs to.
func principalOf(ctx context.Context) (access.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(access.Principal)
	return p, ok
}

// clientKey namespaces a client's idempotency key by its principal, so that
// two clients using the same key never see each other's writes. It checks
// the length the API documents before the scope is added.
func clientKey(ctx context.Context, key string) (string, error) {
	if len(key) > 128 {
		return "", fieldError("idempotency_key", fmt.Errorf("at most 128 characters, got %d", len(key)))
	}
	p, ok := principalOf(ctx)
	if !ok || key == "" {
		return key, nil
	}
	return p.Scope() + "/" + key, nil
}

// open RPCs need no credential: load balancers and grpcurl must reach them.
func open(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

var errUnauthenticated = status.Error(codes.Unauthenticated, `a valid credential is required: send metadata "authorization: Bearer <secret>"`)

// authenticate returns the call's principal. Refused, the principal is the
// credential whose secret the call proved it holds, if it did (a revoked or
// expired one, or one bound to a certificate the call did not present), for
// the audit trail: a leaked secret's use is found under its credential.
func (a *authorizer) authenticate(ctx context.Context) (access.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) != 1 {
		return access.Principal{}, errUnauthenticated
	}
	// The scheme is case-insensitive (RFC 7235): some clients write
	// "bearer".
	scheme, secret, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return access.Principal{}, errUnauthenticated
	}
	p, err := a.credentials.Authenticate(ctx, strings.TrimSpace(secret))
	if errors.Is(err, access.ErrUnauthenticated) {
		return p, errUnauthenticated
	}
	if err != nil {
		return access.Principal{}, status.Error(codes.Unavailable, "cannot check credentials now; retry")
	}
	if p.CertSHA256 != "" && p.CertSHA256 != clientCertSHA256(ctx) {
		// The credential is bound to a client certificate the call did not
		// present.
		return p, errUnauthenticated
	}
	return p, nil
}

// clientCertSHA256 is the hex SHA-256 of the verified client certificate of
// the call's TLS connection, or "" if there is none or it is no longer
// valid.
func clientCertSHA256(ctx context.Context) string {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 || !anyChainValid(info.State.VerifiedChains, time.Now()) {
		return ""
	}
	return CertFingerprint(info.State.PeerCertificates[0])
}

// anyChainValid reports whether some verified chain of a client
// certificate is still within every one of its certificates' validity. The
// handshake checked it once, but a connection may stay open for days after:
// a credential bound to a certificate must end with it.
func anyChainValid(chains [][]*x509.Certificate, now time.Time) bool {
	for _, chain := range chains {
		if !slices.ContainsFunc(chain, func(c *x509.Certificate) bool { return now.Before(c.NotBefore) || now.After(c.NotAfter) }) {
			return true
		}
	}
	return false
}

// CertFingerprint is how credentials name a client certificate.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// authorize decides a call; it returns the context carrying the principal.
func (a *authorizer) authorize(ctx context.Context, method string, req any) (context.Context, rule, string, error) {
	p, err := a.authenticate(ctx)
	noteCaller(ctx, p.CredentialID, string(p.Role))
	if err != nil {
		a.record(ctx, p, method, "", err, false)
		return ctx, rule{}, "", err
	}
	r, ok := policy[method]
	target := ""
	// The binder and the handler read the same merchants: once is enough.
	ctx = payment.WithMemo(merchant.WithMemo(ctx))
	if ok && roleIn(p.Role, r.roles) {
		target, err = a.binder.bind(ctx, p, req)
	} else {
		err = errDenied
	}
	if err != nil {
		if errors.Is(err, errDenied) {
			err = status.Error(codes.PermissionDenied, errDenied.Error())
		} else {
			err = toStatus(ctx, err)
		}
		a.record(ctx, p, method, target, err, false)
		return ctx, r, target, err
	}
	return withPrincipal(ctx, p), r, target, nil
}

func roleIn(role access.Role, roles []access.Role) bool {
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

// record writes a call's event. A write answered as the replay of an
// earlier one with its key is not a second write: its event says so, or
// the trail would hold two writes for the one the ledger holds.
func (a *authorizer) record(ctx context.Context, p access.Principal, method, target string, err error, replayed bool) {
	st := status.Convert(err)
	msg := st.Message()
	if replayed {
		msg = "replayed: answered with what its idempotency key recorded before"
	}
	a.audit.Record(access.Event{
		CredentialID: p.CredentialID, Role: p.Role, Method: method, Target: target,
		Code: st.Code().String(), Message: msg,
	})
}

// replayed reports whether a write's response is the replay of an earlier
// write.
func replayed(resp any) bool {
	r, ok := resp.(interface{ GetReplayed() bool })
	return ok && r.GetReplayed()
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if open(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, r, target, err := a.authorize(ctx, info.FullMethod, req)
	if err != nil {
		return nil, err
	}
	resp, err := handler(ctx, req)
	if r.write {
		p, _ := principalOf(ctx)
		if items := bulkItems(req, resp, err); items != nil {
			for _, it := range items {
				a.record(ctx, p, info.FullMethod, it.target, it.err, it.replayed)
			}
		} else {
			a.record(ctx, p, info.FullMethod, target, err, replayed(resp))
		}
	}
	return resp, err
}

// itemOutcome is what one item of a bulk write did: what it named, its
// error, nil for a write, and whether it was a replay.
type itemOutcome struct {
	target   string
	err      error
	replayed bool
}

// bulkItems returns the outcome of each item of a bulk write the handler
// answered, as its response tells the client, or nil for any other call.
// Each item is a write of its own, recorded as such: the call's OK says
// nothing of its items, every one of which may have been refused. A bulk
// call refused whole (a bad request, a denied item) is one event.
func bulkItems(req, resp any, err error) []itemOutcome {
	r, ok := req.(*pb.RecordPaymentsRequest)
	out, _ := resp.(*pb.RecordPaymentsResponse)
	results := out.GetResults()
	if !ok || err != nil || len(results) != len(r.GetPayments()) {
		return nil
	}
	items := make([]itemOutcome, len(results))
	for i, res := range results {
		// The payment written, or the merchant the item named.
		items[i].target = r.GetPayments()[i].GetMerchant()
		if id := res.GetPayment().GetId(); id != "" {
			items[i].target = id
		}
		if e := res.GetError(); e != nil {
			items[i].err = status.Error(codes.Code(e.GetCode()), e.GetMessage())
		}
		items[i].replayed = res.GetReplayed()
	}
	return items
}

// stream authorizes a server-streaming call when its request arrives.
func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if open(info.FullMethod) {
		return handler(srv, ss)
	}
	return handler(srv, &authorizedStream{ServerStream: ss, a: a, method: info.FullMethod})
}

type authorizedStream struct {
	grpc.ServerStream
	a      *authorizer
	method string
	ctx    context.Context
	// When the stream's credential was last found still valid.
	checked time.Time
}

// recheckEvery bounds how long a stream that stays open (a following
// StreamEntries) goes on sending after its credential is revoked or
// expires: before a message is sent, the credential is checked again if it
// was last checked longer ago than this.
const recheckEvery = time.Second

func (s *authorizedStream) Context() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return s.ServerStream.Context()
}

func (s *authorizedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	ctx, _, _, err := s.a.authorize(s.ServerStream.Context(), s.method, m)
	if err != nil {
		return err
	}
	s.ctx, s.checked = ctx, time.Now()
	return nil
}

// SendMsg sends only while the stream's credential is still valid: a
// revocation or an expiry ends an open stream too, within recheckEvery,
// with Unauthenticated, recorded in the audit trail.
func (s *authorizedStream) SendMsg(m any) error {
	if s.ctx != nil && time.Since(s.checked) >= recheckEvery {
		if _, err := s.a.authenticate(s.ServerStream.Context()); err != nil {
			caller, _ := principalOf(s.ctx)
			s.a.record(s.ctx, caller, s.method, "", err, false)
			return err
		}
		s.checked = time.Now()
	}
	return s.ServerStream.SendMsg(m)
}
