package eval_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/recstream/recstream/eval"
)

// TestMovieLens100K reproduces the published ML-100K protocol when
// RECSTREAM_ML100K names a u.data file (the data set is research-licensed and
// not part of the repository):
//
//	RECSTREAM_ML100K=$(realpath ../shared/data/ml100k/u.data) go test -run MovieLens100K -v ./eval/
//
// (a relative path would be taken from the package directory).
//
// Items with >= 5 ratings, then users with >= 20; leave-one-out on the
// latest rating; 99 sampled negatives with seed 1; K = 10. Each model family
// is tuned with Tune on a validation split carved from the training part
// (by ndcg@10), then refitted on the whole training part and tested. It runs
// with both rules for ties on the latest timestamp.
func TestMovieLens100K(t *testing.T) {
	path := os.Getenv("RECSTREAM_ML100K")
	if path == "" {
		t.Skip("RECSTREAM_ML100K not set")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := eval.LoadMovieLens(f)
	if err != nil {
		t.Fatal(err)
	}
	data := eval.FilterMinCounts(all, 5, 20)
	st := eval.Describe(data)
	t.Logf("%d interactions, %d users, %d items", st.Interactions, st.Users, st.Items)
	ctx := context.Background()

	var itemKNN, userKNN, ease []func() eval.Model
	for _, k := range []int{10, 20, 50, 100, 200, 400, 0} {
		for _, sh := range []float64{0, 10, 50, 100} {
			itemKNN = append(itemKNN, func() eval.Model {
				return eval.NewBatchItemKNN(eval.ItemKNNConfig{Similarity: eval.SimCosine, K: k, Shrink: sh})
			})
		}
	}
	for _, k := range []int{10, 20, 50, 100, 200, 0} {
		for _, sh := range []float64{0, 10, 50} {
			userKNN = append(userKNN, func() eval.Model {
				return eval.NewBatchUserKNN(eval.UserKNNConfig{Similarity: eval.SimCosine, K: k, Shrink: sh})
			})
		}
	}
	for _, l := range []float64{50, 100, 200, 300, 500, 750, 1000, 1500, 2000} {
		ease = append(ease, func() eval.Model { return eval.NewEASE(eval.EASEConfig{Lambda: l}) })
	}

	for _, ties := range []eval.HoldoutTies{eval.TiesLastInInput, eval.TiesFirstSeenItem} {
		cfg := eval.Config{Ks: []int{10}, Seed: 1, Ties: ties}
		split := eval.SplitLeaveOneOutTies(data, ties)
		split.SampleNegatives(eval.DefaultNegatives, cfg.Seed)
		models := []eval.Model{eval.NewPopularity()}
		for _, grid := range [][]func() eval.Model{itemKNN, userKNN, ease} {
			tr, err := eval.Tune(ctx, split.Train, grid, eval.TuneConfig{
				Config: eval.Config{Ks: []int{10}, Seed: cfg.Seed, Ties: ties, NoLists: true},
				Metric: "ndcg@10",
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ties %s: tuned %s (validation ndcg@10 %.4f of %d candidates)", ties, tr.Model.Name(), tr.Score, len(grid))
			models = append(models, tr.Model)
		}
		rs, err := eval.LeaveOneOutSplit(ctx, split, models, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		eval.WriteTable(&b, rs)
		t.Logf("ties %s:\n%s", ties, b.String())
		for _, r := range rs {
			t.Logf("%s fit %.2fs eval %.2fs", r.Model, r.FitSeconds, r.EvalSeconds)
		}
	}
}
