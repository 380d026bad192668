package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// userLog.history against a brute-force reference, for short histories
// (duplicates found by scanning) and long ones (by a set), with items that
// hold '|'.
func TestHistoryMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for round := 0; round < 400; round++ {
		nItems := 1 + rng.IntN(80)
		item := func() string {
			if rng.IntN(10) == 0 {
				return fmt.Sprintf("i|%d", rng.IntN(nItems))
			}
			return fmt.Sprintf("i%d", rng.IntN(nItems))
		}
		entries := make([]string, rng.IntN(130))
		items := make([]string, len(entries))
		for k := range entries {
			items[k] = item()
			entries[k] = fmt.Sprintf("%d|3|click|%d|%d|%s", 1000-k, 5000-k, rng.IntN(2), items[k])
		}
		pending := make([]string, rng.IntN(6))
		for k := range pending {
			pending[k] = item()
		}
		m := 1 + rng.IntN(60)
		logcap := m + rng.IntN(70)
		from := 0
		if len(entries) > 0 {
			from = rng.IntN(len(entries))
		}
		exclude := item()

		// reference: pending newest first, then the log from from on
		var seq []string
		for k := len(pending) - 1; k >= 0; k-- {
			seq = append(seq, pending[k])
		}
		seq = append(seq, items[from:]...)
		var want []string
		for k, it := range seq {
			if k >= logcap || len(want) >= m {
				break
			}
			if it != exclude && !slices.Contains(want, it) {
				want = append(want, it)
			}
		}
		got := newUserLog(entries).history(pending, from, exclude, m, logcap)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (m %d, logcap %d, from %d): history %v, want %v", round, m, logcap, from, got, want)
		}
	}
}

// A log entry without its six fields is scanned but gives no item; find
// skips every malformed entry (a bad offset too).
func TestHistorySkipsMalformedEntries(t *testing.T) {
	l := newUserLog([]string{"9|3|click|1700|1|a", "garbage", "7|3|click|1600|0|b|c", "x|3|click|1500|0|d", "5|3|click|1400|1|e"})
	if got, want := l.history(nil, 0, "", 10, 10), []string{"a", "b|c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("history %q, want %q", got, want)
	}
	if got, want := l.history(nil, 0, "", 10, 3), []string{"a", "b|c"}; !slices.Equal(got, want) {
		t.Errorf("history with logcap 3: %q, want %q", got, want)
	}
	if got := l.find(7, 3); got != 2 {
		t.Errorf("find(7, 3) = %d, want 2", got)
	}
	if got := l.find(5, 3); got != 4 {
		t.Errorf("find(5, 3) = %d, want 4", got)
	}
	if got := l.find(7, 4); got != -1 {
		t.Errorf("find(7, 4) = %d, want -1", got)
	}
}
