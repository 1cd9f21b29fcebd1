package agent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A container's init is known by the number containerd gives in its task
// event. If the init ends before the agent adopts it (the allowlist can
// take seconds to make), the number may go to another process, another
// container's: the agent would then mark that one's root and map its
// device to this container, whose allowlist and mode its execs would get.
// So adoption opens a pidfd on the number, checks that the process is in
// the container's cgroup (its cgroup paths name the container, as runc
// makes them under containerd, with either cgroup driver), and, after
// marking, that the process did not end meanwhile (TestAdoptPidReused).

// initOf opens a pidfd on pid and checks that it is a process of container
// id.
func initOf(pid uint32, id string) (int, error) {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return -1, fmt.Errorf("opening its process %d: %w", pid, err)
	}
	ids, err := cgroupCandidates(int(pid)) // attrib.go
	if err == nil && !containsString(ids, id) {
		err = fmt.Errorf("process %d is not in its cgroup (cgroups name %q): its init ended and the number may be another's", pid, ids)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// alive reports whether the process of pidfd has not ended.
func alive(pidfd int) bool { return unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil }
