package notifier

import "github.com/saltpeter/saltpeter/sdk/notifier/internal/notifierpb"

// NotifierRequest builds a raw request, for the server's own checks.
func NotifierRequest(event string) *notifierpb.NotifyRequest {
	return &notifierpb.NotifyRequest{Event: []byte(event)}
}
