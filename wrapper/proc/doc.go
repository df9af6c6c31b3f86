// Package proc owns the job's processes on the wrapper's side: it starts
// the job's command and controls its whole process tree until the last
// process of it is gone.
//
// What it owns, and why it owns all of it:
//
//   - Starting: /bin/sh -c Command in its own process group, in its own
//     cgroup v2 where the wrapper can make one, with exactly the job's
//     environment, /dev/null as stdin and two pipes for stdout and stderr;
//     a pipe that one read finds full grows to the wrapper's chunk.
//     No other descriptor of the wrapper reaches the job.
//   - The tree: the cgroup's members, the job's process group, and every
//     process whose parent chain reaches the wrapper. The wrapper makes
//     itself a child subreaper, so children that setsid or double-fork are
//     re-parented to it instead of init and stay in reach even where no
//     cgroup can be made.
//   - Reaping: one goroutine waits for every child of the process (wait4
//     on -1), because a subreaper inherits zombies it must reap and because
//     a second waiter on the main process could steal its exit status.
//     Consequently, while a Job is open, or a Prepare not released,
//     nothing else in the process may wait for children of its own
//     (os/exec's Wait would see ECHILD).
//   - Preparing: Prepare does ahead of Start what does not depend on the
//     job (the subreaper, the reaper, where the cgroup goes), for a caller
//     that has time before it knows the job.
//   - The kill policy of the wire protocol: signal and SIGCONT the tree,
//     wait out the grace, SIGKILL what is left and report survivors.
//
// Without a cgroup, the tree is found by parentage alone, and a direct
// child of the wrapper that no open Job has seen is counted in every open
// Job that started before it: a wrapper runs one job.
//
// Linux only.
package proc
