package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// loadDoc decodes the embedded openapi.json.
func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// obj and list read a decoded JSON document; a missing or mistyped part is
// an empty value, which the checks then report.
func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any         { l, _ := v.([]any); return l }

// docOperation is one method on one path of the document.
type docOperation struct {
	Method string // upper case, as in a mux pattern
	Path   string
	Op     map[string]any
	Item   map[string]any // the path item, for its shared parameters
}

func (o docOperation) String() string { return o.Method + " " + o.Path }

func operations(doc map[string]any) []docOperation {
	var out []docOperation
	paths := obj(doc["paths"])
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item := obj(paths[p])
		for _, m := range httpMethods {
			if op, ok := item[m]; ok {
				out = append(out, docOperation{Method: strings.ToUpper(m), Path: p, Op: obj(op), Item: item})
			}
		}
	}
	return out
}

// resolve follows a local $ref ("#/components/schemas/Run").
func resolve(doc, v map[string]any) (map[string]any, error) {
	for range 10 {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v, nil
		}
		if !strings.HasPrefix(ref, "#/") {
			return nil, fmt.Errorf("$ref %q is not local", ref)
		}
		cur := any(doc)
		for _, part := range strings.Split(ref[2:], "/") {
			m, ok := cur.(map[string]any)
			if !ok || m[part] == nil {
				return nil, fmt.Errorf("$ref %q does not resolve", ref)
			}
			cur = m[part]
		}
		v = obj(cur)
	}
	return nil, fmt.Errorf("$ref chain too long")
}

// errorCodes reads the Code* constants of errors.go, so that a code added
// there and not to the document fails the test.
func errorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(gotoken.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
				s, _ := strconv.Unquote(lit.Value)
				codes = append(codes, s)
			}
		}
		return true
	})
	if len(codes) == 0 {
		t.Fatal("errors.go declares no Code constants; the parse is wrong")
	}
	slices.Sort(codes)
	return codes
}

func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	ops := operations(doc)
	if len(ops) == 0 {
		t.Fatal("the document has no operations")
	}

	errSchema, err := resolve(doc, map[string]any{"$ref": "#/components/schemas/Error"})
	if err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, c := range list(obj(obj(errSchema["properties"])["code"])["enum"]) {
		s, _ := c.(string)
		enum = append(enum, s)
	}
	slices.Sort(enum)
	if want := errorCodes(t); !slices.Equal(enum, want) {
		t.Errorf("Error.code enum = %v, want the codes of errors.go %v", enum, want)
	}

	param := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	for _, o := range ops {
		t.Run(o.String(), func(t *testing.T) {
			id, _ := o.Op["operationId"].(string)
			if id == "" {
				t.Error("no operationId")
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %q is also %s's", id, prev)
			}
			ids[id] = o.String()

			responses := obj(o.Op["responses"])
			success := false
			for status, r := range responses {
				// A WebSocket's success is 101, not 2xx.
				if strings.HasPrefix(status, "2") || status == "101" {
					success = true
				}
				r, err := resolve(doc, obj(r))
				if err != nil {
					t.Errorf("response %s: %v", status, err)
					continue
				}
				if d, _ := r["description"].(string); d == "" {
					t.Errorf("response %s has no description", status)
				}
				for _, c := range list(r["x-error-codes"]) {
					if s, _ := c.(string); !slices.Contains(enum, s) {
						t.Errorf("response %s: x-error-codes has %v, not an Error code", status, c)
					}
				}
				if n, _ := strconv.Atoi(status); n >= 400 && len(list(r["x-error-codes"])) == 0 {
					t.Errorf("error response %s lists no x-error-codes", status)
				}
			}
			if !success {
				t.Errorf("no 2xx response among %v", slices.Sorted(maps.Keys(responses)))
			}

			// Every {param} of the path is declared, and nothing else is.
			declared := map[string]bool{}
			for _, p := range append(list(o.Item["parameters"]), list(o.Op["parameters"])...) {
				p, err := resolve(doc, obj(p))
				if err != nil {
					t.Error(err)
					continue
				}
				if p["in"] == "path" {
					declared[p["name"].(string)] = true
				}
			}
			inPath := map[string]bool{}
			for _, m := range param.FindAllStringSubmatch(o.Path, -1) {
				inPath[m[1]] = true
			}
			if !maps.Equal(declared, inPath) {
				t.Errorf("path parameters declared %v, in the path %v", declared, inPath)
			}
		})
	}
}

