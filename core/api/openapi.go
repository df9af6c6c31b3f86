package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the hand-checked description of this API; openapi_test.go
// holds it to the routes served and to the JSON the handlers write.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI serves openapi.json as it is embedded.
func (a *API) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(openAPIDoc)
	}
}
