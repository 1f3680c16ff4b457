package api

import (
	"bytes"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// countValues counts a request's messages, map entries and repeated
// strings, at every depth; a packed list of numbers is one value.
func TestCountValues(t *testing.T) {
	for name, c := range map[string]struct {
		msg  proto.Message
		want int
	}{
		"an empty request": {&pb.RecordPaymentsRequest{}, 1},
		"three items, two with a time": {&pb.RecordPaymentsRequest{Payments: []*pb.RecordPaymentRequest{
			{Merchant: "A", OccurTime: timestamppb.Now()}, {Merchant: "B", OccurTime: timestamppb.Now()}, {Merchant: "C"},
		}}, 6},
		"a merchant with two stalls and one channel fee": {&pb.CreateMerchantRequest{Merchant: &pb.Merchant{
			Code: "TN-A-0001", Stalls: []string{"A-1", "A-2"}, Channels: []pb.Channel{pb.Channel_CHANNEL_VIETQR, pb.Channel_CHANNEL_MOMO},
			FeePlan: &pb.FeePlan{Fees: []*pb.ChannelFee{{Channel: pb.Channel_CHANNEL_MOMO, BasisPoints: 10}}},
		}}, 7},
		"an entry with two postings and two metadata pairs": {&pb.PostEntryRequest{
			Postings: []*pb.PostingInput{{AccountCode: "a"}, {AccountCode: "b"}}, Metadata: map[string]string{"x": "1", "y": "2"},
		}, 5},
	} {
		b, err := proto.Marshal(c.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := countValues(b, c.msg.ProtoReflect().Descriptor(), MaxRequestValues); got != c.want {
			t.Errorf("%s: %d values, want %d", name, got, c.want)
		}
	}
}

// A streaming call's request that boundedCodec did not decode is refused
// when the handler receives it, not handed over empty.
func TestStreamRequestOfTooManyValuesIsRefused(t *testing.T) {
	// No stream request has a list today, so the stream is fed a bulk's.
	wire := bytes.Repeat([]byte{0x0a, 0x00}, MaxRequestValues+1)
	ss := undecodedCheckingStream{recvStream{wire: wire}}
	err := ss.RecvMsg(&pb.RecordPaymentsRequest{})
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	ok := undecodedCheckingStream{recvStream{wire: wire[:20]}}
	req := &pb.RecordPaymentsRequest{}
	if err := ok.RecvMsg(req); err != nil || len(req.Payments) != 10 {
		t.Fatalf("a request of 10 items: %v, %d items", err, len(req.Payments))
	}
}

// recvStream is a server stream whose one request is wire, decoded by
// boundedCodec.
type recvStream struct {
	grpc.ServerStream
	wire []byte
}

func (s recvStream) RecvMsg(m any) error {
	return newBoundedCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(s.wire)}, m)
}
