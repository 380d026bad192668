// Package processortest runs a processor for a test: built from a
// configuration, its admin listener opened when one is configured, and run
// until the test ends. Tests of every package that need the whole pipeline
// (processor, admin, deploy) start it here.
package processortest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/processor"
)

// Run builds a processor from cfg and d, opens its admin listener when
// cfg.Admin.Listen is set (addr is then its address, else nil) and runs it
// until the test ends or stop is called; stop waits for Run to return and
// may be called more than once. A Run that fails reports a test error.
func Run(t testing.TB, cfg config.Config, d processor.Deps) (p *processor.Processor, addr net.Addr, stop func()) {
	t.Helper()
	p, err := processor.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "" {
		if addr, err = p.Listen(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("processor: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return p, addr, stop
}
