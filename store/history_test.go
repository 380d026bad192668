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

func TestLogEntryFields(t *testing.T) {
	for _, c := range []struct {
		e, item string
		isNew   bool
	}{
		{"12|3|click|1700|1|sku-9", "sku-9", true},
		{"12|3|click|1700|0|a|b|c", "a|b|c", false},
		{"12|3|click|1700|1|", "", true},
		{"garbage", "", false},
	} {
		if got := logEntryItem(c.e); got != c.item {
			t.Errorf("logEntryItem(%q) = %q, want %q", c.e, got, c.item)
		}
		if got := logEntryNew(c.e); got != c.isNew {
			t.Errorf("logEntryNew(%q) = %v, want %v", c.e, got, c.isNew)
		}
	}
}
