package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/api"
)

// transportCredentials is TLS, mutual TLS when a client CA is configured,
// or plaintext when, and only when, explicitly asked for.
func transportCredentials(cfg config) (credentials.TransportCredentials, error) {
	switch {
	case cfg.TLSCert != "" && cfg.TLSKey == "":
		return nil, errors.New("LEDGER_TLS_CERT (--tls-cert) is set without LEDGER_TLS_KEY (--tls-key): TLS needs both")
	case cfg.TLSKey != "" && cfg.TLSCert == "":
		return nil, errors.New("LEDGER_TLS_KEY (--tls-key) is set without LEDGER_TLS_CERT (--tls-cert): TLS needs both")
	case cfg.TLSClientCA != "" && cfg.TLSCert == "":
		// Plaintext here would serve with no client authentication at all.
		return nil, errors.New("LEDGER_TLS_CLIENT_CA (--tls-client-ca) asks for mutual TLS, which needs LEDGER_TLS_CERT and LEDGER_TLS_KEY too")
	}
	if cfg.TLSCert == "" {
		if !cfg.Plaintext {
			return nil, errors.New("no TLS configured: set LEDGER_TLS_CERT and LEDGER_TLS_KEY, or LEDGER_PLAINTEXT=true for local use")
		}
		slog.Warn("serving plaintext gRPC: for local use only")
		return insecure.NewCredentials(), nil
	}
	return api.ServerTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
}

// demoCredentials writes one credential of each role to a file for local
// use, unless every credential the file holds still works, bound as it
// would be issued now (so repeated `make run` keeps the same secrets, and
// replaces them all once one is revoked or expired, or is a bank's of an
// earlier release, bound to no settlement bank, which the README's payout
// batch would be refused).
func demoCredentials(ctx context.Context, cfg config, file string) error {
	app, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer app.close()
	// The bank pays out at VCB, the settlement bank of the README's and the
	// docs' examples.
	const merchantCode, provider, settlementBank = "TN-DAITU-0001", "napas", "vcb"
	issue := []struct {
		env, comment string
		req          access.IssueRequest
	}{
		{"CHOLEDGER_ADMIN", "operator", access.IssueRequest{Name: "demo operator", Role: access.RoleAdmin}},
		{"CHOLEDGER_MERCHANT", "stall app of merchant " + merchantCode, access.IssueRequest{Name: "demo stall app", Role: access.RoleMerchant, Merchant: merchantCode}},
		{"CHOLEDGER_BANK", "bank integration for provider " + provider + " (VietQR) at settlement bank " + settlementBank,
			access.IssueRequest{Name: "demo VietQR bank", Role: access.RoleBank, Provider: provider, Bank: settlementBank}},
		{"CHOLEDGER_AUDITOR", "auditor", access.IssueRequest{Name: "demo auditor", Role: access.RoleAuditor}},
	}
	if b, err := os.ReadFile(file); err == nil {
		working := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			for _, it := range issue {
				if secret, ok := strings.CutPrefix(line, "export "+it.env+"="); ok {
					p, err := app.credentials.Authenticate(ctx, strings.Trim(secret, "'"))
					if err == nil && p.Role == it.req.Role && p.Merchant == it.req.Merchant && p.Provider == it.req.Provider && p.Bank == it.req.Bank {
						working[it.env] = true
					}
				}
			}
		}
		if len(working) == len(issue) {
			slog.Info("demo credentials kept", "file", file)
			return nil
		}
	}
	var b strings.Builder
	b.WriteString("# choledger demo credentials, for local use only. Load them with: source " + file + "\n")
	for _, it := range issue {
		_, secret, err := app.credentials.Issue(ctx, it.req)
		if err != nil {
			return fmt.Errorf("issue %s: %w", it.env, err)
		}
		fmt.Fprintf(&b, "# %s\nexport %s='%s'\n", it.comment, it.env, secret)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		return err
	}
	slog.Info("demo credentials written", "file", file)
	return nil
}
