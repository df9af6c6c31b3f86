package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// headline says what happened to the job.
var headline = map[notifier.EventKind]string{
	notifier.EventSuccess:     "succeeded",
	notifier.EventFailure:     "failed",
	notifier.EventTimeout:     "timed out",
	notifier.EventSoftTimeout: "is past its soft timeout",
	notifier.EventKilled:      "was killed",
	notifier.EventLost:        "lost its machines",
	notifier.EventNotStarted:  "did not start",
	notifier.EventMissed:      "missed its schedule",
	notifier.EventRecovered:   "recovered",
}

// Headline is what the default subject says of ev, such as
// "backup-db failed".
func Headline(ev notifier.Event) string {
	if h, ok := headline[ev.Kind]; ok {
		return ev.Job + " " + h
	}
	return fmt.Sprintf("%s: %s", ev.Job, ev.Kind)
}

// compose renders the whole message, headers and body, with CRLF line
// ends.
func (c *config) compose(ev notifier.Event, now time.Time) ([]byte, error) {
	var subject bytes.Buffer
	if err := c.subject.Execute(&subject, ev); err != nil {
		// The same event renders the same way on every attempt.
		return nil, notifier.Permanent(fmt.Errorf("render subject_template: %w", err))
	}
	to := make([]string, len(c.to))
	for i, a := range c.to {
		to[i] = a.String()
	}
	var b bytes.Buffer
	header := func(name, value string) {
		fmt.Fprintf(&b, "%s: %s\r\n", name, value)
	}
	header("From", c.from.String())
	header("To", strings.Join(to, ", "))
	header("Subject", encodeHeader(subject.String()))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(ev.ID, c.from.Address))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Saltpeter-Event-Id", encodeHeader(ev.ID))
	header("X-Saltpeter-Event-Kind", encodeHeader(string(ev.Kind)))
	header("X-Saltpeter-Job", encodeHeader(ev.Job))
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body(ev, c.maxMachines))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encodeHeader makes s one header line: no line breaks, and RFC 2047
// encoded when it is not plain ASCII.
func encodeHeader(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
	return mime.QEncoding.Encode("utf-8", s)
}

var atext = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// messageID is the mail's Message-ID: the event's, so that every attempt
// at one notification is the same message to the mail systems on the
// way, which drop a duplicate.
func messageID(id, from string) string {
	local := id
	if !atext.MatchString(local) {
		sum := sha256.Sum256([]byte(id))
		local = hex.EncodeToString(sum[:16])
	}
	domain := "saltpeter.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		domain = from[at+1:]
	}
	return "<saltpeter." + local + "@" + domain + ">"
}

// body is the mail's text: the core's line, the run's facts, the
// machines that did not succeed, a link, and the event's id.
func body(ev notifier.Event, maxMachines int) string {
	var b strings.Builder
	if ev.Message != "" {
		b.WriteString(ev.Message + "\n\n")
	} else {
		b.WriteString(Headline(ev) + ".\n\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, value)
		}
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	row("Job", ev.Job)
	row("Group", ev.Group)
	row("Event", string(ev.Kind))
	row("Run", ev.RunID)
	row("Status", ev.Status)
	row("Trigger", ev.Trigger)
	row("Scheduled for", when(ev.ScheduledFor))
	row("Started", when(ev.StartedAt))
	row("Finished", when(ev.FinishedAt))
	row("Machines", counts(ev.Counts))
	_ = tw.Flush()

	if list := failing(ev, maxMachines); list != "" {
		b.WriteString("\nMachines that did not succeed:\n" + list)
	}
	if u := ev.RunURL(); u != "" {
		b.WriteString("\nThe run: " + u + "\n")
	}
	fmt.Fprintf(&b, "\n-- \nSaltpeter, event %s, delivery attempt %d, %s\n", ev.ID, ev.Attempt, when(ev.At))
	return b.String()
}

// failing lists up to max machines that did not succeed, and how many
// more there are.
func failing(ev notifier.Event, max int) string {
	if max == 0 {
		return ""
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	listed, more := 0, ev.MachinesOmitted
	for _, m := range ev.Machines {
		if m.Status == "succeeded" || m.Status == "skipped" {
			continue
		}
		if listed == max {
			more++
			continue
		}
		listed++
		what := m.Status
		if m.ExitCode != nil {
			what += fmt.Sprintf(", exit %d", *m.ExitCode)
		}
		if m.Reason != "" {
			what += ": " + m.Reason
		}
		fmt.Fprintf(tw, "  %s\t%s\n", m.Machine, what)
	}
	_ = tw.Flush()
	if listed == 0 {
		return ""
	}
	if more > 0 {
		fmt.Fprintf(&b, "  and %d more\n", more)
	}
	return b.String()
}

// counts renders status counts, such as "2 failed, 10 succeeded".
func counts(c map[string]int) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", c[k], k))
	}
	return strings.Join(parts, ", ")
}
