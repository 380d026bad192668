package main

import (
	"os"
	"strconv"
	"syscall"
)

// lowerPriority sets every thread of this process to nice 19; threads
// started later inherit it from the thread that starts them.
func lowerPriority() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
		}
	}
}
