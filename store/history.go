package store

// Applying a user's events (userstate.go) answers each event with a code
// and returns the user's stored log as it was before; the histories that
// co-occurrence needs are computed here, from that log.

// Codes of applying a user's events, one per event.
const (
	codeErased     = -2 // dropped: the user was erased at or after the event's time
	codeFenced     = 0  // applied before (its offset is at or below the fence)
	codeApplied    = 1  // applied now
	codeAppliedNew = 2  // applied now, and it made its item new for the user
)

// userLog is one user's stored log as applying its events returned it
// (newest first), its entries read once, when first needed (entry.go): the items
// (all that history reads, of many entries per event), and the rest of
// the entries only for find (fenced events).
type userLog struct {
	entries []string
	items   []string
	state   []int8    // of items: 0 not read yet, 1 read, -1 malformed
	meta    []logMeta // of whole entries, allocated by the first parse
}

type logMeta struct {
	offset    int64
	partition int32
	state     int8 // as userLog.state
	isNew     bool
}

func newUserLog(entries []string) *userLog {
	return &userLog{entries: entries, items: make([]string, len(entries)), state: make([]int8, len(entries))}
}

// item returns the item of entry k; false when the entry is malformed.
func (l *userLog) item(k int) (string, bool) {
	if l.state[k] == 0 {
		it, err := logEntryItem(l.entries[k])
		l.state[k] = 1
		if err != nil {
			l.state[k] = -1
		}
		l.items[k] = it
	}
	return l.items[k], l.state[k] > 0
}

// parse parses entry k once; false when it is malformed.
func (l *userLog) parse(k int) bool {
	if l.meta == nil {
		l.meta = make([]logMeta, len(l.entries))
	}
	m := &l.meta[k]
	if m.state == 0 {
		e, err := parseLogEntry(l.entries[k])
		if err != nil {
			m.state = -1
			return false
		}
		*m = logMeta{offset: e.Offset, partition: e.Partition, state: 1, isNew: e.New}
	}
	return m.state > 0
}

// isNew reports whether the event of entry k made its item new for the
// user (false when the entry is malformed).
func (l *userLog) isNew(k int) bool {
	return l.parse(k) && l.meta[k].isNew
}

// find returns the index of the entry of the event at offset off of
// partition p, or -1.
func (l *userLog) find(off int64, p int32) int {
	for k := range l.entries {
		if l.parse(k) && l.meta[k].offset == off && l.meta[k].partition == p {
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
// first applied. An entry without its six fields is scanned but gives no
// item.
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
