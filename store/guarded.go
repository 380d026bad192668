package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/guarded.lua
	guardedLua    string
	guardedScript = redis.NewScript(guardedLua)
)

// guardedWrite is one key group's changes (a user's or an item's keys,
// one hash tag), computed in the process that owns the group and written
// with plain commands by one small script, only if the group's meta hash
// still holds the guard fields (the fences, the erasure time) as the owner
// last read or wrote them. A write from an owner that lost the group, or
// from a copy that an erasure made stale, changes nothing and answers the
// fields as they are, so the owner reloads the group and applies its
// events again (the fences skip what was applied).
type guardedWrite struct {
	keys   []string // KEYS: the meta hash first
	fields []string
	want   []string
	cmds   []any
}

// maxGuardedArgs bounds the arguments of one command of a guarded write
// (Lua's unpack limit is near 8,000).
const maxGuardedArgs = 1000

func newGuardedWrite(meta string) *guardedWrite {
	// room for a usual write: a few keys, guard fields and commands
	return &guardedWrite{keys: append(make([]string, 0, 4), meta), fields: make([]string, 0, 4), want: make([]string, 0, 4), cmds: make([]any, 0, 40)}
}

// guard adds a field of the meta hash that must hold want ("" for absent).
func (g *guardedWrite) guard(field, want string) {
	g.fields = append(g.fields, field)
	g.want = append(g.want, want)
}

// cmd adds a command on key with args; a command with more than
// maxGuardedArgs arguments is an error of the caller, who splits it.
func (g *guardedWrite) cmd(name, key string, args ...any) {
	if len(args) > maxGuardedArgs {
		panic(fmt.Sprintf("store: guarded %s with %d arguments", name, len(args)))
	}
	k := -1
	for i, have := range g.keys {
		if have == key {
			k = i
			break
		}
	}
	if k < 0 {
		g.keys = append(g.keys, key)
		k = len(g.keys) - 1
	}
	g.cmds = append(append(g.cmds, name, k+1, len(args)), args...)
}

// empty reports whether the write has no command.
func (g *guardedWrite) empty() bool { return len(g.cmds) == 0 }

// send queues the write on pipe.
func (g *guardedWrite) send(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	args := make([]any, 0, 1+2*len(g.fields)+len(g.cmds))
	args = append(args, len(g.fields))
	for _, f := range g.fields {
		args = append(args, f)
	}
	for _, w := range g.want {
		args = append(args, w)
	}
	args = append(args, g.cmds...)
	return guardedScript.EvalSha(ctx, pipe, g.keys, args...)
}

// guardedAnswer reads a guarded write's answer: written, or the guard
// fields as they are ("" for absent) when it wrote nothing.
func guardedAnswer(c *redis.Cmd) (written bool, current []string, err error) {
	reply, err := c.Slice()
	if err != nil {
		return false, nil, err
	}
	if len(reply) == 0 {
		return false, nil, errors.New("empty guarded write answer")
	}
	switch reply[0] {
	case int64(1):
		return true, nil, nil
	case int64(0):
		return false, toStrings(reply[1:]), nil
	}
	return false, nil, fmt.Errorf("guarded write answered %v", reply[0])
}
