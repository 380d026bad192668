package store

// The user script (lua/user.lua) answers each event with a code and
// returns the user's stored log as it was before the call; the histories
// that co-occurrence needs are computed here, from that log, so that
// Redis's single thread does not run them in its interpreter.

// Codes of the user script, one per event.
const (
	codeErased     = -2 // dropped: the user was erased at or after the event's time
	codeFenced     = 0  // applied before (its offset is at or below the fence)
	codeApplied    = 1  // applied now
	codeAppliedNew = 2  // applied now, and it made its item new for the user
)

// userLog is one user's stored log as the script returned it (newest
// first), its entries parsed once, when first needed (entry.go).
type userLog struct {
	entries []string
	events  []LoggedEvent
	state   []int8 // 0 not parsed yet, 1 parsed, -1 malformed
}

func newUserLog(entries []string) *userLog {
	return &userLog{entries: entries, events: make([]LoggedEvent, len(entries)), state: make([]int8, len(entries))}
}

// event returns entry k, parsed; false when it is malformed.
func (l *userLog) event(k int) (LoggedEvent, bool) {
	if l.state[k] == 0 {
		e, err := parseLogEntry(l.entries[k])
		l.state[k] = 1
		if err != nil {
			l.state[k] = -1
		}
		l.events[k] = e
	}
	return l.events[k], l.state[k] > 0
}

// find returns the index of the entry of the event at offset off of
// partition p, or -1.
func (l *userLog) find(off int64, p int32) int {
	for k := range l.entries {
		if e, ok := l.event(k); ok && e.Offset == off && e.Partition == p {
			return k
		}
	}
	return -1
}

// history returns the distinct items, newest first, of pending (the items
// of the events the same call applied before this one, oldest first) and
// of the log's entries from index from on, without exclude, at most m,
// scanning at most logcap entries older than the event: the answer does
// not depend on batching, and since the log keeps 2·logcap entries an
// event replayed after fewer than logcap newer events of the user were
// applied (a crash before the commit) gets the same answer as when it was
// first applied. A malformed entry is scanned but gives no item.
func (l *userLog) history(pending []string, from int, exclude string, m, logcap int) []string {
	var res []string
	var seen map[string]bool // for long histories; short ones are scanned
	scanned := 0
	take := func(it string, ok bool) bool {
		scanned++
		if ok && it != exclude && !contains(res, seen, it) {
			res = append(res, it)
			if seen == nil && len(res) > 32 {
				seen = make(map[string]bool, m)
				for _, r := range res {
					seen[r] = true
				}
			} else if seen != nil {
				seen[it] = true
			}
		}
		return len(res) >= m || scanned >= logcap
	}
	for k := len(pending) - 1; k >= 0; k-- {
		if take(pending[k], true) {
			return res
		}
	}
	for k := from; k < len(l.entries); k++ {
		if e, ok := l.event(k); take(e.Item, ok) {
			return res
		}
	}
	return res
}

// contains reports whether it is in res, through seen when there is one.
func contains(res []string, seen map[string]bool, it string) bool {
	if seen != nil {
		return seen[it]
	}
	for _, r := range res {
		if r == it {
			return true
		}
	}
	return false
}
