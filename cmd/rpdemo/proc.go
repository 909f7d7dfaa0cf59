package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// proc is a child process whose reports are matched against waiters.
type proc struct {
	name    string
	cmd     *exec.Cmd
	mu      sync.Mutex
	reports []report
	more    chan struct{} // closed and replaced on each new report
	done    chan struct{} // closed once the process exited and its output is read
}

func (d *demo) startProc(name, path string, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	ownGroup(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, more: make(chan struct{}), done: make(chan struct{})}
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	var wg sync.WaitGroup
	read := func(r io.Reader, parse func(string) (report, bool)) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if d.verbose {
				d.logf(name, "| %s", sc.Text())
			}
			if s, ok := parse(sc.Text()); ok {
				p.add(s)
			}
		}
		io.Copy(io.Discard, r)
	}
	wg.Add(2)
	go read(out, parseStdout)
	go read(errp, parseStderr)
	go func() { wg.Wait(); cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) add(s report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, s)
	close(p.more)
	p.more = make(chan struct{})
}

// wait waits for the first report matching ok at or after index from and
// returns it with its index. Signals of one stream keep their order; those
// of standard output and standard error are not ordered with each other.
func (p *proc) wait(ctx context.Context, from int, timeout time.Duration, what string, ok func(report) bool) (report, int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.reports); i++ {
			if ok(p.reports[i]) {
				s := p.reports[i]
				p.mu.Unlock()
				return s, i, nil
			}
		}
		from = max(from, len(p.reports))
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			return report{}, -1, fmt.Errorf("%s exited before %s", p.name, what)
		case <-t.C:
			return report{}, -1, fmt.Errorf("%s: no %s within %v", p.name, what, timeout)
		case <-ctx.Done():
			return report{}, -1, ctx.Err()
		}
	}
}

// addrs waits for the listen addresses of the process's run that printed
// them after the first skip: each run prints one line per --listen
// address, n of them, on standard output, so the lines of a restarted run
// follow those of the runs before it.
func (p *proc) addrs(ctx context.Context, skip, n int) ([]string, error) {
	var out []string
	seen, from := 0, 0
	for len(out) < n {
		s, i, err := p.wait(ctx, from, 30*time.Second, "listening: line", func(s report) bool { return s.kind == reportListening })
		if err != nil {
			return nil, err
		}
		if seen++; seen > skip {
			out = append(out, s.addr)
		}
		from = i + 1
	}
	return out, nil
}

func (d *demo) stopAll() {
	d.mu.Lock()
	procs := d.procs
	d.mu.Unlock()
	for _, p := range procs {
		kill(p.cmd)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}
