package ledger_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/choledger/choledger/ledger"
)

// A page token reads back as its list's place for the query that made it;
// another list's token, another query's, and bytes this service never
// issues are refused naming page_token.
func TestPageTokens(t *testing.T) {
	const query = "TN-01,free text | with bars"
	token := ledger.PageToken("payments", query, "1700000000000000:01890a5d-ac96-774b-bcce-b302099a8057")
	if place, err := ledger.PageAfter("payments", query, token, "filters"); err != nil || place != "1700000000000000:01890a5d-ac96-774b-bcce-b302099a8057" {
		t.Errorf("the token read back as %q, %v", place, err)
	}
	if place, err := ledger.PageAfter("payments", query, "", "filters"); err != nil || place != "" {
		t.Errorf("no token read as %q, %v", place, err)
	}
	for name, c := range map[string]struct{ list, query, token string }{
		"another list's":  {"entries", query, token},
		"another query's": {"payments", "TN-02,", token},
		"not base64":      {"payments", query, "%%%"},
		"no place":        {"payments", query, base64.RawURLEncoding.EncodeToString([]byte("payments"))},
		"a NUL":           {"payments", query, base64.RawURLEncoding.EncodeToString([]byte("payments|\x00|" + query))},
		"not UTF-8":       {"payments", query, base64.RawURLEncoding.EncodeToString([]byte("payments|\xff|" + query))},
	} {
		_, err := ledger.PageAfter(c.list, c.query, c.token, "filters")
		var le *ledger.Error
		if !errors.Is(err, ledger.ErrInvalid) || !errors.As(err, &le) || le.Field != "page_token" {
			t.Errorf("%s token: %v, want InvalidArgument naming page_token", name, err)
		}
	}
}
