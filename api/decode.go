package api

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// MaxRequestValues bounds the values a request may hold: its messages (a
// bulk call's items, postings, results, metadata pairs) and the elements of
// its repeated strings, at every depth (a packed list of numbers, which
// decodes to a few bytes an element, is one). gRPC decodes a request before any
// interceptor sees it, credential check included, and an empty item takes
// 2 bytes of the message and a few hundred of memory decoded: a request of
// the receive limit (MaxRecvMsgBytes) made of them took a gigabyte. The
// largest requests any RPC bounds, a RecordPayments of 1,000 items with
// their times or a CompletePayoutBatch of 1,000 results, hold about 2,000;
// so a credential is bound to at most 9,998 markets, its request and
// itself being two values, and 9,997 with a ttl (one unbound covers them
// all).
const MaxRequestValues = 10_000

// boundedCodec decodes requests as gRPC's proto codec does, once it has
// counted their values on the wire. One holding more than MaxRequestValues
// is not decoded, and is answered ResourceExhausted by refuseUndecoded,
// an interceptor before the credential check; one that does not decode
// (invalid UTF-8 in a string, a truncated message) is answered
// InvalidArgument there. A codec's
// own error would reach the client as Internal ("grpc: failed to
// unmarshal"), the server's fault, for what is the client's.
type boundedCodec struct{ encoding.CodecV2 }

func newBoundedCodec() boundedCodec {
	return boundedCodec{encoding.GetCodecV2(grpcproto.Name)}
}

// The mark boundedCodec leaves on a request it did not decode is an
// unknown field of the largest field number there is, which no message of
// ours uses: why, after a byte that says which of these it is.
const (
	markOversized = 'R'
	markMalformed = 'I'
)

func markUndecoded(m proto.Message, kind byte, why string) {
	proto.Reset(m)
	b := protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.BytesType)
	m.ProtoReflect().SetUnknown(protowire.AppendString(b, string(kind)+why))
}

func (c boundedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if countValues(buf.ReadOnlyData(), m.ProtoReflect().Descriptor(), MaxRequestValues) > MaxRequestValues {
		markUndecoded(m, markOversized, fmt.Sprintf("the request holds more than %d values (items, postings, results, metadata pairs, list elements): more than any call accepts", MaxRequestValues))
		return nil
	}
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		markUndecoded(m, markMalformed, fmt.Sprintf("the request is not a valid %s: %v", m.ProtoReflect().Descriptor().FullName(), err))
	}
	return nil
}

// countValues counts b, an encoded message of type md, and the messages and
// repeated strings it holds, stopping once the count passes limit. What
// does not parse is left for proto.Unmarshal to refuse.
func countValues(b []byte, md protoreflect.MessageDescriptor, limit int) int {
	n := 1
	for len(b) > 0 && n <= limit {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return n
		}
		b = b[l:]
		if typ != protowire.BytesType {
			if l = protowire.ConsumeFieldValue(num, typ, b); l < 0 {
				return n
			}
			b = b[l:]
			continue
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return n
		}
		b = b[l:]
		switch fd := md.Fields().ByNumber(num); {
		case fd == nil:
		case fd.Message() != nil: // maps' entries too
			n += countValues(v, fd.Message(), limit-n)
		case fd.IsList():
			n++
		}
	}
	return n
}

// refuseUndecoded answers a request boundedCodec did not decode.
func refuseUndecoded(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	raw := m.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(raw)
	if n < 0 || num != protowire.MaxValidNumber || typ != protowire.BytesType {
		return nil
	}
	why, l := protowire.ConsumeString(raw[n:])
	if l < 0 || n+l != len(raw) || why == "" {
		return nil
	}
	switch why[0] {
	case markOversized:
		return status.Error(codes.ResourceExhausted, why[1:])
	case markMalformed:
		return status.Error(codes.InvalidArgument, why[1:])
	}
	return nil
}

func refuseUndecodedUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := refuseUndecoded(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func refuseUndecodedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, undecodedCheckingStream{ss})
}

// undecodedCheckingStream answers a stream's request boundedCodec did not
// decode: a server-streaming handler receives it itself.
type undecodedCheckingStream struct{ grpc.ServerStream }

func (s undecodedCheckingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return refuseUndecoded(m)
}
