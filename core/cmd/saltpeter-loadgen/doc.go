// Command saltpeter-loadgen is the load generator as a program: it takes
// the sim target plugin's dispatches (examples/plugins/sim) and plays a
// v2 wrapper for each over a real WebSocket connection to the core
// (core/loadgen), from several loopback source addresses so that one
// address's ephemeral ports are not the limit. It raises its own open
// file limit, serves its figures as JSON over HTTP, and stops cleanly on
// SIGINT or SIGTERM.
//
//	saltpeter-loadgen -listen unix:/tmp/saltpeter-loadgen.sock \
//	    -sources 127.0.0.2-127.0.0.9 -stats 127.0.0.1:7071
//
//	curl 127.0.0.1:7071/stats             # counters
//	curl '127.0.0.1:7071/stats?records=1' # and every (run, machine)
//	curl -X POST 127.0.0.1:7071/forget    # drop the finished ones
package main
