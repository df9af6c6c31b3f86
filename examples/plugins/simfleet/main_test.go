package main

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/target"
)

var fixture = sdktest.TargetFixture{
	Config:    []byte(`{"wrapper": "/usr/local/bin/saltpeter-wrapper"}`),
	BadConfig: []byte(`{"wrapper": "x", "colour": "blue"}`),
	Args:      []byte(`{"machines": ["sim1", "sim2"]}`),
	Machines:  []string{"sim1", "sim2"},
}

func newFleet(*testing.T) target.Target { return &fleet{log: hclog.NewNullLogger()} }

// The example passes the same suite as the built-in targets, directly and
// over a real gRPC connection.
func TestConformance(t *testing.T) { sdktest.TestTarget(t, newFleet, fixture) }

func TestConformanceOverGRPC(t *testing.T) {
	sdktest.TestTarget(t, func(t *testing.T) target.Target { return target.TestGRPCConn(t, newFleet(t)) }, fixture)
}
