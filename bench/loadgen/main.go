// Command loadgen is a small, CPU-frugal HTTP/1.1 load generator for the benchmarks.
//
// It reads vegeta-format JSON targets, pre-serialises every request once, and drives them over
// keep-alive connections: -connections workers, each owning one connection per target host.
//
//   - -rate N>0 (open loop): request i is scheduled at start + i/N. Latency runs from the SCHEDULED
//     time, so time spent waiting for a free connection counts (no coordinated omission, like wrk2).
//   - -rate 0 (closed loop): every worker sends back-to-back until -duration has passed.
//
// Sockets are written and read directly (the request bytes are built up front; fasthttp only
// parses responses), which keeps the per-request cost to about one write and one read syscall.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// target is one pre-built request: raw bytes ready for conn.Write.
type target struct {
	host int // index into hosts
	raw  []byte
	head bool // HEAD responses carry no body
}

type jsonTarget struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
	Body   []byte              `json:"body"` // encoding/json decodes base64 into []byte
}

func loadTargets(path string) ([]target, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var (
		targets []target
		hosts   []string
		hostIdx = map[string]int{}
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var jt jsonTarget
		if err := json.Unmarshal(sc.Bytes(), &jt); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		u, err := url.Parse(jt.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return nil, nil, fmt.Errorf("%s:%d: need an http:// url, got %q", path, line, jt.URL)
		}
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
		hi, ok := hostIdx[addr]
		if !ok {
			hi = len(hosts)
			hostIdx[addr] = hi
			hosts = append(hosts, addr)
		}
		method := strings.ToUpper(jt.Method)
		if method == "" {
			method = "GET"
		}
		hostHeader := u.Host
		var b strings.Builder
		b.WriteString(method + " " + u.RequestURI() + " HTTP/1.1\r\n")
		hasUA := false
		for name, values := range jt.Header {
			switch strings.ToLower(name) {
			case "host": // like net/http (and so vegeta): the Host header overrides the url's host
				if len(values) > 0 {
					hostHeader = values[0]
				}
				continue
			case "content-length", "connection", "transfer-encoding": // we frame the body ourselves
				continue
			case "user-agent":
				hasUA = true
			}
			for _, v := range values {
				b.WriteString(name + ": " + v + "\r\n")
			}
		}
		b.WriteString("Host: " + hostHeader + "\r\n")
		if !hasUA {
			b.WriteString("User-Agent: loadgen\r\n")
		}
		if len(jt.Body) > 0 || method == "POST" || method == "PUT" || method == "PATCH" {
			b.WriteString("Content-Length: " + strconv.Itoa(len(jt.Body)) + "\r\n")
		}
		b.WriteString("\r\n")
		b.Write(jt.Body)
		targets = append(targets, target{host: hi, raw: []byte(b.String()), head: method == "HEAD"})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(targets) == 0 {
		return nil, nil, errors.New("no targets in " + path)
	}
	return targets, hosts, nil
}

// conn is one keep-alive connection with its read buffer.
type conn struct {
	c    net.Conn
	br   *bufio.Reader
	used bool // has carried a request already (a stale keep-alive may then be retried once)
}

// stats is per worker, so the hot path takes no locks; merged at the end.
type stats struct {
	lat      []int64 // ns, every request (answered or failed, like vegeta)
	status   [600]int64
	errs     map[string]int64
	sent     int64
	lastSend int64 // ns since start of this worker's last send
	lastDone int64 // ns since start of this worker's last answer or error
}

type worker struct {
	conns   []*conn
	resp    fasthttp.Response
	hosts   []string
	timeout time.Duration
	st      stats
}

func (w *worker) dial(h int) (*conn, error) {
	if c := w.conns[h]; c != nil {
		return c, nil
	}
	nc, err := net.DialTimeout("tcp", w.hosts[h], w.timeout)
	if err != nil {
		return nil, err
	}
	c := &conn{c: nc, br: bufio.NewReaderSize(nc, 16<<10)}
	w.conns[h] = c
	return c, nil
}

func (w *worker) drop(h int) {
	if c := w.conns[h]; c != nil {
		c.c.Close()
		w.conns[h] = nil
	}
}

// do sends one request and reads its answer; it returns the status code or an error.
func (w *worker) do(t *target) (int, error) {
	for attempt := 0; ; attempt++ {
		c, err := w.dial(t.host)
		if err != nil {
			return 0, err
		}
		reused := c.used
		c.used = true
		// One deadline for write+read: the timeout runs from the actual send.
		c.c.SetDeadline(time.Now().Add(w.timeout))
		if _, err = c.c.Write(t.raw); err == nil {
			// Peek first so "server had closed this idle keep-alive, not a byte came back" is
			// told apart from a failure mid-answer; only the former is retried, once, on a
			// fresh connection (the server closed it idle, so it did not take the request).
			if _, err = c.br.Peek(1); err == nil {
				w.resp.SkipBody = t.head
				if err = w.resp.Read(c.br); err == nil {
					if w.resp.ConnectionClose() {
						w.drop(t.host)
					}
					return w.resp.StatusCode(), nil
				}
			}
		}
		w.drop(t.host)
		if !reused || attempt > 0 || !isStale(err) {
			return 0, err
		}
	}
}

func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// pace releases open-loop slots into work at their scheduled times (slot i is due at
// start + i*interval), then closes work. Go's own timers fire up to ~1 ms late on Linux (the
// netpoller sleeps in whole milliseconds), which would add ~0.5 ms of generator noise to every
// latency measured from the schedule; a periodic timerfd waits in the same netpoller but wakes
// within tens of µs. Slots due together (rate above 5,000/s, or a late wake) go out as a batch.
func pace(start time.Time, interval float64, total int64, work chan<- int64) {
	defer close(work)
	period := max(int64(interval), int64(200*time.Microsecond))
	tick := newTicker(start, period)
	if tick != nil {
		defer tick.Close()
	}
	var buf [8]byte
	for slot := int64(0); slot < total; {
		elapsed := time.Since(start)
		for slot < total && time.Duration(float64(slot)*interval) <= elapsed {
			work <- slot
			slot++
		}
		if slot >= total {
			return
		}
		if tick == nil || func() error { _, err := tick.Read(buf[:]); return err }() != nil {
			tick = nil // fall back to Go's coarser timer
			time.Sleep(time.Until(start.Add(time.Duration(float64(slot) * interval))))
		}
	}
}

// newTicker returns a timerfd firing at start + k*period ns (nil if unavailable). Wrapped in an
// os.File it is read through Go's netpoller, so waiting costs no thread.
func newTicker(start time.Time, period int64) *os.File {
	fd, _, e := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, 1 /* CLOCK_MONOTONIC */, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		return nil
	}
	// Phase-lock to start: this goroutine may first run a while after start was taken.
	since := int64(time.Since(start))
	first := (since/period+1)*period - since
	spec := [2]syscall.Timespec{syscall.NsecToTimespec(period), syscall.NsecToTimespec(first)} // interval, first expiry
	if _, _, e = syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); e != 0 {
		syscall.Close(int(fd))
		return nil
	}
	return os.NewFile(fd, "timerfd")
}

