package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// DefaultMaxMachineSeries is the default bound on (job, machine) pairs
// with series of their own.
const DefaultMaxMachineSeries = 10000

// Config configures Metrics.
type Config struct {
	// PerMachine keeps the last exit code and last success per (job,
	// machine); false keeps them per job only: the last run's worst exit
	// code, and its end when it succeeded.
	PerMachine bool
	// MaxMachineSeries bounds the (job, machine) pairs with series of
	// their own; 0: DefaultMaxMachineSeries.
	MaxMachineSeries int
	// HubCounts, optional, gives the machines running and the wrappers
	// connected now.
	HubCounts func() (running, connected int64)
	// PluginStarts, optional, gives how many times each plugin (by kind
	// and name) was started.
	PluginStarts func() map[[2]string]int
}

// Metrics is the core's Prometheus registry and its hooks; safe for
// concurrent use.
type Metrics struct {
	cfg           Config
	reg           *prometheus.Registry
	runs          *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	lastExit      *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	dropped       prometheus.Counter
	killLatency   prometheus.Histogram
	fireLag       prometheus.Histogram
	storeWrite    *prometheus.HistogramVec
	notifications *prometheus.CounterVec

	mu     sync.Mutex
	series map[[2]string]bool
}

// New returns the core's metrics.
func New(cfg Config) *Metrics {
	if cfg.MaxMachineSeries <= 0 {
		cfg.MaxMachineSeries = DefaultMaxMachineSeries
	}
	machineLabels := []string{"job", "machine"}
	if !cfg.PerMachine {
		machineLabels = []string{"job"}
	}
	m := &Metrics{
		cfg: cfg,
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saltpeter_runs_total",
			Help: "Runs that ended, by job and status."}, []string{"job", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saltpeter_run_duration_seconds",
			Help:    "How long runs took, from their start to their end, by job.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600}}, []string{"job"}),
		lastExit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saltpeter_machine_last_exit_code",
			Help: "The exit code of the job's last run on the machine."}, machineLabels),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "saltpeter_machine_last_success_timestamp_seconds",
			Help: "When the job last succeeded on the machine (Unix seconds)."}, machineLabels),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "saltpeter_machine_series_dropped_total",
			Help: "Machine results not given series of their own: more (job, machine) pairs than the cap."}),
		killLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "saltpeter_kill_latency_seconds",
			Help:    "From an operator's kill to the machine's killed result.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300}}),
		fireLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "saltpeter_fire_lag_seconds",
			Help:    "Scheduled runs: from the slot to the run recorded in the store (catch-up runs left out).",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30}}),
		storeWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saltpeter_store_write_seconds",
			Help:    "Store writes, by operation.",
			Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}}, []string{"op"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saltpeter_notifications_total",
			Help: "Notification delivery attempts, by notifier and result (delivered, retry, failed)."}, []string{"notifier", "result"}),
		series: map[[2]string]bool{},
	}
	m.reg.MustRegister(m.runs, m.duration, m.lastExit, m.lastSuccess, m.dropped, m.killLatency, m.fireLag, m.storeWrite, m.notifications,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.HubCounts != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "saltpeter_running_machines", Help: "Machines running a job now."},
				func() float64 { r, _ := cfg.HubCounts(); return float64(r) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "saltpeter_connected_wrappers", Help: "Wrappers connected to this core now."},
				func() float64 { _, c := cfg.HubCounts(); return float64(c) }))
	}
	if cfg.PluginStarts != nil {
		m.reg.MustRegister(pluginStarts{cfg.PluginStarts})
	}
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// RunEnded counts a run that ended and records its machines' results.
func (m *Metrics) RunEnded(run store.Run) {
	m.runs.WithLabelValues(run.Job, run.Status).Inc()
	if !run.StartedAt.IsZero() && !run.FinishedAt.IsZero() {
		m.duration.WithLabelValues(run.Job).Observe(run.FinishedAt.Sub(run.StartedAt).Seconds())
	}
	if !m.cfg.PerMachine {
		// Per job: the run's worst exit code, and its end if it
		// succeeded.
		worst, any := 0, false
		for _, mc := range run.Machines {
			if mc.ExitCode != nil {
				worst, any = max(worst, *mc.ExitCode), true
			}
		}
		if any {
			m.lastExit.WithLabelValues(run.Job).Set(float64(worst))
		}
		if run.Status == store.StatusSucceeded && !run.FinishedAt.IsZero() {
			m.lastSuccess.WithLabelValues(run.Job).Set(float64(run.FinishedAt.Unix()))
		}
		return
	}
	for _, mc := range run.Machines {
		if mc.ExitCode == nil {
			continue
		}
		if !m.keep(run.Job, mc.Machine) {
			m.dropped.Inc()
			continue
		}
		m.lastExit.WithLabelValues(run.Job, mc.Machine).Set(float64(*mc.ExitCode))
		if mc.Status == store.StatusSucceeded && !mc.FinishedAt.IsZero() {
			m.lastSuccess.WithLabelValues(run.Job, mc.Machine).Set(float64(mc.FinishedAt.Unix()))
		}
	}
}

