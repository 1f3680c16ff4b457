package api_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// An auditor following the journal is a call that never ends by itself.
// Shut down as ledgerd does (NOT_SERVING, Drain, GracefulStop), it ends
// Unavailable naming the sequence to resume from, and GracefulStop
// finishes, rather than waiting out ledgerd's shutdown timeout and then
// cancelling every call in flight. A stream begun while draining is refused
// the same way.
func TestDrainEndsFollowingStream(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, ledgerOptions())
	e.marketAccounts(t, "M1")
	entries := e.postTransfers(t, "M1", 3)
	_, secret, err := e.creds.Issue(ctx, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	auditor := pb.NewLedgerServiceClient(e.dial(t, secret))
	stream, err := auditor.StreamEntries(ctx, &pb.StreamEntriesRequest{FromSequence: entries[1].Sequence, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range entries[1:] {
		msg, err := stream.Recv()
		if err != nil || msg.Entry.Sequence != want.Sequence {
			t.Fatalf("stream: got %v, %v; want sequence %d", msg, err, want.Sequence)
		}
	}
	// The follower has caught up and waits for new entries.
	streamErr := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		streamErr <- err
	}()

	e.srv.Health.Shutdown()
	e.srv.Drain()
	select {
	case err := <-streamErr:
		checkShuttingDown(t, err, entries[2].Sequence+1)
	case <-time.After(5 * time.Second):
		t.Fatal("following stream still open 5s after Drain")
	}

	late, err := auditor.StreamEntries(ctx, &pb.StreamEntriesRequest{FromSequence: entries[0].Sequence, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = late.Recv()
	checkShuttingDown(t, err, entries[0].Sequence)

	done := make(chan struct{})
	go func() { e.srv.GRPC.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("GracefulStop still waiting after 5s")
	}
}

// A balancer or monitor watching health holds a call that never ends by
// itself either. Shut down as ledgerd does, the watch is told NOT_SERVING,
// then ends Unavailable, and GracefulStop finishes, rather than waiting out
// ledgerd's shutdown timeout and then cancelling every call in flight.
func TestDrainEndsHealthWatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, ledgerOptions())
	watch, err := healthpb.NewHealthClient(e.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := watch.Recv(); err != nil || msg.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: got %v, %v; want SERVING", msg, err)
	}
	watched := make(chan []string, 1)
	go func() {
		var got []string
		for {
			msg, err := watch.Recv()
			if err != nil {
				watched <- append(got, status.Code(err).String())
				return
			}
			got = append(got, msg.Status.String())
		}
	}()

	e.srv.Health.Shutdown()
	e.srv.Drain()
	select {
	case got := <-watched:
		if want := []string{"NOT_SERVING", "Unavailable"}; !slices.Equal(got, want) {
			t.Errorf("watch got %v; want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("health watch still open 5s after Drain")
	}

	done := make(chan struct{})
	go func() { e.srv.GRPC.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("GracefulStop still waiting after 5s")
	}
}

func checkShuttingDown(t *testing.T, err error, resume int64) {
	t.Helper()
	want := fmt.Sprintf("server shutting down; resume from sequence %d", resume)
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != want {
		t.Errorf("stream ended with %v; want Unavailable %q", err, want)
	}
}
