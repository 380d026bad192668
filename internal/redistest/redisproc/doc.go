// Package redisproc starts and stops redis-server processes from PATH.
//
// It is the process half of package redistest without the testing import,
// so that non-test code (the demo, the benchmark, package embedded) can run a
// real Redis too. [Launch] picks a free 127.0.0.1 port, starts
// `redis-server --port N --bind 127.0.0.1 --save "" --appendonly no
// --dbfilename dump.rdb --dir DIR` plus the caller's arguments, and returns
// once that very process (checked by its process id in INFO) answers.
//
// On Linux the server is tied to the launching program: it receives SIGKILL
// when the program dies, so a test binary killed by `go test -timeout` leaves
// no redis-server behind.
package redisproc
