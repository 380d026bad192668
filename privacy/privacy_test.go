package privacy_test

import (
	"testing"

	"github.com/recstream/recstream/privacy"
)

func TestPseudonym(t *testing.T) {
	// RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
	const want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := privacy.Pseudonym([]byte("Jefe"), 64, "what do ya want for nothing?"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	p := privacy.New("Jefe", 32)
	if got := p.ID("what do ya want for nothing?"); got != want[:32] || !p.Enabled() {
		t.Errorf("truncated: %s", got)
	}
	if got := privacy.New("", 32).ID("u1"); got != "u1" {
		t.Errorf("no key: %s", got)
	}
	if a, b := privacy.New("k1", 32).ID("u1"), privacy.New("k2", 32).ID("u1"); a == b {
		t.Errorf("two keys give the same pseudonym %s", a)
	}
}
