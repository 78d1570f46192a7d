package vfs

import "testing"

// TestGateLayout: replica.GateMem and the C layer's wl_gate agree, field
// by field; if they did not, no connection would get a gate, and every
// transaction would begin in Go, silently slower.
func TestGateLayout(t *testing.T) {
	if !gateLayoutOK {
		t.Fatal("replica.GateMem is not laid out as vfs/layer.h's wl_gate")
	}
}
