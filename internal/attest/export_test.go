package attest

// Exported for the external tests (sgx_synth_test.go and friends), which
// import attesttest and so cannot live in package attest.

type Field = field

var FlipEach = flipEach
