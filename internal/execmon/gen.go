package execmon

// Regenerate exec_bpfel.go and exec_bpfel.o from bpf/exec.c (needs clang,
// llvm and libbpf-dev; bpf2go at the version go.mod pins for the library).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event -type held_key exec bpf/exec.c

// The gate's guard (bpf/gatecont.c), an object of its own (Linux 6.13).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel gatecont bpf/gatecont.c
