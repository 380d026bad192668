package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/store"
)

// Store is what the status page and the read endpoint read from Redis.
type Store interface {
	RecentEvents(ctx context.Context, user string, n int) ([]store.LoggedEvent, error)
	ReadList(ctx context.Context, user string) (l store.List, found bool, err error)
}

// Ranker ranks a given set of items for a user (scorer.Scorer and
// scorer.Variants).
type Ranker interface {
	Rank(ctx context.Context, user string, items []string) ([]store.ListItem, error)
}

// LagSource supplies the per-partition lag table.
type LagSource interface {
	Snapshot() consumer.LagSnapshot
}

var (
	_ Store     = (*store.Store)(nil)
	_ LagSource = (*consumer.LagMonitor)(nil)
)

// Options configures a Server.
type Options struct {
	Store    Store
	Ranker   Ranker              // nil: no re-ranking endpoint
	Lag      LagSource           // nil: no partition table
	Gatherer prometheus.Gatherer // nil: no metric summaries
	Ready    func(context.Context) error
	Roles    []string
	Version  string
	MaxIDLen int // longest accepted user ID; default event.DefaultMaxIDLen
	Events   int // recent events shown for a user; default 20
	Logger   *slog.Logger
	Now      func() time.Time
	// Experiment returns the A/B report (experiment package); nil: no
	// experiment table.
	Experiment func(context.Context) (experiment.Report, error)
	// Auth guards every route that reads one user's data; its zero value
	// refuses them all (403).
	Auth UserAuth
}

// Server serves the status page and the read API.
type Server struct {
	opt  Options
	page *template.Template
}

// New returns a server.
func New(opt Options) *Server {
	if opt.MaxIDLen <= 0 {
		opt.MaxIDLen = event.DefaultMaxIDLen
	}
	if opt.Events <= 0 {
		opt.Events = 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Server{opt: opt, page: template.Must(template.New("status").Funcs(funcs).Parse(pageHTML))}
}

// Register adds the status page and the API routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /api/v1/status", s.serveStatus)
	s.userRoute(mux, "GET /api/v1/users/{id}/recommendations", s.serveRecommendations)
	mux.HandleFunc("GET /api/v1/experiment", s.serveExperiment)
	if s.opt.Ranker != nil {
		s.userRoute(mux, "POST /api/v1/users/{id}/rank", s.serveRank)
	}
}

// userRoute registers a route that reads or acts on one user's data,
// behind Options.Auth.
func (s *Server) userRoute(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	mux.Handle(pattern, s.opt.Auth.Wrap(h))
}

// Status is everything the status page shows except the user lookup; it is
// also served as JSON at /api/v1/status.
type Status struct {
	Now          time.Time                  `json:"now"`
	Version      string                     `json:"version,omitempty"`
	Roles        []string                   `json:"roles"`
	Ready        bool                       `json:"ready"`
	NotReady     string                     `json:"not_ready,omitempty"`
	LagAt        time.Time                  `json:"lag_polled_at"`
	Groups       []consumer.GroupStatus     `json:"groups"`
	Partitions   []consumer.PartitionStatus `json:"partitions"`
	Freshness    Quantiles                  `json:"freshness_seconds"`
	Events       Counts                     `json:"events_by_type"`
	Invalid      Counts                     `json:"invalid_by_reason"`
	DLQWrites    float64                    `json:"dlq_writes"`
	ListsWritten float64                    `json:"lists_written"`
	Fenced       float64                    `json:"events_fenced"`
	RedisErrors  Counts                     `json:"redis_errors_by_command"`
	// Experiment is the A/B report; ExperimentError says why it is missing.
	Experiment      *experiment.Report `json:"experiment,omitempty"`
	ExperimentError string             `json:"experiment_error,omitempty"`
}

func (s *Server) status(ctx context.Context) Status {
	st := Status{Now: s.opt.Now(), Version: s.opt.Version, Roles: s.opt.Roles, Ready: true}
	if s.opt.Ready != nil {
		if err := s.opt.Ready(ctx); err != nil {
			st.Ready, st.NotReady = false, err.Error()
		}
	}
	if s.opt.Lag != nil {
		snap := s.opt.Lag.Snapshot()
		st.LagAt, st.Groups, st.Partitions = snap.At, snap.Groups, snap.Partitions
	}
	g := gather(s.opt.Gatherer)
	st.Freshness = g.quantiles("recstream_freshness_seconds")
	st.Events = g.counts("recstream_events_consumed_total", "type")
	st.Invalid = g.counts("recstream_events_invalid_total", "reason")
	st.DLQWrites = g.counter("recstream_dlq_writes_total")
	st.ListsWritten = g.counter("recstream_lists_written_total")
	st.Fenced = g.counter("recstream_events_fenced_total")
	st.RedisErrors = g.counts("recstream_redis_errors_total", "command")
	if s.opt.Experiment != nil {
		// Bounded so that the page answers while Redis is down.
		ectx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		r, err := s.opt.Experiment(ectx)
		cancel()
		if err != nil {
			st.ExperimentError = err.Error()
		} else {
			st.Experiment = &r
		}
	}
	return st
}

