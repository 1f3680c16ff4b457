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
				secret := c.secret
				if round%7 == 6 { // the right credential id, another random part
					secret = secret[:len(secret)-4] + strings.Repeat("A", 4)
				}
				p, err := s.Authenticate(ctx, secret)
				switch {
				case c.revoked || secret != c.secret:
					if !errors.Is(err, access.ErrUnauthenticated) {
						errs <- fmt.Errorf("%s (revoked %v, right secret %v): got %+v, %v", c.cred.Name, c.revoked, secret == c.secret, p, err)
					}
				case err != nil:
					errs <- fmt.Errorf("%s: %v", c.cred.Name, err)
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
