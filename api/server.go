package api

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
	"github.com/choledger/choledger/internal/metrics"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
	"github.com/choledger/choledger/payment"
	"github.com/choledger/choledger/settlement"
)

// Services are the domain objects the server exposes.
type Services struct {
	// Credentials and Audit guard every call but health and reflection;
	// they are required.
	Credentials *access.Store
	Audit       *access.Audit
	Ledger      *ledger.Ledger
	// Merchants serves MerchantService when set.
	Merchants *merchant.Store
	// Payments serves PaymentService when set.
	Payments *payment.Service
	// Settlement serves SettlementService when set.
	Settlement *settlement.Service
	// RPCs, when set, counts every call that reaches the interceptors by
	// method and status, with its latency, for the metrics endpoint. gRPC
	// answers some before them, uncounted: a method no service has
	// (Unimplemented), and a message over the receive limit
	// (ResourceExhausted) or one that does not decode. A message of more
	// values than MaxRequestValues is counted.
	RPCs *metrics.RPCs
}

// Server is the gRPC server with its health service, so that shutdown can
// report NOT_SERVING before it stops taking calls.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server

	draining  chan struct{}
	drainOnce sync.Once
	reads     *readGate
}

// HeavyReads is how many heavy reads (VerifyJournal, the reports, statement
// imports, journal pages) are running and how many wait for their turn,
// for monitoring: at most half the database pool runs them at once.
func (s *Server) HeavyReads() (running, waiting int) {
	return len(s.reads.turns), int(s.reads.waiting.Load())
}

// Drain ends the calls that would never end by themselves: following
// StreamEntries, each with Unavailable naming the sequence to resume from,
// and health watches, each with Unavailable once told the status
// Health.Shutdown set; new ones are refused the same way. GracefulStop
// waits for every call in flight, so shutdown calls Drain after
// Health.Shutdown and before GracefulStop; calling it again does nothing.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// NewServer registers every service, the standard health service and server
// reflection (so grpcurl works without proto files).
func NewServer(svc Services, opts ...grpc.ServerOption) *Server {
	if svc.Credentials == nil || svc.Audit == nil {
		panic("api.NewServer: Credentials and Audit are required: no call goes unauthenticated")
	}
	auth := &authorizer{credentials: svc.Credentials, audit: svc.Audit,
		binder: &binder{ledger: svc.Ledger, merchants: svc.Merchants, payments: svc.Payments, settlement: svc.Settlement}}
	// The services share the credentials' pool; heavy reads take turns in
	// half of it.
	reads := newReadGate(svc.Credentials.Pool().Config().MaxConns)
	unary := []grpc.UnaryServerInterceptor{recoverUnary, logUnary, refuseUndecodedUnary, auth.unary, reads.unary}
	stream := []grpc.StreamServerInterceptor{recoverStream, logStream, refuseUndecodedStream, auth.stream}
	if svc.RPCs != nil {
		unary = append([]grpc.UnaryServerInterceptor{countUnary(svc.RPCs)}, unary...)
		stream = append([]grpc.StreamServerInterceptor{countStream(svc.RPCs)}, stream...)
	}
	opts = append(opts, grpc.ForceServerCodecV2(newBoundedCodec()), grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	s := grpc.NewServer(opts...)
	draining := make(chan struct{})
	pb.RegisterAdminServiceServer(s, &AdminServer{Credentials: svc.Credentials, Audit: svc.Audit, Merchants: svc.Merchants})
	pb.RegisterLedgerServiceServer(s, &LedgerServer{Ledger: svc.Ledger, draining: draining, reads: reads})
	if svc.Merchants != nil {
		pb.RegisterMerchantServiceServer(s, &MerchantServer{Merchants: svc.Merchants})
	}
	if svc.Payments != nil {
		pb.RegisterPaymentServiceServer(s, &PaymentServer{Payments: svc.Payments})
	}
	if svc.Settlement != nil {
		pb.RegisterSettlementServiceServer(s, &SettlementServer{Settlement: svc.Settlement})
	}
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, drainingHealth{Server: h, draining: draining})
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus(pb.LedgerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus(pb.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	if svc.Merchants != nil {
		h.SetServingStatus(pb.MerchantService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	}
	if svc.Payments != nil {
		h.SetServingStatus(pb.PaymentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	}
	if svc.Settlement != nil {
		h.SetServingStatus(pb.SettlementService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(s)
	return &Server{GRPC: s, Health: h, draining: draining, reads: reads}
}

// drainingHealth is gRPC's health service whose watches end at Drain: a
// balancer or monitor watching health holds a call that never ends by
// itself, for which GracefulStop waited until ledgerd's shutdown timeout,
// then cancelled every call still in flight.
type drainingHealth struct {
	*health.Server
	draining <-chan struct{}
}

func (h drainingHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.draining:
			cancel()
		case <-ctx.Done():
		}
	}()
	w := &watchStream{Health_WatchServer: stream, ctx: ctx, last: -1}
	err := h.Server.Watch(req, w)
	select {
	case <-h.draining:
	default:
		return err
	}
	if stream.Context().Err() != nil {
		return err
	}
	// The watch may have ended before it sent the status Health.Shutdown
	// set, NOT_SERVING, which tells the watcher to send its calls elsewhere.
	if res, cerr := h.Server.Check(stream.Context(), req); cerr == nil && res.Status != w.last {
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "server shutting down")
}

// watchStream is a health watch's stream, ended at Drain, that remembers
// the status it sent last.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx  context.Context
	last healthpb.HealthCheckResponse_ServingStatus
}

func (s *watchStream) Context() context.Context { return s.ctx }

func (s *watchStream) Send(res *healthpb.HealthCheckResponse) error {
	if err := s.Health_WatchServer.Send(res); err != nil {
		return err
	}
	s.last = res.Status
	return nil
}

// recoverUnary turns a panic in a handler into an Internal error for that
// call instead of a crash of the whole service.
func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; it has been logged")
		}
	}()
	return handler(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.ErrorContext(ss.Context(), "panic in stream handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; it has been logged")
		}
	}()
	return handler(srv, ss)
}

// countUnary and countStream count each call, outermost, so that a call
// refused before its handler, or one whose handler panicked, counts too.
func countUnary(rpcs *metrics.RPCs) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		rpcs.Observe(info.FullMethod, status.Code(err), time.Since(start))
		return resp, err
	}
}

func countStream(rpcs *metrics.RPCs) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		rpcs.Observe(info.FullMethod, status.Code(err), time.Since(start))
		return err
	}
}

// caller is filled in by the authorizer, which runs inside the logging
// interceptor, so that the log line of a call says who made it.
type caller struct{ credential, role string }

type callerKey struct{}

func noteCaller(ctx context.Context, credential, role string) {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		c.credential, c.role = credential, role
	}
}

func logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	who := &caller{}
	resp, err := handler(context.WithValue(ctx, callerKey{}, who), req)
	logCall(ctx, info.FullMethod, who, start, err)
	return resp, err
}

func logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	who := &caller{}
	err := handler(srv, &callerStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, who)})
	logCall(ss.Context(), info.FullMethod, who, start, err)
	return err
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

func logCall(ctx context.Context, method string, who *caller, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelDebug
	switch code {
	case codes.OK, codes.Canceled:
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	slog.Log(ctx, level, "rpc", "method", method, "code", code.String(), "credential", who.credential, "role", who.role,
		"duration", time.Since(start), "err", err)
}
