package redisproc

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func requireRedis(t *testing.T) {
	t.Helper()
	if !Available() {
		t.Fatal("redis-server is not on PATH: install redis-server (./scripts/test.sh does)")
	}
}

func TestLaunchShutdownRelaunch(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	dir := t.TempDir()
	p, err := Launch(context.Background(), dir, "--maxmemory-policy", "noeviction")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Exited() || p.Dir() != dir || p.Port() == 0 || p.Pid() == 0 {
		t.Fatalf("process %+v", p)
	}
	if pid, err := infoPid(context.Background(), p.Addr()); err != nil || pid != p.Pid() {
		t.Fatalf("INFO pid %d, %v; want %d", pid, err, p.Pid())
	}
	if _, err := p.Relaunch(context.Background()); err == nil {
		t.Fatal("Relaunch of a running server succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx, true); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Fatal("not exited after Shutdown")
	}
	if _, err := os.Stat(filepath.Join(dir, "dump.rdb")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Log(), "Ready to accept connections") {
		t.Fatalf("log lacks the ready line:\n%s", p.Log())
	}
	q, err := p.Relaunch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if q.Addr() != p.Addr() || strings.Join(q.Args(), " ") != "--maxmemory-policy noeviction" {
		t.Fatalf("relaunched at %s with %q", q.Addr(), q.Args())
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if !q.Exited() {
		t.Fatal("not exited after Close")
	}
}

func TestLaunchPortTaken(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = LaunchPort(ctx, port, t.TempDir())
	if !errors.Is(err, errAddrInUse) {
		t.Fatalf("LaunchPort on a taken port: %v", err)
	}
	// Once the port is free again it starts.
	go func() { time.Sleep(200 * time.Millisecond); ln.Close() }()
	p, err := LaunchPort(context.Background(), port, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
}

func TestLaunchBadArgs(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	_, err := Launch(context.Background(), t.TempDir(), "--no-such-option", "1")
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") {
		t.Fatalf("bad option: %v", err)
	}
	if _, err := Launch(context.Background(), filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing dir accepted")
	}
	if _, err := Launch(context.Background(), ""); err == nil {
		t.Fatal("empty dir accepted")
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	p, err := Launch(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), 200*time.Millisecond); err == nil {
		t.Fatal("port still answers after Kill")
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	tl.Write([]byte("abcdef"))
	tl.Write([]byte("ghij"))
	if got := tl.String(); got != "cdefghij" {
		t.Fatalf("tail = %q", got)
	}
	if got := lastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Fatalf("lastLines = %q", got)
	}
}
