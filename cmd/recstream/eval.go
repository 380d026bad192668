package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/eval"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// Model names of `recstream eval --models`.
const (
	modelPopularity   = "popularity"
	modelUserKNN      = "user-knn"
	modelItemKNN      = "item-knn"
	modelEASE         = "ease"
	modelHybrid       = "hybrid"
	modelBatchUserKNN = "batch-user-knn"
	modelBatchItemKNN = "batch-item-knn"
	modelBatchEASE    = "ease-batch"
	modelNextItem     = "next-item"
	modelBatchNext    = "batch-next-item"
	modelContent      = "content"        // needs item attributes
	modelHybridCont   = "hybrid-content" // hybrid plus content; needs item attributes
	modelPopular      = "popular"        // the production popular prior alone (within the user's categories with item attributes)
)

var allModels = []string{modelPopularity, modelUserKNN, modelItemKNN, modelEASE, modelNextItem, modelHybrid, modelBatchUserKNN, modelBatchItemKNN, modelBatchEASE, modelBatchNext}

// evalProfile are the settings eval applies over the production defaults
// before the user's --config and --set: the replayed logs are years old
// and their users far heavier than a shop's session, so decay is slow and
// the per-user caps hold whole histories. The tuned defaults of the scorer
// are the production ones.
var evalProfile = []string{
	"model.half_life=87600h",    // 10 years: a 1990s log keeps its weights
	"model.user_items_cap=5000", // whole user histories (ML-100K: at most 737)
	"model.user_ttl=0",          // event time is not wall time
	"run.roles=ingest,score",
}

type evalFlags struct {
	format, data, train, test, negatives, items    string
	minItem, minUser                               int
	protocol, ks, models, ties, metric             string
	seed                                           uint64
	jsonOut                                        bool
	svg, redis, configPath                         string
	sets                                           multiFlag
	partitions, batch                              int
	syntheticSeq                                   int
	syntheticShop                                  int
	windows, stride, warmup                        int
	fullPath, tune, validation, quiet, skipRepeats bool
	impressions                                    bool
	easeLambda                                     float64
	easeItems                                      int
	csvColumns, csvTypes, csvTSUnit, csvComma      string
	csvHeader                                      bool
}

func cmdEval(args []string) error {
	ctx, stop := signalContext()
	defer stop()
	return runEval(ctx, args, os.Stdout, os.Stderr)
}

