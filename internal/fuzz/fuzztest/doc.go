// Package fuzztest is a small HTTP API with planted faults and its OpenAPI
// document, for the fuzzer's tests and bench/fuzz: a 500 on a long string,
// an admin route that skips authentication, an AWS-style key in an error
// body, an undeclared status code and an e-mail address the document does
// not grant. With the faults off it is a clean server the fuzzer must find
// nothing in.
package fuzztest
