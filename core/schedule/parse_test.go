package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/schedule"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func TestParse(t *testing.T) {
	from := time.Date(2024, 5, 1, 10, 0, 3, 0, time.UTC) // a Wednesday
	tests := []struct {
		expr    string
		str     string    // normalised String()
		next    time.Time // first slot after from, in UTC
		manual  bool
		wantErr string // substring; "" means valid
	}{
		// valid
		{expr: "0 30 2 * * *", str: "0 30 2 * * *", next: time.Date(2024, 5, 2, 2, 30, 0, 0, time.UTC)},
		{expr: "30 2 * * *", str: "30 2 * * *", next: time.Date(2024, 5, 2, 2, 30, 0, 0, time.UTC)},
		{expr: "  */5   * * * * ", str: "*/5 * * * *", next: time.Date(2024, 5, 1, 10, 5, 0, 0, time.UTC)},
		{expr: "*/2 * * * * *", str: "*/2 * * * * *", next: time.Date(2024, 5, 1, 10, 0, 4, 0, time.UTC)},
		{expr: "0 0 12 * * MON-FRI", str: "0 0 12 * * MON-FRI", next: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		{expr: "0 9 * jan,may sat", str: "0 9 * jan,may sat", next: time.Date(2024, 5, 4, 9, 0, 0, 0, time.UTC)},
		{expr: "0 0 29 2 *", str: "0 0 29 2 *", next: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{expr: "@hourly", str: "@hourly", next: time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)},
		{expr: "@daily", str: "@daily", next: time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		{expr: " @DAILY ", str: "@daily", next: time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		{expr: "@midnight", str: "@midnight", next: time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		{expr: "@weekly", str: "@weekly", next: time.Date(2024, 5, 5, 0, 0, 0, 0, time.UTC)},
		{expr: "@monthly", str: "@monthly", next: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)},
		{expr: "@yearly", str: "@yearly", next: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{expr: "@annually", str: "@annually", next: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{expr: "@every 10s", str: "@every 10s", next: time.Date(2024, 5, 1, 10, 0, 10, 0, time.UTC)},
		{expr: "@every 1h30m", str: "@every 1h30m0s", next: time.Date(2024, 5, 1, 10, 30, 0, 0, time.UTC)},
		{expr: "@every 1d", str: "@every 1d", next: time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		{expr: "@manually", str: "@manually", manual: true},

		// invalid
		{expr: "", wantErr: "empty schedule"},
		{expr: "   ", wantErr: "empty schedule"},
		{expr: "garbage", wantErr: `5 fields (minute hour day-of-month month day-of-week) or 6 (second first); "garbage" has 1`},
		{expr: "* * * *", wantErr: "has 4"},
		{expr: "0 0 0 * * * *", wantErr: "has 7"},
		{expr: "61 * * * *", wantErr: `minute field "61": end of range (61) above maximum (59)`},
		{expr: "0 61 * * * *", wantErr: `minute field "61": end of range (61) above maximum (59)`},
		{expr: "60 * * * * *", wantErr: `second field "60": end of range (60) above maximum (59)`},
		{expr: "0 24 * * *", wantErr: `hour field "24"`},
		{expr: "0 0 32 * *", wantErr: `day-of-month field "32": end of range (32) above maximum (31)`},
		{expr: "0 0 0 * *", wantErr: `day-of-month field "0": beginning of range (0) below minimum (1)`},
		{expr: "0 0 1 13 *", wantErr: `month field "13"`},
		{expr: "0 0 * * 8", wantErr: `day-of-week field "8"`},
		{expr: "x * * * *", wantErr: `minute field "x": not a number, a range (1-5), a step (*/15)`},
		{expr: "*/0 * * * *", wantErr: `minute field "*/0": step of range should be a positive number`},
		{expr: "5-1 * * * *", wantErr: `minute field "5-1": beginning of range (5) beyond end of range (1)`},
		{expr: "0 0 30 2 *", wantErr: "never fires"},
		{expr: "0 0 31 4,6 *", wantErr: "never fires"},
		{expr: "@every", wantErr: "@every needs one duration"},
		{expr: "@every 5 minutes", wantErr: "@every needs one duration"},
		{expr: "@every fivemin", wantErr: `invalid duration "fivemin"`},
		{expr: "@every 500ms", wantErr: "at least 1s"},
		{expr: "@every 0s", wantErr: "at least 1s"},
		{expr: "@every -5s", wantErr: "negative"},
		{expr: "@every 1500ms", wantErr: "whole number of seconds"},
		{expr: "@reboot", wantErr: `unknown descriptor "@reboot"`},
		{expr: "@daily now", wantErr: `@daily takes no argument`},
		{expr: "@manually please", wantErr: `@manually takes no argument`},
		{expr: "TZ=UTC 0 * * * *", wantErr: "timezone attribute"},
		{expr: "CRON_TZ=Europe/Bucharest 0 * * * *", wantErr: "timezone attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := schedule.Parse(tt.expr)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error containing %q", tt.expr, s, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error %q, want it to contain %q", tt.expr, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			if got := s.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if s.Manual() != tt.manual {
				t.Errorf("Manual() = %v, want %v", s.Manual(), tt.manual)
			}
			got := s.Next(from)
			if !got.Equal(tt.next) {
				t.Errorf("Next(%s) = %s, want %s", from, got, tt.next)
			}
			// The normalised form parses back to the same schedule.
			again, err := schedule.Parse(s.String())
			if err != nil || again.String() != s.String() {
				t.Errorf("Parse(String()) = %v, %v; want %q", again, err, s.String())
			}
		})
	}
}

func TestNextIsStrictlyAfter(t *testing.T) {
	at := time.Date(2024, 5, 1, 10, 0, 10, 0, time.UTC)
	for _, expr := range []string{"*/10 * * * * *", "@every 10s"} {
		s, err := schedule.Parse(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.Next(at), at.Add(10*time.Second); !got.Equal(want) {
			t.Errorf("%s: Next(a slot) = %s, want the following slot %s", expr, got, want)
		}
	}
}

// Two parses at different moments stand for two starts of the core: the
// slots must be the same instants, multiples of the interval since 1970.
func TestEveryAnchoredToEpoch(t *testing.T) {
	bucharest := mustLoc(t, "Europe/Bucharest")
	tests := []struct {
		expr           string
		start1, start2 time.Time
		want           time.Time
	}{
		{"@every 10s", time.Date(2024, 5, 1, 10, 0, 3, 0, time.UTC), time.Date(2024, 5, 1, 10, 0, 7, 500, time.UTC), time.Date(2024, 5, 1, 10, 0, 10, 0, time.UTC)},
		{"@every 7s", time.Unix(7*244936800, 0), time.Unix(7*244936800+6, 999999999), time.Unix(7*244936801, 0)},
		{"@every 1h", time.Date(2024, 5, 1, 12, 59, 59, 0, bucharest), time.Date(2024, 5, 1, 12, 1, 0, 0, bucharest), time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)},
		{"@every 1d", time.Date(2024, 5, 1, 23, 0, 0, 0, time.UTC), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		{"@every 10s", time.Unix(-15, 0), time.Unix(-11, 500), time.Unix(-10, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			first, err := schedule.Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			second, err := schedule.Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			a, b := first.Next(tt.start1), second.Next(tt.start2)
			if !a.Equal(tt.want) || !b.Equal(tt.want) {
				t.Fatalf("first start: %s, second start: %s; want both %s", a, b, tt.want)
			}
			if a.Location() != tt.start1.Location() {
				t.Errorf("Next returned location %s, want the argument's %s", a.Location(), tt.start1.Location())
			}
			// And the slot after it is one interval later, from either.
			if c, d := first.Next(a), second.Next(b); !c.Equal(d) || c.Sub(a) != d.Sub(b) {
				t.Errorf("following slots differ: %s and %s", c, d)
			}
		})
	}
}

func TestManualNeverFires(t *testing.T) {
	s, err := schedule.Parse("@manually")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(time.Now()); !got.IsZero() {
		t.Errorf("Next = %s, want the zero time", got)
	}
	if got := schedule.NextN(s, time.UTC, time.Now(), 5); len(got) != 0 {
		t.Errorf("NextN = %v, want none", got)
	}
}

func TestNextInZone(t *testing.T) {
	bucharest := mustLoc(t, "Europe/Bucharest")
	s, err := schedule.Parse("0 30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from time.Time
		want time.Time // UTC
	}{
		{"winter, EET is UTC+2", time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 10, 0, 30, 0, 0, time.UTC)},
		{"summer, EEST is UTC+3", time.Date(2024, 7, 9, 22, 0, 0, 0, time.UTC), time.Date(2024, 7, 9, 23, 30, 0, 0, time.UTC)},
		{"just after the slot", time.Date(2024, 1, 10, 0, 30, 0, 0, time.UTC), time.Date(2024, 1, 11, 0, 30, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.Next(tt.from.In(bucharest))
			if !got.Equal(tt.want) {
				t.Fatalf("Next = %s (%s UTC), want %s UTC", got, got.UTC(), tt.want)
			}
			if got.Location() != bucharest {
				t.Errorf("location %s, want Europe/Bucharest", got.Location())
			}
			if h, m := got.Hour(), got.Minute(); h != 2 || m != 30 {
				t.Errorf("local time %02d:%02d, want 02:30", h, m)
			}
			// The same instant in UTC gives the UTC slot instead: the
			// location of the argument is what decides.
			if utc := s.Next(tt.from); utc.Hour() != 2 || utc.Location() != time.UTC {
				t.Errorf("Next in UTC = %s, want 02:30 UTC", utc)
			}
		})
	}
}

// Europe/Bucharest springs forward on 2024-03-31 at 03:00 EET (01:00 UTC)
// to 04:00 EEST, and falls back on 2024-10-27 at 04:00 EEST to 03:00 EET.
// NextN flags each fire: dst when the offset changed since the previous
// one, and how the policy placed it.
func TestNextNDST(t *testing.T) {
	bucharest := mustLoc(t, "Europe/Bucharest")
	type want struct {
		local string // "2006-01-02 15:04 MST"
		dst   bool
		flag  string // "shifted", "second" or ""
	}
	tests := []struct {
		name   string
		expr   string
		repeat string // for WithDST; "" leaves the schedule as Parse gave it
		from   time.Time
		want   []want
	}{
		{
			name: "hourly across spring-forward: 03:30 does not exist",
			expr: "0 30 * * * *",
			from: time.Date(2024, 3, 31, 1, 0, 0, 0, bucharest),
			want: []want{
				{"2024-03-31 01:30 EET", false, ""},
				{"2024-03-31 02:30 EET", false, ""},
				{"2024-03-31 04:30 EEST", true, ""},
				{"2024-03-31 05:30 EEST", false, ""},
			},
		},
		{
			name: "daily at 03:30 inside the gap: Parse's default shifts it to 04:00",
			expr: "30 3 * * *",
			from: time.Date(2024, 3, 30, 12, 0, 0, 0, bucharest),
			want: []want{
				{"2024-03-31 04:00 EEST", true, "shifted"},
				{"2024-04-01 03:30 EEST", false, ""},
			},
		},
		{
			name: "daily at 03:30 inside the repeated hour: Parse's default fires once",
			expr: "30 3 * * *",
			from: time.Date(2024, 10, 27, 0, 0, 0, 0, bucharest),
			want: []want{
				{"2024-10-27 03:30 EEST", false, ""},
				{"2024-10-28 03:30 EET", true, ""},
				{"2024-10-29 03:30 EET", false, ""},
			},
		},
		{
			name:   "daily at 03:30 inside the repeated hour, twice",
			expr:   "30 3 * * *",
			repeat: "twice",
			from:   time.Date(2024, 10, 27, 0, 0, 0, 0, bucharest),
			want: []want{
				{"2024-10-27 03:30 EEST", false, ""},
				{"2024-10-27 03:30 EET", true, "second"},
				{"2024-10-28 03:30 EET", false, ""},
			},
		},
		{
			name: "hourly across fall-back: both passes, the second flagged",
			expr: "0 30 * * * *",
			from: time.Date(2024, 10, 27, 2, 0, 0, 0, bucharest),
			want: []want{
				{"2024-10-27 02:30 EEST", false, ""},
				{"2024-10-27 03:30 EEST", false, ""},
				{"2024-10-27 03:30 EET", true, "second"},
				{"2024-10-27 04:30 EET", false, ""},
			},
		},
		{
			name: "first fire flagged against from",
			expr: "@daily",
			from: time.Date(2024, 3, 30, 12, 0, 0, 0, bucharest),
			want: []want{
				{"2024-03-31 00:00 EET", false, ""},
				{"2024-04-01 00:00 EEST", true, ""},
				{"2024-04-02 00:00 EEST", false, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := schedule.Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if tt.repeat != "" {
				if s, err = schedule.WithDST(s, bucharest, "", tt.repeat); err != nil {
					t.Fatal(err)
				}
			}
			got := schedule.NextN(s, bucharest, tt.from, len(tt.want))
			if len(got) != len(tt.want) {
				t.Fatalf("NextN gave %d fires, want %d: %v", len(got), len(tt.want), got)
			}
			for i, f := range got {
				flag := ""
				if f.Shifted {
					flag = "shifted"
				}
				if f.SecondPass {
					flag += "second"
				}
				local := f.At.Format("2006-01-02 15:04 MST")
				w := tt.want[i]
				if local != w.local || f.DST != w.dst || flag != w.flag {
					t.Errorf("fire %d = %s dst=%v %q, want %s dst=%v %q", i, local, f.DST, flag, w.local, w.dst, w.flag)
				}
			}
		})
	}
}

func TestNextNStopsAndDefaults(t *testing.T) {
	s, err := schedule.Parse("@every 1h")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2024, 5, 1, 10, 30, 0, 0, time.UTC)
	got := schedule.NextN(s, nil, from, 3)
	if len(got) != 3 || got[0].At.Location() != time.UTC || !got[2].At.Equal(from.Add(150*time.Minute)) {
		t.Fatalf("NextN(nil location) = %v, want 3 hourly fires in UTC ending 13:00", got)
	}
	if got := schedule.NextN(s, time.UTC, from, 0); len(got) != 0 {
		t.Errorf("NextN(n=0) = %v, want none", got)
	}
}