func parseEvalFlags(args []string, stderr io.Writer) (*evalFlags, error) {
	f := &evalFlags{}
	fs := newFlagSet("eval")
	fs.StringVar(&f.format, "format", "", "input format: movielens (u.data, ratings.dat), movielens-csv (ratings.csv), ncf, taobao, jsonl, csv (generic, see --csv-columns); empty guesses from the file name")
	fs.StringVar(&f.data, "data", "", "interaction log")
	fs.IntVar(&f.syntheticSeq, "synthetic-seq", 0, "evaluate on a generated sparse sequential log of this many users (loadgen.Sequence: 5-10 events each, long-tail items, planted next items) instead of --data")
	fs.IntVar(&f.syntheticShop, "synthetic-shop", 0, "evaluate on a generated sparse shop log of this many users before its 5-core filter (loadgen.Shop: about 9 distinct items each, long-tail items, departments, weak next-item signal) instead of --data")
	fs.StringVar(&f.train, "train", "", "ncf: X.train.rating")
	fs.StringVar(&f.test, "test", "", "ncf: X.test.rating")
	fs.StringVar(&f.negatives, "negatives", "99", "sampled negatives per user (loo), or the ncf X.test.negative file")
	fs.StringVar(&f.items, "items", "", "item attribute file (MovieLens u.item or movies.csv genres); kept for content models")
	fs.IntVar(&f.minItem, "min-item-count", 0, "drop items with fewer interactions (applied first)")
	fs.IntVar(&f.minUser, "min-user-count", 0, "then drop users with fewer interactions")
	fs.StringVar(&f.protocol, "protocol", "loo", "loo (sampled negatives), full (all unseen items) or prequential (test-then-learn)")
	fs.StringVar(&f.ks, "k", "10", "comma-separated cutoffs")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of negative sampling")
	fs.StringVar(&f.models, "models", strings.Join(allModels, ","), "comma-separated models: "+strings.Join(allModels, ", ")+"; also "+modelPopular+" (the scorer's popular prior alone); with item attributes also "+modelContent+", "+modelHybridCont)
	fs.StringVar(&f.ties, "ties", "first-seen", "loo/full: which of a user's interactions at the latest timestamp is held out: first-seen (the item seen first in the log, as the published ML-100K protocol) or last (the last in file order)")
	fs.BoolVar(&f.jsonOut, "json", false, "print {\"results\": [...]} instead of a table")
	fs.StringVar(&f.svg, "svg", "", "write an SVG chart of hr@K against K to this file")
	fs.StringVar(&f.metric, "metric", "ndcg@10", "tuning: the validation metric to maximise")
	fs.StringVar(&f.redis, "redis", "", "use this Redis (host:port) instead of a private redis-server; only keys under a private prefix are written and deleted")
	fs.StringVar(&f.configPath, "config", "", "YAML configuration whose model and scorer sections are evaluated (over eval's profile)")
	fs.Var(&f.sets, "set", "override one configuration key: section.key=value (repeatable)")
	fs.StringVar(&f.csvColumns, "csv-columns", "", "csv: field=column pairs, columns by header name or 0-based index; fields user, item (required), ts, type, value, attr.<name>; e.g. user=0,item=1,attr.category=2,type=3,ts=4")
	fs.StringVar(&f.csvTypes, "csv-types", "", "csv: behaviour=event-type pairs, e.g. pv=browse,fav=click,cart=add_to_cart,buy=purchase (rows with other behaviours are dropped)")
	fs.StringVar(&f.csvTSUnit, "csv-ts-unit", "s", "csv: unit of integer timestamps, s or ms")
	fs.StringVar(&f.csvComma, "csv-comma", ",", "csv: field separator (a single character; \\t for tab)")
	fs.BoolVar(&f.csvHeader, "csv-header", false, "csv: the first row holds column names")
	fs.IntVar(&f.partitions, "partitions", 4, "simulated event partitions")
	fs.IntVar(&f.batch, "batch", 0, "events per micro-batch (0: ingest.batch_max_events)")
	fs.IntVar(&f.windows, "windows", 10, "prequential: time windows reported")
	fs.IntVar(&f.stride, "stride", 1, "prequential: evaluate one interaction in N (all are learnt)")
	fs.IntVar(&f.warmup, "warmup", -1, "prequential: earliest interactions learnt without evaluation (-1: 20%)")
	fs.BoolVar(&f.impressions, "impressions", false, "prequential: simulate impressions, each list evaluated is shown to the user before the interaction is learnt (with --set attribution.discount=F, impression discounting)")
	fs.BoolVar(&f.skipRepeats, "skip-repeats", false, "loo/full: leave out users whose held-out item is in their training data")
	fs.BoolVar(&f.fullPath, "full-path", false, "replay through an embedded Kafka broker and the real processor (ingest role) instead of calling the store directly")
	fs.BoolVar(&f.validation, "validation", false, "evaluate on a validation split carved from the training part (each user's latest training interaction held out) instead of the test split, to compare settings without seeing the test")
	fs.BoolVar(&f.tune, "tune", false, "tune the incremental models on a validation split carved from the training part, then test the best settings")
	fs.BoolVar(&f.quiet, "q", false, "no progress bar")
	fs.Float64Var(&f.easeLambda, "ease-lambda", 0, "EASE λ (0: scorer.ease_lambda)")
	fs.IntVar(&f.easeItems, "ease-items", 0, "EASE item cap (0: scorer.ease_max_items)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// evalData is what the loaders produced.
type evalData struct {
	all   []eval.Interaction
	split *eval.Split // set for ncf
	attrs map[string]map[string]string
}

func guessFormat(path string) string {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.HasSuffix(base, ".jsonl"), strings.HasSuffix(base, ".json"), strings.HasSuffix(base, ".ndjson"):
		return "jsonl"
	case strings.HasSuffix(base, ".csv"):
		return "movielens-csv"
	default:
		return "movielens"
	}
}

func openLoad[T any](path string, load func(io.Reader) (T, error)) (T, error) {
	var zero T
	fh, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	defer fh.Close()
	v, err := load(fh)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func loadEvalData(f *evalFlags) (*evalData, error) {
	d := &evalData{}
	format, err := evalFormat(f)
	if err != nil {
		return nil, err
	}
	switch format {
	case "synthetic-seq":
		d.all = interactions(loadgen.NewSequence(loadgen.SequenceOptions{Users: f.syntheticSeq, Seed: 1}).Events())
	case "synthetic-shop":
		// 5-core, as the published shop logs it stands in for.
		d.all = eval.FilterMinCounts(interactions(loadgen.NewShop(loadgen.ShopOptions{Users: f.syntheticShop, Seed: 1}).Events()), 5, 5)
	case "movielens":
		d.all, err = openLoad(f.data, eval.LoadMovieLens)
	case "movielens-csv":
		d.all, err = openLoad(f.data, eval.LoadMovieLensCSV)
	case "jsonl":
		d.all, err = openLoad(f.data, eval.LoadJSONLines)
	case "csv":
		m, merr := f.csvMapping()
		if merr != nil {
			return nil, merr
		}
		d.all, d.attrs, err = loadCSVWithAttrs(f.data, m)
	case "taobao":
		d.all, d.attrs, err = loadCSVWithAttrs(f.data, eval.TaobaoMapping())
	case "ncf":
		d.split, err = loadNCF(f)
	default:
		return nil, fmt.Errorf("unknown --format %q", format)
	}
	if err != nil {
		return nil, err
	}
	if f.items != "" {
		if d.attrs, err = loadItemAttrs(f.items); err != nil {
			return nil, err
		}
	}
	if d.split == nil && (f.minItem > 0 || f.minUser > 0) {
		d.all = eval.FilterMinCounts(d.all, f.minItem, f.minUser)
	}
	return d, nil
}

// evalFormat returns the data format: --format, else ncf with --train,
// synthetic-seq with --synthetic-seq, else guessed from --data's name.
func evalFormat(f *evalFlags) (string, error) {
	format := f.format
	if format == "" {
		if f.train != "" {
			format = "ncf"
		} else {
			format = guessFormat(f.data)
		}
	}
	for _, g := range []struct {
		flag  string
		users int
	}{{"synthetic-seq", f.syntheticSeq}, {"synthetic-shop", f.syntheticShop}} {
		switch {
		case g.users < 0:
			return "", fmt.Errorf("--%s must be a number of users", g.flag)
		case g.users == 0:
		case f.data != "" || f.train != "" || strings.HasPrefix(format, "synthetic-"):
			return "", fmt.Errorf("--%s generates the log: no --data, --train or other generated log", g.flag)
		default:
			format = g.flag
		}
	}
	if format != "ncf" && !strings.HasPrefix(format, "synthetic-") && f.data == "" {
		return "", errors.New("--data is required")
	}
	return format, nil
}

// loadCSVWithAttrs loads a CSV log and the item attributes its mapping
// names.
func loadCSVWithAttrs(path string, m eval.CSVMapping) ([]eval.Interaction, map[string]map[string]string, error) {
	var attrs map[string]map[string]string
	all, err := openLoad(path, func(r io.Reader) ([]eval.Interaction, error) {
		in, a, err := eval.LoadCSV(r, m)
		attrs = a
		return in, err
	})
	return all, attrs, err
}

// loadNCF loads the NCF split of --train and --test, with the negatives
// file --negatives names (a number there is a count to sample).
func loadNCF(f *evalFlags) (*eval.Split, error) {
	if f.train == "" || f.test == "" {
		return nil, errors.New("--format ncf needs --train and --test")
	}
	tr, err := os.Open(f.train)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	te, err := os.Open(f.test)
	if err != nil {
		return nil, err
	}
	defer te.Close()
	var neg io.Reader
	if _, nerr := strconv.Atoi(f.negatives); nerr != nil && f.negatives != "" {
		fh, err := os.Open(f.negatives)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		neg = fh
	}
	return eval.LoadNCF(tr, te, neg)
}

// loadItemAttrs loads --items: a .csv file as MovieLens movies.csv
// (movieId, genres), any other with eval.LoadMovieLensGenres.
func loadItemAttrs(path string) (map[string]map[string]string, error) {
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		return openLoad(path, func(r io.Reader) (map[string]map[string]string, error) {
			_, a, err := eval.LoadCSV(r, eval.CSVMapping{Header: true, User: "movieId", Item: "movieId", Attrs: map[string]string{"genres": "genres", "title": "title"}})
			return a, err
		})
	}
	return openLoad(path, eval.LoadMovieLensGenres)
}

func parseKs(s string) ([]int, error) {
	var ks []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, err := strconv.Atoi(p)
		if err != nil || k <= 0 {
			return nil, fmt.Errorf("--k: bad cutoff %q", p)
		}
		ks = append(ks, k)
	}
	if len(ks) == 0 {
		return nil, errors.New("--k: no cutoff")
	}
	return ks, nil
}