func main() {
	// The Go runtime's sysmon thread deep-sleeps whenever the process is idle and is woken by the
	// next syscall, then polls every 20 µs for a while. At a few thousand req/s that happens on
	// every request and, in a VM, made up about two thirds of the generator's CPU. Any
	// schedtrace setting keeps sysmon out of deep sleep (it then backs off to one wake per 10 ms);
	// with a period of ~24.8 days it prints at most one line to stderr, and only on hosts up
	// longer than that. GODEBUG is read only at start-up, hence the re-exec.
	if godebug := os.Getenv("GODEBUG"); !strings.Contains(godebug, "schedtrace=") {
		if exe, err := os.Executable(); err == nil {
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
			env = append(env, "GODEBUG="+strings.TrimPrefix(godebug+",schedtrace=2147483647", ","))
			syscall.Exec(exe, os.Args, env) // only returns on failure: then carry on as we are
		}
	}
	// One P: goroutine hand-offs stay on one thread (no wake-ups of idle threads), which is
	// cheaper per request and leaves the second core to the system under test. A single
	// core still drives tens of thousands of req/s. GOMAXPROCS in the environment wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	targetsPath := flag.String("targets", "", "vegeta JSON targets file (one object per line)")
	rate := flag.Float64("rate", 0, "requests per second; 0 = closed loop (peak throughput)")
	duration := flag.Duration("duration", 15*time.Second, "how long to send")
	connections := flag.Int("connections", 64, "keep-alive connections (= workers) per host")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout, from the actual send")
	flag.Parse()
	if *targetsPath == "" || *connections < 1 || *rate < 0 || *duration <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	targets, hosts, err := loadTargets(*targetsPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	// The hot path barely allocates; a lazy GC trims the generator's CPU further.
	debug.SetGCPercent(400)

	n := *connections
	open := *rate > 0
	var total int64 // open loop: number of scheduled requests
	var interval float64
	if open {
		total = int64(*rate * duration.Seconds())
		interval = 1e9 / *rate
	}
	var next atomic.Int64 // closed loop: next request number; request i uses targets[i % len]
	var unsent atomic.Int64
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(*duration)
	// Open loop: a request not even started by duration+timeout would already have timed out
	// measured from its schedule; stop there rather than drain an unbounded backlog.
	giveUp := end.Add(*timeout)
	// Open loop: due slots queue here until a worker (= connection) is free; the time they
	// spend queued is part of their latency. The pacer blocks if 64k are queued, which does not
	// skew anything since latency is taken from each slot's schedule.
	work := make(chan int64, 1<<16)
	if open {
		go pace(start, interval, total, work)
	}

	for i := range workers {
		w := &worker{conns: make([]*conn, len(hosts)), hosts: hosts, timeout: *timeout}
		w.resp.KeepBodyBuffer = true
		w.st.errs = map[string]int64{}
		if open {
			w.st.lat = make([]int64, 0, total/int64(n)+16)
		} else {
			w.st.lat = make([]int64, 0, 1<<14)
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &w.st
			for {
				var slot int64
				var sched time.Time
				if open {
					var more bool
					if slot, more = <-work; !more {
						return
					}
					sched = start.Add(time.Duration(float64(slot) * interval))
					if time.Now().After(giveUp) {
						unsent.Add(1)
						continue
					}
				} else {
					slot = next.Add(1) - 1
					if sched = time.Now(); sched.After(end) {
						return
					}
				}
				sendAt := time.Since(start)
				code, err := w.do(&targets[slot%int64(len(targets))])
				now := time.Now()
				st.lat = append(st.lat, int64(now.Sub(sched)))
				st.sent++
				st.lastSend = int64(sendAt)
				st.lastDone = int64(now.Sub(start))
				if err != nil {
					st.errs[errKind(err)]++
				} else if code >= 0 && code < len(st.status) {
					st.status[code]++
				}
			}
		}()
	}
	wg.Wait()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	// Merge.
	var (
		lat                []int64
		status             [600]int64
		errs               = map[string]int64{}
		sent, ok           int64
		lastSend, lastDone int64
	)
	for _, w := range workers {
		lat = append(lat, w.st.lat...)
		for c, k := range w.st.status {
			status[c] += k
		}
		for k, v := range w.st.errs {
			errs[k] += v
		}
		sent += w.st.sent
		lastSend = max(lastSend, w.st.lastSend)
		lastDone = max(lastDone, w.st.lastDone)
		for _, c := range w.conns {
			if c != nil {
				c.c.Close()
			}
		}
	}
	codes := map[string]int64{}
	for c, k := range status {
		if k > 0 {
			codes[strconv.Itoa(c)] = k
			if c >= 200 && c < 300 {
				ok += k
			}
		}
	}
	if u := unsent.Load(); u > 0 {
		errs["unsent"] = u // scheduled but never started: the pool was hopelessly behind
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p*float64(len(lat))+0.5) - 1 // nearest-rank
		return float64(lat[min(max(i, 0), len(lat)-1)]) / 1e6
	}
	var sum float64
	for _, l := range lat {
		sum += float64(l)
	}
	mean := 0.0
	if len(lat) > 0 {
		mean = sum / float64(len(lat)) / 1e6
	}
	dur := float64(lastDone) / 1e9
	sendSpan := float64(lastSend) / 1e9
	if open {
		// The schedule spans the whole -duration even if the last slot is just before its end.
		sendSpan = max(sendSpan, duration.Seconds())
	}
	div := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	round := func(x float64) float64 { v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64); return v }
	out := map[string]any{
		"requests":     sent,
		"duration_s":   round(dur),
		"throughput":   round(div(float64(ok), dur)),
		"rate":         round(div(float64(sent), sendSpan)),
		"success":      round(div(float64(ok), float64(sent+unsent.Load()))),
		"status_codes": codes,
		"errors":       errs,
		"latency_ms": map[string]float64{
			"p50": round(pct(0.50)), "p90": round(pct(0.90)), "p99": round(pct(0.99)),
			"max": round(pct(1.0)), "mean": round(mean),
		},
		"cpu_seconds": round(cpu.Seconds()),
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		os.Exit(1)
	}
}
