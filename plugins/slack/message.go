package slack

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/saltpeter/saltpeter/sdk/notifier"
)

// Message is an incoming webhook's payload: Text is the fallback shown in
// notifications and by clients without blocks.
type Message struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks"`
}

// Block is one Block Kit layout block; only the fields of the kinds used
// here.
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Fields   []Text `json:"fields,omitempty"`
	Elements []Text `json:"elements,omitempty"`
}

// Text is a Block Kit text object.
type Text struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Slack's limits on a block's text, in characters.
const (
	headerMax  = 150
	fieldMax   = 2000
	sectionMax = 3000
)

// headline says what happened, with an emoji a channel reads at a glance.
var headline = map[notifier.EventKind]struct{ emoji, text string }{
	notifier.EventSuccess:     {":white_check_mark:", "succeeded"},
	notifier.EventFailure:     {":x:", "failed"},
	notifier.EventTimeout:     {":hourglass:", "timed out"},
	notifier.EventSoftTimeout: {":hourglass_flowing_sand:", "is past its soft timeout"},
	notifier.EventKilled:      {":octagonal_sign:", "was killed"},
	notifier.EventLost:        {":satellite_antenna:", "lost its machines"},
	notifier.EventNotStarted:  {":no_entry_sign:", "did not start"},
	notifier.EventMissed:      {":alarm_clock:", "missed its schedule"},
	notifier.EventRecovered:   {":large_green_circle:", "recovered"},
}

// Headline is the message's first line, such as "backup-db failed".
func Headline(ev notifier.Event) string {
	h, ok := headline[ev.Kind]
	if !ok {
		return fmt.Sprintf("%s: %s", ev.Job, ev.Kind)
	}
	return ev.Job + " " + h.text
}

// Compose builds the message of ev, listing at most maxMachines of the
// machines that did not succeed.
func Compose(ev notifier.Event, maxMachines int) Message {
	emoji := headline[ev.Kind].emoji
	text := Headline(ev)
	if ev.Message != "" {
		text += ": " + ev.Message
	}
	m := Message{Text: escape(text)}

	title := Headline(ev)
	if emoji != "" {
		title = emoji + " " + title
	}
	m.Blocks = append(m.Blocks, Block{Type: "header", Text: &Text{Type: "plain_text", Text: clip(title, headerMax), Emoji: true}})

	var fields []Text
	field := func(name, value string) {
		if value != "" {
			fields = append(fields, Text{Type: "mrkdwn", Text: clip("*"+name+"*\n"+escape(value), fieldMax)})
		}
	}
	field("Job", ev.Job)
	field("Status", ev.Status)
	field("Group", ev.Group)
	field("Trigger", ev.Trigger)
	if !ev.ScheduledFor.IsZero() {
		field("Scheduled for", ev.ScheduledFor.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if c := counts(ev.Counts); c != "" {
		field("Machines", c)
	}
	if len(fields) > 0 {
		m.Blocks = append(m.Blocks, Block{Type: "section", Fields: fields})
	}
	if ev.Message != "" {
		m.Blocks = append(m.Blocks, Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: clip(escape(ev.Message), sectionMax)}})
	}
	if list := failing(ev, maxMachines); list != "" {
		m.Blocks = append(m.Blocks, Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: clip(list, sectionMax)}})
	}
	if u := ev.RunURL(); u != "" {
		m.Blocks = append(m.Blocks, Block{Type: "section", Text: &Text{Type: "mrkdwn", Text: "<" + escape(u) + "|View run " + escape(ev.RunID) + ">"}})
	}
	// The kind and id, for whoever has to match a message to an event.
	footer := fmt.Sprintf("Saltpeter · %s · event `%s`", escape(string(ev.Kind)), escape(ev.ID))
	if ev.Attempt > 1 {
		footer += fmt.Sprintf(" · attempt %d", ev.Attempt)
	}
	m.Blocks = append(m.Blocks, Block{Type: "context", Elements: []Text{{Type: "mrkdwn", Text: clip(footer, fieldMax)}}})
	return m
}

// failing lists the machines that did not succeed, up to max, and says
// how many more there are.
func failing(ev notifier.Event, max int) string {
	if max == 0 {
		return ""
	}
	var lines []string
	more := ev.MachinesOmitted
	for _, mr := range ev.Machines {
		if mr.Status == "succeeded" || mr.Status == "skipped" {
			continue
		}
		if len(lines) == max {
			more++
			continue
		}
		line := "• `" + escape(mr.Machine) + "` " + escape(mr.Status)
		if mr.ExitCode != nil {
			line += fmt.Sprintf(", exit %d", *mr.ExitCode)
		}
		if mr.Reason != "" {
			line += ": " + escape(mr.Reason)
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return ""
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("_and %d more_", more))
	}
	return "*Machines*\n" + strings.Join(lines, "\n")
}

// counts renders status counts, such as "10 succeeded, 2 failed".
func counts(c map[string]int) string {
	if len(c) == 0 {
		return ""
	}
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

// escape makes text safe in Slack's mrkdwn: &, < and > are its control
// characters (links, mentions), escaped as HTML entities.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clip shortens s to at most max characters, marking the cut.
func clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}
