package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walrust/walrust/vfs/follow"
)

// A followed replica as the operator's endpoints see it: its name (the
// local path, the db label) and its follower's status.
type followed struct {
	db     string
	status func() follow.Status
}

// opsServer serves /metrics (Prometheus text: per replica, and the Go
// runtime's) and /healthz (200 while every replica was confirmed current
// within maxLag, 503 naming the stale ones) on one address.
type opsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

func startOps(addr string, maxLag time.Duration, replicas func() []followed) (*opsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		replicaCollector{replicas},
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		health(w, maxLag, replicas())
	})
	s := &opsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is where the server listens.
func (s *opsServer) URL() string { return "http://" + s.ln.Addr().String() }

// close stops the server, letting requests in progress finish for a
// moment.
func (s *opsServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// replicaHealth is one replica in /healthz's body.
type replicaHealth struct {
	DB         string  `json:"db"`
	TXID       uint64  `json:"txid"`
	LagSeconds float64 `json:"lag_seconds"`
	LastError  string  `json:"last_error,omitempty"`
	Stale      bool    `json:"stale"`
}

func health(w http.ResponseWriter, maxLag time.Duration, replicas []followed) {
	body := struct {
		Status   string          `json:"status"` // ok, or stale
		MaxLag   string          `json:"max_lag"`
		Replicas []replicaHealth `json:"replicas"`
	}{Status: "ok", MaxLag: maxLag.String()}
	for _, r := range replicas {
		st := r.status()
		h := replicaHealth{DB: r.db, TXID: uint64(st.TXID), LagSeconds: st.LagSeconds, LastError: st.LastError}
		h.Stale = st.TXID == 0 || st.LagSeconds > maxLag.Seconds()
		if h.Stale {
			body.Status = "stale"
		}
		body.Replicas = append(body.Replicas, h)
	}
	w.Header().Set("Content-Type", "application/json")
	if body.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(body)
}

// replicaCollector turns each follower's status into metrics at scrape
// time: nothing is counted twice, and a replica added or gone shows at
// the next scrape.
type replicaCollector struct {
	replicas func() []followed
}

var (
	labels      = []string{"db"}
	descTXID    = prometheus.NewDesc("walrust_replica_txid", "The TXID the replica holds.", labels, nil)
	descLag     = prometheus.NewDesc("walrust_replica_lag_seconds", "Seconds since the replica was last confirmed current (the start of the last poll that left it at the store's head).", labels, nil)
	descAge     = prometheus.NewDesc("walrust_replica_commit_age_seconds", "Seconds since the primary committed the replica's TXID.", labels, nil)
	descApplied = prometheus.NewDesc("walrust_replica_files_applied_total", "LTX files applied, snapshots included.", labels, nil)
	descBoots   = prometheus.NewDesc("walrust_replica_bootstraps_total", "Snapshots installed.", labels, nil)
	descPolls   = prometheus.NewDesc("walrust_replica_polls_total", "Polls of the store.", labels, nil)
	descErrors  = prometheus.NewDesc("walrust_replica_poll_errors_total", "Polls that failed.", labels, nil)
	descReqs    = prometheus.NewDesc("walrust_store_requests_total", "Requests to the store, by kind.", []string{"db", "kind"}, nil)
	descBytes   = prometheus.NewDesc("walrust_store_downloaded_bytes_total", "Bytes downloaded from the store.", labels, nil)
)

func (c replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTXID, descLag, descAge, descApplied, descBoots, descPolls, descErrors, descReqs, descBytes} {
		ch <- d
	}
}

func (c replicaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.replicas() {
		st := r.status()
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, r.db)
		}
		counter := func(d *prometheus.Desc, v int64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{r.db}, extra...)...)
		}
		gauge(descTXID, float64(st.TXID))
		gauge(descLag, st.LagSeconds)
		gauge(descAge, st.CommitAgeSeconds)
		counter(descApplied, st.FilesApplied)
		counter(descBoots, st.Bootstraps)
		counter(descPolls, st.Polls)
		counter(descErrors, st.PollErrors)
		counter(descReqs, st.Store.Lists, "list")
		counter(descReqs, st.Store.Gets, "get")
		counter(descReqs, st.Store.Puts, "put")
		counter(descBytes, st.Store.Bytes)
	}
}
