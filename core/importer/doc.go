// Package importer owns the move from the old Python Saltpeter: it reads a
// folder of its YAML job files and writes the equivalent HCL jobs (and the
// maintenance block), with a comment on every field whose meaning does not
// carry over exactly. It refuses what it cannot translate faithfully (a
// year in the schedule, a job in the old server's own time zone without
// -timezone) rather than guess; `saltpeter import` is its command.
package importer
