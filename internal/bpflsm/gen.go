package bpflsm

// Regenerate lsm_bpfel.go and lsm_bpfel.o from bpf/lsm.c (needs clang, llvm
// and libbpf-dev; bpf2go is run at the version go.mod pins for the library).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type event -type file_key -type file_val -type container lsm bpf/lsm.c
