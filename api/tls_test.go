package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/api"
	pb "github.com/choledger/choledger/gen/choledger/v1"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and two client
// certificates, written as PEM files.
type testPKI struct {
	dir              string
	ca               *x509.Certificate
	caKey            *ecdsa.PrivateKey
	pool             *x509.CertPool
	clientA, clientB tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	var caDER []byte
	p.caKey, caDER = p.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "choledger test CA"}, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}, nil, nil)
	p.ca, _ = x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	p.write(t, "ca.pem", "CERTIFICATE", caDER)
	serverKey, serverDER := p.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "ledgerd"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, p.ca, p.caKey)
	p.write(t, "server.pem", "CERTIFICATE", serverDER)
	keyDER, _ := x509.MarshalECPrivateKey(serverKey)
	p.write(t, "server-key.pem", "EC PRIVATE KEY", keyDER)
	p.clientA = p.client(t, "bank A")
	p.clientB = p.client(t, "bank B")
	return p
}

func (p *testPKI) sign(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func (p *testPKI) client(t *testing.T, name string) tls.Certificate {
	key, der := p.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.ca, p.caKey)
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (p *testPKI) write(t *testing.T, name, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (p *testPKI) file(name string) string { return filepath.Join(p.dir, name) }

// dialTLS connects over TLS, presenting cert when it is not nil.
func (e *env) dialTLS(t *testing.T, p *testPKI, cert *tls.Certificate, secret string) *grpc.ClientConn {
	t.Helper()
	tc := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(tlsBearer(secret)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type tlsBearer string

func (b tlsBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (tlsBearer) RequireTransportSecurity() bool { return true }

func TestServesOverTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	creds, err := api.ServerTLS(p.file("server.pem"), p.file("server-key.pem"), "")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, ledgerOptions(), grpc.Creds(creds))
	_, secret := e.issue(t, access.IssueRequest{Name: "auditor", Role: access.RoleAuditor})
	if _, err := pb.NewMerchantServiceClient(e.dialTLS(t, p, nil, secret)).ListMarkets(context.Background(), &pb.ListMarketsRequest{}); err != nil {
		t.Fatalf("call over TLS: %v", err)
	}
	// A plaintext client cannot talk to a TLS server.
	if _, err := pb.NewMerchantServiceClient(e.dial(t, secret)).ListMarkets(context.Background(), &pb.ListMarketsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call to a TLS server: %v", err)
	}
}

func TestServesOverMutualTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPKI(t)
	creds, err := api.ServerTLS(p.file("server.pem"), p.file("server-key.pem"), p.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, ledgerOptions(), grpc.Creds(creds))
	// A credential bound to client certificate A.
	_, secret := e.issue(t, access.IssueRequest{Name: "bank A", Role: access.RoleAuditor, CertSHA256: api.CertFingerprint(p.clientA.Leaf)})

	if _, err := pb.NewMerchantServiceClient(e.dialTLS(t, p, &p.clientA, secret)).ListMarkets(ctx, &pb.ListMarketsRequest{}); err != nil {
		t.Fatalf("with its certificate: %v", err)
	}
	if _, err := pb.NewMerchantServiceClient(e.dialTLS(t, p, &p.clientB, secret)).ListMarkets(ctx, &pb.ListMarketsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the secret with another certificate: %v, want Unauthenticated", err)
	}
	if _, err := pb.NewMerchantServiceClient(e.dialTLS(t, p, nil, secret)).ListMarkets(ctx, &pb.ListMarketsRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("without a client certificate: %v, want the handshake refused", err)
	}
}

// A connection outlives the handshake that verified its client
// certificate: once the certificate expires, a credential bound to it is
// refused over that connection too, as over a new one.
func TestCertificateBoundCredentialEndsWithItsCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPKI(t)
	creds, err := api.ServerTLS(p.file("server.pem"), p.file("server-key.pem"), p.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, ledgerOptions(), grpc.Creds(creds))
	// A certificate valid for three more seconds (a certificate's times
	// are whole seconds).
	notAfter := time.Now().Add(3 * time.Second).Truncate(time.Second)
	key, der := p.sign(t, &x509.Certificate{Subject: pkix.Name{CommonName: "bank A"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.ca, p.caKey)
	leaf, _ := x509.ParseCertificate(der)
	leaf.NotAfter = notAfter
	der, err = x509.CreateCertificate(rand.Reader, leaf, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	_, secret := e.issue(t, access.IssueRequest{Name: "bank A", Role: access.RoleAuditor, CertSHA256: api.CertFingerprint(leaf)})

	client := pb.NewMerchantServiceClient(e.dialTLS(t, p, &cert, secret))
	if _, err := client.ListMarkets(ctx, &pb.ListMarketsRequest{}); err != nil {
		t.Fatalf("with its certificate: %v", err)
	}
	time.Sleep(time.Until(notAfter) + time.Second)
	if _, err := client.ListMarkets(ctx, &pb.ListMarketsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("once its certificate expired, over the connection it opened: %v, want Unauthenticated", err)
	}
}
