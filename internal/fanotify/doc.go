// Package fanotify is a small, strict wrapper over Linux fanotify permission
// events for execs: FAN_OPEN_EXEC_PERM marked on whole filesystems
// (FAN_MARK_FILESYSTEM), so that the kernel holds every execve of a file on
// a marked filesystem until the listener answers allow or deny. A denied
// exec fails with EPERM before the new program runs.
//
// What happens when the listener goes away (its process dies, or Close is
// called) is the kernel's rule, tested in this package: every pending
// permission event is answered allow and the marks are dropped, so execs
// never hang on a dead listener; enforcement fails open. A listener that is
// alive but never answers does hang the exec (the kernel has no timeout), so
// the caller must answer every event it reads, on every path.
//
// Marks need CAP_SYS_ADMIN. The events' file descriptors are opened by the
// kernel with FMODE_NONOTIFY: reading them raises no further events.
package fanotify
