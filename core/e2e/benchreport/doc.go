// Command benchreport is what `make bench` runs: every benchmark of the
// performance figures, each `go test` bounded in time, and then
// BENCHMARKS.md from what they reported: the machine, the method, and a
// table of the figures against their targets, with the command behind
// each and the ratios to the baselines measured in the same run.
//
// It lives beside the end-to-end benchmarks it runs and ships in no
// binary. The figures and their targets are the table in figures.go; the
// findings behind the fixes are findings.md, copied into the report as
// they are.
package main
