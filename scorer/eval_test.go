package scorer_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/eval"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// contentModel is the scorer's content source as an eval.Model: the
// profile is scorer.Profile over the user's training items weighted by
// event weight × 2^((ts − epoch)/half-life) (the store's decayed weights),
// and the score is ContentProfile.Similarity.
type contentModel struct {
	idx      *catalog.Index
	halfLife time.Duration
	weights  map[string]float64
	users    map[string][]store.Scored
	items    []string
}

func newContentModel(idx *catalog.Index) *contentModel {
	return &contentModel{idx: idx, halfLife: 14 * 24 * time.Hour,
		weights: map[string]float64{eval.TypeBrowse: 1, eval.TypeClick: 2, eval.TypeAddToCart: 4, eval.TypePurchase: 8}}
}

func (m *contentModel) Name() string { return "Content" }

func (m *contentModel) Fit(_ context.Context, train []eval.Interaction) error {
	acc := map[string]map[string]float64{}
	last := map[string]int64{}
	for _, it := range train {
		last[it.User] = max(last[it.User], it.TS)
	}
	seen := map[string]bool{}
	m.items = m.items[:0]
	for _, it := range train {
		if acc[it.User] == nil {
			acc[it.User] = map[string]float64{}
		}
		// Relative to the user's last event: the same ratio as the
		// store's epoch scaling, without overflow over decades.
		d := math.Exp2(float64(it.TS-last[it.User]) / float64(m.halfLife.Milliseconds()))
		acc[it.User][it.Item] += m.weights[it.Type] * d
		if !seen[it.Item] {
			seen[it.Item] = true
			m.items = append(m.items, it.Item)
		}
	}
	m.users = map[string][]store.Scored{}
	for u, ws := range acc {
		v := make([]store.Scored, 0, len(ws))
		for it, w := range ws {
			v = append(v, store.Scored{ID: it, Score: w})
		}
		sort.Slice(v, func(a, b int) bool {
			if v[a].Score != v[b].Score {
				return v[a].Score > v[b].Score
			}
			return v[a].ID < v[b].ID
		})
		m.users[u] = v
	}
	return nil
}

func (m *contentModel) Score(_ context.Context, user string, cands []string) ([]float64, error) {
	p := scorer.Profile(m.idx, m.users[user])
	out := make([]float64, len(cands))
	for i, c := range cands {
		out[i] = p.Similarity(m.idx, c)
	}
	return out, nil
}

func (m *contentModel) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	s, _ := m.Score(ctx, user, m.items)
	return topOf(m.items, s, k, exclude), nil
}

func topOf(ids []string, s []float64, k int, exclude map[string]bool) []string {
	idx := make([]int, 0, len(ids))
	for i := range ids {
		if !exclude[ids[i]] && !math.IsInf(s[i], -1) {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool {
		if s[idx[a]] != s[idx[b]] {
			return s[idx[a]] > s[idx[b]]
		}
		return ids[idx[a]] < ids[idx[b]]
	})
	out := make([]string, 0, k)
	for _, i := range idx[:min(k, len(idx))] {
		out = append(out, ids[i])
	}
	return out
}

// hybridModel blends item-kNN and content as the scorer does: each
// source normalised by its maximum over the user's candidates, weighted,
// summed.
type hybridModel struct {
	knn     *eval.BatchItemKNN
	content *contentModel
	wc      float64
	name    string
}

func (m *hybridModel) Name() string { return m.name }

func (m *hybridModel) Fit(ctx context.Context, train []eval.Interaction) error {
	if err := m.knn.Fit(ctx, train); err != nil {
		return err
	}
	return m.content.Fit(ctx, train)
}

func (m *hybridModel) Score(ctx context.Context, user string, cands []string) ([]float64, error) {
	a, err := m.knn.Score(ctx, user, cands)
	if err != nil {
		return nil, err
	}
	b, _ := m.content.Score(ctx, user, cands)
	norm := func(x []float64) {
		mx := 0.0
		for i, v := range x {
			if math.IsInf(v, -1) || math.IsNaN(v) {
				x[i] = 0
				continue
			}
			mx = max(mx, v)
		}
		for i := range x {
			if mx > 0 {
				x[i] /= mx
			}
		}
	}
	norm(a)
	norm(b)
	out := make([]float64, len(cands))
	for i := range out {
		out[i] = a[i] + m.wc*b[i]
	}
	return out, nil
}

func (m *hybridModel) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	s, _ := m.Score(ctx, user, m.content.items)
	return topOf(m.content.items, s, k, exclude), nil
}

