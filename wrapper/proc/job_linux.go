//go:build linux

package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// killBound bounds the SIGKILL phase: a process in uninterruptible
	// sleep may never die, and the wrapper must still report and finish.
	killBound = 2 * time.Second
	// pollEvery is the fallback for tree changes no reap announces (a
	// process reaped by a parent inside the tree).
	pollEvery = 50 * time.Millisecond
	// killPollEvery is shorter: after SIGKILL, deaths are imminent.
	killPollEvery = 10 * time.Millisecond
)

// makeCgroup is newCgroup, but for tests that need a cgroup to fail.
var makeCgroup = newCgroup

type job struct {
	mainPID   int
	mainStart uint64
	pgid      int
	out, errR *outPipe
	cg        *cgroup // nil in ModeProc

	done    chan struct{} // closed by the reaper once the main process is reaped
	st      ExitStatus    // written before done is closed
	changed chan struct{} // capacity 1: the reaper's "something exited"

	// Guarded by reg.mu.
	mainReaped bool
	known      map[int]uint64 // pid → start time of the last members seen
	closed     bool
}

// prepared is Prepare's work (see Prepared), until a start or a release
// takes it. It leaves nothing outside this process: a wrapper that dies
// before its job starts leaves no cgroup behind.
type prepared struct {
	mu    sync.Mutex
	taken bool
	// cgBase is where the job's cgroup is to be made, "" for nowhere
	// (disabled, or no cgroup v2 of the wrapper's own).
	cgBase string
}

func prepare(disableCgroup bool) *prepared {
	_ = becomeSubreaper()
	reg.mu.Lock()
	holdReaper()
	reg.mu.Unlock()
	p := &prepared{}
	if !disableCgroup {
		p.cgBase, _ = cgroupBase()
	}
	return p
}

// take hands the preparation over once; ok is false when it was taken or
// released already. The taker owns one hold on the reaper.
func (p *prepared) take() (cgBase string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taken {
		return "", false
	}
	p.taken = true
	return p.cgBase, true
}

func (p *prepared) release() {
	if _, ok := p.take(); ok {
		reg.mu.Lock()
		releaseReaper()
		reg.mu.Unlock()
	}
}

func start(opts Options) (*Job, error) {
	var (
		cgBase   string
		prepared bool // Prepare held the reaper and found cgBase
	)
	if opts.Prepared != nil {
		cgBase, prepared = opts.Prepared.impl.take()
	}
	if prepared {
		// The job holds the reaper for itself from register on.
		defer func() {
			reg.mu.Lock()
			releaseReaper()
			reg.mu.Unlock()
		}()
	}
	cred, env, err := credential(opts)
	if err != nil {
		return nil, fmt.Errorf("start %q: %w", opts.Command, err)
	}
	// Without it the /proc walk loses setsid'd orphans to init; a cgroup
	// still holds them, so this is no reason to refuse the job.
	_ = becomeSubreaper()

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start %q: open stdin: %w", opts.Command, err)
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %q: stdout pipe: %w", opts.Command, err)
	}
	defer outW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		return nil, fmt.Errorf("start %q: stderr pipe: %w", opts.Command, err)
	}
	defer errW.Close()

	var cg *cgroup // nil: fall back to the /proc walk, silently
	switch {
	case opts.DisableCgroup:
	case prepared && cgBase != "":
		cg, _ = newCgroupIn(cgBase)
	case !prepared:
		cg, _ = makeCgroup()
	}

	j := &job{
		out:     &outPipe{File: outR},
		errR:    &outPipe{File: errR},
		done:    make(chan struct{}),
		changed: make(chan struct{}, 1),
	}
	attr := &syscall.ProcAttr{
		Dir:   opts.Cwd,
		Env:   env,
		Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: cred},
	}

	reg.mu.Lock()
	register(j)
	// Go opens its own descriptors close-on-exec, but the wrapper may have
	// inherited others (or a library made some); none may reach the job.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	argv := []string{"sh", "-c", opts.Command}
	var pid int
	if cg != nil {
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, cg.fd
		pid, err = syscall.ForkExec("/bin/sh", argv, attr)
		if err != nil {
			// Whether clone3 refused the cgroup or the exec failed, the
			// retry without one tells: a job error fails again.
			_ = cg.remove()
			cg = nil
			attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = false, 0
		}
	}
	if cg == nil {
		pid, err = syscall.ForkExec("/bin/sh", argv, attr)
	}
	if err != nil {
		unregister(j)
		reg.mu.Unlock()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %q: %w", opts.Command, err)
	}
	j.mainPID, j.pgid, j.cg = pid, pid, cg
	if cg != nil {
		// Only clone3 needed it; the directory's path serves from now on.
		_ = unix.Close(cg.fd)
		cg.fd = -1
	}
	// Not reaped while we hold reg.mu, so the stat is the main's own.
	if p, err := readStat(pid); err == nil {
		j.mainStart = p.start
	}
	reg.mu.Unlock()
	return &Job{impl: j}, nil
}

