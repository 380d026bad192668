// Package logx holds logging helpers shared by recstream's packages.
//
// # Rate limiting
//
// RateLimit wraps a slog.Handler so that a warning or error repeated in a
// loop (a broker that does not answer, a Redis outage retried every few
// hundred milliseconds) is written once, then at most once per interval with
// a "suppressed" attribute counting the records dropped since. Records are
// keyed by level and message, so distinct problems are never hidden behind
// each other; a record formatted from a printf template (a library's log
// line) carries the template in a Template attribute and is keyed by it
// instead, so that the same complaint about each partition or address
// counts as one. Debug and info records pass through untouched.
package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// templateKey is the attribute Template adds; the handler removes it.
const templateKey = "logx_template"

// Template marks a record as formatted from the printf template format:
// RateLimit keys it by the template rather than the formatted message.
func Template(format string) slog.Attr { return slog.String(templateKey, format) }

// RateLimit returns a handler that passes at most one warning or error per
// message and level every interval to next. Handlers derived with WithAttrs
// or WithGroup share the limiter.
func RateLimit(next slog.Handler, every time.Duration) slog.Handler {
	return &limitHandler{next: next, l: &limiter{every: every, seen: make(map[limitKey]*limitState)}}
}

type limitKey struct {
	level slog.Level
	msg   string
}

type limitState struct {
	last       time.Time
	suppressed int
}

type limiter struct {
	every time.Duration
	mu    sync.Mutex
	seen  map[limitKey]*limitState
}

// allow reports whether a record may pass and how many were dropped before.
func (l *limiter) allow(k limitKey, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.seen[k]
	if s == nil {
		if len(l.seen) > 1024 { // bounded: messages are constants, but be safe
			clear(l.seen)
		}
		l.seen[k] = &limitState{last: now}
		return true, 0
	}
	if now.Sub(s.last) < l.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

type limitHandler struct {
	next slog.Handler
	l    *limiter
}

func (h *limitHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return h.next.Enabled(ctx, lvl)
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	key := r.Message
	if tmpl, ok := template(r); ok {
		key = "template: " + tmpl
		r = withoutTemplate(r)
	}
	ok, n := h.l.allow(limitKey{r.Level, key}, now)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(as), l: h.l}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), l: h.l}
}

// template returns the record's Template attribute.
func template(r slog.Record) (string, bool) {
	var t string
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == templateKey {
			t, found = a.Value.String(), true
			return false
		}
		return true
	})
	return t, found
}

// withoutTemplate returns a copy of r without its Template attribute.
func withoutTemplate(r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != templateKey {
			out.AddAttrs(a)
		}
		return true
	})
	return out
}
