package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// machine is what the report says about the machine the run was on.
type machine struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Kernel   string
	GoVer    string
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVer: runtime.Version()}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPUModel = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		if kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64); err == nil {
			m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField reads "name: value" from a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// memOf reads a process's peak (VmHWM) and current (VmRSS) resident set,
// in bytes.
func memOf(pid int) (peak, current int64, err error) {
	read := func(name string) (int64, error) {
		v, ok := procField(fmt.Sprintf("/proc/%d/status", pid), name)
		if !ok {
			return 0, fmt.Errorf("/proc/%d/status has no %s", pid, name)
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
		return kb << 10, err
	}
	if peak, err = read("VmHWM"); err != nil {
		return 0, 0, err
	}
	current, err = read("VmRSS")
	return peak, current, err
}

// findServer finds the ledgerd process listening on addr's port: a process
// named ledgerd holding the listening socket.
func findServer(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("port of %s: %w", addr, err)
	}
	inodes := listeningInodes(port)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var named []int
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmd), "\x00")
		if filepath.Base(argv0) != "ledgerd" {
			continue
		}
		named = append(named, pid)
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			link, err := os.Readlink(fd)
			if err == nil && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return pid, nil
			}
		}
	}
	if len(named) == 1 {
		return named[0], nil
	}
	return 0, fmt.Errorf("no ledgerd process found listening on port %d (%d ledgerd processes): pass -server-pid", port, len(named))
}

// listeningInodes are the socket inodes listening on port, from
// /proc/net/tcp and tcp6.
func listeningInodes(port int) map[string]bool {
	out := map[string]bool{}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], hexPort) {
				continue
			}
			out[fields[9]] = true
		}
		f.Close()
	}
	return out
}
