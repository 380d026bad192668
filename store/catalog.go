package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/catalog.lua
var catalogLua string

var catalogScript = redis.NewScript(catalogLua)

// ItemAttr is an item's attribute hash: its catalog record, fenced per
// source partition of the items topic.
func (k Keys) ItemAttr(item string) string { return k.Prefix + "{i:" + item + "}:attr" }

// ItemInLists is a zset user -> generation time (unix ms) of the user's
// lists that held the item; entries older than the list TTL are stale.
func (k Keys) ItemInLists(item string) string { return k.Prefix + "{i:" + item + "}:inl" }

// CategoryTrendingList is the anonymous list of one category.
func (k Keys) CategoryTrendingList(category string) string {
	return k.Prefix + "{g}:list:trending:" + category
}

// CategoryNewList is the anonymous new-arrivals list of one category.
func (k Keys) CategoryNewList(category string) string {
	return k.Prefix + "{g}:list:new:" + category
}

// CatalogRecord is one catalog record at its offset, ready to store.
type CatalogRecord struct {
	Offset    int64
	Item      string
	Category  string
	Brand     string
	Price     float64
	Tags      []string
	Available bool
	CreatedAt int64
}

// CatalogResult says what storing one record did.
type CatalogResult struct {
	Applied  bool // false: an earlier run stored this offset already
	WasKnown bool // the item had attributes before
	WasAvail bool // ... and was available
	NowAvail bool
	Item     string
}

// WriteCatalog stores one partition's records (ascending offsets), one
// fenced script per record, pipelined.
func (s *Store) WriteCatalog(ctx context.Context, partition int32, recs []CatalogRecord) ([]CatalogResult, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	p := strconv.Itoa(int(partition))
	cmds, err := s.runScripts(ctx, catalogScript, len(recs), func(pipe redis.Pipeliner, i int) *redis.Cmd {
		r := recs[i]
		tags := ""
		for k, t := range r.Tags {
			if k > 0 {
				tags += "|"
			}
			tags += t
		}
		av := "0"
		if r.Available {
			av = "1"
		}
		return catalogScript.EvalSha(ctx, pipe, []string{s.keys.ItemAttr(r.Item)}, p, r.Offset,
			"cat", r.Category, "brand", r.Brand, "price", fmtFloat(r.Price), "tags", tags, "av", av, "ca", r.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("writing catalog: %w", err)
	}
	out := make([]CatalogResult, len(recs))
	for i, c := range cmds {
		row, _ := c.Val().([]any)
		if len(row) != 2 {
			return nil, errors.New("writing catalog: malformed script answer")
		}
		applied, _ := row[0].(int64)
		prev, _ := row[1].(string)
		out[i] = CatalogResult{Applied: applied == 1, WasKnown: prev != "", WasAvail: prev == "1", NowAvail: recs[i].Available, Item: recs[i].Item}
	}
	return out, nil
}

// Unavailable returns the subset of items whose stored catalog record marks
// them unavailable (items without a record are available).
func (s *Store) Unavailable(ctx context.Context, items []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if len(items) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(items))
	for i, it := range items {
		cmds[i] = pipe.HGet(ctx, s.keys.ItemAttr(it), "av")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading availability: %w", err)
	}
	for i, it := range items {
		if cmds[i].Val() == "0" {
			out[it] = true
		}
	}
	return out, nil
}

// IndexListItems records, for every item of every list, that the user's
// list holds it (ItemInLists), so that a catalog change can find the lists
// to refresh. Entries expire with the list TTL.
func (s *Store) IndexListItems(ctx context.Context, lists []List, ttl time.Duration) error {
	pipe := s.rdb.Pipeline()
	n := 0
	for _, l := range lists {
		if l.User == "" {
			continue
		}
		for _, it := range l.Items {
			k := s.keys.ItemInLists(it.Item)
			pipe.ZAdd(ctx, k, redis.Z{Score: float64(l.GeneratedAt), Member: l.User})
			pipe.Expire(ctx, k, ttl)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("indexing list items: %w", err)
	}
	return nil
}

// ListHolders returns the users whose list held item at a time since
// (unix ms) or later, and trims older entries.
func (s *Store) ListHolders(ctx context.Context, item string, since int64) ([]string, error) {
	k := s.keys.ItemInLists(item)
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, k, "-inf", "("+strconv.FormatInt(since, 10))
	users := pipe.ZRange(ctx, k, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading list holders: %w", err)
	}
	return users.Val(), nil
}

// WriteCategoryLists replaces each category's anonymous trending list, one
// SET each.
func (s *Store) WriteCategoryLists(ctx context.Context, lists map[string]List, ttl time.Duration) error {
	return s.writeKeyed(ctx, lists, ttl, s.keys.CategoryTrendingList)
}

// WriteNewArrivalLists replaces each category's anonymous new-arrivals
// list, one SET each.
func (s *Store) WriteNewArrivalLists(ctx context.Context, lists map[string]List, ttl time.Duration) error {
	return s.writeKeyed(ctx, lists, ttl, s.keys.CategoryNewList)
}

func (s *Store) writeKeyed(ctx context.Context, lists map[string]List, ttl time.Duration, key func(string) string) error {
	if len(lists) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for cat, l := range lists {
		l.Version = ListFormatVersion
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("encoding list: %w", err)
		}
		pipe.Set(ctx, key(cat), b, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing category lists: %w", err)
	}
	return nil
}

// ReadCategoryList reads a category's anonymous trending list.
func (s *Store) ReadCategoryList(ctx context.Context, category string) (List, bool, error) {
	return s.readKeyed(ctx, s.keys.CategoryTrendingList(category))
}

// ReadNewArrivalList reads a category's anonymous new-arrivals list.
func (s *Store) ReadNewArrivalList(ctx context.Context, category string) (List, bool, error) {
	return s.readKeyed(ctx, s.keys.CategoryNewList(category))
}

func (s *Store) readKeyed(ctx context.Context, key string) (List, bool, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return List{}, false, nil
	}
	if err != nil {
		return List{}, false, fmt.Errorf("reading list: %w", err)
	}
	l, err := DecodeList(b)
	return l, err == nil, err
}
