package eval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/recstream/recstream/eval"
)

// planted generates a log with planted structure: clusters of users, each
// consuming items of its own cluster (with a Zipf-like popularity inside the
// cluster), plus a fraction of uniformly random items as noise.
func planted(seed uint64, clusters, usersPer, itemsPer, perUser int, noise float64) []eval.Interaction {
	rng := rand.New(rand.NewPCG(seed, 7))
	nItems := clusters * itemsPer
	var out []eval.Interaction
	for c := range clusters {
		for u := range usersPer {
			user := fmt.Sprintf("u%d_%d", c, u)
			had := map[int]bool{}
			for len(had) < perUser {
				var item int
				if rng.Float64() < noise {
					item = rng.IntN(nItems)
				} else {
					// Zipf-like within the cluster: low ranks are popular.
					r := int(float64(itemsPer) * math.Pow(rng.Float64(), 2))
					item = c*itemsPer + min(r, itemsPer-1)
				}
				if had[item] {
					continue
				}
				had[item] = true
				out = append(out, eval.Interaction{
					User: user, Item: fmt.Sprintf("i%d", item), Type: eval.TypeClick,
					TS: int64(rng.IntN(1_000_000)), Value: 1,
				})
			}
		}
	}
	return out
}

func plantedModels() []eval.Model {
	return []eval.Model{
		eval.NewPopularity(),
		eval.NewBatchItemKNN(eval.ItemKNNConfig{Similarity: eval.SimCosine, K: 50}),
		eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: eval.SimCosine, K: 30}),
		eval.NewEASE(eval.EASEConfig{Lambda: 50}),
	}
}