// evalConfig is the production configuration eval runs: defaults, eval's
// profile, then --config and --set.
func evalConfig(f *evalFlags) (config.Config, error) {
	sets := append(append([]string{}, evalProfile...), f.sets...)
	noEnv := func(string) (string, bool) { return "", false }
	return config.Load(f.configPath, noEnv, sets)
}

// runEval evaluates the models the flags name on the data they name and
// writes the results to stdout.
func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseEvalFlags(args, stderr)
	if err != nil {
		return err
	}
	es, err := newEvalSettings(f)
	if err != nil {
		return err
	}
	d, err := loadEvalData(f)
	if err != nil {
		return err
	}
	var progress io.Writer
	if !f.quiet {
		progress = stderr
	}

	env, err := newEvalEnv(ctx, f, es.cfg, stderr)
	if err != nil {
		return err
	}
	env.attrs = d.attrs
	defer env.close()

	names := modelNames(f.models)
	split, err := evalSplit(f, d, es)
	if err != nil {
		return err
	}
	if split, err = validationSplit(f, split, es); err != nil {
		return err
	}
	cfg, err := tuneForEval(ctx, env, es, split, names, progress, stderr)
	if err != nil {
		return err
	}
	models, err := env.buildModels(cfg, names, "")
	if err != nil {
		return err
	}
	rs, err := evaluate(ctx, f, d, split, models, es, progress)
	if err != nil {
		return err
	}
	return writeEvalResults(stdout, f, d, names, models, rs, es.ks)
}

