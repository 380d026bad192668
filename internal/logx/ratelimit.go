// Package logx holds logging helpers shared by recstream's packages.
//
// # Rate limiting
//
// RateLimit wraps a slog.Handler so that a warning or error repeated in a
// loop (a broker that does not answer, a Redis outage retried every few
// hundred milliseconds) is written once, then at most once per interval with
// a "suppressed" attribute counting the records dropped since. Records are
// keyed by level and message, so distinct problems are never hidden behind
// each other. Debug and info records pass through untouched.
package logx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

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
	ok, n := h.l.allow(limitKey{r.Level, r.Message}, now)
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
