package main

import (
	"strings"
	"testing"
)

// TLS settings that are half there are refused, naming what is missing;
// in particular a client CA (mutual TLS asked for) without a certificate
// never falls back to plaintext with no client authentication.
func TestTransportCredentialsRefusesIncompleteTLS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   config
		names []string
	}{
		{"client CA with plaintext", config{Plaintext: true, TLSClientCA: "/etc/ledger/client-ca.pem"}, []string{"LEDGER_TLS_CLIENT_CA", "LEDGER_TLS_CERT"}},
		{"client CA alone", config{TLSClientCA: "/etc/ledger/client-ca.pem"}, []string{"LEDGER_TLS_CLIENT_CA", "LEDGER_TLS_CERT"}},
		{"certificate without key", config{TLSCert: "/etc/ledger/cert.pem"}, []string{"LEDGER_TLS_CERT", "LEDGER_TLS_KEY"}},
		{"certificate without key, plaintext", config{Plaintext: true, TLSCert: "/etc/ledger/cert.pem"}, []string{"LEDGER_TLS_CERT", "LEDGER_TLS_KEY"}},
		{"key without certificate", config{TLSKey: "/etc/ledger/key.pem"}, []string{"LEDGER_TLS_KEY", "LEDGER_TLS_CERT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			creds, err := transportCredentials(tc.cfg)
			if err == nil {
				t.Fatalf("accepted: serving %q", creds.Info().SecurityProtocol)
			}
			for _, name := range tc.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}
