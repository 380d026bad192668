// Package deploy holds what operators run, and its tests: the Dockerfile,
// docker-compose.yml (at the repository root), the Prometheus configuration
// and alert rules (checked and unit-tested with promtool), the Grafana
// dashboard, the Kubernetes manifests and the reference configuration. The
// tests also run a real Prometheus server against a running processor and
// check the lag it reads. The package has no Go API.
package deploy