// evalSettings are the evaluation settings the flags give beside the
// data: cut-offs, tie order, negatives and the configuration.
type evalSettings struct {
	f    *evalFlags
	ks   []int
	ties eval.HoldoutTies
	nneg int
	cfg  config.Config
}

// newEvalSettings checks and resolves the flags' settings, and applies
// --ease-lambda, --ease-items and --batch to the configuration.
func newEvalSettings(f *evalFlags) (evalSettings, error) {
	ks, err := parseKs(f.ks)
	if err != nil {
		return evalSettings{}, err
	}
	ties := eval.TiesFirstSeenItem
	switch f.ties {
	case "first-seen":
	case "last":
		ties = eval.TiesLastInInput
	default:
		return evalSettings{}, fmt.Errorf("--ties %q: want first-seen or last", f.ties)
	}
	nneg := eval.DefaultNegatives
	if n, err := strconv.Atoi(f.negatives); err == nil {
		nneg = n
	}
	cfg, err := evalConfig(f)
	if err != nil {
		return evalSettings{}, err
	}
	if f.easeLambda > 0 {
		cfg.Scorer.EASELambda = f.easeLambda
	}
	if f.easeItems > 0 {
		cfg.Scorer.EASEMaxItems = f.easeItems
	}
	if f.batch <= 0 {
		f.batch = cfg.Ingest.BatchMaxEvents
	}
	return evalSettings{f: f, ks: ks, ties: ties, nneg: nneg, cfg: cfg}, nil
}

