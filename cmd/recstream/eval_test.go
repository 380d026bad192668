package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/catalog"
)

// writePlanted writes a MovieLens u.data file (user, item, rating, ts) with
// planted clusters: users rate mostly items of their own cluster.
func writePlanted(t *testing.T, clusters, usersPer, itemsPer, perUser int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 9))
	var b strings.Builder
	ts := 880000000
	for c := range clusters {
		for u := range usersPer {
			had := map[int]bool{}
			for len(had) < perUser {
				item := c*itemsPer + min(int(float64(itemsPer)*math.Pow(rng.Float64(), 2)), itemsPer-1)
				if rng.Float64() < 0.1 {
					item = rng.IntN(clusters * itemsPer)
				}
				if had[item] {
					continue
				}
				had[item] = true
				ts += 1 + rng.IntN(100)
				fmt.Fprintf(&b, "%d\t%d\t%d\t%d\n", c*usersPer+u+1, item+1, 1+rng.IntN(5), ts)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "u.data")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type evalJSON struct {
	Results []map[string]any `json:"results"`
}

func runEvalJSON(t *testing.T, args ...string) map[string]map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	if err := runEval(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("eval %v: %v\n%s", args, err, errb.String())
	}
	var res evalJSON
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	byModel := map[string]map[string]any{}
	for _, r := range res.Results {
		byModel[r["model"].(string)] = r
	}
	return byModel
}

func TestEvalCommandJSON(t *testing.T) {
	data := writePlanted(t, 4, 20, 25, 15)
	svg := filepath.Join(t.TempDir(), "hr.svg")
	got := runEvalJSON(t, "--format", "movielens", "--data", data, "--min-item-count", "2", "--min-user-count", "5",
		"--protocol", "loo", "--negatives", "49", "--seed", "1", "--k", "5,10", "--json", "-q", "--svg", svg,
		"--set", "scorer.weights.ease=1")
	if len(got) != len(allModels) {
		t.Fatalf("%d models in the output, want %d: %v", len(got), len(allModels), got)
	}
	pop := got["Popularity"]["hr@10"].(float64)
	for name, r := range got {
		hr, ok1 := r["hr@10"].(float64)
		_, ok2 := r["ndcg@10"].(float64)
		_, ok3 := r["hr@5"].(float64)
		if !ok1 || !ok2 || !ok3 || r["protocol"] != "loo" {
			t.Errorf("%s: %v", name, r)
		}
		t.Logf("%s hr@10 %.3f ndcg@10 %.3f", name, hr, r["ndcg@10"])
	}
	for _, name := range []string{modelUserKNN, modelItemKNN, modelEASE, modelHybrid} {
		if hr := got[name]["hr@10"].(float64); hr < pop+0.15 {
			t.Errorf("%s hr@10 %.3f, popularity %.3f", name, hr, pop)
		}
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("svg: %v", err)
	}

	// Bad flags are errors, not silent defaults.
	for _, args := range [][]string{
		{"--data", data, "--protocol", "nope"},
		{"--data", data, "--models", "nope"},
		{"--data", data, "--k", "0"},
		{"--data", data, "--ties", "middle"},
		{"--format", "ncf", "--train", data},
	} {
		var out, errb bytes.Buffer
		if err := runEval(context.Background(), append(args, "-q"), &out, &errb); err == nil {
			t.Errorf("eval %v: no error", args)
		}
	}
}

// TestEvalFullPath replays a small log through the embedded broker and the
// real processor and checks that it measures what the direct replay
// measures.
func TestEvalFullPath(t *testing.T) {
	data := writePlanted(t, 3, 10, 15, 10)
	args := []string{"--data", data, "--models", "item-knn,hybrid", "--protocol", "loo", "--negatives", "30", "--k", "10", "--json", "-q"}
	direct := runEvalJSON(t, args...)
	full := runEvalJSON(t, append(args, "--full-path")...)
	for _, m := range []string{"item-knn", "hybrid"} {
		d, f := direct[m]["hr@10"].(float64), full[m]["hr@10"].(float64)
		dn, fn := direct[m]["ndcg@10"].(float64), full[m]["ndcg@10"].(float64)
		t.Logf("%s hr@10 direct %.4f full path %.4f; ndcg@10 %.4f / %.4f", m, d, f, dn, fn)
		if math.Abs(d-f) > 1e-9 || math.Abs(dn-fn) > 1e-6 {
			t.Errorf("%s: full path differs from the direct replay", m)
		}
		if d < 0.3 {
			t.Errorf("%s: hr@10 %.3f", m, d)
		}
	}
}

// TestTunedProfileLoads checks that the named profile is a valid
// configuration and turns the EASE source on.
func TestTunedProfileLoads(t *testing.T) {
	f := &evalFlags{configPath: filepath.Join("..", "..", "deploy", "profiles", "tuned-ml100k.yaml")}
	cfg, err := evalConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scorer.Weights.EASE <= 0 || cfg.Scorer.ItemNeighbours != 0 || cfg.Scorer.Weights.Content != 0 || cfg.Model.HalfLife < 365*24*time.Hour {
		t.Errorf("profile not applied over eval's: %+v %+v", cfg.Scorer, cfg.Model)
	}
}

// TestEvalNCF reads an NCF split (placeholder ratings and timestamps in the
// train file) with its negatives file.
func TestEvalNCF(t *testing.T) {
	dir := t.TempDir()
	var train, test, neg strings.Builder
	for u := 0; u < 20; u++ {
		c := u % 2
		for i := 0; i < 8; i++ {
			fmt.Fprintf(&train, "%d\t%d\t1\t0\n", u, c*10+(u+i)%10)
		}
		held := c*10 + (u+8)%10
		fmt.Fprintf(&test, "%d\t%d\t5\t978300000\n", u, held)
		fmt.Fprintf(&neg, "(%d,%d)", u, held)
		for k := 0; k < 5; k++ {
			fmt.Fprintf(&neg, "\t%d", (1-c)*10+k)
		}
		neg.WriteString("\n")
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got := runEvalJSON(t, "--format", "ncf", "--train", write("x.train.rating", train.String()),
		"--test", write("x.test.rating", test.String()), "--negatives", write("x.test.negative", neg.String()),
		"--models", "popularity,item-knn", "--k", "1", "--json", "-q")
	r := got["item-knn"]
	if r == nil || r["users"] == nil {
		t.Fatalf("no item-knn row: %v", got)
	}
	// The held-out item is in the user's cluster, the negatives are not.
	if hr := r["hr@1"].(float64); hr != 1 {
		t.Errorf("item-knn hr@1 %v, want 1: %v", hr, r)
	}
}

// The generic CSV mapping reads a Taobao-shaped log exactly as the taobao
// preset does.
func TestEvalGenericCSV(t *testing.T) {
	src, err := os.ReadFile(writePlanted(t, 4, 12, 15, 12))
	if err != nil {
		t.Fatal(err)
	}
	behaviours := []string{"pv", "fav", "cart", "buy"}
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		f := strings.Fields(line)
		item := f[1]
		fmt.Fprintf(&b, "%s,%s,cat%s,%s,%s\n", f[0], item, item[len(item)-1:], behaviours[i%4], f[3])
	}
	path := filepath.Join(t.TempDir(), "log.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--data", path, "--models", "popularity,item-knn", "--k", "10", "--json"}
	preset := runEvalJSON(t, append([]string{"--format", "taobao"}, common...)...)
	generic := runEvalJSON(t, append([]string{"--format", "csv", "--csv-columns", "user=0,item=1,attr.category=2,type=3,ts=4",
		"--csv-types", "pv=browse,fav=click,cart=add_to_cart,buy=purchase"}, common...)...)
	for model, row := range preset {
		if fmt.Sprint(row["hr@10"]) != fmt.Sprint(generic[model]["hr@10"]) || fmt.Sprint(row["ndcg@10"]) != fmt.Sprint(generic[model]["ndcg@10"]) {
			t.Errorf("%s: taobao preset %v/%v, generic csv %v/%v", model, row["hr@10"], row["ndcg@10"], generic[model]["hr@10"], generic[model]["ndcg@10"])
		}
	}
	if len(generic) != 2 {
		t.Fatalf("generic csv rows: %v", generic)
	}
	var errb bytes.Buffer
	if err := runEval(context.Background(), []string{"--format", "csv", "--data", path, "--csv-columns", "user=0,bogus=1"}, &errb, &errb); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("bad --csv-columns: %v", err)
	}
}

