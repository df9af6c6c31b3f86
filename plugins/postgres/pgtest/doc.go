// Package pgtest gives tests a real PostgreSQL server and a database of
// their own on it, for any package whose tests need one: the postgres
// store's own, and the end-to-end tests that run a core on it.
//
// A package's TestMain calls Main, which starts a server for the test
// binary when none is given, and each test calls FreshDB for an empty
// database:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.FreshDB(t)
//		…
//	}
//
// The server is either the one SALTPETER_POSTGRES_DSN names (a DSN to a
// database the tests may create and drop databases from, normally
// "postgres"), or one Main starts: initdb and postgres from the newest
// /usr/lib/postgresql/*/bin (else PATH), in a temporary directory removed
// at the end, listening on 127.0.0.1 on a free port with trust
// authentication, run as the postgres system user when the tests run as
// root, since PostgreSQL refuses root.
//
// Without either, FreshDB skips the test with a hint on how to install
// PostgreSQL, or fails it when SALTPETER_REQUIRE is "all" or a comma list
// naming "postgres". A server that is there but will not start fails the
// tests that need it, with its log.
package pgtest
