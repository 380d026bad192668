// Package bench drives the real pipeline (an embedded kfake broker, a real
// redis-server, the processor built by package processor) with a synthetic
// clickstream from package loadgen and measures it. `recstream bench` is its
// command-line front end; docs/benchmarks.md records its results.
//
// # Phases
//
//  1. Ingest: Events events are produced to the broker first, then the
//     ingest role alone consumes them with every state update, fence and
//     refresh request; events/s is measured from the first applied batch to
//     the last. Redis commands (INFO commandstats deltas), Redis CPU (INFO cpu
//     deltas) and processor CPU (getrusage) are divided by the event count.
//  2. Rescore: RescoreUsers users are scored and their lists written
//     through scorer.Refresh, in chunks of 64 users on scorer.workers
//     goroutines, as the score role does.
//  3. Freshness: both roles run while events are produced at Rate events/s
//     (wall-clock timestamps) for Duration; the score role's own freshness
//     observations (event time to list written) give the percentiles.
//  4. Memory: INFO memory and MEMORY USAGE samples of user and item keys;
//     the process's peak RSS (VmHWM); with Options.ProcessorBinary set (the
//     recstream command sets it), `recstream run` as a child process over
//     the ingest phase's events, both roles, under its own key prefix: its
//     peak RSS without the broker.
//  5. redis-benchmark -t hset -P 16 on the same redis-server, as a yardstick
//     for comparing machines.
//
// # Command counts
//
// Client commands are counted by a go-redis hook on the processor's client
// (an EVALSHA is one). Redis counts the commands a script runs with
// redis.call in INFO commandstats as well; the benchmark checks that with a
// probe script at start-up and reports both the client commands and the
// commandstats total per event.
//
// # Caveats
//
// The broker runs inside the benchmark process, so processor CPU and the
// benchmark process's RSS include kfake serving fetches and holding every
// produced message in memory; the report says how much of the process's
// CPU a fetch-only pass costs, and the child-process phase measures the
// processor's RSS alone.
package bench