func TestPlantedStructureBeatsPopularity(t *testing.T) {
	data := planted(1, 5, 40, 40, 20, 0.1)
	rs, err := eval.LeaveOneOut(context.Background(), data, plantedModels(), eval.Config{Ks: []int{5, 10}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pop := rs[0].Metrics["hr@10"]
	t.Logf("Popularity hr@10 %.3f", pop)
	for _, r := range rs[1:] {
		hr := r.Metrics["hr@10"]
		t.Logf("%s hr@10 %.3f ndcg@10 %.3f cov %.3f", r.Model, hr, r.Metrics["ndcg@10"], r.Metrics["coverage@10"])
		if hr < pop+0.2 {
			t.Errorf("%s hr@10 %.3f, popularity %.3f: want a margin of 0.2", r.Model, hr, pop)
		}
		if r.Metrics["coverage@10"] <= rs[0].Metrics["coverage@10"] {
			t.Errorf("%s coverage %.3f not above popularity's %.3f", r.Model, r.Metrics["coverage@10"], rs[0].Metrics["coverage@10"])
		}
	}
	for _, r := range rs {
		if r.Users != 200 || r.Protocol != "loo" {
			t.Errorf("%s: users %d protocol %s", r.Model, r.Users, r.Protocol)
		}
		m := r.Metrics
		if !near(m["precision@10"], m["hr@10"]/10) || m["recall@10"] != m["hr@10"] || m["hr@5"] > m["hr@10"] {
			t.Errorf("%s: inconsistent metrics %v", r.Model, m)
		}
		if m["mrr"] <= 0 || m["mrr"] > 1 {
			t.Errorf("%s: mrr %v", r.Model, m["mrr"])
		}
	}
	// Full ranking is harder but keeps the order.
	fr, err := eval.FullRanking(context.Background(), data, plantedModels()[:2], eval.Config{Ks: []int{10}})
	if err != nil {
		t.Fatal(err)
	}
	if fr[0].Protocol != "full" || fr[1].Metrics["hr@10"] < fr[0].Metrics["hr@10"]+0.1 {
		t.Errorf("full ranking: %v vs %v", fr[1].Metrics, fr[0].Metrics)
	}
	if fr[1].Metrics["hr@10"] > rs[1].Metrics["hr@10"] {
		t.Errorf("full ranking hr@10 %.3f above sampled %.3f", fr[1].Metrics["hr@10"], rs[1].Metrics["hr@10"])
	}
}

func TestDeterminism(t *testing.T) {
	data := planted(3, 3, 20, 30, 15, 0.2)
	run := func(seed uint64) ([]eval.Result, map[string][]string) {
		s := eval.SplitLeaveOneOut(data)
		s.SampleNegatives(20, seed)
		rs, err := eval.LeaveOneOutSplit(context.Background(), s, plantedModels(), eval.Config{Seed: seed, Negatives: 20})
		if err != nil {
			t.Fatal(err)
		}
		return rs, s.Negatives
	}
	r1, n1 := run(42)
	r2, n2 := run(42)
	if !reflect.DeepEqual(n1, n2) {
		t.Fatal("same seed, different negatives")
	}
	for i := range r1 {
		if !reflect.DeepEqual(r1[i].Metrics, r2[i].Metrics) {
			t.Errorf("%s: same seed, different metrics", r1[i].Model)
		}
	}
	_, n3 := run(43)
	if reflect.DeepEqual(n1, n3) {
		t.Error("different seeds, same negatives")
	}
	// LeaveOneOut samples the same negatives as SplitLeaveOneOut+SampleNegatives.
	r4, err := eval.LeaveOneOut(context.Background(), data, plantedModels(), eval.Config{Seed: 42, Negatives: 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range r1 {
		if !reflect.DeepEqual(r1[i].Metrics, r4[i].Metrics) {
			t.Errorf("%s: LeaveOneOut differs from the explicit split", r1[i].Model)
		}
	}
}

func TestSplitAndNegatives(t *testing.T) {
	in := []eval.Interaction{
		{User: "a", Item: "x", TS: 1},
		{User: "a", Item: "y", TS: 5},
		{User: "a", Item: "z", TS: 5}, // same TS, later in file: held out
		{User: "a", Item: "w", TS: 3},
		{User: "b", Item: "x", TS: 9}, // b has one interaction: train only
		{User: "c", Item: "v", TS: 2},
		{User: "c", Item: "u", TS: 1},
	}
	s := eval.SplitLeaveOneOut(in)
	wantTest := []eval.Interaction{{User: "a", Item: "z", TS: 5}, {User: "c", Item: "v", TS: 2}}
	if !reflect.DeepEqual(s.Test, wantTest) {
		t.Fatalf("test %+v", s.Test)
	}
	if len(s.Train) != 5 || !slices.IsSortedFunc(s.Train, func(a, b eval.Interaction) int { return int(a.TS - b.TS) }) {
		t.Fatalf("train %+v", s.Train)
	}
	if in[2].Item != "z" || in[3].Item != "w" {
		t.Fatal("input modified")
	}
	// Catalogue {u,v,w,x,y,z}: a never had u, v; c never had w, x, y, z.
	s.SampleNegatives(99, 1)
	if got := slices.Sorted(slices.Values(s.Negatives["a"])); !reflect.DeepEqual(got, []string{"u", "v"}) {
		t.Errorf("a negatives %v", got)
	}
	if got := slices.Sorted(slices.Values(s.Negatives["c"])); !reflect.DeepEqual(got, []string{"w", "x", "y", "z"}) {
		t.Errorf("c negatives %v", got)
	}
	// Larger catalogue: sampled negatives are distinct and never interacted.
	data := planted(5, 2, 10, 200, 30, 0.5)
	s = eval.SplitLeaveOneOut(data)
	s.SampleNegatives(99, 7)
	had := map[string]map[string]bool{}
	for _, it := range data {
		if had[it.User] == nil {
			had[it.User] = map[string]bool{}
		}
		had[it.User][it.Item] = true
	}
	for u, negs := range s.Negatives {
		if len(negs) != 99 {
			t.Fatalf("%s: %d negatives", u, len(negs))
		}
		set := map[string]bool{}
		for _, n := range negs {
			if had[u][n] || set[n] {
				t.Fatalf("%s: negative %s interacted or repeated", u, n)
			}
			set[n] = true
		}
	}
	// Validation split is carved from train only.
	v := s.Validation()
	for _, it := range v.Test {
		if slices.Contains(s.Test, it) {
			t.Fatalf("validation test %+v is a test interaction", it)
		}
	}
}

// fixedModel scores from a table and records what it was trained on.
type fixedModel struct {
	scores  map[string]float64
	trained []eval.Interaction
	topk    []string
}

func (f *fixedModel) Name() string { return "fixed" }
func (f *fixedModel) Fit(_ context.Context, train []eval.Interaction) error {
	f.trained = append(f.trained[:0], train...)
	return nil
}
func (f *fixedModel) Score(_ context.Context, _ string, c []string) ([]float64, error) {
	out := make([]float64, len(c))
	for i, it := range c {
		s, ok := f.scores[it]
		if !ok {
			s = math.Inf(-1)
		}
		out[i] = s
	}
	return out, nil
}
func (f *fixedModel) TopK(_ context.Context, _ string, k int, ex map[string]bool) ([]string, error) {
	var out []string
	for _, it := range f.topk {
		if !ex[it] && len(out) < k {
			out = append(out, it)
		}
	}
	return out, nil
}

func TestLeaveOneOutRanksByHand(t *testing.T) {
	// One user; train x, test t; negatives given explicitly (NCF style).
	s := &eval.Split{
		Train:     []eval.Interaction{{User: "u", Item: "x", TS: 1}, {User: "v", Item: "n1", TS: 1}, {User: "v", Item: "t", TS: 1}},
		Test:      []eval.Interaction{{User: "u", Item: "t", TS: 2}},
		Negatives: map[string][]string{"u": {"n1", "n2", "n3", "n4"}},
	}
	m := &fixedModel{scores: map[string]float64{"t": 2, "n1": 3, "n2": 2, "n3": 1}, topk: []string{"x", "n1", "t"}}
	rs, err := eval.LeaveOneOutSplit(context.Background(), s, []eval.Model{m}, eval.Config{Ks: []int{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	// n1 > t, n2 == t (tie against), n3 < t, n4 unscorable: rank 3.
	got := rs[0].Metrics
	if got["hr@2"] != 0 || got["hr@3"] != 1 || !near(got["ndcg@3"], 0.5) || !near(got["mrr"], 1.0/3) {
		t.Fatalf("metrics %v", got)
	}
	// TopK(3) excludes the training item x: [n1 t]. The catalogue is the
	// items of train and test: {n1, t, x}.
	if !near(got["coverage@1"], 1.0/3) || !near(got["coverage@3"], 2.0/3) {
		t.Fatalf("coverage %v", got)
	}
	// Training counts: n1 1, t 1; popularity@3 = mean(1,1) = 1, normalised 1.
	if got["popularity@3"] != 1 || got["popularity_norm@3"] != 1 {
		t.Fatalf("popularity %v", got)
	}
	if len(m.trained) != 3 {
		t.Fatalf("trained on %v", m.trained)
	}
	// Full ranking: candidates are the catalogue minus u's training items
	// {x}: t (2) and n1 (3) -> rank 2.
	fr, err := eval.FullRankingSplit(context.Background(), s, []eval.Model{m}, eval.Config{Ks: []int{1, 3}})
	if err != nil || fr[0].Metrics["hr@1"] != 0 || fr[0].Metrics["hr@3"] != 1 || !near(fr[0].Metrics["mrr"], 0.5) {
		t.Fatalf("full %v %v", fr, err)
	}
}

func TestPrequentialByHand(t *testing.T) {
	// Popularity, K=1, no warm-up:
	//  a:x  a has no history: learnt only           x=1
	//  b:x  b has no history                        x=2
	//  a:y  top1(a) excluding x: [] -> miss         y=1
	//  b:y  top1(b) excluding x: [y] -> hit         y=2
	//  a:x  a repeat: learnt only by default        x=3
	//  c:z  c has no history                        z=1
	//  c:y  top1(c) excluding z: [x] -> miss
	in := []eval.Interaction{
		{User: "a", Item: "x", TS: 1}, {User: "b", Item: "x", TS: 2}, {User: "a", Item: "y", TS: 3},
		{User: "b", Item: "y", TS: 4}, {User: "a", Item: "x", TS: 5}, {User: "c", Item: "z", TS: 6},
		{User: "c", Item: "y", TS: 7},
	}
	rs, err := eval.Prequential(context.Background(), in, []eval.Learner{eval.NewPopularity()}, eval.PrequentialConfig{Ks: []int{1}, Windows: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if r.Events != 3 || r.Users != 3 || !near(r.Metrics["hr@1"], 1.0/3) {
		t.Fatalf("result %+v", r)
	}
	if len(r.Windows) != 2 || r.Windows[0].Interactions != 4 || r.Windows[1].Interactions != 3 ||
		r.Windows[0].Events != 2 || r.Windows[1].Events != 1 || r.Windows[0].FromTS != 1 || r.Windows[1].ToTS != 7 {
		t.Fatalf("windows %+v", r.Windows)
	}
	if !near(r.Windows[0].Metrics["hr@1"], 0.5) || r.Windows[1].Metrics["hr@1"] != 0 {
		t.Fatalf("window metrics %v %v", r.Windows[0].Metrics, r.Windows[1].Metrics)
	}
	// With repeats included, a:x at TS 5 is evaluated too: top1(a) = x -> hit.
	rs, err = eval.Prequential(context.Background(), in, []eval.Learner{eval.NewPopularity()}, eval.PrequentialConfig{Ks: []int{1}, IncludeRepeats: true})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Events != 4 {
		t.Fatalf("with repeats: %+v", rs[0])
	}
}

func TestPrequentialPeriodic(t *testing.T) {
	data := planted(9, 3, 15, 20, 12, 0.1)
	ls := []eval.Learner{
		eval.NewPopularity(),
		eval.NewPeriodic(eval.NewBatchItemKNN(eval.ItemKNNConfig{}), 50),
	}
	rs, err := eval.Prequential(context.Background(), data, ls, eval.PrequentialConfig{Ks: []int{10}, Warmup: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs[0].Windows) != 10 || rs[1].Model != "ItemKNN(cosine,k=0,shrink=0)/refit50" {
		t.Fatalf("%+v", rs[1])
	}
	if rs[1].Metrics["hr@10"] <= rs[0].Metrics["hr@10"] {
		t.Errorf("periodic item-knn hr@10 %.3f <= popularity %.3f", rs[1].Metrics["hr@10"], rs[0].Metrics["hr@10"])
	}
}

func TestTuneNeverSeesTest(t *testing.T) {
	data := planted(11, 3, 20, 20, 12, 0.1)
	s := eval.SplitLeaveOneOut(data)
	var spies []*fixedModel
	var factories []func() eval.Model
	for _, k := range []int{1, 5, 20} {
		factories = append(factories, func() eval.Model {
			return eval.NewBatchItemKNN(eval.ItemKNNConfig{K: k})
		})
	}
	factories = append(factories, func() eval.Model {
		f := &fixedModel{}
		spies = append(spies, f)
		return f
	})
	res, err := eval.Tune(context.Background(), s.Train, factories, eval.TuneConfig{Config: eval.Config{Seed: 1, NoLists: true}, Metric: "hr@5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 4 || res.Best == 3 || res.Model == nil || res.Metric != "hr@5" {
		t.Fatalf("tune %+v", res)
	}
	if res.Score != res.Results[res.Best].Metrics["hr@5"] {
		t.Fatal("score is not the best result's")
	}
	test := map[eval.Interaction]bool{}
	for _, it := range s.Test {
		test[it] = true
	}
	if len(spies[0].trained) == 0 || len(spies[0].trained) >= len(s.Train) {
		t.Fatalf("spy trained on %d of %d", len(spies[0].trained), len(s.Train))
	}
	for _, it := range spies[0].trained {
		if test[it] {
			t.Fatalf("tune fitted on test interaction %+v", it)
		}
	}
}

func TestOutputs(t *testing.T) {
	data := planted(2, 2, 10, 10, 8, 0.1)
	rs, err := eval.LeaveOneOut(context.Background(), data, plantedModels()[:2], eval.Config{Ks: []int{1, 5, 10}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := eval.Prequential(context.Background(), data, []eval.Learner{eval.NewPopularity()}, eval.PrequentialConfig{Windows: 3})
	if err != nil {
		t.Fatal(err)
	}
	all := append(rs, pr...)

	var js bytes.Buffer
	if err := eval.WriteJSON(&js, all); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(js.String(), `{"results": [`) {
		t.Fatalf("json prefix: %s", js.String()[:40])
	}
	var doc struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("json: %v\n%s", err, js.String())
	}
	if len(doc.Results) != 3 || doc.Results[0]["model"] != "Popularity" || doc.Results[0]["protocol"] != "loo" {
		t.Fatalf("json rows %v", doc.Results)
	}
	for _, k := range []string{"hr@10", "ndcg@10", "precision@10", "recall@10", "mrr", "coverage@10", "popularity@10"} {
		if v, ok := doc.Results[1][k].(float64); !ok || v != rs[1].Metrics[k] {
			t.Errorf("json %s = %v, want %v", k, doc.Results[1][k], rs[1].Metrics[k])
		}
	}
	if w, ok := doc.Results[2]["windows"].([]any); !ok || len(w) != 3 {
		t.Errorf("json windows %v", doc.Results[2]["windows"])
	}

	var tb bytes.Buffer
	if err := eval.WriteTable(&tb, all); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tb.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "model") || !strings.Contains(lines[0], "hr@10") {
		t.Fatalf("table:\n%s", tb.String())
	}
	col := strings.Index(lines[0], "hr@1 ")
	for _, l := range lines[1:] {
		if len(l) <= col || l[col-1] != ' ' {
			t.Fatalf("table not aligned:\n%s", tb.String())
		}
	}

	var svg bytes.Buffer
	if err := eval.WriteSVG(&svg, rs, "ndcg@10"); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	polylines, texts := 0, ""
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("svg: %v", err)
			}
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "polyline" {
				polylines++
			}
		case xml.CharData:
			texts += string(el)
		}
	}
	if polylines != 2 || !strings.Contains(texts, "Popularity") || !strings.Contains(texts, "NDCG@K") {
		t.Fatalf("svg: %d lines, text %q", polylines, texts)
	}
}

func TestProgress(t *testing.T) {
	var nilBar *eval.Progress
	nilBar.Add(1) // no panic
	nilBar.Done()
	if eval.NewProgress(nil, "x", 3) != nil {
		t.Fatal("nil writer: want nil bar")
	}
	var b bytes.Buffer
	p := eval.NewProgress(&b, "loo", 4)
	p.Interval = 0
	for range 4 {
		p.Add(1)
	}
	p.Done()
	out := b.String()
	if !strings.Contains(out, "loo [") || !strings.Contains(out, "100% 4/4") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress %q", out)
	}
	// Rate-limited: many adds in a burst draw once (plus Done).
	b.Reset()
	p = eval.NewProgress(&b, "x", 1000)
	p.Interval = 1 << 62
	for range 1000 {
		p.Add(1)
	}
	if n := strings.Count(b.String(), "\r"); n > 1 {
		t.Fatalf("%d redraws", n)
	}
}

func TestSplitTiesFirstSeenItem(t *testing.T) {
	// u's latest second holds p, q, r (input order q, r, p after sorting by
	// time); p appears first in the input, so the reference rule holds it
	// out, while the default holds out the last in input order.
	in := []eval.Interaction{
		{User: "v", Item: "p", TS: 1},
		{User: "u", Item: "a", TS: 1},
		{User: "u", Item: "q", TS: 9},
		{User: "v", Item: "r", TS: 2},
		{User: "u", Item: "r", TS: 9},
		{User: "u", Item: "p", TS: 9},
		{User: "w", Item: "q", TS: 3},
		{User: "w", Item: "r", TS: 3},
	}
	def := eval.SplitLeaveOneOut(in)
	ref := eval.SplitLeaveOneOutTies(in, eval.TiesFirstSeenItem)
	got := func(s *eval.Split) []string {
		var out []string
		for _, it := range s.Test {
			out = append(out, it.User+":"+it.Item)
		}
		return out
	}
	if g := got(def); !reflect.DeepEqual(g, []string{"u:p", "v:r", "w:r"}) {
		t.Errorf("default ties: %v", g)
	}
	// u: p (first seen at 0) wins over q (2) and r (3); w: q (2) over r (3).
	if g := got(ref); !reflect.DeepEqual(g, []string{"u:p", "v:r", "w:q"}) {
		t.Errorf("first-seen-item ties: %v", g)
	}
	in[5], in[4] = in[4], in[5] // now r is last for u; p still first seen
	if g := got(eval.SplitLeaveOneOut(in)); g[0] != "u:r" {
		t.Errorf("default ties after swap: %v", g)
	}
	if g := got(eval.SplitLeaveOneOutTies(in, eval.TiesFirstSeenItem)); g[0] != "u:p" {
		t.Errorf("first-seen-item ties after swap: %v", g)
	}
}

func TestSkipRepeats(t *testing.T) {
	// u re-views x last; v's last item is new to v.
	in := []eval.Interaction{
		{User: "u", Item: "x", TS: 1}, {User: "u", Item: "y", TS: 2}, {User: "u", Item: "x", TS: 3},
		{User: "v", Item: "x", TS: 1}, {User: "v", Item: "z", TS: 2},
	}
	m := &fixedModel{scores: map[string]float64{"x": 1, "y": 1, "z": 1}}
	rs, err := eval.FullRanking(context.Background(), in, []eval.Model{m}, eval.Config{})
	if err != nil || rs[0].Users != 2 {
		t.Fatalf("%+v %v", rs, err)
	}
	rs, err = eval.FullRanking(context.Background(), in, []eval.Model{m}, eval.Config{SkipRepeats: true})
	if err != nil || rs[0].Users != 1 {
		t.Fatalf("skip repeats: %+v %v", rs, err)
	}
}

func TestPeriodicUsesLiveHistory(t *testing.T) {
	ctx := context.Background()
	// Fitted on u1{a,b}, u2{a,b}: sim(a,b) = 1. A new user who then views a
	// is unknown to the model until the next refit, but Periodic scores the
	// live history, so b is recommended at once.
	p := eval.NewPeriodic(eval.NewBatchItemKNN(eval.ItemKNNConfig{}), 1000)
	if err := p.Fit(ctx, pairs("u1:a", "u1:b", "u2:a", "u2:b")); err != nil {
		t.Fatal(err)
	}
	if top, _ := p.TopK(ctx, "new", 5, nil); len(top) != 0 {
		t.Fatalf("no history: %v", top)
	}
	if err := p.Observe(ctx, eval.Interaction{User: "new", Item: "a", Type: eval.TypeClick}); err != nil {
		t.Fatal(err)
	}
	top, _ := p.TopK(ctx, "new", 5, map[string]bool{"a": true})
	if !reflect.DeepEqual(top, []string{"b"}) {
		t.Fatalf("live history: %v", top)
	}
	s, _ := p.Score(ctx, "new", []string{"b", "zz"})
	if !near(s[0], 1) || !math.IsInf(s[1], -1) {
		t.Fatalf("scores %v", s)
	}
}
