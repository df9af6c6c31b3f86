package e2e

import (
	"fmt"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/postgres/pgtest"
)

// postgresStore returns a store block that puts a core on a new, empty
// database of the test's own on the pgtest server (dropped after the
// test), with extra attributes inside. Without PostgreSQL the test skips,
// or fails when SALTPETER_REQUIRE asks for it.
func postgresStore(t testing.TB, extra string) string {
	t.Helper()
	return fmt.Sprintf("store \"postgres\" {\n  dsn = %q\n%s}\n", pgtest.FreshDB(t), extra)
}

// TestRunSurvivesACoreRestartOnPostgres: TestRunSurvivesACoreRestart with
// the core on the postgres store. The job prints 150 numbered lines over
// six seconds, the core is stopped (SIGTERM, SIGKILL) after line 40 and
// started again on the same database: the run ends succeeded and its
// stored stdout is the 150 lines, once each.
func TestRunSurvivesACoreRestartOnPostgres(t *testing.T) {
	t.Parallel()
	runSurvivesACoreRestart(t, func(t *testing.T) string { return postgresStore(t, "") })
}

// TestHistorySurvivesRestartsOnPostgres: TestHistorySurvivesRestarts with
// the core on the postgres store: a finished run, its output and a
// disabled job are still there after a graceful restart and after a
// SIGKILL.
func TestHistorySurvivesRestartsOnPostgres(t *testing.T) {
	t.Parallel()
	historySurvivesRestarts(t, postgresStore(t, ""))
}