// credential resolves Options.User into the child's credentials and the
// environment that goes with them.
func credential(opts Options) (*syscall.Credential, []string, error) {
	env := slices.Clone(opts.Env)
	if opts.User == "" {
		return nil, env, nil
	}
	u, err := user.Lookup(opts.User)
	if err != nil {
		var unknown user.UnknownUserError
		if _, nerr := strconv.Atoi(opts.User); errors.As(err, &unknown) && nerr == nil {
			u, err = user.LookupId(opts.User)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("look up user %q: %w", opts.User, err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: uid %q: %w", opts.User, u.Uid, err)
	}
	if int(uid) == os.Getuid() {
		return nil, env, nil
	}
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("run as user %q: %w", opts.User, ErrNeedRoot)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %q: gid %q: %w", opts.User, u.Gid, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, nil, fmt.Errorf("groups of user %q: %w", opts.User, err)
	}
	groups := make([]uint32, 0, len(gids))
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("groups of user %q: gid %q: %w", opts.User, g, err)
		}
		groups = append(groups, uint32(n))
	}
	env = setEnv(env, "HOME", u.HomeDir)
	env = setEnv(env, "USER", u.Username)
	env = setEnv(env, "LOGNAME", u.Username)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, env, nil
}

// setEnv replaces every KEY= entry, so the job cannot see the wrapper
// user's value first.
func setEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

func (j *job) pid() int                { return j.mainPID }
func (j *job) stdout() io.ReadCloser   { return j.out }
func (j *job) stderr() io.ReadCloser   { return j.errR }
func (j *job) exited() <-chan struct{} { return j.done }

func (j *job) status() ExitStatus {
	select {
	case <-j.done:
		return j.st
	default:
		return ExitStatus{}
	}
}

func (j *job) mode() string {
	if j.cg != nil {
		return ModeCgroup
	}
	return ModeProc
}

func (j *job) cgroupDir() string {
	if j.cg != nil {
		return j.cg.dir
	}
	return ""
}

// setStatus is called by the reaper, holding reg.mu.
func (j *job) setStatus(ws unix.WaitStatus) {
	switch {
	case ws.Signaled():
		j.st = ExitStatus{Code: 128 + int(ws.Signal()), Signaled: true, Signal: ws.Signal()}
	default:
		j.st = ExitStatus{Code: ws.ExitStatus()}
	}
	j.mainReaped = true
	close(j.done)
}

func (j *job) poke() {
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

func (j *job) alive() []int {
	var pids []int
	for _, p := range j.liveMembers() {
		pids = append(pids, p.pid)
	}
	return pids
}

func (j *job) signal(sig syscall.Signal) (int, error) {
	if sig == syscall.SIGKILL {
		return 0, errors.New("signal SIGKILL: refused, killing is Terminate's job")
	}
	if sig <= 0 || sig > 64 {
		return 0, fmt.Errorf("signal %d: not a signal", int(sig))
	}
	return j.sendAll(sig), nil
}

// sendAll signals every live member, rescanning so that a process forked
// while the first pass ran gets it too; it returns how many it reached.
// With several signals each process gets them in order, in one pass.
func (j *job) sendAll(sigs ...syscall.Signal) int {
	reached := make(map[int]uint64)
	for range 3 {
		fresh := 0
		for _, p := range j.liveMembers() {
			if s, ok := reached[p.pid]; ok && s == p.start {
				continue
			}
			fresh++
			if sendSignal(p, sigs...) {
				reached[p.pid] = p.start
			}
		}
		if fresh == 0 {
			break
		}
	}
	return len(reached)
}

func (j *job) terminate(ctx context.Context, sig syscall.Signal, grace time.Duration) TerminateResult {
	// A closed job's leftovers still die, and their zombies must be reaped.
	reg.mu.Lock()
	holdReaper()
	reg.mu.Unlock()
	defer func() {
		reg.mu.Lock()
		releaseReaper()
		reg.mu.Unlock()
	}()

	var res TerminateResult
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if sig != syscall.SIGKILL {
		if sig == syscall.SIGCONT {
			res.Signalled = j.sendAll(sig)
		} else {
			// A stopped process keeps sig pending until it runs again.
			res.Signalled = j.sendAll(sig, syscall.SIGCONT)
		}
		j.await(ctx, time.Now().Add(grace), pollEvery, func() bool {
			return len(j.liveMembers()) == 0
		})
	}
	res.Killed, res.Survivors = j.killRest()
	if sig == syscall.SIGKILL {
		res.Signalled = len(res.Killed)
	}
	return res
}

// killRest SIGKILLs the tree until nothing of it is left, zombies
// included (so that a caller checking a pid afterwards finds it gone), or
// killBound passes; what still lives then is a survivor.
func (j *job) killRest() ([]int, []Survivor) {
	killed := make(map[int]bool)
	gone := j.await(context.Background(), time.Now().Add(killBound), killPollEvery, func() bool {
		ms := j.members()
		lv := live(ms)
		if len(lv) > 0 && j.cg != nil && j.cg.hasKill {
			// Kills forks in flight too, which a scan cannot.
			_ = j.cg.kill()
		}
		for _, p := range lv {
			killed[p.pid] = true
			sendSignal(p, unix.SIGKILL)
		}
		return len(ms) == 0
	})
	var survivors []Survivor
	if !gone {
		for _, p := range j.liveMembers() {
			survivors = append(survivors, Survivor{PID: p.pid, Comm: p.comm, State: p.state})
		}
	}
	var pids []int
	for pid := range killed {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids, survivors
}

// await checks done, which looks at the tree, until it holds, the
// deadline passes or ctx ends. It checks again whenever the reaper reaps
// something, which is when the tree's last process goes (its parent is the
// wrapper then), and every poll as a fallback.
func (j *job) await(ctx context.Context, deadline time.Time, poll time.Duration, done func() bool) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if done() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		case <-j.changed:
		case <-tick.C:
		}
	}
}

// close may be called again after an error: a cgroup still holding
// leftovers cannot be removed yet, and may be once Terminate emptied it.
func (j *job) close() error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if !j.closed {
		j.closed = true
		unregister(j)
	}
	if j.cg != nil {
		return j.cg.remove()
	}
	return nil
}
