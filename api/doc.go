// Package api is the gRPC transport: it maps protobuf messages to the domain
// packages' types and back, and domain errors to gRPC status codes, in
// exactly one place (errors.go). It holds no business rule of its own.
package api
