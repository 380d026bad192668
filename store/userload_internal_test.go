package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/internal/redistest"
)

// A user none of whose keys exist is read with one EXISTS, into the copy
// a whole read makes; a user with any one of its keys is read whole.
func TestLoadUsersProbe(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	opt := OptionsFromConfig(config.Default())
	opt.Prefix = "t:"
	s := New(rdb, opt)

	// What a whole read makes of a user without keys.
	pipe := rdb.Pipeline()
	l := s.queueUserLoad(ctx, pipe, "nobody")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	whole, err := l.state()
	if err != nil || whole == nil {
		t.Fatalf("whole read: %v, %v", whole, err)
	}
	if !reflect.DeepEqual(whole, newUserState()) {
		t.Fatalf("a whole read of a user without keys gives %+v, the probe %+v", whole, newUserState())
	}

	// One user per key of the group, holding only that key, and one
	// written before the blob.
	only := map[string]func(k userKeys) error{
		"blob": func(k userKeys) error {
			return rdb.Set(ctx, k.state, encodeUserBlob(nil, nil, []string{"i1"}), 0).Err()
		},
		"meta":  func(k userKeys) error { return rdb.HSet(ctx, k.meta, "gone", "5").Err() },
		"imp":   func(k userKeys) error { return rdb.ZAdd(ctx, k.imp, redis.Z{Score: 3, Member: "i2"}).Err() },
		"shown": func(k userKeys) error { return rdb.HSet(ctx, k.shown, "i2", "r").Err() },
		"att":   func(k userKeys) error { return rdb.LPush(ctx, k.att, "a").Err() },
		// written before the blob: weights, log and purchases in keys
		// of their own
		"old": func(k userKeys) error {
			if err := rdb.HSet(ctx, k.meta, "n", "1").Err(); err != nil {
				return err
			}
			if err := rdb.ZAdd(ctx, k.w, redis.Z{Score: 1, Member: "i3"}).Err(); err != nil {
				return err
			}
			if err := rdb.LPush(ctx, k.log, "i3").Err(); err != nil {
				return err
			}
			return rdb.ZAdd(ctx, k.buy, redis.Z{Score: 4, Member: "i3"}).Err()
		},
	}
	users := []string{"new1"}
	for name, set := range only {
		u := "has-" + name
		if err := set(s.userKeys(u)); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	users = append(users, "new2")
	out := make([]*userState, len(users))
	rest, err := s.probeUsers(ctx, users, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != len(only) {
		t.Fatalf("probe left %d users to read whole, want %d (one per key)", len(rest), len(only))
	}
	for _, k := range rest {
		if out[k] != nil {
			t.Errorf("%s: given a new user's copy", users[k])
		}
	}
	for _, k := range []int{0, len(users) - 1} {
		if !reflect.DeepEqual(out[k], newUserState()) {
			t.Errorf("%s: copy %+v, want a new user's", users[k], out[k])
		}
	}

	// loadUsers reads the others whole: each copy holds its one key.
	got, err := s.loadUsers(ctx, users)
	if err != nil {
		t.Fatal(err)
	}
	for k, u := range users {
		st := got[k]
		var has bool
		switch u {
		case "has-blob":
			has = st.blob && len(st.log) == 1
		case "has-meta":
			has = st.meta["gone"] == "5"
		case "has-imp":
			has = st.shownAt["i2"] == 3
		case "has-shown":
			has = st.shown["i2"] == "r"
		case "has-att":
			has = len(st.att) == 1
		case "has-old":
			has = st.weights["i3"] == 1 && len(st.log) == 1 && st.bought["i3"] == 4
		default:
			has = reflect.DeepEqual(st, newUserState())
		}
		if !has {
			t.Errorf("%s: copy %+v", u, st)
		}
	}
}
