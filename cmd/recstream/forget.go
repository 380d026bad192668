package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/processor"
)

// cmdForget erases one user: `recstream forget [--config F] [--set k=v]...
// [--request REF] [--no-refresh] <user_id>`. It prints the outcome as JSON.
func cmdForget(args []string, w io.Writer) error {
	fs := newFlagSet("forget")
	path := fs.String("config", os.Getenv("RECSTREAM_CONFIG"), "YAML configuration file")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: section.key=value (repeatable)")
	request := fs.String("request", "", "reference stored in the audit record (e.g. a ticket id)")
	noRefresh := fs.Bool("no-refresh", false, "do not queue the users who shared items with the erased user for rescoring")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one user id: recstream forget [flags] <user_id>")
	}
	cfg, err := config.Load(*path, os.LookupEnv, sets)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, os.Stderr)
	p, err := processor.New(cfg, processor.Deps{Logger: log})
	if err != nil {
		return err
	}
	defer p.Redis.Close()
	ctx, stop := signalContext()
	defer stop()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Store.LoadScripts(lctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	var refresh func(context.Context, []string) error
	if !*noRefresh {
		refresh = p.PublishRefresh
	}
	out, err := p.Forget(ctx, fs.Arg(0), "cli", *request, refresh)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
