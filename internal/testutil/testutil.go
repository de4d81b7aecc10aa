// Package testutil holds what the tests and the bench tools share: a free
// loopback port, a Caddy binary built from this module, and the /proc
// readings of a process's CPU time and resident memory, and a clock that
// tests move by hand.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port free on loopback at the time of the call.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// BuildCaddy builds ./cmd/caddy of this module into dir and returns the
// binary's path. moduleRoot is the module's directory, relative or absolute.
func BuildCaddy(moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building caddy: %v\n%s", err, out)
	}
	return bin, nil
}

// CPUSeconds returns a process's user and system CPU time, in seconds;
// 0 for pid 0.
func CPUSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:])) // fields from the state on
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// SysCalls returns how many read and write system calls a process has
// made (syscr and syscw in /proc/<pid>/io); 0, 0 when it cannot tell.
func SysCalls(pid int) (reads, writes int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			reads, _ = strconv.ParseInt(v, 10, 64)
		} else if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			writes, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return reads, writes
}

// PeakRSS returns a process's high-water resident set, in MB.
func PeakRSS(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// ResetPeakRSS starts a new high-water mark for the process (Linux 4.0+).
func ResetPeakRSS(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// MainWithCaddy is a TestMain for packages that run the real binary: it
// builds ./cmd/caddy of the module at moduleRoot into a temporary
// directory, sets *bin to it, runs the tests, removes the directory and
// exits with the tests' status.
func MainWithCaddy(m *testing.M, moduleRoot string, bin *string) {
	dir, err := os.MkdirTemp("", "caddy-bin-")
	if err == nil {
		*bin, err = BuildCaddy(moduleRoot, dir)
	}
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// CPUClock reports a benchmark's CPU time per operation beside its wall
// time, as the cpu-ns/op metric: this process's user and system time
// (getrusage), so work on other goroutines and in system calls counts.
type CPUClock struct {
	b     *testing.B
	start time.Duration
}

// StartCPU starts counting b's CPU time.
func StartCPU(b *testing.B) CPUClock { return CPUClock{b, processCPU()} }

// Report records the CPU time since StartCPU, per b.N.
func (c CPUClock) Report() {
	if c.b.N > 0 {
		c.b.ReportMetric(float64(processCPU()-c.start)/float64(c.b.N), "cpu-ns/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