// TestOpenAPIRoutes holds the document to the routes New registers, both
// ways: a route added to api.go and not described fails, and so does a
// described route nobody serves.
func TestOpenAPIRoutes(t *testing.T) {
	e := newEnv(t)
	served := map[string]bool{}
	for _, p := range e.api.patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok || method == "" {
			t.Errorf("route %q has no method; the document describes one per method", p)
			continue
		}
		served[method+" "+path] = true
	}
	if len(served) == 0 {
		t.Fatal("no routes recorded; router does not record")
	}
	described := map[string]bool{}
	for _, o := range operations(loadDoc(t)) {
		described[o.String()] = true
	}
	for _, r := range slices.Sorted(maps.Keys(served)) {
		if !described[r] {
			t.Errorf("%s is served but not in openapi.json", r)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(described)) {
		if !served[r] {
			t.Errorf("%s is in openapi.json but not served", r)
		}
	}
}

// TestOpenAPISecurity checks each operation's security against the core:
// with tokens configured, an operation that needs none must not answer
// 401 without a token, and every other must.
func TestOpenAPISecurity(t *testing.T) {
	e := newEnv(t, withTokens)
	doc := loadDoc(t)
	if len(list(doc["security"])) == 0 {
		t.Fatal("the document has no default security")
	}
	fill := strings.NewReplacer("{name}", "backup", "{id}", "r1", "{machine}", "db1")
	for _, o := range operations(doc) {
		t.Run(o.String(), func(t *testing.T) {
			sec, set := o.Op["security"]
			public := set && len(list(sec)) == 0
			r := e.do(req{Method: o.Method, Path: fill.Replace(o.Path)})
			if public && r.Status == http.StatusUnauthorized {
				t.Errorf("security [] but answered 401 without a token: %s", r.Body)
			}
			if !public && r.Status != http.StatusUnauthorized {
				t.Errorf("needs a token by the document but answered %d without one: %s", r.Status, r.Body)
			}
		})
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, withTokens)
	r := e.do(req{Method: "GET", Path: "/api/v1/openapi.json"})
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Equal(r.Body, openAPIDoc) {
		t.Error("the body is not the embedded openapi.json")
	}
}

