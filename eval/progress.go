package eval

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress is a text progress bar written to an io.Writer at most once per
// Interval (default 200ms), plus a final line from Done. A nil *Progress, or
// one made with a nil writer, does nothing, so callers need no checks. It is
// safe for concurrent use.
type Progress struct {
	// Interval is the minimum time between two redraws.
	Interval time.Duration

	mu    sync.Mutex
	w     io.Writer
	label string
	total int
	done  int
	start time.Time
	last  time.Time
	now   func() time.Time
}

// NewProgress returns a bar labelled label counting to total (total <= 0
// shows a bare counter). It returns nil when w is nil.
func NewProgress(w io.Writer, label string, total int) *Progress {
	if w == nil {
		return nil
	}
	p := &Progress{Interval: 200 * time.Millisecond, w: w, label: label, total: total, now: time.Now}
	p.start = p.now()
	return p
}

// Add advances the bar by n and redraws it if Interval has passed.
func (p *Progress) Add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if t := p.now(); t.Sub(p.last) >= p.Interval {
		p.last = t
		p.draw(t, "\r")
	}
}

// Done draws the final state and ends the line.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(p.now(), "\r")
	fmt.Fprint(p.w, "\n")
}

func (p *Progress) draw(t time.Time, prefix string) {
	const width = 30
	el := t.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	if p.total <= 0 {
		fmt.Fprintf(p.w, "%s%s %d %.0f/s   ", prefix, p.label, p.done, rate)
		return
	}
	frac := min(1, float64(p.done)/float64(p.total))
	fill := int(frac * width)
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	if fill > 0 && fill < width {
		bar = bar[:fill-1] + ">" + bar[fill:]
	}
	fmt.Fprintf(p.w, "%s%s [%s] %3.0f%% %d/%d %.0f/s   ", prefix, p.label, bar, 100*frac, p.done, p.total, rate)
}
