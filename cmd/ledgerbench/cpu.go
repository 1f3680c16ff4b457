package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// On a small machine the load generator, ledgerd and PostgreSQL share the
// CPUs, so a scenario's throughput says little without where the CPU time
// went. cpuSample reads it from /proc: ledgerd's process, the bench's own,
// the PostgreSQL backends serving the ledger's database (their process
// title names it), the rest of the PostgreSQL cluster (WAL writer,
// checkpointer, other databases: tests others run), and the machine's total
// busy and I/O-wait time.

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = time.Second / 100

type cpuSample struct {
	at                                     time.Time
	ledgerd, bench, dbBackends, pgOther    time.Duration
	machineBusy, machineIOWait, machineAll time.Duration
}

// cpuUse is a scenario's CPU use, in cores (CPU seconds per second), over
// Seconds of wall time.
type cpuUse struct {
	Ledgerd, Bench, DBBackends, PGOther, Other, IOWait, Idle float64
	Seconds                                                  float64
}

func takeCPUSample(serverPID int, dbName string) cpuSample {
	s := cpuSample{at: time.Now()}
	if serverPID != 0 {
		s.ledgerd = procCPU(serverPID)
	}
	s.bench = procCPU(os.Getpid())
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "postgres") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		title := strings.ReplaceAll(string(cmd), "\x00", " ")
		if strings.Contains(title, " "+dbName+" ") {
			s.dbBackends += procCPU(pid)
		} else {
			s.pgOther += procCPU(pid)
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			d := time.Duration(v) * clockTick
			s.machineAll += d
			switch i {
			case 4:
			case 5:
				s.machineIOWait += d
			default:
				s.machineBusy += d
			}
		}
	}
	return s
}

// procCPU is a process's user and system time so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// use is the CPU used between two samples, in cores. A backend that exited
// in between takes its time with it; ledgerd's pool keeps its connections,
// so that loss is small.
func (a cpuSample) use(b cpuSample) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cpuUse{}
	}
	c := func(d time.Duration) float64 { return max(d.Seconds()/wall, 0) }
	u := cpuUse{
		Seconds:    wall,
		Ledgerd:    c(b.ledgerd - a.ledgerd),
		Bench:      c(b.bench - a.bench),
		DBBackends: c(b.dbBackends - a.dbBackends),
		PGOther:    c(b.pgOther - a.pgOther),
		IOWait:     c(b.machineIOWait - a.machineIOWait),
	}
	busy := c(b.machineBusy - a.machineBusy)
	u.Other = max(busy-u.Ledgerd-u.Bench-u.DBBackends-u.PGOther, 0)
	all := c(b.machineAll - a.machineAll)
	u.Idle = max(all-busy-u.IOWait, 0)
	return u
}