// TestOpenAPISchemasMatchResponses walks real responses against the
// schemas the document gives them: every property present must be listed,
// every required one present, each of the listed type (null included).
func TestOpenAPISchemasMatchResponses(t *testing.T) {
	e := newEnv(t, withTokens, withAudit)
	doc := loadDoc(t)
	at := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	e.ctl.fires = []control.Fire{{At: at.Add(24 * time.Hour)}, {At: at.Add(48 * time.Hour), DST: true}}
	e.addRun(store.Run{ID: "r1", Job: "backup", Trigger: store.TriggerSchedule, ScheduledFor: at, StartedAt: at,
		FinishedAt: at.Add(time.Minute), Status: store.StatusKilled, KilledBy: "deployer", KilledAt: at.Add(30 * time.Second),
		Actions: []store.Action{
			{Kind: "kill", Signal: "SIGINT", Grace: 10 * time.Second, By: "deployer", At: at.Add(30 * time.Second)},
			{Kind: "signal", Machine: "db1", Signal: "SIGSTOP", By: "deployer", At: at.Add(10 * time.Second)},
			{Kind: store.ActionSoftTimeout, By: "core", At: at.Add(20 * time.Second)},
		},
		Machines: []store.Machine{
			{Machine: "db1", Status: store.StatusKilled, ExitCode: ptr(143), PID: 4242, StartedAt: at, FinishedAt: at.Add(time.Minute),
				LastHeartbeat: at.Add(50 * time.Second), WrapperVersion: "1.0.0", Protocol: 2, OutputBytes: 10},
			{Machine: "db2", Status: store.StatusLost, LateExitCode: ptr(0), LateReason: "exited"},
			{Machine: "db3", Status: store.StatusPending},
		}})
	e.addRun(store.Run{ID: "r2", Job: "backup", Trigger: store.TriggerManual, ScheduledFor: at.Add(time.Hour),
		Status: store.StatusRunning, Machines: []store.Machine{{Machine: "db1", Status: store.StatusRunning}}})
	if err := e.store.EnqueueNotifications(context.Background(), []store.Notification{
		{ID: "r1/ops/failure", Notifier: "ops", Job: "backup", RunID: "r1", Kind: "failure", Event: []byte(`{"id":"r1/ops/failure"}`), CreatedAt: at},
		{ID: "backup/ops/missed/1", Notifier: "ops", Job: "backup", Kind: "missed", Event: []byte(`not json`), CreatedAt: at},
	}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name   string
		setup  func()
		r      req
		doc    string // the document's path
		status int
	}{
		{"health", nil, req{Method: "GET", Path: "/healthz"}, "/healthz", 200},
		{"session made", nil, req{Method: "POST", Path: "/api/v1/session", Body: `{"token":"` + readSecret + `"}`}, "/api/v1/session", 200},
		{"session read", nil, req{Method: "GET", Path: "/api/v1/session", Auth: readSecret}, "/api/v1/session", 200},
		{"jobs", nil, req{Method: "GET", Path: "/api/v1/jobs", Auth: readSecret}, "/api/v1/jobs", 200},
		{"job", nil, req{Method: "GET", Path: "/api/v1/jobs/backup", Auth: readSecret}, "/api/v1/jobs/{name}", 200},
		{"job disabled", nil, req{Method: "POST", Path: "/api/v1/jobs/backup/disable", Auth: opSecret}, "/api/v1/jobs/{name}/disable", 200},
		{"job with little set", nil, req{Method: "POST", Path: "/api/v1/jobs/manual/reset", Auth: opSecret}, "/api/v1/jobs/{name}/reset", 200},
		{"next", nil, req{Method: "GET", Path: "/api/v1/jobs/backup/next?count=2", Auth: readSecret}, "/api/v1/jobs/{name}/next", 200},
		{"run now", nil, req{Method: "POST", Path: "/api/v1/jobs/backup/run", Auth: opSecret}, "/api/v1/jobs/{name}/run", 202},
		{"run with machines", nil, req{Method: "GET", Path: "/api/v1/runs/r1", Auth: readSecret}, "/api/v1/runs/{id}", 200},
		{"runs", nil, req{Method: "GET", Path: "/api/v1/runs", Auth: readSecret}, "/api/v1/runs", 200},
		{"kill", func() { e.ctl.killed = []string{"r2"} }, req{Method: "POST", Path: "/api/v1/runs/r2/kill", Auth: opSecret,
			Body: `{"signal":"SIGINT","grace":"10s"}`}, "/api/v1/runs/{id}/kill", 202},
		{"signal", nil, req{Method: "POST", Path: "/api/v1/runs/r2/signal", Auth: opSecret, Body: `{"signal":"SIGSTOP"}`},
			"/api/v1/runs/{id}/signal", 202},
		{"maintenance from the HCL", nil, req{Method: "GET", Path: "/api/v1/maintenance", Auth: readSecret}, "/api/v1/maintenance", 200},
		{"maintenance set", nil, req{Method: "PUT", Path: "/api/v1/maintenance", Auth: opSecret,
			Body: `{"global":true,"machines":["db1"]}`}, "/api/v1/maintenance", 200},
		{"notifications", nil, req{Method: "GET", Path: "/api/v1/notifications", Auth: readSecret}, "/api/v1/notifications", 200},
		{"reload", nil, req{Method: "POST", Path: "/api/v1/reload", Auth: opSecret}, "/api/v1/reload", 200},
		{"reload refused", func() { e.ctl.setErr("Reload", &control.ConfigError{Diagnostics: "config.hcl:3,1: bad"}) },
			req{Method: "POST", Path: "/api/v1/reload", Auth: opSecret}, "/api/v1/reload", 400},
		{"unknown job", nil, req{Method: "GET", Path: "/api/v1/jobs/nope", Auth: readSecret}, "/api/v1/jobs/{name}", 404},
		{"bad limit", nil, req{Method: "GET", Path: "/api/v1/runs?limit=0", Auth: readSecret}, "/api/v1/runs", 400},
		{"no token", nil, req{Method: "GET", Path: "/api/v1/runs"}, "/api/v1/runs", 401},
		{"reader kills", nil, req{Method: "POST", Path: "/api/v1/runs/r2/kill", Auth: readSecret}, "/api/v1/runs/{id}/kill", 403},
		// After the actions above, refused ones included.
		{"audit", nil, req{Method: "GET", Path: "/api/v1/audit?limit=3", Auth: readSecret}, "/api/v1/audit", 200},
		{"audit bad action", nil, req{Method: "GET", Path: "/api/v1/audit?action=x", Auth: readSecret}, "/api/v1/audit", 400},
		// Last: the store stays closed.
		{"health without a store", func() { e.store.Close() }, req{Method: "GET", Path: "/healthz"}, "/healthz", 503},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				s.setup()
			}
			r := e.do(s.r)
			wantStatus(t, r, s.status)
			op := obj(obj(obj(doc["paths"])[s.doc])[strings.ToLower(s.r.Method)])
			resp, err := resolve(doc, obj(obj(op["responses"])[strconv.Itoa(s.status)]))
			if err != nil || resp == nil {
				t.Fatalf("the document has no %d for %s %s (%v)", s.status, s.r.Method, s.doc, err)
			}
			schema := obj(obj(obj(resp["content"])["application/json"])["schema"])
			if schema == nil {
				t.Fatalf("the document's %d for %s %s has no JSON schema", s.status, s.r.Method, s.doc)
			}
			var v any
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatalf("body is not JSON: %v\n%s", err, r.Body)
			}
			for _, p := range conform(doc, schema, v, "$") {
				t.Error(p)
			}
		})
	}
}