func (s *Server) serveExperiment(w http.ResponseWriter, r *http.Request) {
	if s.opt.Experiment == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "attribution is off (attribution.window: 0)"})
		return
	}
	rep, err := s.opt.Experiment(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// Lookup is the user lookup shown on the status page.
type Lookup struct {
	User     string
	Error    string
	Events   []store.LoggedEvent
	List     store.List
	Found    bool // the user's own list exists
	Trending bool // List is the trending fallback
}

type pageData struct {
	Status
	Lookup *Lookup
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	d := pageData{Status: s.status(r.Context())}
	code := http.StatusOK
	if u := strings.TrimSpace(r.URL.Query().Get("user")); u != "" {
		if c, msg := s.opt.Auth.check(r); c != 0 {
			d.Lookup = &Lookup{User: u, Error: msg}
			if code = c; c == http.StatusUnauthorized {
				s.opt.Auth.challenge(w)
			}
		} else {
			d.Lookup = s.lookup(r.Context(), u)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(code)
	if err := s.page.Execute(w, d); err != nil {
		s.opt.Logger.Debug("rendering status page", "err", err)
	}
}

func (s *Server) lookup(ctx context.Context, user string) *Lookup {
	l := &Lookup{User: user}
	if reason := event.ValidateID(user, s.opt.MaxIDLen); reason != "" {
		l.Error = "not a valid user id (" + string(reason) + ")"
		return l
	}
	evs, err := s.opt.Store.RecentEvents(ctx, user, s.opt.Events)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Events = evs
	list, src, err := s.recommendations(ctx, user)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.List, l.Found, l.Trending = list, src == "user", src == "trending"
	return l
}

// recommendations reads the user's list, falling back to the trending list;
// src is "user", "trending" or "" (neither exists).
func (s *Server) recommendations(ctx context.Context, user string) (l store.List, src string, err error) {
	l, found, err := s.opt.Store.ReadList(ctx, user)
	if err != nil || found {
		return l, "user", err
	}
	l, found, err = s.opt.Store.ReadList(ctx, "")
	if err != nil || !found {
		return store.List{}, "", err
	}
	return l, "trending", nil
}

// Recommendations is the JSON body of GET /api/v1/users/{id}/recommendations.
type Recommendations struct {
	User   string     `json:"user"`
	Source string     `json:"source"` // "user" or "trending"
	List   store.List `json:"list"`
}

func (s *Server) serveRecommendations(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("id")
	if reason := event.ValidateID(user, s.opt.MaxIDLen); reason != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid user id: " + string(reason)})
		return
	}
	l, src, err := s.recommendations(r.Context(), user)
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	case src == "":
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no list for the user and no trending list yet"})
	default:
		writeJSON(w, http.StatusOK, Recommendations{User: user, Source: src, List: l})
	}
}

// MaxRankItems is the most items one rank request may hold.
const MaxRankItems = 1000

// RankRequest is the JSON body of POST /api/v1/users/{id}/rank.
type RankRequest struct {
	Items []string `json:"items"`
}

// RankResponse is the answer to a RankRequest: every distinct item of the
// request, best first, with its score, source and reason.
type RankResponse struct {
	User  string           `json:"user"`
	Items []store.ListItem `json:"items"`
}

func (s *Server) serveRank(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("id")
	if reason := event.ValidateID(user, s.opt.MaxIDLen); reason != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid user id: " + string(reason)})
		return
	}
	var req RankRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(MaxRankItems)*int64(s.opt.MaxIDLen+8)+1024))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want {\"items\": [item ids]}: " + err.Error()})
		return
	}
	if len(req.Items) == 0 || len(req.Items) > MaxRankItems {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("items: want 1 to %d item ids, got %d", MaxRankItems, len(req.Items))})
		return
	}
	for _, it := range req.Items {
		if reason := event.ValidateID(it, s.opt.MaxIDLen); reason != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("invalid item id %q: %s", it, reason)})
			return
		}
	}
	items, err := s.opt.Ranker.Rank(r.Context(), user, req.Items)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, RankResponse{User: user, Items: items})
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := s.status(r.Context())
	// JSON has no NaN: percentiles without observations become 0 with count 0.
	for _, p := range []*float64{&st.Freshness.P50, &st.Freshness.P90, &st.Freshness.P99} {
		if math.IsNaN(*p) {
			*p = 0
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