// modelNames splits --models.
func modelNames(list string) []string {
	var names []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// evalSplit returns the train/test split of the protocol, with sampled
// negatives for leave-one-out; nil for the prequential protocol.
func evalSplit(f *evalFlags, d *evalData, es evalSettings) (*eval.Split, error) {
	var split *eval.Split
	switch {
	case d.split != nil:
		split = d.split
		if f.protocol == eval.ProtocolLeaveOneOut && split.Negatives == nil {
			split.SampleNegatives(es.nneg, f.seed)
		}
	case f.protocol == eval.ProtocolLeaveOneOut || f.protocol == eval.ProtocolFullRanking:
		if len(d.all) == 0 {
			return nil, eval.ErrNoData
		}
		split = eval.SplitLeaveOneOutTies(d.all, es.ties)
		if f.protocol == eval.ProtocolLeaveOneOut {
			split.SampleNegatives(es.nneg, f.seed)
		}
	case f.protocol == eval.ProtocolPrequential:
	default:
		return nil, fmt.Errorf("--protocol %q: want loo, full or prequential", f.protocol)
	}
	return split, nil
}

// validationSplit returns split, or with --validation the split --tune
// validates on: each user's latest training interaction held out from
// split's training part, with negatives sampled as the test's are.
func validationSplit(f *evalFlags, split *eval.Split, es evalSettings) (*eval.Split, error) {
	if !f.validation {
		return split, nil
	}
	if split == nil {
		return nil, errors.New("--validation needs --protocol loo or full")
	}
	if f.tune {
		return nil, errors.New("--validation and --tune do not go together: --tune validates on this split itself")
	}
	val := eval.SplitLeaveOneOutTies(split.Train, es.ties)
	if len(val.Test) == 0 {
		return nil, fmt.Errorf("--validation: %w", eval.ErrNoData)
	}
	if f.protocol == eval.ProtocolLeaveOneOut {
		val.SampleNegatives(es.nneg, f.seed)
	}
	return val, nil
}

// tuneForEval returns the configuration the models are built with: tuned
// on the training part with --tune; with the content weight chosen on a
// validation split of the training part when hybrid-content is evaluated
// with item attributes, as --tune does; otherwise es.cfg.
func tuneForEval(ctx context.Context, env *evalEnv, es evalSettings, split *eval.Split, names []string, progress, stderr io.Writer) (config.Config, error) {
	f := es.f
	switch {
	case f.tune:
		if split == nil {
			return config.Config{}, errors.New("--tune needs --protocol loo or full")
		}
		return tuneConfig(ctx, env, es.cfg, split.Train, f, es.ties, progress, stderr)
	case split != nil && slices.Contains(names, modelHybridCont) && len(env.attrs) > 0:
		return tuneStagesOn(ctx, env, es.cfg, split.Train, f, es.ties, progress, stderr, []tuneStage{contentStage()})
	}
	return es.cfg, nil
}

// evaluate runs the protocol: leave-one-out or full ranking on the split,
// or prequential on the whole log (a model that does not learn event by
// event is refitted every 5000 events).
func evaluate(ctx context.Context, f *evalFlags, d *evalData, split *eval.Split, models []eval.Model, es evalSettings, progress io.Writer) ([]eval.Result, error) {
	if split != nil {
		ec := eval.Config{Ks: es.ks, Negatives: es.nneg, Seed: f.seed, Ties: es.ties, SkipRepeats: f.skipRepeats, Progress: progress}
		if f.protocol == eval.ProtocolFullRanking {
			return eval.FullRankingSplit(ctx, split, models, ec)
		}
		return eval.LeaveOneOutSplit(ctx, split, models, ec)
	}
	var ls []eval.Learner
	for _, m := range models {
		l, ok := m.(eval.Learner)
		if !ok {
			l = eval.NewPeriodic(m, 5000)
		}
		ls = append(ls, l)
	}
	warm := f.warmup
	if warm < 0 {
		warm = len(d.all) / 5
	}
	return eval.Prequential(ctx, d.all, ls, eval.PrequentialConfig{Ks: es.ks, Windows: f.windows, Warmup: warm, Stride: f.stride, Progress: progress, Impressions: f.impressions})
}

// writeEvalResults writes the SVG chart (--svg), then JSON (--json) or the
// data summary, the table and the batch comparison.
func writeEvalResults(stdout io.Writer, f *evalFlags, d *evalData, names []string, models []eval.Model, rs []eval.Result, ks []int) error {
	if f.svg != "" {
		fh, err := os.Create(f.svg)
		if err != nil {
			return err
		}
		if err := eval.WriteSVG(fh, rs, "hr"); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	if f.jsonOut {
		return eval.WriteJSON(stdout, rs)
	}
	if d.split == nil && len(d.all) > 0 {
		st := eval.Describe(d.all)
		fmt.Fprintf(stdout, "%d interactions, %d users, %d items; protocol %s\n", st.Interactions, st.Users, st.Items, f.protocol)
	}
	if err := eval.WriteTable(stdout, rs); err != nil {
		return err
	}
	writeBatchComparison(stdout, names, models, rs, ks)
	return nil
}

// batchPairs are the incremental models and their batch references.
var batchPairs = [][2]string{{modelUserKNN, modelBatchUserKNN}, {modelItemKNN, modelBatchItemKNN}, {modelEASE, modelBatchEASE}, {modelNextItem, modelBatchNext}}

// writeBatchComparison prints, for each incremental model evaluated beside
// its batch reference, the difference of their metrics: 0 where the
// production caps do not bind and the definitions agree, and the cost (or
// gain) of the caps, the decay and the recency seeds otherwise.
func writeBatchComparison(w io.Writer, names []string, models []eval.Model, rs []eval.Result, ks []int) {
	byName := map[string]eval.Result{}
	for i, m := range models {
		for _, r := range rs {
			if r.Model == m.Name() && i < len(names) {
				byName[names[i]] = r
			}
		}
	}
	k := ks[len(ks)-1]
	hr, nd := eval.MetricKey("hr", k), eval.MetricKey("ndcg", k)
	header := false
	for _, p := range batchPairs {
		inc, ok1 := byName[p[0]]
		bat, ok2 := byName[p[1]]
		if !ok1 || !ok2 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nincremental minus batch reference (%s, %s):\n", hr, nd)
			header = true
		}
		fmt.Fprintf(w, "  %-9s - %-31s %+.4f  %+.4f\n", p[0], bat.Model, inc.Metrics[hr]-bat.Metrics[hr], inc.Metrics[nd]-bat.Metrics[nd])
	}
}

// evalEnv is the Redis (and, for --full-path, the broker) of one eval run.
type evalEnv struct {
	f      *evalFlags
	addr   string
	prefix string
	stderr io.Writer
	closes []func()
	n      int
	kafka  *embedded.Kafka
	attrs  map[string]map[string]string // item attributes for the content models
}

func newEvalEnv(ctx context.Context, f *evalFlags, cfg config.Config, stderr io.Writer) (*evalEnv, error) {
	e := &evalEnv{f: f, stderr: stderr, prefix: fmt.Sprintf("rseval:%x:", uint32(time.Now().UnixNano())^uint32(os.Getpid())<<16)}
	if f.redis != "" {
		e.addr = f.redis
		return e, nil
	}
	r, err := embedded.StartRedis(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting redis: %w", err)
	}
	if r.Kind != embedded.KindRedisServer {
		fmt.Fprintf(stderr, "recstream eval: redis-server not available (%v); using the slower in-process %s\n", r.Fallback, r.Kind)
	}
	e.addr = r.Addr
	e.closes = append(e.closes, func() { _ = r.Close() })
	return e, nil
}

func (e *evalEnv) close() {
	for i := len(e.closes) - 1; i >= 0; i-- {
		e.closes[i]()
	}
}

// newReplay returns a replay over a fresh key prefix, deleted at close.
func (e *evalEnv) newReplay(cfg config.Config, ease *scorer.EASE) *eval.Replay {
	e.n++
	c := cfg
	c.Redis.Addrs = []string{e.addr}
	c.Redis.KeyPrefix = fmt.Sprintf("%s%d:", e.prefix, e.n)
	rdb := processor.NewRedis(c.Redis)
	prefix := c.Redis.KeyPrefix
	e.closes = append(e.closes, func() {
		_ = eval.DeletePrefix(context.Background(), rdb, prefix)
		_ = rdb.Close()
	})
	so := store.OptionsFromConfig(c)
	so.Epoch = time.Time{} // the log's first timestamp
	rc := eval.ReplayConfig{Redis: rdb, Store: so, Partitions: e.f.partitions, BatchSize: e.f.batch, EASE: ease}
	if e.f.fullPath {
		rc.Ingest = newFullPath(e, c)
	}
	return eval.NewReplay(rc)
}

// buildModels returns the named models; the incremental ones share one
// replay of the training data.
func (e *evalEnv) buildModels(cfg config.Config, names []string, suffix string) ([]eval.Model, error) {
	var replay *eval.Replay
	var ease *scorer.EASE
	getReplay := func() *eval.Replay {
		if replay == nil {
			ease = scorer.NewEASE(scorer.EASEOptionsFromConfig(cfg))
			replay = e.newReplay(cfg, ease)
		}
		return replay
	}
	base := scorer.OptionsFromConfig(cfg)
	only := func(u, i, t, x float64) scorer.Options {
		o := base
		o.WeightUserKNN, o.WeightItemKNN, o.WeightTrending, o.WeightEASE = u, i, t, x
		o.WeightNext = 0
		return o
	}
	var attrCatalog *catalog.Index
	if len(e.attrs) > 0 {
		attrCatalog = catalogFromAttrs(e.attrs)
	}
	var out []eval.Model
	for _, n := range names {
		var m eval.Model
		switch n {
		case modelPopularity:
			m = eval.NewPopularity()
		case modelUserKNN:
			m = eval.NewIncremental(n+suffix, getReplay(), only(1, 0, 0, 0))
		case modelItemKNN:
			m = eval.NewIncremental(n+suffix, getReplay(), only(0, 1, 0, 0))
		case modelEASE:
			m = eval.NewIncremental(n+suffix, getReplay(), only(0, 0, 0, 1))
		case modelNextItem:
			if cfg.Model.NextWindow == 0 {
				return nil, fmt.Errorf("%s: model.next_window is 0 (no transitions kept)", n)
			}
			o := only(0, 0, 0, 0)
			o.WeightNext = 1
			m = eval.NewIncremental(n+suffix, getReplay(), o)
		case modelPopular:
			o := only(0, 0, 0, 0)
			o.WeightPopular = 1
			if attrCatalog != nil && attrCatalog.Len() > 0 {
				o.Catalog = attrCatalog
				o.WeightContent, o.WeightNew = 0, 0
			}
			m = eval.NewIncremental(n+suffix, getReplay(), o)
		case modelHybrid:
			o := base
			if o.WeightEASE == 0 && o.WeightUserKNN == 0 && o.WeightItemKNN == 0 && o.WeightTrending == 0 && o.WeightNext == 0 {
				return nil, errors.New("hybrid: every blend weight is 0")
			}
			m = eval.NewIncremental(n+suffix, getReplay(), o)
		case modelContent, modelHybridCont:
			if attrCatalog == nil || attrCatalog.Len() == 0 {
				return nil, fmt.Errorf("%s: no item attributes (use a data set with attributes or --items)", n)
			}
			m = eval.NewIncremental(n+suffix, getReplay(), contentOptions(n, base, only(0, 0, 0, 0), attrCatalog))
		case modelBatchUserKNN, modelBatchItemKNN, modelBatchEASE, modelBatchNext:
			m = batchModel(cfg, n)
		case "":
			continue
		default:
			return nil, fmt.Errorf("--models: unknown model %q (want %s, %s, %s or %s)", n, strings.Join(allModels, ", "), modelPopular, modelContent, modelHybridCont)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, errors.New("--models: none")
	}
	return out, nil
}

// contentOptions returns the scorer options of the content model (the
// content source alone, weight 1) or of hybrid-content (base plus content
// at scorer.weights.content) over the attribute catalog idx; none is the
// base with every source off. New arrivals stay off: replayed logs have
// no creation times.
func contentOptions(n string, base, none scorer.Options, idx *catalog.Index) scorer.Options {
	o := none
	if n == modelHybridCont {
		o = base
	}
	o.Catalog = idx
	o.WeightContent = base.WeightContent
	if n == modelContent {
		o.WeightContent = 1
	}
	o.WeightNew = 0
	return o
}

// batchModel returns the batch reference model named n (one of
// modelBatchUserKNN, modelBatchItemKNN, modelBatchEASE, modelBatchNext)
// with the configuration's settings.
func batchModel(cfg config.Config, n string) eval.Model {
	switch n {
	case modelBatchUserKNN:
		return eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: cfg.Scorer.UserSimilarity, K: cfg.Scorer.Neighbours, Shrink: cfg.Scorer.Shrinkage})
	case modelBatchItemKNN:
		return eval.NewBatchItemKNN(eval.ItemKNNConfig{Similarity: cfg.Scorer.ItemSimilarity, Shrink: cfg.Scorer.Shrinkage})
	case modelBatchEASE:
		return eval.NewEASE(eval.EASEConfig{Lambda: cfg.Scorer.EASELambda, Weighting: eval.Weighting{Binary: true}})
	case modelBatchNext:
		return eval.NewBatchNextItem(eval.NextItemConfig{Window: cfg.Model.NextWindow, LogCap: cfg.Model.UserLogCap,
			Recent: cfg.Scorer.RecentEvents, Seeds: cfg.Scorer.RecentEvents, Weights: cfg.Model.Weights.ByName(), HalfLife: cfg.Model.HalfLife})
	}
	panic("batchModel: not a batch model: " + n)
}

