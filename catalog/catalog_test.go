package catalog_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/catalog"
)

func TestDecode(t *testing.T) {
	kts := time.UnixMilli(1_700_000_000_000)
	good, err := catalog.Decode([]byte("i1"), []byte(`{"item_id":"i1","category":"shoes/running","brand":"acme","price":59.9,"tags":["trail","men"],"available":false,"created_at":5}`), kts)
	want := catalog.Item{ID: "i1", Category: "shoes/running", Brand: "acme", Price: 59.9, Tags: []string{"trail", "men"}, Available: false, CreatedAt: 5}
	if err != nil || !reflect.DeepEqual(good, want) {
		t.Fatalf("got %+v %v", good, err)
	}
	def, err := catalog.Decode(nil, []byte(`{"item_id":"i2"}`), kts)
	if err != nil || !def.Available || def.CreatedAt != kts.UnixMilli() {
		t.Fatalf("defaults: %+v %v", def, err)
	}
	tomb, err := catalog.Decode([]byte("i3"), nil, kts)
	if err != nil || tomb.ID != "i3" || tomb.Available {
		t.Fatalf("tombstone: %+v %v", tomb, err)
	}
	round, err := catalog.Decode(nil, catalog.Encode(want), kts)
	if err != nil || !reflect.DeepEqual(round, want) {
		t.Fatalf("round trip: %+v %v", round, err)
	}
	for _, c := range []struct {
		key, value string
		reason     catalog.Reason
	}{
		{"", "", catalog.ReasonEmpty},
		{"", "not json", catalog.ReasonMalformed},
		{"", `{"item_id":"a","colour":"red"}`, catalog.ReasonMalformed},
		{"", `{"item_id":"a"} {}`, catalog.ReasonMalformed},
		{"", `{"brand":"x"}`, catalog.ReasonBadItemID},
		{"", `{"item_id":"a{b"}`, catalog.ReasonBadItemID},
		{"b", `{"item_id":"a"}`, catalog.ReasonKeyMismatch},
		{"", `{"item_id":"a","category":"shoes//x"}`, catalog.ReasonBadCategory},
		{"", `{"item_id":"a","category":"a/b/c/d/e/f/g"}`, catalog.ReasonBadCategory},
		{"", `{"item_id":"a","category":"x|y"}`, catalog.ReasonBadCategory},
		{"", `{"item_id":"a","brand":"bad\u0001"}`, catalog.ReasonBadBrand},
		{"", `{"item_id":"a","price":-1}`, catalog.ReasonBadPrice},
		{"", `{"item_id":"a","tags":[""]}`, catalog.ReasonBadTags},
		{"", `{"item_id":"a","tags":["` + strings.Repeat("x", 65) + `"]}`, catalog.ReasonBadTags},
		{"", `{"item_id":"a","created_at":-5}`, catalog.ReasonBadTime},
		{"", `{"item_id":"a","brand":"` + strings.Repeat("x", catalog.MaxRecordBytes) + `"}`, catalog.ReasonTooLarge},
	} {
		_, err := catalog.Decode([]byte(c.key), []byte(c.value), kts)
		if got := catalog.ReasonOf(err); err == nil || got != c.reason {
			t.Errorf("%.40q: reason %q (%v), want %q", c.value, got, err, c.reason)
		}
	}
}

func TestIndex(t *testing.T) {
	x := catalog.NewIndex()
	x.Put(catalog.Item{ID: "a", Category: "shoes/running", Brand: "acme", Available: true, CreatedAt: 1})
	x.Put(catalog.Item{ID: "b", Category: "shoes/trail", Brand: "acme", Available: true, CreatedAt: 3})
	x.Put(catalog.Item{ID: "c", Category: "shoes/running", Brand: "zed", Available: true, CreatedAt: 2})
	ids := func(items []catalog.Item) string {
		var s []string
		for _, it := range items {
			s = append(s, it.ID)
		}
		return strings.Join(s, ",")
	}
	if got := ids(x.InCategory("shoes", 10)); got != "b,c,a" {
		t.Fatalf("shoes: %s", got)
	}
	if got := ids(x.InCategory("shoes/running", 1)); got != "c" {
		t.Fatalf("shoes/running top 1: %s", got)
	}
	if got := ids(x.ByBrand("acme", 10)); got != "b,a" {
		t.Fatalf("acme: %s", got)
	}
	// Withdraw c and move a to another category.
	x.Put(catalog.Item{ID: "c", Category: "shoes/running", Brand: "zed", Available: false, CreatedAt: 2})
	x.Put(catalog.Item{ID: "a", Category: "bags", Brand: "acme", Available: true, CreatedAt: 1})
	if got := ids(x.InCategory("shoes", 10)); got != "b" {
		t.Fatalf("shoes after updates: %s", got)
	}
	if x.Available("c") || !x.Available("a") || !x.Available("unknown") {
		t.Fatal("availability")
	}
	if got := ids(x.InCategory("bags", 10)); got != "a" {
		t.Fatalf("bags: %s", got)
	}
	if _, _, ok := x.Vector("c"); !ok {
		t.Fatal("an unavailable item keeps its attributes")
	}
	if got := strings.Join(x.Categories(), ","); got != "bags,shoes,shoes/trail" {
		t.Fatalf("categories %s", got)
	}
}

func TestFeaturesAndBands(t *testing.T) {
	f := catalog.Features(catalog.Item{ID: "a", Category: "shoes/running/trail", Brand: "acme", Price: 59, Tags: []string{"x"}})
	want := map[string]float64{"c:shoes/running/trail": 1, "c:shoes/running": 0.5, "c:shoes": 0.5, "b:acme": 1, "p:3": 0.5, "t:x": 0.5}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("features %v", f)
	}
	for _, c := range []struct {
		p    float64
		band int
	}{{0, -1}, {1, 0}, {2.5, 1}, {9, 2}, {30, 2}, {31, 3}, {99, 4}, {1000, 6}} {
		if got := catalog.PriceBand(c.p); got != c.band {
			t.Errorf("PriceBand(%v) = %d, want %d", c.p, got, c.band)
		}
	}
}
