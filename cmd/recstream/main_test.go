package main

import (
	"runtime/debug"
	"testing"
)

// run.memory_limit_mb sets the runtime's soft memory limit; 0 leaves it.
func TestMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	if got := memoryLimit(300); got != 300 {
		t.Fatalf("memoryLimit(300) = %d MiB in force", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("runtime limit %d, want %d", got, 300<<20)
	}
	if got := memoryLimit(0); got != 300 {
		t.Fatalf("memoryLimit(0) changed the limit in force to %d MiB", got)
	}
}
