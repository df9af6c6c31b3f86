//go:build linux

package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procInfo is what /proc/PID/stat says about a process. start (the start
// time since boot) tells a process from a later one that reused its pid.
type procInfo struct {
	pid, ppid, pgrp int
	comm, state     string
	start           uint64
}

// dead processes are zombies waiting for their parent (or for the reaper):
// they hold a pid but can neither act on a signal nor be killed again.
func (p procInfo) dead() bool { return p.state == "Z" || p.state == "X" }

func readStat(pid int) (procInfo, error) {
	b, err := readProcFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	return parseStat(pid, b)
}

// parseStat reads "pid (comm) state ppid pgrp session ... starttime ...".
// comm may hold spaces and parentheses, hence the last ')'.
func parseStat(pid int, b []byte) (procInfo, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: no comm", pid)
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	p := procInfo{pid: pid, comm: string(b[open+1 : end]), state: string(f[0])}
	var errs [3]error
	p.ppid, errs[0] = strconv.Atoi(string(f[1]))
	p.pgrp, errs[1] = strconv.Atoi(string(f[2]))
	p.start, errs[2] = strconv.ParseUint(string(f[19]), 10, 64)
	if err := errors.Join(errs[:]...); err != nil {
		return procInfo{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return p, nil
}

// snapshot reads every process of /proc. Processes come and go while it
// reads; the callers rescan where that matters.
func snapshot() (map[int]procInfo, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("walk /proc: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("walk /proc: %w", err)
	}
	procs := make(map[int]procInfo, len(names))
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if p, err := readStat(pid); err == nil {
			procs[pid] = p
		}
	}
	return procs, nil
}

// members is the job's tree as of now, zombies included: the cgroup's
// processes, its process group and the descendants of the wrapper that
// belong to it (see attribute). It also remembers what it found, so that a
// process later re-parented to the wrapper is still known to be this job's.
func (j *job) members() []procInfo {
	if j.cg != nil {
		if pids, err := j.cg.procs(); err == nil {
			return j.cgroupMembers(pids)
		}
		// An unreadable cgroup: the walk below still finds the tree.
	}
	snap, err := snapshot()
	if err != nil {
		snap = map[int]procInfo{}
	}
	var cgPids []int
	if j.cg != nil {
		cgPids, _ = j.cg.procs()
	}

	reg.mu.Lock()
	tree := j.attribute(snap)
	for _, pid := range cgPids {
		if _, ok := tree[pid]; ok {
			continue
		}
		// Forked after the snapshot, or outside the wrapper's descendants.
		if p, ok := snap[pid]; ok {
			tree[pid] = p
		} else if p, err := readStat(pid); err == nil {
			tree[pid] = p
		}
	}
	j.known = make(map[int]uint64, len(tree))
	for pid, p := range tree {
		j.known[pid] = p.start
	}
	reg.mu.Unlock()

	out := make([]procInfo, 0, len(tree))
	for _, p := range tree {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b procInfo) int { return a.pid - b.pid })
	return out
}

// liveMembers is live(members()) for what needs only the living: who to
// signal, whether the tree is empty of them. In cgroup mode that is the
// cgroup's processes alone (an exited process leaves the cgroup at once,
// before it is reaped), without the wrapper's zombie children, which
// members adds by reading one file per thread of the wrapper: the
// termination of a job, which asks this several times, reads a few files
// instead of a score.
func (j *job) liveMembers() []procInfo {
	if j.cg == nil {
		return live(j.members())
	}
	pids, err := j.cg.procs()
	if err != nil {
		// An unreadable cgroup: members walks /proc.
		return live(j.members())
	}
	out := make([]procInfo, 0, len(pids))
	for _, pid := range pids {
		if p, err := readStat(pid); err == nil && !p.dead() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b procInfo) int { return a.pid - b.pid })
	return out
}

