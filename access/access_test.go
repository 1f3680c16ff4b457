package access_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/choledger/choledger/access"
	"github.com/choledger/choledger/internal/pg/pgtest"
	"github.com/choledger/choledger/ledger"
	"github.com/choledger/choledger/merchant"
)

// Calls that authenticate at the same moment share the credential reads
// (internal/coalesce): each must still get its own principal, and a revoked
// credential or a wrong secret none.
func TestConcurrentAuthentication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := access.NewStore(pgtest.New(t).Pool, nil)

	type issued struct {
		cred    access.Credential
		secret  string
		revoked bool
	}
	var creds []issued
	for i := range 30 {
		r := access.IssueRequest{Name: fmt.Sprintf("auditor %d", i), Role: access.RoleAuditor, Markets: []string{fmt.Sprintf("TN-M%02d", i)}}
		if i%2 == 1 {
			providers := merchant.Providers()
			r = access.IssueRequest{Name: fmt.Sprintf("bank %d", i), Role: access.RoleBank, Provider: providers[i%len(providers)], Markets: []string{fmt.Sprintf("TN-B%02d", i)}}
			if i%4 == 1 {
				r.Bank = "vcb"
			}
		}
		c, secret, err := s.Issue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, issued{cred: c, secret: secret, revoked: i%10 == 3})
	}
	for _, c := range creds {
		if c.revoked {
			if _, err := s.Revoke(ctx, c.cred.CredentialID); err != nil {
				t.Fatal(err)
			}
		}
	}

	errs := make(chan error, 30*20)
	var wg sync.WaitGroup
	for round := range 20 {
		for _, c := range creds {
			wg.Go(func() {
				secret, wrong := c.secret, false
				switch round % 7 {
				case 5: // the id in capitals: the same credential
					secret = "chl_" + strings.ToUpper(secret[4:36]) + secret[36:]
				case 6: // the right credential id, another random part
					secret, wrong = secret[:len(secret)-4]+strings.Repeat("A", 4), true
				}
				p, err := s.Authenticate(ctx, secret)
				switch {
				case c.revoked || wrong:
					if !errors.Is(err, access.ErrUnauthenticated) {
						errs <- fmt.Errorf("%s (revoked %v, wrong secret %v): got %+v, %v", c.cred.Name, c.revoked, wrong, p, err)
					}
				case err != nil:
					errs <- fmt.Errorf("%s, secret %s: %v", c.cred.Name, secret[:36], err)
				case p.CredentialID != c.cred.CredentialID || p.Name != c.cred.Name || p.Provider != c.cred.Provider || p.Bank != c.cred.Bank || !slices.Equal(p.Markets, c.cred.Markets):
					errs <- fmt.Errorf("%s authenticated as %+v", c.cred.Name, p)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A scope is one client's: banks of one provider bound to different markets
// or settlement banks are different clients, whatever the order their
// markets were listed in, and an unbound bank's scope is its provider's.
// However many markets a bank has, its scope leaves room for a client's key
// of 128 characters.
func TestScope(t *testing.T) {
	t.Parallel()
	bank := func(markets ...string) access.Principal {
		return access.Principal{Role: access.RoleBank, Provider: "napas", Markets: markets}
	}
	for _, tc := range []struct {
		name string
		p    access.Principal
		want string
	}{
		{"merchant", access.Principal{Role: access.RoleMerchant, Merchant: "TN-TEST-0001"}, "merchant:TN-TEST-0001"},
		{"unbound bank", bank(), "bank:napas"},
		{"bank of vcb", access.Principal{Role: access.RoleBank, Provider: "napas", Bank: "vcb"}, "bank:napas#vcb"},
		{"admin", access.Principal{Role: access.RoleAdmin}, "admin"},
	} {
		if got := tc.p.Scope(); got != tc.want {
			t.Errorf("%s: scope %q, want %q", tc.name, got, tc.want)
		}
	}

	same := [][]string{{"M1", "M2"}, {"M2", "M1"}, {"M1", "M2", "M1"}}
	for _, markets := range same[1:] {
		if a, b := bank(same[0]...).Scope(), bank(markets...).Scope(); a != b {
			t.Errorf("markets %v and %v: scopes %q and %q, want one", same[0], markets, a, b)
		}
	}
	scopes := map[string]access.Principal{}
	for _, markets := range [][]string{nil, {"M1"}, {"M2"}, {"M1", "M2"}, {"M1M2"}} {
		for _, settlementBank := range []string{"", "vcb", "bidv", "vc"} {
			p := bank(markets...)
			p.Bank = settlementBank
			s := p.Scope()
			if other, taken := scopes[s]; taken {
				t.Errorf("%+v and %+v share scope %q", other, p, s)
			}
			if !strings.HasPrefix(s, "bank:napas") || strings.Contains(s, "/") {
				t.Errorf("%+v: scope %q is not napas's, or holds the / that ends a scope in a key", p, s)
			}
			scopes[s] = p
		}
	}
	if s := (access.Principal{Role: access.RoleBank, Provider: "momo", Markets: []string{"M1"}}).Scope(); s == bank("M1").Scope() {
		t.Errorf("momo and napas of M1 share scope %q", s)
	}

	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("TN-%061d", i)
	}
	widest := bank(many...)
	widest.Bank = strings.Repeat("b", 16)
	if s := widest.Scope(); len(s)+1+128 > ledger.MaxKey {
		t.Errorf("a bank of 100 markets and a settlement bank has a scope of %d characters, leaving no room for a key of 128", len(s))
	}
}

// Two admins revoking each other at the same moment leave one of them
// working: the second revocation waits for the first and is refused once
// the first has left it the last admin.
func TestAdminsRevokingEachOtherLeaveOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := access.NewStore(pgtest.New(t).Pool, nil)
	issue := func() string {
		c, _, err := s.Issue(ctx, access.IssueRequest{Name: "admin", Role: access.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		return c.CredentialID
	}
	left := issue()
	for range 20 {
		pair := []string{left, issue()}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, id := range pair {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Revoke(ctx, id)
			}()
		}
		wg.Wait()
		switch {
		case errs[0] == nil && errors.Is(errs[1], access.ErrLastAdmin):
			left = pair[1]
		case errs[1] == nil && errors.Is(errs[0], access.ErrLastAdmin):
			left = pair[0]
		default:
			t.Fatalf("two admins revoked at once: %v; want one revoked and the other refused as the last", errs)
		}
	}
}
