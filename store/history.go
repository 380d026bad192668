package store

import "strings"

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

// afterFields returns what follows the first k '|'-separated fields of a
// log entry offset|partition|type|ts|new|item, or false when it has fewer.
func afterFields(e string, k int) (string, bool) {
	for ; k > 0; k-- {
		i := strings.IndexByte(e, '|')
		if i < 0 {
			return "", false
		}
		e = e[i+1:]
	}
	return e, true
}

// logEntryItem returns the item of a log entry: the rest after the fifth
// '|' (an item may hold '|').
func logEntryItem(e string) string {
	it, _ := afterFields(e, 5)
	return it
}

// logEntryNew reports whether a log entry's event made its item new.
func logEntryNew(e string) bool {
	rest, ok := afterFields(e, 4)
	return ok && strings.HasPrefix(rest, "1|")
}

// userLog is one user's stored log as the script returned it (newest
// first), with its entries' items parsed once.
type userLog struct {
	entries []string
	items   []string
	parsed  []bool
}

func newUserLog(entries []string) *userLog {
	return &userLog{entries: entries, items: make([]string, len(entries)), parsed: make([]bool, len(entries))}
}

func (l *userLog) item(k int) string {
	if !l.parsed[k] {
		l.items[k] = logEntryItem(l.entries[k])
		l.parsed[k] = true
	}
	return l.items[k]
}

// find returns the index of the entry of the event at offset off of
// partition p, or -1.
func (l *userLog) find(off, p string) int {
	prefix := off + "|" + p + "|"
	for k, e := range l.entries {
		if strings.HasPrefix(e, prefix) {
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
// first applied.
func (l *userLog) history(pending []string, from int, exclude string, m, logcap int) []string {
	var res []string
	var seen map[string]bool // for long histories; short ones are scanned
	scanned := 0
	take := func(it string) bool {
		scanned++
		if it != exclude && !contains(res, seen, it) {
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
		if take(pending[k]) {
			return res
		}
	}
	for k := from; k < len(l.entries); k++ {
		if take(l.item(k)) {
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
