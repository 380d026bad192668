package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/admin"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// POST /api/v1/users/{id}/rank answers what the scorer's Rank computes
// from the state in a real Redis, and rejects bad requests with 400.
func TestRankEndpoint(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "k:" }))
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var ops []store.Op
	add := func(user, item string, typ event.Type) {
		ops = append(ops, store.Op{Offset: int64(len(ops)), User: user, Item: item, Type: typ, TS: start + int64(len(ops))*1000})
	}
	for u := 0; u < 5; u++ {
		add(fmt.Sprintf("v%d", u), "i1", event.Browse)
		add(fmt.Sprintf("v%d", u), "i2", event.Click)
		if u < 2 {
			add(fmt.Sprintf("v%d", u), "i3", event.Browse)
		}
	}
	add("u1", "i1", event.Browse)
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	sc := scorer.New(st, testopts.Scorer(func(o *scorer.Options) {
		o.WeightItemKNN = 1
		o.WeightUserKNN = 1
		o.WeightPopular = 0.05
		o.NeighbourTTL = -1
		o.DegreeTTL = -1
	}))
	mux := http.NewServeMux()
	admin.New(admin.Options{Store: st, Ranker: sc, Auth: admin.UserAuth{Anonymous: true}}).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	code, body := post(t, hs.URL+"/api/v1/users/u1/rank", `{"items": ["i9", "i3", "i2"]}`)
	if code != http.StatusOK {
		t.Fatalf("rank: %d %s", code, body)
	}
	var got admin.RankResponse
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want, err := sc.Rank(ctx, "u1", []string{"i9", "i3", "i2"})
	if err != nil {
		t.Fatal(err)
	}
	if got.User != "u1" || !reflect.DeepEqual(got.Items, want) {
		t.Errorf("rank: got %+v, want %+v", got, want)
	}
	if len(got.Items) != 3 || got.Items[0].Item != "i2" || got.Items[2].Item != "i9" || got.Items[2].Score != 0 {
		t.Errorf("rank order: %+v, want i2 first and the unknown i9 last with 0", got.Items)
	}

	tooMany := make([]string, admin.MaxRankItems+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("x%d", i)
	}
	b, _ := json.Marshal(admin.RankRequest{Items: tooMany})
	for name, c := range map[string]struct{ path, body string }{
		"bad json":     {"/api/v1/users/u1/rank", `{"items": [`},
		"no items":     {"/api/v1/users/u1/rank", `{"items": []}`},
		"unknown key":  {"/api/v1/users/u1/rank", `{"items": ["i1"], "k": 3}`},
		"bad item id":  {"/api/v1/users/u1/rank", `{"items": ["a{b"]}`},
		"bad user id":  {"/api/v1/users/a%7Bb/rank", `{"items": ["i1"]}`},
		"too many ids": {"/api/v1/users/u1/rank", string(b)},
	} {
		if code, body := post(t, hs.URL+c.path, c.body); code != http.StatusBadRequest || !strings.Contains(body, "error") {
			t.Errorf("%s: %d %s, want 400 with an error", name, code, body)
		}
	}
	res, err := http.Post(hs.URL+"/api/v1/users/u1/rank", "application/json", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("empty body: %d", res.StatusCode)
	}
}
