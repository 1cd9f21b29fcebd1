package agent

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// maxTree bounds the ancestors procTree names.
const maxTree = 8

// procTree names pid and its ancestors, nearest first, as "PID comm"
// joined by " < ", from /proc/PID/stat; it stops at PID 1, at a process
// gone, or after maxTree.
func procTree(pid int) string {
	var parts []string
	for range maxTree {
		if pid <= 0 {
			break
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			break
		}
		// "PID (comm) S PPID ...": comm may hold spaces and parentheses.
		open, shut := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || shut < open {
			break
		}
		parts = append(parts, strconv.Itoa(pid)+" "+string(b[open+1:shut]))
		f := strings.Fields(string(b[shut+1:]))
		if len(f) < 2 || pid == 1 {
			break
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return strings.Join(parts, " < ")
}