// releaseYear finds a MovieLens title's release year: "Toy Story (1995)".
var releaseYear = regexp.MustCompile(`\((\d{4})\)\s*$`)

// catalogFromAttrs builds a catalog index from eval item attributes:
// "category" (Taobao) becomes the category; MovieLens "genre" or "genres"
// (| separated) give the first genre as category and every genre as a tag,
// and the release year in a MovieLens title ("Toy Story (1995)") two more
// tags, the year and the decade ("year:1995", "decade:1990s").
func catalogFromAttrs(attrs map[string]map[string]string) *catalog.Index {
	idx := catalog.NewIndex()
	for id, a := range attrs {
		it := catalog.Item{ID: id, Available: true, Category: a["category"]}
		g := a["genre"]
		if g == "" {
			g = a["genres"]
		}
		if g != "" {
			it.Tags = strings.Split(g, "|")
			if it.Category == "" {
				it.Category = it.Tags[0]
			}
		}
		if y := releaseYear.FindStringSubmatch(a["title"]); y != nil {
			it.Tags = append(it.Tags, "year:"+y[1], "decade:"+y[1][:3]+"0s")
		}
		if it.Validate() == nil {
			idx.Put(it)
		}
	}
	return idx
}

// csvMapping builds the generic CSV column mapping from the --csv-* flags.
func (f *evalFlags) csvMapping() (eval.CSVMapping, error) {
	m := eval.CSVMapping{Header: f.csvHeader, TSUnit: f.csvTSUnit, Attrs: map[string]string{}}
	switch f.csvComma {
	case `\t`, "\t":
		m.Comma = '\t'
	default:
		r := []rune(f.csvComma)
		if len(r) != 1 {
			return m, fmt.Errorf("--csv-comma: want one character, got %q", f.csvComma)
		}
		m.Comma = r[0]
	}
	if f.csvColumns == "" {
		return m, errors.New("--format csv needs --csv-columns (e.g. user=0,item=1,ts=2)")
	}
	for _, kv := range strings.Split(f.csvColumns, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || v == "" {
			return m, fmt.Errorf("--csv-columns: %q is not field=column", kv)
		}
		switch {
		case k == "user":
			m.User = v
		case k == "item":
			m.Item = v
		case k == "ts":
			m.TS = v
		case k == "type":
			m.Type = v
		case k == "value":
			m.Value = v
		case strings.HasPrefix(k, "attr.") && len(k) > len("attr."):
			m.Attrs[strings.TrimPrefix(k, "attr.")] = v
		default:
			return m, fmt.Errorf("--csv-columns: unknown field %q (user, item, ts, type, value, attr.<name>)", k)
		}
	}
	if m.User == "" || m.Item == "" {
		return m, errors.New("--csv-columns: user and item are required")
	}
	if f.csvTypes != "" {
		m.TypeMap = map[string]string{}
		m.SkipUnmapped = true
		for _, kv := range strings.Split(f.csvTypes, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				return m, fmt.Errorf("--csv-types: %q is not behaviour=type", kv)
			}
			if _, err := event.ParseType(v); err != nil {
				return m, fmt.Errorf("--csv-types: %q: %w", kv, err)
			}
			m.TypeMap[k] = v
		}
	}
	if len(m.Attrs) == 0 {
		m.Attrs = nil
	}
	return m, nil
}

// interactions turns a generated log into the evaluator's interactions.
func interactions(evs []event.Event) []eval.Interaction {
	out := make([]eval.Interaction, len(evs))
	for i, e := range evs {
		out[i] = eval.Interaction{User: e.UserID, Item: e.ItemID, Type: e.Type.String(), TS: e.TS, Value: 1}
	}
	return out
}
