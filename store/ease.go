package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The EASE model (scorer.EASE) is fitted by one process at a time and
// shared through Redis: the fitter takes EASELease, fits, and writes the
// model's blob with its fit time into EASEModel; every score role polls
// the fit time and loads a newer model.

// EASEModel is a hash: built, when the model was fitted (unix ms), and
// model, its blob (the format is scorer.EASE's).
func (k Keys) EASEModel() string { return k.Prefix + "{g}:ease" }

// EASELease is a string with a TTL: the process fitting the EASE model.
func (k Keys) EASELease() string { return k.Prefix + "{g}:ease:lease" }

// EASEBuilt returns when the shared EASE model was fitted, the zero time
// when there is none.
func (s *Store) EASEBuilt(ctx context.Context) (time.Time, error) {
	v, err := s.rdb.HGet(ctx, s.keys.EASEModel(), "built").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return parseBuilt(v)
}

// EASEModel returns the shared EASE model's blob and fit time; a nil blob
// when there is none.
func (s *Store) EASEModel(ctx context.Context) ([]byte, time.Time, error) {
	vs, err := s.rdb.HMGet(ctx, s.keys.EASEModel(), "built", "model").Result()
	if err != nil {
		return nil, time.Time{}, err
	}
	b, ok1 := vs[0].(string)
	m, ok2 := vs[1].(string)
	if !ok1 || !ok2 {
		return nil, time.Time{}, nil
	}
	built, err := parseBuilt(b)
	if err != nil {
		return nil, time.Time{}, err
	}
	return []byte(m), built, nil
}

// PutEASEModel replaces the shared EASE model with blob, fitted at built.
func (s *Store) PutEASEModel(ctx context.Context, blob []byte, built time.Time) error {
	return s.rdb.HSet(ctx, s.keys.EASEModel(), "built", built.UnixMilli(), "model", blob).Err()
}

// TakeEASELease takes the lease of the EASE fit for ttl when no one holds
// it, and says whether it did.
func (s *Store) TakeEASELease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	err := s.rdb.SetArgs(ctx, s.keys.EASELease(), holder, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

func parseBuilt(v string) (time.Time, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("ease model: built %q: %w", v, err)
	}
	return time.UnixMilli(ms), nil
}
