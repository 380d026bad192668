package scorer

import (
	"runtime"
	"syscall"
)

// inBackground runs fn on an OS thread of its own at the lowest
// scheduling priority (nice 19), so that the minutes of CPU an EASE
// refresh can take yield to ingest and scoring on a busy machine. The
// thread ends with fn: it is never handed back to other goroutines.
func inBackground(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
		done <- fn()
	}()
	return <-done
}