// TestContentEval measures the content and hybrid sources on the data sets
// with item attributes, beside popularity and item-kNN, under leave-one-out
// with 99 sampled negatives (seed 1, K = 10). It runs when RECSTREAM_ML100K
// names ML-100K's u.data (u.item beside it gives the genres) and/or
// RECSTREAM_TAOBAO names the Taobao UserBehavior subset CSV:
//
//	RECSTREAM_ML100K=$(realpath ../shared/data/ml100k/u.data) \
//	RECSTREAM_TAOBAO=$(realpath ../shared/data/taobao_ub_subset/UserBehavior_head84k.csv) \
//	go test -run ContentEval -v ./scorer/
func TestContentEval(t *testing.T) {
	ctx := context.Background()
	type ds struct {
		name  string
		data  []eval.Interaction
		attrs map[string]catalog.Item
	}
	var sets []ds
	if p := os.Getenv("RECSTREAM_ML100K"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		all, err := eval.LoadMovieLens(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		g, err := os.Open(filepath.Join(filepath.Dir(p), "u.item"))
		if err != nil {
			t.Fatal(err)
		}
		genres, err := eval.LoadMovieLensGenres(g)
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Category: the first genre; tags: every genre.
		attrs := map[string]catalog.Item{}
		for id, a := range genres {
			gs := strings.Split(a["genre"], "|")
			if a["genre"] == "" {
				gs = nil
			}
			it := catalog.Item{ID: id, Available: true, Tags: gs}
			if len(gs) > 0 {
				it.Category = gs[0]
			}
			attrs[id] = it
		}
		sets = append(sets, ds{"ml100k", eval.FilterMinCounts(all, 5, 20), attrs})
	}
	if p := os.Getenv("RECSTREAM_TAOBAO"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		all, raw, err := eval.LoadCSV(f, eval.TaobaoMapping())
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[string]catalog.Item{}
		for id, a := range raw {
			attrs[id] = catalog.Item{ID: id, Category: a["category"], Available: true}
		}
		// Users with at least 5 events so that every user keeps a history.
		sets = append(sets, ds{"taobao_ub_subset", eval.FilterMinCounts(all, 1, 5), attrs})
	}
	if len(sets) == 0 {
		t.Skip("neither RECSTREAM_ML100K nor RECSTREAM_TAOBAO set")
	}
	for _, d := range sets {
		idx := catalog.NewIndex()
		for _, it := range d.attrs {
			idx.Put(it)
		}
		st := eval.Describe(d.data)
		t.Logf("%s: %d interactions, %d users, %d items, %d with attributes", d.name, st.Interactions, st.Users, st.Items, idx.Len())
		cfg := eval.Config{Ks: []int{10}, Seed: 1, NoLists: true}
		split := eval.SplitLeaveOneOut(d.data)
		split.SampleNegatives(eval.DefaultNegatives, cfg.Seed)
		tune := eval.TuneConfig{Config: eval.Config{Ks: []int{10}, Seed: 1, NoLists: true}, Metric: "ndcg@10"}
		var knnGrid []func() eval.Model
		for _, k := range []int{50, 200, 0} {
			for _, sh := range []float64{0, 10} {
				knnGrid = append(knnGrid, func() eval.Model {
					return eval.NewBatchItemKNN(eval.ItemKNNConfig{Similarity: eval.SimCosine, K: k, Shrink: sh})
				})
			}
		}
		knnT, err := eval.Tune(ctx, split.Train, knnGrid, tune)
		if err != nil {
			t.Fatal(err)
		}
		var hybGrid []func() eval.Model
		for _, wc := range []float64{0.05, 0.1, 0.25, 0.5, 1} {
			hybGrid = append(hybGrid, func() eval.Model {
				return &hybridModel{knn: knnGrid[knnT.Best]().(*eval.BatchItemKNN), content: newContentModel(idx), wc: wc,
					name: fmt.Sprintf("Hybrid(ItemKNN+%.2g·Content)", wc)}
			})
		}
		hybT, err := eval.Tune(ctx, split.Train, hybGrid, tune)
		if err != nil {
			t.Fatal(err)
		}
		models := []eval.Model{eval.NewPopularity(), knnT.Model, newContentModel(idx), hybT.Model,
			&hybridModel{knn: knnGrid[knnT.Best]().(*eval.BatchItemKNN), content: newContentModel(idx), wc: 0.5, name: "Hybrid(ItemKNN+0.5·Content) default weights"}}
		rs, err := eval.LeaveOneOutSplit(ctx, split, models, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		eval.WriteTable(&b, rs)
		t.Logf("%s, leave-one-out, 99 sampled negatives, seed 1:\n%s", d.name, b.String())
	}
}
