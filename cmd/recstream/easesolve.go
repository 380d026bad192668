package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/recstream/recstream/scorer"
)

// cmdEASESolve reads an EASE fit's request from stdin and writes the
// model's blob to stdout, at the lowest priority: the child process a
// score role of `recstream run` solves its fits in (easeChildSolver).
func cmdEASESolve(args []string, in io.Reader, out io.Writer) error {
	fs := newFlagSet("ease-solve")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	lowerPriority()
	req, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	blob, err := scorer.SolveEASERequest(context.Background(), req)
	if err != nil {
		return err
	}
	_, err = out.Write(blob)
	return err
}

// easeChildSolver returns a scorer.EASEOptions.Solver that runs
// `bin ease-solve` with env, the request on its stdin.
func easeChildSolver(bin string, env []string) func(ctx context.Context, req []byte) ([]byte, error) {
	return func(ctx context.Context, req []byte) ([]byte, error) {
		cmd := exec.CommandContext(ctx, bin, "ease-solve")
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(req)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s ease-solve: %v: %s", bin, err, strings.TrimSpace(errOut.String()))
		}
		return out.Bytes(), nil
	}
}

// runEASESolver is the solver `recstream run` gives its processor: this
// binary as the child; nil when it cannot be found.
func runEASESolver() func(ctx context.Context, req []byte) ([]byte, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil
	}
	return easeChildSolver(bin, os.Environ())
}