// cgroupMembers is members in cgroup mode. Every descendant of the job is
// in its cgroup (a child inherits it and cannot leave without privileges
// the job should not use), so the costly walk of all of /proc, which a
// kill repeats several times, is not needed: only the cgroup's processes
// are read. A process that exited leaves the cgroup before its parent
// reaps it, so the wrapper's zombie children are added: until the reaper
// has them, they still hold their pids.
func (j *job) cgroupMembers(pids []int) []procInfo {
	pids = append(pids, zombieChildren()...)
	out := make([]procInfo, 0, len(pids))
	seen := make(map[int]bool, len(pids))
	for _, pid := range pids {
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if p, err := readStat(pid); err == nil {
			out = append(out, p)
		}
	}
	reg.mu.Lock()
	j.known = make(map[int]uint64, len(out))
	for _, p := range out {
		j.known[p.pid] = p.start
	}
	reg.mu.Unlock()
	slices.SortFunc(out, func(a, b procInfo) int { return a.pid - b.pid })
	return out
}

// zombieChildren lists the wrapper's children that have exited and wait
// for the reaper, from /proc/self/task/*/children.
func zombieChildren() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := readProcFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if p, err := readStat(pid); err == nil && p.dead() {
				out = append(out, pid)
			}
		}
	}
	return out
}

// attribute picks the job's processes out of a snapshot. The wrapper's
// direct children are the main processes of its jobs and orphans
// re-parented to it; an orphan belongs to the job that saw it before, and
// one that no job saw belongs to every job that started before it (a
// wrapper runs one job; a process older than the job cannot be its orphan).
// The caller holds reg.mu.
func (j *job) attribute(snap map[int]procInfo) map[int]procInfo {
	self := os.Getpid()
	children := make(map[int][]int, len(snap))
	for pid, p := range snap {
		children[p.ppid] = append(children[p.ppid], pid)
	}

	isMain := func(p procInfo) (*job, bool) {
		for o := range reg.jobs {
			if !o.mainReaped && o.mainPID == p.pid && o.mainStart == p.start {
				return o, true
			}
		}
		if !j.mainReaped && j.mainPID == p.pid && j.mainStart == p.start {
			return j, true
		}
		return nil, false
	}
	knownBy := func(o *job, p procInfo) bool {
		s, ok := o.known[p.pid]
		return ok && s == p.start
	}

	var roots []int
	for _, pid := range children[self] {
		p := snap[pid]
		if o, ok := isMain(p); ok {
			if o == j {
				roots = append(roots, pid)
			}
			continue
		}
		if knownBy(j, p) {
			roots = append(roots, pid)
			continue
		}
		claimed := false
		for o := range reg.jobs {
			if o != j && knownBy(o, p) {
				claimed = true
				break
			}
		}
		if !claimed && p.start >= j.mainStart {
			roots = append(roots, pid)
		}
	}

	tree := make(map[int]procInfo)
	var walk func(pid int)
	walk = func(pid int) {
		if _, seen := tree[pid]; seen {
			return
		}
		tree[pid] = snap[pid]
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}

	// Members of the job's process group are descendants anyway, but that
	// makes no assumption about the wrapper being a subreaper. Once the
	// leader is reaped and the group emptied, its id may name a stranger's
	// group, so then only the wrapper's descendants count.
	var descends func(p procInfo) bool
	descends = func(p procInfo) bool {
		for range len(snap) {
			if p.ppid == self {
				return true
			}
			q, ok := snap[p.ppid]
			if !ok {
				return false
			}
			p = q
		}
		return false
	}
	for pid, p := range snap {
		if p.pgrp == j.pgid && (!j.mainReaped || descends(p)) {
			walk(pid)
		}
	}
	return tree
}

func live(ps []procInfo) []procInfo {
	out := make([]procInfo, 0, len(ps))
	for _, p := range ps {
		if !p.dead() {
			out = append(out, p)
		}
	}
	return out
}

// sendSignal signals p if it is still the process that was scanned: the
// pidfd pins the process, and the start time read after opening it proves
// the pid was not reused in between. With several signals, p gets them in
// order, through the one pidfd; it reports whether one at least was sent.
func sendSignal(p procInfo, sigs ...unix.Signal) bool {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		sent := false
		for _, sig := range sigs {
			sent = unix.Kill(p.pid, sig) == nil || sent
		}
		return sent
	}
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if q, err := readStat(p.pid); err != nil || q.start != p.start || q.dead() {
		return false
	}
	sent := false
	for _, sig := range sigs {
		sent = unix.PidfdSendSignal(fd, sig, nil, 0) == nil || sent
	}
	return sent
}
