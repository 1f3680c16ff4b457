package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The settlement scenario reads settlement reports, which come from daily
// rollups rather than raw postings. SettlementService is being built while
// this bench is written, so the bench does not compile against its
// generated code: it asks the server's reflection service for the
// service's descriptor, picks its merchant report RPC and fills the
// request by field name. A server without the service, or whose RPC
// answers Unimplemented, is skipped, not failed.

const settlementService = "choledger.v1.SettlementService"

// settlementRPC is the report RPC the scenario calls.
type settlementRPC struct {
	name    string // e.g. "GetMerchantSettlement"
	method  string // full method name
	in, out protoreflect.MessageDescriptor
}

// findSettlement returns the RPC to call, or why there is none.
func (b *bench) findSettlement(ctx context.Context) (*settlementRPC, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := grpc_reflection_v1.NewServerReflectionClient(b.conns[0]).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("server reflection: %w", err)
	}
	defer stream.CloseSend() //nolint:errcheck // the stream ends with ctx
	ask := func(req *grpc_reflection_v1.ServerReflectionRequest) (*grpc_reflection_v1.ServerReflectionResponse, error) {
		if err := stream.Send(req); err != nil {
			return nil, err
		}
		return stream.Recv()
	}
	resp, err := ask(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, "", fmt.Errorf("server reflection: list services: %w", err)
	}
	found := false
	for _, s := range resp.GetListServicesResponse().GetService() {
		found = found || s.GetName() == settlementService
	}
	if !found {
		return nil, settlementService + " is not served by this ledgerd", nil
	}
	resp, err = ask(&grpc_reflection_v1.ServerReflectionRequest{MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: settlementService}})
	if err != nil {
		return nil, "", fmt.Errorf("server reflection: %s: %w", settlementService, err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, "", fmt.Errorf("server reflection: %s: %s", settlementService, e.GetErrorMessage())
	}
	files, err := buildFiles(resp.GetFileDescriptorResponse().GetFileDescriptorProto())
	if err != nil {
		return nil, "", err
	}
	d, err := files.FindDescriptorByName(settlementService)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", settlementService, err)
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, "", fmt.Errorf("%s is not a service", settlementService)
	}
	m := pickReport(svc)
	if m == nil {
		return nil, settlementService + " has no unary Get...Settlement RPC to read", nil
	}
	return &settlementRPC{
		name: string(m.Name()), method: "/" + settlementService + "/" + string(m.Name()),
		in: m.Input(), out: m.Output(),
	}, "", nil
}

// pickReport prefers the merchant report (the one a stall app and the
// auditors call most), then any Get...Settlement, then any unary Get.
func pickReport(svc protoreflect.ServiceDescriptor) protoreflect.MethodDescriptor {
	methods := svc.Methods()
	var best protoreflect.MethodDescriptor
	bestScore := 0
	for i := range methods.Len() {
		m := methods.Get(i)
		if m.IsStreamingClient() || m.IsStreamingServer() {
			continue
		}
		name := string(m.Name())
		score := 0
		switch {
		case strings.HasPrefix(name, "Get") && strings.Contains(name, "Merchant") && strings.Contains(name, "Settlement"):
			score = 3
		case strings.HasPrefix(name, "Get") && strings.Contains(name, "Settlement"):
			score = 2
		case strings.HasPrefix(name, "Get"):
			score = 1
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}

// buildFiles turns the descriptors reflection sent into a registry,
// resolving imports the bench already links (the other choledger protos,
// well-known types) from the global registry.
func buildFiles(raw [][]byte) (resolver, error) {
	var fdps []*descriptorpb.FileDescriptorProto
	for _, b := range raw {
		fdp := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fdp); err != nil {
			return resolver{}, fmt.Errorf("server reflection: descriptor: %w", err)
		}
		fdps = append(fdps, fdp)
	}
	local := &protoregistry.Files{}
	r := resolver{local}
	for len(fdps) > 0 {
		var later []*descriptorpb.FileDescriptorProto
		var lastErr error
		for _, fdp := range fdps {
			if _, err := r.FindFileByPath(fdp.GetName()); err == nil {
				continue // linked into the bench already
			}
			fd, err := protodesc.NewFile(fdp, r)
			if err != nil {
				later, lastErr = append(later, fdp), err
				continue
			}
			if err := local.RegisterFile(fd); err != nil {
				return resolver{}, err
			}
		}
		if len(later) == len(fdps) {
			return resolver{}, fmt.Errorf("server reflection: cannot build descriptors: %w", lastErr)
		}
		fdps = later
	}
	return r, nil
}

// resolver looks in the files reflection sent, then in the bench's own.
type resolver struct{ *protoregistry.Files }

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.Files.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.Files.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return protoregistry.GlobalFiles.FindDescriptorByName(name)
}

// ict is Asia/Ho_Chi_Minh: UTC+7, no daylight saving. Settlement days are
// its calendar days.
var ict = time.FixedZone("ICT", 7*3600)

// request fills the report request for one merchant and today, by field
// name; fields it does not know are left unset.
func (s *settlementRPC) request(m stall, now time.Time) *dynamicpb.Message {
	req := dynamicpb.NewMessage(s.in)
	today := now.In(ict).Format(time.DateOnly)
	marketReport := strings.Contains(s.name, "Market")
	fields := s.in.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.Kind() != protoreflect.StringKind || f.IsList() {
			continue
		}
		var v string
		switch string(f.Name()) {
		case "merchant", "merchant_code":
			v = m.code
		case "market", "market_code":
			v = m.market
		case "code":
			v = m.code
			if marketReport {
				v = m.market
			}
		case "start_day", "end_day", "day", "date", "business_day":
			v = today
		case "provider":
			v = "napas"
		case "currency":
			v = "VND"
		default:
			continue
		}
		req.Set(f, protoreflect.ValueOfString(v))
	}
	return req
}

// probeSettlement makes one call; a server that does not implement the RPC
// yet, or whose request the bench cannot form, skips the scenario.
func (b *bench) probeSettlement(ctx context.Context, s *settlementRPC) (string, error) {
	ctx, cancel := context.WithTimeout(b.auditor.ctx(ctx), 30*time.Second)
	defer cancel()
	err := b.conns[0].Invoke(ctx, s.method, s.request(b.hot, time.Now()), dynamicpb.NewMessage(s.out))
	switch status.Code(err) {
	case codes.OK:
		return "", nil
	case codes.Unimplemented, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied:
		// Not implemented yet, not in the access policy yet, or a request
		// shape the bench does not know.
		st := status.Convert(err)
		return fmt.Sprintf("%s answers the auditor %s (%s)", s.name, st.Code(), st.Message()), nil
	}
	return "", errors.Join(fmt.Errorf("%s: probe call", s.name), err)
}

// opSettlement reads one merchant's settlement for today, as the auditor.
func opSettlement(w *worker) {
	s := w.b.settlement
	m := w.b.merchants.pick(w.rng)
	req, resp := s.request(m, time.Now()), dynamicpb.NewMessage(s.out)
	err := w.call(s.name, &w.b.auditor, func(ctx context.Context) error {
		return w.conn.Invoke(ctx, s.method, req, resp)
	})
	if err == nil {
		w.done(1, 0)
	}
}
