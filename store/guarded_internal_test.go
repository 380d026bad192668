package store

import (
	"context"
	"slices"
	"testing"

	"github.com/recstream/recstream/internal/redistest"
)

// A guarded write runs its commands only while every guard field holds
// the expected value (absent expected as ""), and otherwise answers the
// fields as they are and writes nothing.
func TestGuardedWrite(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	write := func(wantF0, wantGone string, v string) (bool, []string) {
		t.Helper()
		g := newGuardedWrite("{u:a}:meta")
		g.guard("f:0", wantF0)
		g.guard("gone", wantGone)
		g.cmd("HSET", "{u:a}:meta", "f:0", v)
		g.cmd("ZADD", "{u:a}:w", 1, "x"+v, 2, "y"+v)
		g.cmd("RPUSH", "{u:a}:log", "e"+v)
		pipe := rdb.Pipeline()
		c := g.send(ctx, pipe)
		if _, err := pipe.Exec(ctx); err != nil {
			if err := guardedScript.Load(ctx, rdb).Err(); err != nil {
				t.Fatal(err)
			}
			pipe = rdb.Pipeline()
			c = g.send(ctx, pipe)
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ok, cur, err := guardedAnswer(c)
		if err != nil {
			t.Fatal(err)
		}
		return ok, cur
	}
	if ok, cur := write("", "", "5"); !ok {
		t.Fatalf("first write (fields absent as expected) refused: %q", cur)
	}
	if ok, cur := write("", "", "6"); ok || !slices.Equal(cur, []string{"5", ""}) {
		t.Fatalf("write expecting an absent fence: written %v, fields %q; want refused, [5 \"\"]", ok, cur)
	}
	if ok, cur := write("5", "", "7"); !ok {
		t.Fatalf("write expecting the fence as it is refused: %q", cur)
	}
	rdb.HSet(ctx, "{u:a}:meta", "gone", "100")
	if ok, cur := write("7", "", "8"); ok || !slices.Equal(cur, []string{"7", "100"}) {
		t.Fatalf("write after an erasure: written %v, fields %q; want refused, [7 100]", ok, cur)
	}
	if got := rdb.LRange(ctx, "{u:a}:log", 0, -1).Val(); !slices.Equal(got, []string{"e5", "e7"}) {
		t.Fatalf("log %q, want the two written entries [e5 e7]", got)
	}
	if got := rdb.ZRange(ctx, "{u:a}:w", 0, -1).Val(); !slices.Equal(got, []string{"x5", "x7", "y5", "y7"}) {
		t.Fatalf("weights %q", got)
	}
}