// keep says whether (job, machine) has, or may get, series of its own.
func (m *Metrics) keep(job, machine string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{job, machine}
	if m.series[k] {
		return true
	}
	if len(m.series) >= m.cfg.MaxMachineSeries {
		return false
	}
	m.series[k] = true
	return true
}

// Killed records how long a kill took.
func (m *Metrics) Killed(d time.Duration) { m.killLatency.Observe(d.Seconds()) }

// Fired records how late a scheduled run was recorded after its slot.
func (m *Metrics) Fired(lag time.Duration) { m.fireLag.Observe(lag.Seconds()) }

// Notified counts a delivery attempt's result.
func (m *Metrics) Notified(notifier, result string) {
	m.notifications.WithLabelValues(notifier, result).Inc()
}

// pluginStarts reports the plugin host's starts as a counter.
type pluginStarts struct{ f func() map[[2]string]int }

var pluginStartsDesc = prometheus.NewDesc("saltpeter_plugin_starts_total",
	"Plugin process starts, by kind and name: more than one is a restart.", []string{"kind", "name"}, nil)

func (p pluginStarts) Describe(ch chan<- *prometheus.Desc) { ch <- pluginStartsDesc }
func (p pluginStarts) Collect(ch chan<- prometheus.Metric) {
	for k, n := range p.f() {
		ch <- prometheus.MustNewConstMetric(pluginStartsDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}

// Store wraps s so that its writes are timed.
func (m *Metrics) Store(s store.Store) store.Store { return timedStore{Store: s, m: m} }

type timedStore struct {
	store.Store
	m *Metrics
}

func (t timedStore) time(op string, start time.Time) {
	t.m.storeWrite.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t timedStore) CreateRun(ctx context.Context, run store.Run) error {
	defer t.time("create_run", time.Now())
	return t.Store.CreateRun(ctx, run)
}

func (t timedStore) FireRun(ctx context.Context, run store.Run) (bool, error) {
	defer t.time("fire_run", time.Now())
	return t.Store.FireRun(ctx, run)
}

func (t timedStore) AddMachines(ctx context.Context, runID string, ms []store.Machine) error {
	defer t.time("add_machines", time.Now())
	return t.Store.AddMachines(ctx, runID, ms)
}

func (t timedStore) UpdateRun(ctx context.Context, runID string, u store.RunUpdate) error {
	defer t.time("update_run", time.Now())
	return t.Store.UpdateRun(ctx, runID, u)
}

func (t timedStore) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	defer t.time("update_machine", time.Now())
	return t.Store.UpdateMachine(ctx, runID, machine, u)
}

func (t timedStore) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	defer t.time("append_output", time.Now())
	return t.Store.AppendOutput(ctx, runID, machine, c)
}

// AppendOutputBatch keeps the hub's batches whole through the wrapper: a
// batch reaches a store whole only through Batchers all the way down, and
// this wrapper once hid it, which cost every chunk a commit of its own. A
// batch is one observation, under append_output_batch.
func (t timedStore) AppendOutputBatch(ctx context.Context, batch []store.Append) []store.AppendResult {
	defer t.time("append_output_batch", time.Now())
	return store.AppendBatch(ctx, t.Store, batch)
}

// UpdateMachines keeps a batch of machine updates whole, as
// AppendOutputBatch does output: one observation, under update_machines.
func (t timedStore) UpdateMachines(ctx context.Context, batch []store.MachineChange) []error {
	defer t.time("update_machines", time.Now())
	return store.UpdateBatch(ctx, t.Store, batch)
}

var (
	_ store.Batcher        = timedStore{}
	_ store.MachineBatcher = timedStore{}
)
