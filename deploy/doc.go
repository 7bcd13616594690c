// Package deploy holds no code: it is the home of the files operators deploy
// beside packline, and of the tests that keep them true.
//
//	grafana/packline.json         the Grafana dashboard
//	prometheus/alerts.yml         alerting rules (runbook: docs/operations.md)
//	prometheus/alerts_test.yml    promtool unit tests, one or more per alert
//	prometheus/prometheus.yml     an example scrape configuration
//
// The tests check the rules with promtool, parse every dashboard expression,
// check that every metric they name is one packline really exports, and run a
// real Prometheus against a live ops listener so each dashboard query returns
// series. They need promtool and prometheus (Debian package "prometheus") and
// redis-server; without them they skip, except under CI where they fail.
package deploy
