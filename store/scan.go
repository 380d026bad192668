package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ScanUsers calls fn with batches of the ids of users that have a state
// (SCAN over the user state keys, and the weight keys of users written
// before the state blob, on every master of a Cluster). A user may be
// reported twice if the keyspace changes during the scan.
func (s *Store) ScanUsers(ctx context.Context, batch int, fn func(users []string) error) error {
	if batch <= 0 {
		batch = 1000
	}
	head := s.keys.Prefix + "{u:"
	pattern := globEscape(head) + "*}:[sw]"
	var mu sync.Mutex // ForEachMaster scans masters concurrently
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, int64(batch)).Result()
			if err != nil {
				return fmt.Errorf("scanning users: %w", err)
			}
			users := make([]string, 0, len(keys))
			for _, k := range keys {
				if strings.HasPrefix(k, head) && (strings.HasSuffix(k, "}:s") || strings.HasSuffix(k, "}:w")) {
					users = append(users, k[len(head):len(k)-len("}:s")])
				}
			}
			if len(users) > 0 {
				mu.Lock()
				err := fn(users)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.rdb)
}

func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
