package main

import (
	"context"
	"io"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/eval"
)

func tuneConfig(ctx context.Context, e *evalEnv, cfg config.Config, train []eval.Interaction, f *evalFlags, ties eval.HoldoutTies, progress, stderr io.Writer) (config.Config, error) {
	return cfg, nil
}