// TestEvalValidation evaluates on the split --tune validates on: each
// user's latest training interaction, never a test one.
func TestEvalValidation(t *testing.T) {
	data := writePlanted(t, 4, 20, 25, 15)
	args := []string{"--format", "movielens", "--data", data, "--protocol", "loo", "--negatives", "49",
		"--seed", "1", "--k", "10", "--json", "-q", "--models", "popularity,hybrid"}
	test := runEvalJSON(t, args...)
	val := runEvalJSON(t, append(args, "--validation")...)
	for _, m := range []string{"Popularity", modelHybrid} {
		if val[m]["users"] != test[m]["users"] {
			t.Errorf("%s: %v users on validation, %v on test", m, val[m]["users"], test[m]["users"])
		}
		t.Logf("%s hr@10 test %.3f validation %.3f", m, test[m]["hr@10"], val[m]["hr@10"])
	}
	if val[modelHybrid]["hr@10"] == test[modelHybrid]["hr@10"] && val["Popularity"]["hr@10"] == test["Popularity"]["hr@10"] {
		t.Errorf("validation measured what the test measures: %v", val)
	}
	for _, extra := range [][]string{{"--tune"}, {"--protocol", "prequential"}} {
		var out, errb bytes.Buffer
		if err := runEval(context.Background(), append(append(slices.Clone(args), "--validation"), extra...), &out, &errb); err == nil {
			t.Errorf("--validation %v: no error", extra)
		}
	}
}

// TestCatalogFromAttrs checks the catalog the content models score with:
// the first genre is the category, every genre and the release year and
// decade of a MovieLens title are tags.
func TestCatalogFromAttrs(t *testing.T) {
	idx := catalogFromAttrs(map[string]map[string]string{
		"1": {"genre": "Animation|Children's|Comedy", "title": "Toy Story (1995)"},
		"2": {"genres": "Drama", "title": "Seven (Se7en) (1995) "},
		"3": {"title": "Unknown Title"},
		"4": {"category": "4756105"},
	})
	want := map[string]catalog.Item{
		"1": {ID: "1", Category: "Animation", Tags: []string{"Animation", "Children's", "Comedy", "year:1995", "decade:1990s"}},
		"2": {ID: "2", Category: "Drama", Tags: []string{"Drama", "year:1995", "decade:1990s"}},
		"3": {ID: "3"},
		"4": {ID: "4", Category: "4756105"},
	}
	for id, w := range want {
		got, ok := idx.Get(id)
		if !ok {
			t.Fatalf("item %s not in the catalog", id)
		}
		if got.Category != w.Category || !slices.Equal(got.Tags, w.Tags) {
			t.Errorf("item %s: category %q tags %q, want %q %q", id, got.Category, got.Tags, w.Category, w.Tags)
		}
	}
}
