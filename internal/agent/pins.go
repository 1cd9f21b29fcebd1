package agent

import "golang.org/x/sys/unix"

// The exec sensor holds a container's own filesystems by device number
// (unheldkill.go), and an anonymous device number (tmpfs, overlay) is
// given back to the next filesystem mounted as soon as the last mount of
// the one that had it goes. A process with CAP_SYS_ADMIN could unmount a
// marked tmpfs and mount a fresh one, unmarked, which gets the same number:
// until the agent read the container's mounts again, the sensor took it
// for held and an exec from it ran unasked (TestDeviceReuse, 1 round in 7).
// So the agent keeps a descriptor of each own filesystem open (a pin):
// its superblock, and with it its device number, outlives the unmount
// until the agent has released the number in the sensor, and only then is
// it closed. A plain umount of a pinned filesystem in the container is
// refused (EBUSY); a lazy one (MNT_DETACH) is not. At most
// maxMountsPerContainer pins per container.

// repin keeps c's pins of the devices pins has (it owns them: the
// duplicates are closed) and closes those of the others. Call it after the
// sensor released the gone devices. a.mu is held when c is watched.
func (c *container) repin(pins map[uint64]int) {
	if c.pins == nil {
		c.pins = map[uint64]int{}
	}
	for d, fd := range pins {
		if _, ok := c.pins[d]; ok {
			unix.Close(fd)
		} else {
			c.pins[d] = fd
		}
	}
	for d, fd := range c.pins {
		if _, ok := pins[d]; !ok {
			unix.Close(fd)
			delete(c.pins, d)
		}
	}
}

// unpin closes all of c's pins (it is no longer watched).
func (c *container) unpin() { c.repin(nil) }

// closePins closes pins that were not kept.
func closePins(pins map[uint64]int) {
	for _, fd := range pins {
		unix.Close(fd)
	}
}
