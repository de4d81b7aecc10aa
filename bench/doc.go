// Package bench holds the load tool (bench/load), the provider simulator
// (bench/sim) and the fault drills (drills_test.go, run by make faults).
package bench
