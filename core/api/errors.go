package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Error codes, the machine-readable half of every error body.
const (
	CodeBadRequest       = "BAD_REQUEST"
	CodeBadJSON          = "BAD_JSON"
	CodeTooLarge         = "TOO_LARGE"
	CodeUnauthorized     = "UNAUTHORIZED"
	CodeForbidden        = "FORBIDDEN"
	CodeNotFound         = "NOT_FOUND"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeRunNotFound      = "RUN_NOT_FOUND"
	CodeMachineNotFound  = "MACHINE_NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeOverlap          = "OVERLAP"
	CodeFinished         = "FINISHED"
	CodeMaintenance      = "MAINTENANCE"
	CodeConfigInvalid    = "CONFIG_INVALID"
	CodeStoreUnavailable = "STORE_UNAVAILABLE"
	CodeInternal         = "INTERNAL"
)

// Error is the body of every error response.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
	// Diagnostics carries a refused configuration's diagnostics as text.
	Diagnostics string `json:"diagnostics,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeJSON writes v with status. An encoding failure after the header is
// out can only be logged.
func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		a.log.Debug("write response", "error", err)
	}
}

func (a *API) writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="saltpeter"`)
	}
	a.writeJSON(w, e.Status, e)
}

// fail answers a request with the error err maps to. Errors that are not
// the client's are logged and hidden behind a generic sentence, because
// their text may name internals (DSNs, paths).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := a.classify(err)
	if e.Status == http.StatusInternalServerError {
		if r.Context().Err() != nil {
			// The client went away mid-call; nobody reads the answer.
			a.log.Debug("request abandoned", "method", r.Method, "path", r.URL.Path, "error", err)
			return
		}
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if e.Status == http.StatusServiceUnavailable {
		a.log.Warn("store unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	a.writeError(w, e)
}

// classify maps an error from a handler, the store or the runner to the
// response it deserves.
func (a *API) classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ce *control.ConfigError
	if errors.As(err, &ce) {
		return &Error{Status: http.StatusBadRequest, Code: CodeConfigInvalid,
			Message: "The configuration has errors; the running one stays.", Diagnostics: ce.Diagnostics}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "The request body is larger than %d bytes.", mbe.Limit)
	}
	for _, m := range []struct {
		target error
		status int
		code   string
	}{
		{control.ErrUnknownJob, http.StatusNotFound, CodeJobNotFound},
		{control.ErrUnknownRun, http.StatusNotFound, CodeRunNotFound},
		{control.ErrUnknownMachine, http.StatusNotFound, CodeMachineNotFound},
		{control.ErrOverlap, http.StatusConflict, CodeOverlap},
		{control.ErrFinished, http.StatusConflict, CodeFinished},
		{control.ErrMaintenance, http.StatusConflict, CodeMaintenance},
		{control.ErrBadRequest, http.StatusBadRequest, CodeBadRequest},
		{store.ErrUnavailable, http.StatusServiceUnavailable, CodeStoreUnavailable},
		{store.ErrNotFound, http.StatusNotFound, CodeNotFound},
	} {
		if errors.Is(err, m.target) {
			msg := sentence(err.Error())
			if m.code == CodeStoreUnavailable {
				msg = "The store cannot be reached."
			}
			return &Error{Status: m.status, Code: m.code, Message: msg}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errorf(http.StatusServiceUnavailable, CodeStoreUnavailable, "The core did not answer in time.")
	}
	return errorf(http.StatusInternalServerError, CodeInternal, "Something went wrong inside the core; its log has the details.")
}

// sentence turns a wrapped Go error ("kill run r1: already finished") into
// the sentence the error field promises.
func sentence(s string) string {
	if s == "" {
		return s
	}
	if c := s[0]; c >= 'a' && c <= 'z' {
		s = string(c-'a'+'A') + s[1:]
	}
	if last := s[len(s)-1]; last != '.' && last != '?' && last != '!' {
		s += "."
	}
	return s
}
