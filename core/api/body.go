package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// maxBody bounds every request body: the API takes small JSON objects, and
// an unbounded body is memory anyone who can reach the port may spend.
const maxBody = 1 << 20

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, CodeBadRequest, "The request body could not be read: %v.", err)
	}
	return data, nil
}

// decodeJSON decodes one JSON object into v, refusing unknown fields and
// trailing data so that a misspelt field is an error, not a silent default.
// An empty (or all-blank) body leaves v as it is when optional.
func decodeJSON(data []byte, v any, optional bool) *Error {
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "The request body is empty; a JSON object is expected.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, dec.InputOffset())
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, CodeBadJSON, "The request body has data after the JSON object, at byte %d.", dec.InputOffset())
	}
	// More reports false at a lone closing delimiter; a second Decode
	// catches it.
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return errorf(http.StatusBadRequest, CodeBadJSON, "The request body has data after the JSON object, at byte %d.", dec.InputOffset())
	}
	return nil
}

// jsonError puts the offset of the fault in the sentence, so a client can
// find it in what it sent.
func jsonError(err error, offset int64) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, CodeBadJSON, "The request body is not valid JSON at byte %d: %s.", se.Offset, trimJSONPrefix(se.Error()))
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return errorf(http.StatusBadRequest, CodeBadJSON, "The request body must be a JSON object, not a %s (byte %d).", te.Value, te.Offset)
		}
		return errorf(http.StatusBadRequest, CodeBadJSON, "Field %q must be a %s, not a %s (byte %d).", field, jsonKind(te.Type.Kind().String()), te.Value, te.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, CodeBadJSON, "The request body ends in the middle of a JSON value, at byte %d.", offset)
	}
	// Unknown fields have no error type of their own.
	return errorf(http.StatusBadRequest, CodeBadJSON, "The request body was refused at byte %d: %s.", offset, trimJSONPrefix(err.Error()))
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

// killBody is the optional body of every kill call.
type killBody struct {
	Signal string `json:"signal"`
	Grace  string `json:"grace"`
}

// killOverride is a validated killBody.
type killOverride struct {
	Signal string // canonical, or "" for the job's policy
	Grace  time.Duration
}

// parseKillBody decodes and validates a kill body; an empty body asks for
// the job's own kill policy.
func parseKillBody(data []byte) (killOverride, *Error) {
	var b killBody
	if e := decodeJSON(data, &b, true); e != nil {
		return killOverride{}, e
	}
	var out killOverride
	if b.Signal != "" {
		sig, ok := wire.CanonicalSignal(b.Signal)
		if !ok {
			return killOverride{}, errorf(http.StatusBadRequest, CodeBadRequest, "Unknown signal %q; use a name such as SIGTERM or SIGINT.", b.Signal)
		}
		out.Signal = sig
	}
	if b.Grace != "" {
		d, err := wire.ParseDuration(b.Grace)
		if err != nil {
			return killOverride{}, errorf(http.StatusBadRequest, CodeBadRequest, "Field \"grace\": %v.", err)
		}
		if d < 0 {
			// wire.ParseDuration overflows to a negative value on a huge
			// day count instead of refusing it.
			return killOverride{}, errorf(http.StatusBadRequest, CodeBadRequest, "Field \"grace\": %q is too long.", b.Grace)
		}
		out.Grace = d
	}
	return out, nil
}

// signalBody is the body of POST /api/v1/runs/{id}/signal.
type signalBody struct {
	Signal  string `json:"signal"`
	Machine string `json:"machine"`
}

// parseSignalBody decodes and validates a signal body. SIGKILL is refused:
// it skips the kill policy's grace and the kill queue's bookkeeping, and
// kill is the call that does it properly.
func parseSignalBody(data []byte) (signalBody, *Error) {
	var b signalBody
	if e := decodeJSON(data, &b, false); e != nil {
		return signalBody{}, e
	}
	if b.Signal == "" {
		return signalBody{}, errorf(http.StatusBadRequest, CodeBadRequest, "Field \"signal\" is required, e.g. {\"signal\":\"SIGSTOP\"}.")
	}
	sig, ok := wire.CanonicalSignal(b.Signal)
	if !ok {
		return signalBody{}, errorf(http.StatusBadRequest, CodeBadRequest, "Unknown signal %q; use a name such as SIGSTOP, SIGCONT or SIGUSR1.", b.Signal)
	}
	if sig == "SIGKILL" {
		return signalBody{}, errorf(http.StatusBadRequest, CodeBadRequest, "SIGKILL is not sent with signal; use POST /api/v1/runs/{id}/kill (with {\"signal\":\"SIGKILL\"} to skip the grace period).")
	}
	b.Signal = sig
	return b, nil
}

// badParam refuses a query parameter; value is quoted so a blank shows.
func badParam(name, value, want string) *Error {
	return errorf(http.StatusBadRequest, CodeBadRequest, "Query parameter %s=%q is not valid: %s.", name, value, want)
}

// countParam reads a whole-number query parameter from 1 up: def when it
// is absent, lowered to max when above it (http-api.md: a limit above its
// maximum is lowered, not refused).
func countParam(q url.Values, name string, def, max int) (int, *Error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, badParam(name, v, "want a whole number from 1")
	}
	return min(n, max), nil
}
