package api

import (
	"context"
	"net/http"
	"time"
)

// pingTimeout keeps a hung store from hanging the health check, which a
// load balancer or systemd watchdog calls on a short clock of its own.
const pingTimeout = 2 * time.Second

type health struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Code   string `json:"code,omitempty"`
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pingTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("health check: store unreachable", "error", err)
		a.writeJSON(w, http.StatusServiceUnavailable, health{Status: "unavailable",
			Error: "The store cannot be reached.", Code: CodeStoreUnavailable})
		return
	}
	a.writeJSON(w, http.StatusOK, health{Status: "ok"})
}