// conform lists where v departs from schema. It knows the keywords
// openapi.json uses and reports any other, so that a schema it cannot
// read fails rather than passes.
func conform(doc, schema map[string]any, v any, at string) []string {
	schema, err := resolve(doc, schema)
	if err != nil {
		return []string{at + ": " + err.Error()}
	}
	var out []string
	for k := range schema {
		switch k {
		case "$ref", "type", "properties", "required", "additionalProperties", "items", "oneOf", "enum", "const",
			"description", "format", "minimum", "maximum", "default", "minProperties", "maxProperties":
		default:
			out = append(out, fmt.Sprintf("%s: schema keyword %q is not checked", at, k))
		}
	}
	if alts, ok := schema["oneOf"]; ok {
		n := 0
		for _, alt := range list(alts) {
			if len(conform(doc, obj(alt), v, at)) == 0 {
				n++
			}
		}
		if n != 1 {
			out = append(out, fmt.Sprintf("%s: %s matches %d of oneOf, want 1", at, short(v), n))
		}
		return out
	}
	if t, ok := schema["type"]; ok {
		types := []any{t}
		if l, ok := t.([]any); ok {
			types = l
		}
		if !slices.Contains(types, any(kind(v))) && !(kind(v) == "integer" && slices.Contains(types, any("number"))) {
			return append(out, fmt.Sprintf("%s: %s is %s, want %v", at, short(v), kind(v), t))
		}
	}
	if c, ok := schema["const"]; ok && c != v {
		out = append(out, fmt.Sprintf("%s: %s, want %v", at, short(v), c))
	}
	if e, ok := schema["enum"]; ok && !slices.Contains(list(e), v) {
		out = append(out, fmt.Sprintf("%s: %s is not one of %v", at, short(v), e))
	}
	switch v := v.(type) {
	case map[string]any:
		props := obj(schema["properties"])
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if p, ok := props[k]; ok {
				out = append(out, conform(doc, obj(p), v[k], at+"."+k)...)
				continue
			}
			switch extra := schema["additionalProperties"].(type) {
			case map[string]any:
				out = append(out, conform(doc, extra, v[k], at+"."+k)...)
			case bool:
				if !extra {
					out = append(out, fmt.Sprintf("%s: property %q is not in the schema", at, k))
				}
			default:
				if _, typed := schema["type"]; typed {
					// Objects in openapi.json say what else they allow.
					out = append(out, fmt.Sprintf("%s: property %q is not in the schema", at, k))
				}
			}
		}
		for _, k := range list(schema["required"]) {
			if _, ok := v[k.(string)]; !ok {
				out = append(out, fmt.Sprintf("%s: required property %q is missing", at, k))
			}
		}
	case []any:
		if items, ok := schema["items"]; ok {
			for i, item := range v {
				out = append(out, conform(doc, obj(items), item, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return out
}

// kind is v's JSON Schema type.
func kind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if v == math.Trunc(v) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// TestConform shows the checker catches each departure it is there for.
func TestConform(t *testing.T) {
	doc := map[string]any{"components": map[string]any{"schemas": map[string]any{
		"M": map[string]any{"type": "object", "additionalProperties": false,
			"properties": map[string]any{
				"id":   map[string]any{"type": "string"},
				"pid":  map[string]any{"type": []any{"integer", "null"}},
				"tags": map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []any{"a", "b"}}},
				"last": map[string]any{"oneOf": []any{map[string]any{"$ref": "#/components/schemas/M"}, map[string]any{"type": "null"}}},
			},
			"required": []any{"id", "pid"}},
	}}}
	m := map[string]any{"$ref": "#/components/schemas/M"}
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"matches", `{"id":"x","pid":null,"tags":["a"],"last":{"id":"y","pid":3}}`, true},
		{"extra property", `{"id":"x","pid":1,"name":"n"}`, false},
		{"missing required", `{"id":"x"}`, false},
		{"null not allowed", `{"id":null,"pid":1}`, false},
		{"integer not a fraction", `{"id":"x","pid":1.5}`, false},
		{"array item off enum", `{"id":"x","pid":1,"tags":["c"]}`, false},
		{"nested extra property", `{"id":"x","pid":1,"last":{"id":"y","pid":1,"z":0}}`, false},
		{"not an object", `[]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.body), &v); err != nil {
				t.Fatal(err)
			}
			got := conform(doc, m, v, "$")
			if tt.ok != (len(got) == 0) {
				t.Errorf("conform = %v, want ok %v", got, tt.ok)
			}
		})
	}
}
