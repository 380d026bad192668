// Package admin serves recstream's status page and read API on the admin
// address (admin.listen), next to /metrics, /healthz and /readyz, which
// package processor mounts on the same mux.
//
// # Routes
//
//	GET /                                     the status page: roles, readiness, lag per partition, metric summaries
//	GET /api/v1/status                        the same as JSON
//	GET /api/v1/users/{id}/recommendations    the user's stored list and recent events, as JSON
//
// The server reads Redis through the small Store interface (a user's list
// and recent events) and the lag table through LagSource; it writes
// nothing. Metric summaries are read from the process's Prometheus
// registry (Options.Gatherer), so the page shows what /metrics exports.
package admin
