// Package redistest runs a real redis-server for tests.
//
// [Start] launches redis-server from PATH on a free 127.0.0.1 port with its
// own t.TempDir() (no save points, no AOF, dump.rdb in that directory) and
// stops it when the test ends. [Server.Stop], [Server.Kill] and
// [Server.Restart] simulate clean shutdowns, crashes and recoveries on the
// same address, so clients made with [Server.Client] reconnect by themselves.
//
// redis-server must be installed (Debian: apt-get install -y redis-server;
// ./scripts/test.sh and .ci/run install it when missing). Code that must not
// import testing uses the process layer, package redisproc, re-exported here
// as [Launch] and [Process].
package redistest
