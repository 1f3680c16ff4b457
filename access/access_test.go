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
			r = access.IssueRequest{Name: fmt.Sprintf("bank %d", i), Role: access.RoleBank, Provider: fmt.Sprintf("bank%02d", i)}
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
				case p.CredentialID != c.cred.CredentialID || p.Name != c.cred.Name || p.Provider != c.cred.Provider || !slices.Equal(p.Markets, c.cred.Markets):
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
